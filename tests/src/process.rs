//! Service processes that cannot outlive the test process.
//!
//! Each service is spawned as the leader of its own process group, so stopping it signals the
//! whole group. On Linux it also gets `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills it when the
//! thread that spawned it exits. That thread is therefore one dedicated spawner thread living as
//! long as the process, not the test's own thread (which ends with the test while a shared
//! service must stay up). So when the test binary exits, panics or is killed with `SIGKILL`,
//! its services die with it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

/// A running service: a child process leading its own process group, its output appended to
/// a log file. Dropping it kills the group.
#[derive(Debug)]
pub struct ServiceProcess {
    /// Short name for messages, e.g. `nats-server`.
    name: String,
    /// The group leader.
    child: Child,
    /// Where stdout and stderr go.
    log: PathBuf,
    /// Set once the child has been reaped; no signal is sent after that (its pid may be reused).
    exit: Option<ExitStatus>,
}

impl ServiceProcess {
    /// Spawns `command` with stdin from /dev/null and stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
            // system calls (prctl, getppid).
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if libc::getppid() != parent {
                        return Err(io::Error::other("parent exited during spawn"));
                    }
                    Ok(())
                });
            }
        }
        let child = spawn_on_spawner_thread(command)
            .with_context(|| format!("spawn {name} (log: {})", log.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            exit: None,
        })
    }

    /// The process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The log file the process writes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status once the process has exited, `None` while it runs.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Polls `ready` every 50 ms until it returns true. Fails, with the end of the log, when
    /// the process exits first or `timeout` passes.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.try_exit() {
                return Err(anyhow!(
                    "{} exited ({status}) before it was ready; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "{} was not ready within {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop: `SIGTERM` to the group, `SIGKILL` if still running after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// Crash stop: `SIGKILL` to the group, then reaps the leader.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        self.signal_group(libc::SIGKILL);
        let status = self.child.wait().unwrap_or_else(|err| {
            panic!("wait for {} (pid {}): {err}", self.name, self.child.id())
        });
        self.exit = Some(status);
        status
    }

    /// Sends `signal` to the process group while its leader has not been reaped (until then
    /// the group id cannot be reused).
    pub fn signal_group(&self, signal: libc::c_int) {
        if self.exit.is_none() {
            // SAFETY: plain system call; the group id is our unreaped child's pid.
            unsafe {
                libc::kill(-(self.child.id() as libc::pid_t), signal);
            }
        }
    }

    /// The last `lines` lines of the log (at most 64 KiB read).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of the log at `path` (at most 64 KiB read), or why it cannot be read.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    tail(path, lines).unwrap_or_else(|err| format!("(cannot read log: {err})"))
}

fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns on the process-lifetime spawner thread (see the module docs).
fn spawn_on_spawner_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("rtdash-test-spawner".into())
            .spawn(move || {
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the harness spawner thread");
        Mutex::new(jobs)
    });
    let (reply, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| io::Error::other("harness spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("harness spawner thread is gone"))?
}

/// CPU time (user and system, all threads) process `pid` has used so far, in seconds, from
/// `/proc/<pid>/stat`; `None` when it cannot be read.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (in parentheses, which may hold spaces): state is the
    // 3rd field of the line, utime the 14th, stime the 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields.get(11)?.parse::<u64>().ok()? as f64 + fields.get(12)?.parse::<u64>().ok()? as f64;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::is_port_conflict;

    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks existence.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn cpu_seconds_grow_with_work() {
        let me = std::process::id();
        let before = cpu_seconds(me).expect("own stat");
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_seconds(me).expect("own stat");
        assert!(after - before >= 0.1, "{before} -> {after}");
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn kill_on_drop_and_terminate() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut command = Command::new("sleep");
        command.arg("600");
        let mut p = ServiceProcess::spawn("sleep", command, &log).unwrap();
        let pid = p.id();
        assert!(alive(pid));
        assert!(p.try_exit().is_none());
        let status = p.terminate(Duration::from_secs(5));
        assert!(!status.success());
        assert!(!alive(pid));

        let mut command = Command::new("sleep");
        command.arg("600");
        let p = ServiceProcess::spawn("sleep", command, &log).unwrap();
        let pid = p.id();
        drop(p);
        assert!(!alive(pid));
    }

    #[test]
    fn early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sh.log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo bind: address already in use >&2; exit 3"]);
        let mut p = ServiceProcess::spawn("sh", command, &log).unwrap();
        let err = p
            .wait_ready(Duration::from_secs(10), || false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sh exited"), "{err}");
        assert!(is_port_conflict(&err), "{err}");
    }
}

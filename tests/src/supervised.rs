//! The one lifecycle every harness server shares (nats-server, cluster nodes, edge leaf
//! nodes, QuestDB, the rtdash binaries): start a command and wait until it answers its
//! readiness URL, stop it gracefully or crash it, start it again with the same command (same
//! ports, store and log).
//!
//! [`ServiceProcess`] is the process itself (its group, its death with the test process);
//! [`Supervised`] adds what a restart needs to remember.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::http;
use crate::process::{log_tail, ServiceProcess};

/// What to execute: program, arguments and environment.
#[derive(Clone, Debug)]
pub struct Program {
    path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// Set only when the test process does not set them itself (e.g. `RUST_LOG`).
    env_defaults: Vec<(String, String)>,
    /// Remove every inherited `RTDASH_*` variable first: the rtdash binaries read their
    /// configuration from them, and the test's own `env` is the whole configuration.
    clear_rtdash_env: bool,
}

impl Program {
    /// `path` without arguments, the test process's environment inherited.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_defaults: Vec::new(),
            clear_rtdash_env: false,
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = impl Into<OsString>>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets environment variables (a later value of the same name wins).
    pub fn envs(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// Sets `key` unless the test process has it set (then the child inherits that value).
    pub fn env_default(mut self, key: &str, value: &str) -> Self {
        self.env_defaults.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Removes every inherited `RTDASH_*` variable, for an rtdash binary configured by
    /// [`envs`](Self::envs) alone.
    pub fn clear_rtdash_env(mut self) -> Self {
        self.clear_rtdash_env = true;
        self
    }

    /// The program's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The command to spawn or run.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        command.args(&self.args);
        if self.clear_rtdash_env {
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("RTDASH_") {
                    command.env_remove(key);
                }
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (key, value) in &self.env_defaults {
            if std::env::var_os(key).is_none() {
                command.env(key, value);
            }
        }
        command
    }
}

/// How to run one service: its program, where it logs, when it is ready, how long it may
/// take to stop.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Short name for messages, e.g. `nats-server n2`.
    name: String,
    program: Program,
    /// Where stdout and stderr are appended (across restarts).
    log: PathBuf,
    /// Polled until it answers 2xx, for at most the duration; `None`: ready once spawned.
    ready: Option<(String, Duration)>,
    /// How long a graceful stop waits after `SIGTERM` before `SIGKILL`.
    stop_grace: Duration,
}

impl Launch {
    /// Runs `program` as `name`, its output appended to `log`; ready once spawned; 10 s to stop.
    pub fn new(name: impl Into<String>, program: Program, log: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program,
            log: log.into(),
            ready: None,
            stop_grace: Duration::from_secs(10),
        }
    }

    /// Ready once `url` answers 2xx; failed when it does not within `timeout`.
    pub fn ready_when_ok(mut self, url: impl Into<String>, timeout: Duration) -> Self {
        self.ready = Some((url.into(), timeout));
        self
    }

    /// Changes the program (e.g. adds the environment of a freshly picked port).
    pub fn map_program(mut self, change: impl FnOnce(Program) -> Program) -> Self {
        self.program = change(self.program);
        self
    }

    /// How long [`Supervised::stop`] waits after `SIGTERM` before `SIGKILL`.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }
}

/// A service started from a [`Launch`], which it keeps to start it again. Killed on drop.
#[derive(Debug)]
pub struct Supervised {
    launch: Launch,
    /// `None` while stopped.
    process: Option<ServiceProcess>,
}

impl Supervised {
    /// Spawns the service and waits until it is ready.
    pub fn start(launch: Launch) -> anyhow::Result<Self> {
        let mut service = Self::spawn(launch)?;
        service.wait_ready(None)?;
        Ok(service)
    }

    /// Spawns the service without waiting (nodes of a cluster need each other to be ready):
    /// [`wait_ready`](Self::wait_ready) next.
    pub fn spawn(launch: Launch) -> anyhow::Result<Self> {
        let process = ServiceProcess::spawn(&launch.name, launch.program.command(), &launch.log)?;
        Ok(Self {
            launch,
            process: Some(process),
        })
    }

    /// Waits until the readiness URL answers 2xx, for at most `timeout` (the launch's own
    /// timeout when `None`); fails with the end of the log when the process exits first.
    pub fn wait_ready(&mut self, timeout: Option<Duration>) -> anyhow::Result<()> {
        let Some((url, own_timeout)) = &self.launch.ready else {
            return Ok(());
        };
        let process = self
            .process
            .as_mut()
            .ok_or_else(|| anyhow!("{} is not running", self.launch.name))?;
        process.wait_ready(timeout.unwrap_or(*own_timeout), || http::is_ok(url))
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.launch.name
    }

    /// Its log (stdout and stderr of every run).
    pub fn log_path(&self) -> &Path {
        &self.launch.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.launch.log, lines)
    }

    /// The running process, `None` while stopped.
    pub fn process(&self) -> Option<&ServiceProcess> {
        self.process.as_ref()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Graceful stop: `SIGTERM`, `SIGKILL` after the launch's grace. `None` when it was not
    /// running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let grace = self.launch.stop_grace;
        self.process.take().map(|mut p| p.terminate(grace))
    }

    /// Crash stop: `SIGKILL` to its process group, no shutdown. `None` when it was not running.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.process.take().map(|mut p| p.kill())
    }

    /// Sends `signal` to the running process group (e.g. `SIGHUP`: reload the config).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let process = self
            .process
            .as_ref()
            .with_context(|| format!("{} is not running", self.launch.name))?;
        process.signal_group(signal);
        Ok(())
    }

    /// Starts it again with the same command and log (stopping it gracefully first if it
    /// runs) without waiting until it is ready, as a client that sends as soon as the port
    /// accepts sees it: [`wait_ready`](Self::wait_ready) next.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        self.stop();
        let launch = &self.launch;
        let process = ServiceProcess::spawn(&launch.name, launch.program.command(), &launch.log)?;
        self.process = Some(process);
        Ok(())
    }

    /// Starts it again with the same command, log and readiness check (stopping it
    /// gracefully first if it runs) and waits until it is ready; killed again if it is not.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.respawn()?;
        let ready = self.wait_ready(None);
        if ready.is_err() {
            self.kill();
        }
        ready
    }
}

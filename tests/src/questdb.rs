//! A real QuestDB server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tempfile::TempDir;

use crate::deploy;
use crate::http;
use crate::ports::{free_ports, retry_port_conflicts};
use crate::supervised::{Launch, Program, Supervised};

/// A JVM start takes ~3 s alone; leave room for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long [`QuestDb::stop`] waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// JVM options: a heap that fits beside the rest of a test run (QuestDB's column data lives
/// off-heap, in mapped files).
const JVM_OPTIONS: &[&str] = &["-Xms64m", "-Xmx512m"];

/// The four loopback ports a QuestDB listens on.
#[derive(Clone, Copy, Debug)]
struct Ports {
    /// REST (`/exec`), ILP over HTTP (`/write`), web console.
    http: u16,
    /// ILP over TCP.
    ilp: u16,
    /// PostgreSQL wire protocol.
    pg: u16,
    /// Minimal HTTP server (health).
    min_http: u16,
}

/// A QuestDB server on free loopback ports, rooted in a temporary directory, configured from
/// `deploy/questdb/server.conf`. Killed on drop; the directory is removed.
#[derive(Debug)]
pub struct QuestDb {
    ports: Ports,
    /// Declared before `dir`: killed before the directory is removed.
    server: Supervised,
    /// Holds `root/` (QuestDB's `-d`) and `questdb.log`.
    dir: TempDir,
}

impl QuestDb {
    /// The test binary's shared instance, started on first use and killed (its directory
    /// removed) when the test process exits. Tests sharing it use their own tables
    /// ([`crate::unique_name`]). A failed start fails every caller with the same error.
    pub fn shared() -> anyhow::Result<&'static QuestDb> {
        static SHARED: OnceLock<Result<QuestDb, String>> = OnceLock::new();
        extern "C" fn at_exit() {
            if let Some(Ok(db)) = SHARED.get() {
                db.kill_at_exit();
            }
        }
        let shared = SHARED.get_or_init(|| {
            let db = QuestDb::start().map_err(|err| format!("{err:#}"))?;
            // SAFETY: registers a plain extern "C" fn; it runs once, from exit().
            unsafe {
                libc::atexit(at_exit);
            }
            Ok(db)
        });
        shared
            .as_ref()
            .map_err(|err| anyhow!("shared QuestDB did not start: {err}"))
    }

    /// Starts a private instance and waits until it answers `select 1`.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_conf("")
    }

    /// Starts a private instance with `extra` appended to its server.conf (e.g. passwords:
    /// [`crate::lockdown`]); with `extra`, ready when its health port answers (its `/exec`
    /// may want a password).
    pub fn start_with_conf(extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rtdash-questdb-")
            .tempdir()?;
        let (ports, server) = retry_port_conflicts(|| {
            let [http, ilp, pg, min_http] = free_ports()?;
            let ports = Ports {
                http,
                ilp,
                pg,
                min_http,
            };
            write_config(dir.path(), ports, extra)?;
            Ok((
                ports,
                Supervised::start(launch(dir.path(), ports, !extra.is_empty())?)?,
            ))
        })?;
        Ok(Self { ports, server, dir })
    }

    /// REST and ILP-over-HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.http))
    }

    /// ILP-over-TCP address.
    pub fn ilp_tcp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.ilp))
    }

    /// PostgreSQL wire protocol address.
    pub fn pg_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.pg))
    }

    /// Minimal HTTP (health) address.
    pub fn min_http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.min_http))
    }

    /// questdb-rs sender configuration for ILP over HTTP: `http::addr=127.0.0.1:<port>;`.
    pub fn ilp_http_conf(&self) -> String {
        format!("http::addr={};", self.http_addr())
    }

    /// questdb-rs sender configuration for ILP over TCP: `tcp::addr=127.0.0.1:<port>;`.
    pub fn ilp_tcp_conf(&self) -> String {
        format!("tcp::addr={};", self.ilp_tcp_addr())
    }

    /// QuestDB's root directory (`-d`; kept across restarts).
    pub fn root(&self) -> PathBuf {
        root(self.dir.path())
    }

    /// The server's log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.server.log_path().to_owned()
    }

    /// Runs `sql` through `/exec` and returns QuestDB's JSON answer (`columns`, `dataset`,
    /// `count` for a query; `ddl`/`dml` for statements). A rejected statement is an error
    /// carrying QuestDB's message.
    pub fn exec(&self, sql: &str) -> anyhow::Result<Value> {
        let url = format!("http://{}/exec", self.http_addr());
        let mut response = http::agent()
            .get(&url)
            .query("query", sql)
            .call()
            .with_context(|| format!("QuestDB /exec `{sql}`"))?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("QuestDB /exec `{sql}`: answer ({status}) is not JSON"))?;
        if let Some(error) = body.get("error") {
            bail!("QuestDB rejected `{sql}` ({status}): {error}");
        }
        if !status.is_success() {
            bail!("QuestDB /exec `{sql}`: {status} {body}");
        }
        Ok(body)
    }

    /// Waits until every committed WAL transaction of `table` is applied, i.e. what was
    /// written is visible to queries. QuestDB applies WAL tables asynchronously.
    pub fn wait_wal_applied(&self, table: &str, timeout: Duration) -> anyhow::Result<()> {
        let sql = format!(
            "select suspended, writerTxn, sequencerTxn from wal_tables() where name = '{}'",
            table.replace('\'', "''")
        );
        crate::eventually(timeout, &format!("WAL of {table} applied"), || {
            let answer = self.exec(&sql)?;
            let Some(row) = answer["dataset"].get(0) else {
                bail!("no WAL table {table}");
            };
            if row[0] == Value::Bool(true) {
                return Err(anyhow!("WAL table {table} is suspended: {row}"));
            }
            Ok((row[1] == row[2]).then_some(()))
        })
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Graceful stop (`SIGTERM`, `SIGKILL` after 20 s). Ports and data are kept for
    /// [`restart`](Self::restart). Stopping a stopped server does nothing.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.process().map(|p| p.id())
    }

    /// Sends `signal` to the server's process (`SIGSTOP`/`SIGCONT`: a pause).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        self.server.signal(signal)
    }

    /// Crash stop (`SIGKILL`). Ports and data are kept for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the server again on the same ports and root, stopping it first if it runs, and
    /// waits until it answers `select 1`.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server
            .restart()
            .with_context(|| format!("restart QuestDB on {}", self.http_addr()))
    }

    /// For the shared instance, from `atexit`: statics are never dropped.
    fn kill_at_exit(&self) {
        if let Some(process) = self.server.process() {
            process.signal_group(libc::SIGKILL);
            // SAFETY: reaps our own child; nothing else waits for it at exit.
            unsafe {
                libc::waitpid(process.id() as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// QuestDB's root directory (`-d`) in the instance's directory `dir`.
fn root(dir: &Path) -> PathBuf {
    dir.join("root")
}

/// Renders `deploy/questdb/server.conf` with `ports` into `<root>/conf/server.conf`.
fn write_config(dir: &Path, ports: Ports, extra: &str) -> anyhow::Result<()> {
    let mut conf = deploy::render(
        deploy::QUESTDB_CONF_TEMPLATE,
        &[
            ("QDB_HTTP_PORT", &ports.http.to_string()),
            ("QDB_ILP_PORT", &ports.ilp.to_string()),
            ("QDB_PG_PORT", &ports.pg.to_string()),
            ("QDB_MIN_HTTP_PORT", &ports.min_http.to_string()),
        ],
    )?;
    conf.push('\n');
    conf.push_str(extra);
    let conf_dir = root(dir).join("conf");
    std::fs::create_dir_all(&conf_dir)?;
    std::fs::write(conf_dir.join("server.conf"), conf)?;
    Ok(())
}

/// How to run the QuestDB of directory `dir` on `ports`: ready when it answers `select 1`.
fn launch(dir: &Path, ports: Ports, health_only: bool) -> anyhow::Result<Launch> {
    // QuestDB unpacks its native libraries into the JVM's temporary directory at every
    // start and leaves them there: keep them under the root, which the harness removes.
    let tmp = root(dir).join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let program = Program::new(deploy::java()?)
        .args(JVM_OPTIONS)
        .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
        .arg("-p")
        .arg(deploy::questdb_jar()?)
        .args(["-m", "io.questdb/io.questdb.ServerMain", "-d"])
        .arg(root(dir));
    let probe = if health_only {
        format!("http://127.0.0.1:{}/", ports.min_http)
    } else {
        format!("http://127.0.0.1:{}/exec?query=select%201", ports.http)
    };
    Ok(Launch::new("questdb", program, dir.join("questdb.log"))
        .ready_when_ok(probe, READY_TIMEOUT)
        .stop_grace(STOP_GRACE))
}

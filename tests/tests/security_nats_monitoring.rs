//! The NATS monitoring port of the shipped configurations (docs/security.md, "NATS"):
//! nats-server answers every monitoring request with `Access-Control-Allow-Origin: *`, so a
//! web page in a browser on the machine could read `/varz`, `/connz`, `/jsz`. The deploy
//! scripts start nats-server without that port unless `RTDASH_NATS_MONITOR=1`, and check its
//! health over the authenticated client port instead (`deploy/tools/natsreq`).
//!
//! These tests run deploy/lib.sh's own functions (no copies): the single-node server rendered,
//! locked down and started as `./deploy/up.sh` does, then its health check. About 5 s.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};

use anyhow::{ensure, Context};
use rtdash_tests::lockdown::{deploy_functions, deploy_functions_command};
use rtdash_tests::ports::free_ports;

/// A single-node nats-server started by deploy/lib.sh (`rtdash_start_nats`) under a state dir
/// of its own, with the lockdown of `./deploy/up.sh` (users, generated passwords). The shell
/// that started it stays until drop, then stops it (`rtdash_stop nats`): a service started by
/// `rtdash_spawn` dies with its shell.
struct ScriptNats {
    shell: Child,
    state: tempfile::TempDir,
    port: u16,
    monitor_port: u16,
}

impl ScriptNats {
    /// Starts it and waits for the scripts' health check (`rtdash_wait_nats`) to pass;
    /// `monitor` is `RTDASH_NATS_MONITOR`.
    fn start(monitor: &str) -> anyhow::Result<Self> {
        let [port, monitor_port] = free_ports()?;
        let state = tempfile::tempdir()?;
        let (port_arg, monitor_arg) = (port.to_string(), monitor_port.to_string());
        let mut shell = deploy_functions_command(
            r#"rtdash_lockdown_init
               RTDASH_NATS_CONF_HOOK=rtdash_lockdown_nats_conf
               rtdash_start_nats "$1" "$2"
               rtdash_wait_nats "$1" 30
               echo healthy
               read -r _ || true
               rtdash_stop nats"#,
            &[OsStr::new(&port_arg), OsStr::new(&monitor_arg)],
            &[
                ("RTDASH_STATE", state.path().as_os_str()),
                ("RTDASH_NATS_MONITOR", OsStr::new(monitor)),
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawn bash")?;
        let mut line = String::new();
        BufReader::new(shell.stdout.take().context("no stdout")?).read_line(&mut line)?;
        if line.trim() != "healthy" {
            let status = shell.wait()?;
            anyhow::bail!("start or health check failed ({status}); see stderr above");
        }
        Ok(Self {
            shell,
            state,
            port,
            monitor_port,
        })
    }

    fn secrets(&self) -> std::path::PathBuf {
        self.state.path().join("secrets")
    }

    /// Whether the scripts' health check (`rtdash_nats_js_ready`) passes as the user of
    /// `env_file`.
    fn health_check_passes(&self, env_file: &Path) -> anyhow::Result<bool> {
        let url = format!("nats://127.0.0.1:{}", self.port);
        let output = deploy_functions(
            r#"rtdash_nats_js_ready "$1" "$2""#,
            &[OsStr::new(&url), env_file.as_os_str()],
            &[("RTDASH_STATE", self.state.path().as_os_str())],
        )?;
        Ok(output.status.success())
    }
}

impl Drop for ScriptNats {
    fn drop(&mut self) {
        drop(self.shell.stdin.take()); // the shell reads EOF and stops the server
        let _ = self.shell.wait();
    }
}

#[test]
fn the_default_server_has_no_monitoring_port_and_its_health_check_passes() -> anyhow::Result<()> {
    let nats = ScriptNats::start("0")?;
    // Started and healthy (above): JetStream answered the operator on the client port.
    let conf = std::fs::read_to_string(nats.state.path().join("nats/nats.conf"))?;
    ensure!(
        !conf
            .lines()
            .any(|line| line.trim_start().starts_with("http")),
        "the rendered config has a monitoring port:\n{conf}"
    );
    ensure!(
        TcpStream::connect(("127.0.0.1", nats.monitor_port)).is_err(),
        "something listens on the monitoring port {}",
        nats.monitor_port
    );
    ensure!(
        TcpStream::connect(("127.0.0.1", nats.port)).is_ok(),
        "the client port {} is closed",
        nats.port
    );
    // The health check authenticates: the operator passes, a wrong password does not.
    let operator = nats.secrets().join("operator.env");
    ensure!(
        nats.health_check_passes(&operator)?,
        "the health check failed as the operator"
    );
    let wrong = nats.secrets().join("wrong.env");
    let env = std::fs::read_to_string(&operator)?;
    let password = env
        .lines()
        .find_map(|line| line.strip_prefix("RTDASH_NATS__PASSWORD="))
        .context("no password in operator.env")?;
    std::fs::write(&wrong, env.replace(password, "not-the-password"))?;
    ensure!(
        !nats.health_check_passes(&wrong)?,
        "the health check passed with a wrong password"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtdash_nats_monitor_opens_the_port_with_the_wildcard_cors_header() -> anyhow::Result<()> {
    let nats = tokio::task::block_in_place(|| ScriptNats::start("1"))?;
    let response = reqwest::get(format!("http://127.0.0.1:{}/varz", nats.monitor_port)).await?;
    ensure!(
        response.status().is_success(),
        "/varz: {}",
        response.status()
    );
    // Why it is off by default: any origin may read it.
    let cors = response
        .headers()
        .get("access-control-allow-origin")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    ensure!(
        cors.as_deref() == Some("*"),
        "Access-Control-Allow-Origin: {cors:?}"
    );
    Ok(())
}

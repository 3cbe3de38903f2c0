//! The producers' real client libraries (segment-analytics-python, the OpenTelemetry SDK's
//! OTLP/HTTP log exporter, the `datadog` package's DogStatsD client), installed by the tests
//! themselves into a Python virtual environment and driven through the scripts in
//! `tests/clients/`.
//!
//! The environment lives in `${RTDASH_CACHE:-~/.cache/rtdash}/pyclients-<hash>`, the hash
//! being that of `tests/clients/requirements.txt` (pinned versions): made once per machine
//! and requirements (`python3 -m venv`, then pip from PyPI), under a lock so concurrent test
//! binaries make it once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// `tests/clients/`.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// FNV-1a 64 of `bytes` (a cache key that does not change between Rust versions).
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("RTDASH_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/rtdash"),
    }
}

/// The virtual environment's directory, made when missing.
pub fn venv() -> anyhow::Result<PathBuf> {
    let requirements = clients_dir().join("requirements.txt");
    let text =
        std::fs::read(&requirements).with_context(|| format!("read {}", requirements.display()))?;
    let cache = cache_dir();
    let dir = cache.join(format!("pyclients-{:016x}", fnv64(&text)));
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&cache)?;
    let lock = cache.join(format!("pyclients-{:016x}.lock", fnv64(&text)));
    // mkdir is atomic: whoever makes the lock directory installs, the others wait.
    let mut waited = Duration::ZERO;
    while std::fs::create_dir(&lock).is_err() {
        if done.exists() {
            return Ok(dir);
        }
        if waited > Duration::from_secs(600) {
            bail!(
                "waited 10 minutes for {} (remove it if stale)",
                lock.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        waited += Duration::from_millis(500);
    }
    // Installed by whoever held the lock just before: nothing to do (re-installing would
    // remove the environment under that one's running scripts).
    if done.exists() {
        let _ = std::fs::remove_dir(&lock);
        return Ok(dir);
    }
    // Marked complete before the lock goes, so a waiter taking the lock next sees it.
    let result = install(&dir, &requirements).and_then(|()| Ok(std::fs::write(&done, b"")?));
    let _ = std::fs::remove_dir(&lock);
    result?;
    Ok(dir)
}

fn install(dir: &Path, requirements: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let run = |command: &mut Command, what: &str| -> anyhow::Result<()> {
        let output = command.output().with_context(|| format!("run {what}"))?;
        if !output.status.success() {
            bail!(
                "{what} failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    };
    eprintln!(
        "installing the Python client libraries into {}",
        dir.display()
    );
    run(
        Command::new("python3").args(["-m", "venv"]).arg(dir),
        "python3 -m venv",
    )?;
    run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements),
        "pip install -r tests/clients/requirements.txt",
    )
}

/// Runs `tests/clients/<script>` with the environment's Python, `spec` as JSON on stdin,
/// within `timeout`; answers its stdout as JSON.
pub fn run(script: &str, spec: &Value, timeout: Duration) -> anyhow::Result<Value> {
    let python = venv()?.join("bin/python");
    let mut child = Command::new(python)
        .arg(clients_dir().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Loopback only: no proxy from the environment.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .spawn()
        .with_context(|| format!("start {script}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(spec.to_string().as_bytes())?;
    // Read both pipes to the end on a thread (a chatty library must not fill a pipe and
    // stall), and kill the script if it overruns.
    let pid = child.id();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match outcome.recv_timeout(timeout) {
        Ok(output) => output?,
        Err(_) => {
            // SAFETY: `pid` is our child, not yet reaped (the waiting thread still holds it).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            bail!("{script} did not finish within {timeout:?}");
        }
    };
    if !output.status.success() {
        bail!(
            "{script} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| format!("{script} printed {stdout:?}"))
}

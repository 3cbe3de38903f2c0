//! The start-up and exit of every rtdash binary, in one place so the three `main.rs` cannot
//! drift: parse the command line, load the layered configuration, build the tokio runtime,
//! start telemetry, cancel the root token on SIGINT/SIGTERM, run the service, flush the
//! traces, exit.
//!
//! Exit codes: 0 after a clean run (and for `--help`/`--version`); [`EXIT_CONFIG`] (64) for a
//! configuration or usage problem, the command line's included; [`EXIT_FAILURE`] (1) when the
//! service fails (a dependency unreachable, a port taken). A failure is one line on stderr,
//! `<component>: <error>: <cause>...`.

use crate::config::{self, Validate};
use crate::error_chain::ErrorChain;
use crate::telemetry::{self, LogFormat, TelemetryConfig};
use crate::{shutdown, EXIT_CONFIG, EXIT_FAILURE};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// The flags every binary has, added to its own command line by [`run`]. Global, so they
/// may follow a subcommand (`core-aggregator replay --config c.toml ...`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML configuration file; built-in defaults apply to what it leaves out, and
    /// RTDASH_* environment variables override it.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Log format (overrides `telemetry.log_format`).
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

/// What the bootstrap needs to know of a binary.
#[derive(Clone, Copy, Debug)]
pub struct Service<C> {
    /// The component (`edge-agent`...): the prefix of its environment variables and of its
    /// error lines, and its default `service.name`.
    pub name: &'static str,
    /// `service.version` of its spans: the binary's `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// The `[telemetry]` section of its configuration.
    pub telemetry: fn(&mut C) -> &mut TelemetryConfig,
}

/// Why a service stopped with an error, which decides the exit code.
#[derive(Debug)]
pub struct Failure {
    code: i32,
    error: Box<dyn Error + Send + Sync>,
}

impl Failure {
    /// A configuration or usage problem: exit code 64.
    pub fn usage(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::new(EXIT_CONFIG, error)
    }

    /// A failure of the service: exit code 1.
    pub fn runtime(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::new(EXIT_FAILURE, error)
    }

    /// A failure with the exit code its error chose (e.g. `AgentError::exit_code`).
    pub fn new(code: i32, error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }

    /// The process exit code.
    pub fn code(&self) -> i32 {
        self.code
    }
}

/// Runs a binary from start to exit (see the module docs) and returns the exit code for
/// `fn main` to return. `A` is the binary's own command line (its about text, subcommands
/// and flags), to which [`CommonArgs`] are added. `main` runs once everything is up, with the
/// parsed command line, the configuration and the root cancellation token, which
/// SIGINT/SIGTERM cancel; it then shuts the service down and returns.
pub fn run<A, C, F, Fut>(service: Service<C>, main: F) -> ExitCode
where
    A: clap::Parser,
    C: DeserializeOwned + Serialize + Default + Validate,
    F: FnOnce(A, C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let (cli, common) = match parse_command_line::<A>() {
        Ok(parsed) => parsed,
        Err(err) => {
            // clap's own exit would be 2 for a usage error; ours is 64 like any bad setting.
            let code = if err.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = err.print();
            return exit_code(code);
        }
    };
    let mut config: C = match config::load(service.name, common.config.as_deref()) {
        Ok(config) => config,
        Err(err) => return report(service.name, &Failure::usage(err), false),
    };
    if let Some(format) = common.log_format {
        (service.telemetry)(&mut config).log_format = format;
    }
    let json_logs = (service.telemetry)(&mut config).log_format == LogFormat::Json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(service.name)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let failure = Failure::runtime(StartError("the async runtime", err));
            return report(service.name, &failure, false);
        }
    };
    let result = runtime.block_on(async move {
        // Inside the runtime: the trace exporter's HTTP client is set up here.
        let telemetry = (service.telemetry)(&mut config).clone();
        telemetry::init(service.name, service.version, &telemetry).map_err(Failure::usage)?;
        let shutdown = CancellationToken::new();
        let service = async {
            let result = main(cli, config, shutdown.clone()).await;
            // Whatever ended the service, the signal watcher ends with it.
            shutdown.cancel();
            result
        };
        let (result, ()) = tokio::join!(service, shutdown::cancel_on_signal(shutdown.clone()));
        result
    });
    telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(service.name, &failure, json_logs),
    }
}

/// The binary's command line `A` with [`CommonArgs`] added, parsed from the process's
/// arguments.
fn parse_command_line<A: clap::Parser>() -> Result<(A, CommonArgs), clap::Error> {
    use clap::builder::{Resettable, StyledStr};
    use clap::{Args, FromArgMatches};
    let own = A::command();
    // `augment_args` also sets the about text (to `CommonArgs`'s doc): keep the binary's.
    let (about, long_about) = (own.get_about().cloned(), own.get_long_about().cloned());
    let kept = |text: Option<StyledStr>| text.map_or(Resettable::Reset, Resettable::Value);
    let mut command = CommonArgs::augment_args(own)
        .about(kept(about))
        .long_about(kept(long_about));
    let matches = command.try_get_matches_from_mut(std::env::args_os())?;
    let parse = |matches| {
        Ok((
            A::from_arg_matches(matches)?,
            CommonArgs::from_arg_matches(matches)?,
        ))
    };
    parse(&matches).map_err(|err: clap::Error| err.format(&mut command))
}

/// Prints `failure` as one line on stderr (and as a log record when logs are JSON, for the
/// log pipeline) and returns its exit code.
fn report(component: &str, failure: &Failure, json_logs: bool) -> ExitCode {
    let line = ErrorChain(failure.error.as_ref()).to_string();
    if json_logs {
        tracing::error!(error = %line, code = failure.code, "{component} failed");
    }
    eprintln!("{component}: {line}");
    exit_code(failure.code)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A part of the process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {0}")]
struct StartError(&'static str, #[source] std::io::Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_problems_exit_64_and_failures_1() {
        assert_eq!(Failure::usage("bad flag").code(), 64);
        assert_eq!(Failure::runtime("no NATS").code(), 1);
        assert_eq!(Failure::new(64, "definitions").code(), 64);
    }
}

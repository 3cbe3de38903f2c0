//! `rtdash-loadgen`: demo traffic, open-loop load, latency and fan-out probes, and the peer
//! benchmark. See `rtdash-loadgen --help` and BENCHMARKS.md.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = rtdash_loadgen::Cli::parse();
    rtdash_loadgen::init_logging();
    match rtdash_loadgen::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rtdash-loadgen: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

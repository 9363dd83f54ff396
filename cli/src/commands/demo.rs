//! `brlock demo`: ranks update overlapping byte ranges of one file under the lock and check
//! that no update was lost ([`brlock::check::demo`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::output::exec;
use brlock::check::demo::Demo;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the shared file (must be visible to every rank). Default: a new
    /// temporary directory, removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Updates per rank.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rounds: u64,
    /// Take no lock (negative control: updates get lost).
    #[arg(long)]
    no_lock: bool,
}

/// Runs the demo on every rank; rank 0 prints it.
///
/// # Errors
/// I/O and MPI errors.
pub fn run(rt: &Runtime, args: &DemoArgs) -> Result<ExitCode> {
    let demo = Demo {
        dir: args.dir.clone(),
        rounds: args.rounds,
        no_lock: args.no_lock,
    };
    exec(rt, demo, false)
}

//! `brlock check rma`: the MPI library's one-sided operations on this cluster
//! ([`brlock::check::rma`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::args::Json;
use crate::output::exec;
use brlock::check::rma::RmaCheck;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock check rma`.
#[derive(Debug, Args)]
pub struct RmaCheckArgs {
    /// Operations per rank in each check.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    iters: u64,
    /// Negative control: do the read-modify-write check with the get and the put in two
    /// separate epochs, so that concurrent increments race and updates are lost. Lost updates
    /// are then the expected outcome and do not fail the run.
    #[arg(long)]
    unsafe_rmw: bool,
    /// With --unsafe-rmw: microseconds to spin between the read epoch and the write epoch,
    /// widening the race window.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin_us: u64,
    #[command(flatten)]
    output: Json,
}

/// Runs every check on every rank; rank 0 prints the report.
///
/// # Errors
/// MPI errors.
pub fn run(rt: &Runtime, args: &RmaCheckArgs) -> Result<ExitCode> {
    let check = RmaCheck {
        iters: args.iters,
        unsafe_rmw: args.unsafe_rmw.then(|| Duration::from_micros(args.spin_us)),
    };
    exec(rt, check, args.output.json)
}

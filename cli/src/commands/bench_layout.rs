//! `brlock bench layout`: bytes per epoch of each algorithm's table layout as the number of
//! ranks grows, on the in-process simulation ([`brlock::check::bench::layout`]). Needs no MPI.

use std::process::ExitCode;

use clap::Args;

use crate::args::Json;
use crate::output::{emit, emit_json};
use brlock::check::bench::layout::{LayoutBench, MAX_RANKS};
use brlock::Result;

/// Options of `brlock bench layout`.
#[derive(Debug, Args)]
pub struct LayoutBenchArgs {
    /// Simulated world sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 256, 1024, 4096],
          value_parser = ranks)]
    ranks: Vec<usize>,
    /// Uncontended lock+unlock pairs per size and algorithm.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    iters: u64,
    #[command(flatten)]
    output: Json,
}

fn ranks(s: &str) -> std::result::Result<usize, String> {
    let p: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (1..=MAX_RANKS).contains(&p) {
        Ok(p)
    } else {
        Err(format!("a world size must be in 1..={MAX_RANKS}"))
    }
}

/// Runs the simulation and prints the report.
///
/// # Errors
/// Invalid settings; errors writing stdout.
pub fn run(args: &LayoutBenchArgs) -> Result<ExitCode> {
    let report = LayoutBench {
        ranks: args.ranks.clone(),
        iters: args.iters,
    }
    .run()?;
    if args.output.json {
        emit_json(&report)?;
    } else {
        emit(&report.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

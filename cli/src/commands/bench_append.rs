//! `brlock bench append`: many ranks write small records, three ways, and every record is
//! checked afterwards ([`brlock::check::bench::append`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, Json};
use crate::output::exec;
use brlock::check::bench::append::{AppendBench, AppendMethod};
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock bench append`.
#[derive(Debug, Args)]
pub struct AppendBenchArgs {
    /// How to write.
    #[arg(long, value_parser = choice::<AppendMethod>(), default_value_t = AppendMethod::Rma)]
    method: AppendMethod,
    /// Directory in which rank 0 creates the run's own subdirectory (removed afterwards unless
    /// --keep); every rank must reach it. Default: the temporary directory (single node only).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Odd ranks reach --dir through this path instead: the same directory through a second
    /// mount of a distributed file system (a second client).
    #[arg(long, value_name = "DIR", requires = "dir")]
    alt_dir: Option<PathBuf>,
    /// Records per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// Write a batch once it holds this many bytes (whole records only).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    batch_bytes: u64,
    /// Seed of the records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the run's directory.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    output: Json,
    /// Negative control (method rma): append without reserving, so records overwrite each
    /// other and the check must fail.
    #[arg(long, hide = true)]
    unsafe_no_reserve: bool,
}

/// Runs the benchmark on every rank; rank 0 prints the report.
///
/// # Errors
/// I/O and MPI errors.
pub fn run(rt: &Runtime, args: &AppendBenchArgs) -> Result<ExitCode> {
    let bench = AppendBench {
        method: args.method,
        dir: args.dir.clone(),
        alt_dir: args.alt_dir.clone(),
        records: args.records,
        batch_bytes: args.batch_bytes,
        seed: args.seed,
        keep: args.keep,
        unsafe_no_reserve: args.unsafe_no_reserve,
    };
    exec(rt, bench, args.output.json)
}

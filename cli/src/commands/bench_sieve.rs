//! `brlock bench sieve`: strided noncontiguous writes sieved, piece by piece or through
//! MPI-IO, every block read back and checked ([`brlock::check::bench::sieve`]).

use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, BenchFile, Json};
use crate::output::exec;
use brlock::check::bench::sieve::{SieveBench, SieveMethod};
use brlock::io::Coherence;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock bench sieve`.
#[derive(Debug, Args)]
pub struct SieveBenchArgs {
    /// How to write.
    #[arg(long, value_parser = choice::<SieveMethod>(), default_value_t = SieveMethod::Sieve)]
    method: SieveMethod,
    #[command(flatten)]
    file: BenchFile,
    /// Bytes of one block.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    block: u64,
    /// Distance between the blocks of one rank (at least block x ranks).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    stride: u64,
    /// Blocks per rank.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    count: u64,
    /// Repetitions (one noncontiguous write per rank each).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    reps: u64,
    /// Coherence strategy of sieve and pieces (default: chosen from the file system type).
    #[arg(long, value_parser = choice::<Coherence>())]
    coherence: Option<Coherence>,
    #[command(flatten)]
    output: Json,
}

/// Runs the benchmark on every rank; rank 0 prints the report.
///
/// # Errors
/// I/O, MPI and lock errors.
pub fn run(rt: &Runtime, args: &SieveBenchArgs) -> Result<ExitCode> {
    let bench = SieveBench {
        method: args.method,
        file: args.file.file.clone(),
        alt_file: args.file.alt_file.clone(),
        block: args.block,
        stride: args.stride,
        count: args.count,
        reps: args.reps,
        coherence: args.coherence,
    };
    exec(rt, bench, args.output.json)
}

//! `brlock bench atomic`: overlapping 4 KiB accesses from every rank, atomic or not
//! ([`brlock::check::bench::atomic`]).

use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, BenchFile, Json};
use crate::output::exec;
use brlock::check::bench::atomic::{AtomicBench, Mix};
use brlock::check::files::FileBackend;
use brlock::io::Coherence;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock bench atomic`.
#[derive(Debug, Args)]
pub struct AtomicBenchArgs {
    /// How the file is accessed (`nonatomic`: plain I/O, no lock).
    #[arg(long, value_parser = choice::<FileBackend>(), default_value_t = FileBackend::Rma)]
    backend: FileBackend,
    #[command(flatten)]
    file: BenchFile,
    /// Accesses per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ops: u64,
    /// Which accesses to make.
    #[arg(long, value_parser = choice::<Mix>(), default_value_t = Mix::Mixed)]
    mix: Mix,
    /// Shorthand for `--mix writes`.
    #[arg(long, conflicts_with = "mix")]
    writes_only: bool,
    /// Seed of the offsets and of the write/read choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Coherence strategy of --backend rma (default: chosen from the file system type).
    #[arg(long, value_parser = choice::<Coherence>())]
    coherence: Option<Coherence>,
    #[command(flatten)]
    output: Json,
}

/// Runs the benchmark on every rank; rank 0 prints the report.
///
/// # Errors
/// I/O, MPI and lock errors.
pub fn run(rt: &Runtime, args: &AtomicBenchArgs) -> Result<ExitCode> {
    let bench = AtomicBench {
        backend: args.backend,
        file: args.file.file.clone(),
        alt_file: args.file.alt_file.clone(),
        ops: args.ops,
        mix: if args.writes_only {
            Mix::Writes
        } else {
            args.mix
        },
        seed: args.seed,
        coherence: args.coherence,
    };
    exec(rt, bench, args.output.json)
}

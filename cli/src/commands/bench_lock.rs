//! `brlock bench lock`: lock+unlock latency and throughput against the raw epoch pair, with
//! the exclusion checker on ([`brlock::check::bench::lock`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, choice_of, Json, Shards};
use crate::output::exec;
use brlock::check::bench::lock::LockBench;
use brlock::check::lock::LockBackend;
use brlock::check::workload::{ModeMix, Pattern};
use brlock::protocol::Algorithm;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock bench lock`.
#[derive(Debug, Args)]
pub struct LockBenchArgs {
    /// The lock to measure.
    #[arg(long, default_value_t = LockBackend::Rma,
          value_parser = choice_of(&[LockBackend::Rma, LockBackend::Fcntl, LockBackend::Ofd]))]
    backend: LockBackend,
    /// Lock file of --backend fcntl and ofd (created if missing, left in place); every rank
    /// must reach the same file. Default: a file in a new temporary directory chosen by rank 0
    /// and removed afterwards (single node only). With --backend rma it is only recorded,
    /// with its file system type, and must exist or be in an existing directory.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Odd ranks use this path instead of --file: the same file through a second mount of a
    /// distributed file system (a second client).
    #[arg(long, value_name = "PATH", requires = "file")]
    alt_file: Option<PathBuf>,
    /// Which ranges the ranks request.
    #[arg(long, value_parser = choice::<Pattern>(), default_value_t = Pattern::Disjoint)]
    pattern: Pattern,
    /// Which modes the ranks request.
    #[arg(long, value_parser = choice::<ModeMix>(), default_value_t = ModeMix::Exclusive)]
    mode: ModeMix,
    /// Timed operations per rank (and raw epoch pairs per rank).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    iters: u64,
    /// Microseconds each holder keeps its range (spinning) while holding it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    hold_us: u64,
    /// Untimed operations (and raw epoch pairs) per rank before each timed phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    warmup: u64,
    /// Seed of the request streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rank that holds the lock table (and the raw phase's table).
    #[arg(long, default_value_t = 0)]
    home: i32,
    /// The one-sided service's algorithm (--backend rma).
    #[arg(long, value_parser = choice::<Algorithm>(), default_value_t = Algorithm::default())]
    algorithm: Algorithm,
    #[command(flatten)]
    shards: Shards,
    #[command(flatten)]
    output: Json,
}

/// Runs the benchmark on every rank; rank 0 prints the report.
///
/// # Errors
/// MPI and lock errors.
pub fn run(rt: &Runtime, args: &LockBenchArgs) -> Result<ExitCode> {
    let bench = LockBench {
        backend: args.backend,
        file: args.file.clone(),
        alt_file: args.alt_file.clone(),
        pattern: args.pattern,
        mode: args.mode,
        iters: args.iters,
        hold_us: args.hold_us,
        warmup: args.warmup,
        seed: args.seed,
        home: args.home,
        algorithm: args.algorithm,
        homes: usize::try_from(args.shards.homes).unwrap_or(1),
        stripe: args.shards.stripe,
    };
    exec(rt, bench, args.output.json)
}

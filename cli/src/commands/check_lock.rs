//! `brlock check lock`: every rank takes byte ranges under a checker that does not trust the
//! lock ([`brlock::check::lock`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::args::{choice, Json, Shards};
use crate::output::exec;
use brlock::check::lock::{LockBackend, LockCheck};
use brlock::check::workload::{ModeMix, Pattern};
use brlock::protocol::Algorithm;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock check lock`.
#[derive(Debug, Args)]
pub struct LockCheckArgs {
    /// The lock to check.
    #[arg(long, value_parser = choice::<LockBackend>(), default_value_t = LockBackend::Rma)]
    backend: LockBackend,
    /// Which ranges the ranks request.
    #[arg(long, value_parser = choice::<Pattern>(), default_value_t = Pattern::Same)]
    pattern: Pattern,
    /// Which modes the ranks request.
    #[arg(long, value_parser = choice::<ModeMix>(), default_value_t = ModeMix::Exclusive)]
    mode: ModeMix,
    /// Acquisitions per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    iters: u64,
    /// Seed of the request streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Microseconds each holder keeps its range (spinning) between stamping and re-checking.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    hold_us: u64,
    /// Lock file of --backend fcntl and ofd (created if missing, left in place). Every rank
    /// must open the same file: with ranks on several nodes it must be on a shared file
    /// system whose locks reach every client. Default: a file in a new temporary directory
    /// chosen by rank 0 and removed afterwards, which only works on a single node.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Rank that holds the lock table.
    #[arg(long, default_value_t = 0)]
    home: i32,
    /// Percentage of requests that first try `try_lock`, then `lock_timeout` (--timeout-us),
    /// then block, exercising the give-up paths.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100))]
    try_percent: u64,
    /// Timeout of the `lock_timeout` step of --try-percent requests, in microseconds (at most
    /// an hour).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=3_600_000_000))]
    timeout_us: u64,
    /// Halfway through, keep the home rank busy outside MPI for this many milliseconds (at
    /// most an hour).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    busy_home_ms: u64,
    /// The one-sided service's algorithm (--backend rma).
    #[arg(long, value_parser = choice::<Algorithm>(), default_value_t = Algorithm::default())]
    algorithm: Algorithm,
    #[command(flatten)]
    shards: Shards,
    #[command(flatten)]
    output: Json,
}

/// Runs the check on every rank; rank 0 prints the report.
///
/// # Errors
/// MPI and lock errors.
pub fn run(rt: &Runtime, args: &LockCheckArgs) -> Result<ExitCode> {
    let check = LockCheck {
        backend: args.backend,
        pattern: args.pattern,
        mode: args.mode,
        iters: args.iters,
        seed: args.seed,
        hold: Duration::from_micros(args.hold_us),
        file: args.file.clone(),
        home: args.home,
        algorithm: args.algorithm,
        homes: usize::try_from(args.shards.homes).unwrap_or(1),
        stripe: args.shards.stripe,
        try_percent: args.try_percent,
        timeout: Duration::from_micros(args.timeout_us),
        busy_home_ms: args.busy_home_ms,
    };
    exec(rt, check, args.output.json)
}

//! `brlock check lock`: every rank repeatedly takes byte ranges and a checker that does not
//! trust the lock verifies mutual exclusion, the bypass bound and wake-up accounting.
//!
//! The checker ([`super::lockrun`]) keeps its own window on rank 0, separate from the lock's
//! table, stamps every holder's cells with atomic adds and counts any conflicting stamp it
//! finds as a violation. `--backend none` takes no lock at all: the negative control, which
//! must report violations.
//!
//! `--backend fcntl` and `--backend ofd` check the kernel's record locks (POSIX and Linux
//! open-file-description locks, [`brlock::fcntl`]) on one lock file through the same checker.
//! They must show no violation either; the bypass bound is reported but not required of them,
//! since fcntl locks are not granted in arrival order.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use serde::Serialize;

use super::lockrun::{drive, gather_records, Latency, LockFile, LoopConfig, Record, StampChecker};
use super::{emit, emit_json, library_summary, report_error, requested_osc};
use brlock::fcntl::FcntlKind;
use brlock::lock::NoLock;
use brlock::protocol::Stats;
use brlock::runtime::Runtime;
use brlock::transport::rma::RmaLock;
use brlock::transport::Drained;
use brlock::verify::{max_bypass, Grant};
use brlock::workload::{ModeMix, Pattern};
use brlock::{Error, Result};

/// Which lock `check lock` exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckBackend {
    /// The MPI one-sided lock service.
    Rma,
    /// POSIX fcntl record locks (F_SETLKW) on the lock file (--file).
    Fcntl,
    /// Linux open-file-description locks (F_OFD_SETLKW) on the lock file (--file).
    Ofd,
    /// No lock at all: the negative control.
    None,
}

impl CheckBackend {
    /// The fcntl lock kind of the file-lock backends.
    fn fcntl_kind(self) -> Option<FcntlKind> {
        match self {
            CheckBackend::Fcntl => Some(FcntlKind::Posix),
            CheckBackend::Ofd => Some(FcntlKind::Ofd),
            CheckBackend::Rma | CheckBackend::None => None,
        }
    }
}

/// Options of `brlock check lock`.
#[derive(Debug, Args)]
pub struct LockCheckArgs {
    /// The lock to check.
    #[arg(long, value_enum, default_value_t = CheckBackend::Rma)]
    pub backend: CheckBackend,
    /// Which ranges the ranks request.
    #[arg(long, value_enum, default_value_t = Pattern::Same)]
    pub pattern: Pattern,
    /// Which modes the ranks request.
    #[arg(long, value_enum, default_value_t = ModeMix::Exclusive)]
    pub mode: ModeMix,
    /// Acquisitions per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub iters: u64,
    /// Seed of the request streams.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Microseconds each holder keeps its range (spinning) between stamping and re-checking.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub hold_us: u64,
    /// Lock file of --backend fcntl and ofd (created if missing, left in place). Every rank
    /// must open the same file: with ranks on several nodes it must be on a shared file
    /// system whose locks reach every client. Default: a file in a new temporary directory
    /// chosen by rank 0 and removed afterwards, which only works on a single node.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Rank that holds the lock table.
    #[arg(long, default_value_t = 0)]
    pub home: i32,
    /// Percentage of requests that first try `try_lock`, then `lock_timeout` (--timeout-us),
    /// then block, exercising the give-up paths.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub try_percent: u64,
    /// Timeout of the `lock_timeout` step of --try-percent requests, in microseconds.
    #[arg(long, default_value_t = 200)]
    pub timeout_us: u64,
    /// Halfway through, keep the home rank busy outside MPI for this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub busy_home_ms: u64,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    check: &'static str,
    backend: CheckBackend,
    pattern: Pattern,
    mode: ModeMix,
    ranks: i32,
    iters: u64,
    home: i32,
    lock_file: Option<String>,
    acquisitions: u64,
    violations: u64,
    max_bypass: u64,
    leftover_messages: u64,
    stale_wakeups_drained: u64,
    retries: u64,
    waits: u64,
    wakeups_sent: u64,
    abandoned: u64,
    epochs: u64,
    seconds: f64,
    ops_per_s: f64,
    lock_us: Latency,
    busy_home_ms: u64,
    try_percent: u64,
    mpi_library: String,
    osc: Option<String>,
    ok: bool,
}

/// Per-rank totals combined by a sum reduction.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    stats: Stats,
    drained: Drained,
    violations: u64,
}

impl Totals {
    fn words(&self) -> [u64; 9] {
        [
            self.stats.acquisitions,
            self.violations,
            self.drained.leftover,
            self.drained.drained,
            self.stats.retries,
            self.stats.waits,
            self.stats.wakeups_sent,
            self.stats.abandoned,
            self.stats.epochs,
        ]
    }
}

/// Runs the check on every rank.
///
/// # Errors
/// MPI errors and bad arguments.
pub fn run(rt: &Runtime, args: &LockCheckArgs) -> Result<ExitCode> {
    let world = rt.world();
    // The lock file is opened first, before any window exists, so that a bad path ends the
    // run on every rank with one error line and no collective left waiting.
    let mut lock_file = match (args.backend.fcntl_kind(), &args.file) {
        (Some(kind), _) => match LockFile::open(rt, args.file.as_deref(), None, kind)? {
            Some(file) => Some(file),
            None => return Ok(ExitCode::FAILURE),
        },
        (None, Some(_)) => {
            if rt.rank() == 0 {
                report_error(
                    rt,
                    &Error::InvalidArgument(
                        "--file applies only to --backend fcntl and --backend ofd".into(),
                    ),
                );
            }
            return Ok(ExitCode::from(2));
        }
        (None, None) => None,
    };
    let checker = StampChecker::new(rt)?;
    let cfg = LoopConfig {
        pattern: args.pattern,
        mode: args.mode,
        iters: args.iters,
        seed: args.seed,
        hold: Duration::from_micros(args.hold_us),
        home: args.home,
        try_percent: args.try_percent,
        timeout: Duration::from_micros(args.timeout_us),
        busy_home_ms: args.busy_home_ms,
        arrivals: true,
    };
    let mut totals = Totals::default();
    let mut records = Vec::with_capacity(args.iters as usize);
    checker.comm().barrier();
    let started = Instant::now();
    match (args.backend, lock_file.as_mut()) {
        (CheckBackend::Fcntl | CheckBackend::Ofd, Some(file)) => {
            totals.violations = drive(rt, &cfg, &mut file.lock, &checker, &mut records)?;
            totals.stats.acquisitions = args.iters;
        }
        (CheckBackend::Fcntl | CheckBackend::Ofd, None) => {
            unreachable!("the lock file of the fcntl backends is opened above")
        }
        (CheckBackend::Rma, _) => {
            let mut lock = RmaLock::open(world, args.home)?;
            totals.violations = drive(rt, &cfg, &mut lock, &checker, &mut records)?;
            totals.stats = lock.stats();
            totals.drained = lock.shutdown()?;
        }
        (CheckBackend::None, _) => {
            let mut lock = NoLock::default();
            totals.violations = drive(rt, &cfg, &mut lock, &checker, &mut records)?;
            totals.stats.acquisitions = args.iters;
        }
    }
    checker.comm().barrier();
    let seconds = started.elapsed().as_secs_f64();
    // Every rank has released its last range: close the lock files (and remove rank 0's
    // temporary directory).
    let lock_path = lock_file.take().map(|f| f.path.display().to_string());

    let mut sums = [0u64; 9];
    checker
        .comm()
        .all_reduce_into(&totals.words()[..], &mut sums[..], SystemOperation::sum());
    let report = gather_records(checker.comm(), &records)
        .map(|all| summarise(rt, args, &all, sums, seconds, lock_path));
    checker.free()?;

    let Some(report) = report else {
        let clean = sums[1] == 0 && sums[2] == 0;
        return Ok(exit_code(args, clean));
    };
    if args.json {
        emit_json(&report)?;
    } else {
        if let Some(path) = &report.lock_file {
            emit(&format!("check lock: lock file {path}"))?;
        }
        emit(&format!(
            "check lock: backend {:?}, pattern {:?}, mode {:?}, {} ranks: {} acquisitions, \
             {} violations, max bypass {}, {} leftover messages ({} stale wake-ups drained), \
             lock p50 {:.1} us, p99 {:.1} us, max {:.1} us, {:.0} ops/s: {}",
            args.backend,
            args.pattern,
            args.mode,
            report.ranks,
            report.acquisitions,
            report.violations,
            report.max_bypass,
            report.leftover_messages,
            report.stale_wakeups_drained,
            report.lock_us.p50,
            report.lock_us.p99,
            report.lock_us.max,
            report.ops_per_s,
            if report.ok { "OK" } else { "FAILED" }
        ))?;
    }
    Ok(exit_code(args, report.ok))
}

fn exit_code(args: &LockCheckArgs, ok: bool) -> ExitCode {
    // The negative control is expected to see violations; only the real locks fail the run.
    if args.backend != CheckBackend::None && !ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn summarise(
    rt: &Runtime,
    args: &LockCheckArgs,
    all: &[Record],
    sums: [u64; 9],
    seconds: f64,
    lock_file: Option<String>,
) -> Report {
    let grants: Vec<Grant> = all.iter().map(|r| r.grant).collect();
    let latencies: Vec<u64> = all.iter().map(|r| r.lock_ns).collect();
    let [acquisitions, violations, leftover, drained, retries, waits, wakeups_sent, abandoned, epochs] =
        sums;
    let bypass = max_bypass(&grants);
    let ok = match args.backend {
        CheckBackend::Rma => violations == 0 && leftover == 0 && bypass == 0,
        // The kernel grants in no particular order: exclusion only.
        CheckBackend::Fcntl | CheckBackend::Ofd | CheckBackend::None => violations == 0,
    };
    Report {
        check: "lock",
        backend: args.backend,
        pattern: args.pattern,
        mode: args.mode,
        ranks: rt.size(),
        iters: args.iters,
        home: args.home,
        lock_file,
        acquisitions,
        violations,
        max_bypass: bypass,
        leftover_messages: leftover,
        stale_wakeups_drained: drained,
        retries,
        waits,
        wakeups_sent,
        abandoned,
        epochs,
        seconds,
        ops_per_s: acquisitions as f64 / seconds.max(1e-9),
        lock_us: Latency::of(latencies),
        busy_home_ms: args.busy_home_ms,
        try_percent: args.try_percent,
        mpi_library: library_summary(rt),
        osc: requested_osc(),
        ok,
    }
}

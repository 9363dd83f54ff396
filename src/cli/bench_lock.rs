//! `brlock bench lock`: latency and throughput of lock+unlock, for the MPI one-sided lock
//! service and the kernel's fcntl locks, against the raw cost of the transport.
//!
//! One run has two timed phases, each between barriers and after `--warmup` untimed rounds:
//!
//! 1. **Raw epoch pairs.** Every rank runs `--iters` pairs of bare table exchanges on a fresh
//!    [`RmaTransport`] (the window layout the lock uses): an acquire-like exchange that takes
//!    a ticket, then a release-like one that does not, with no protocol logic. An uncontended
//!    lock+unlock of the one-sided service is exactly one such pair, so this is the floor for
//!    this algorithm on this transport. Measured for every backend, so that each report is
//!    self-contained. Each exchange is timed on its own and the two summed, exactly as the
//!    lock phase times lock and unlock, so that clock reads weigh the same in both. And
//!    between the two exchanges each rank does, untimed, what it does in the lock phase while
//!    it holds a range (the checker's stamp, hold and unstamp epochs): how often the ranks'
//!    exchanges collide on the table window depends on that spacing — on two cores under
//!    `osc sm`, back-to-back pairs from two ranks cost several times more than spaced ones —
//!    so only spaced pairs are the lock phase's floor (`raw_epoch_pair`). The back-to-back
//!    figure is reported as well (`raw_back_to_back`).
//! 2. **Lock phase.** Every rank runs `--iters` requests through the shared acquisition loop
//!    of `check lock` ([`super::lockrun`]), with the exclusion checker on: a broken lock
//!    reports violations and fails the run instead of looking fast. Per operation, the time
//!    spent in the lock call and in the unlock call are summed (the checker's stamp epochs in
//!    between are not counted); throughput is operations over the wall time of the phase,
//!    which does include the checker's two epochs per operation.
//!
//! Per-operation samples of every rank are merged on rank 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Rank;
use serde::Serialize;

use super::lockrun::{
    absolute, all_ok, drive, gather_records, gather_to_root, Latency, LockFile, LoopConfig, Record,
    StampChecker,
};
use super::{emit, emit_json, library_summary, report_error, requested_osc, sysinfo};
use brlock::fcntl::FcntlKind;
use brlock::protocol::{Slot, State, Stats, NO_TICKET, SLOT_WORDS};
use brlock::runtime::Runtime;
use brlock::transport::rma::{RmaLock, RmaTransport};
use brlock::transport::Transport;
use brlock::workload::{ModeMix, Pattern, Workload};
use brlock::{Error, RangeLock, Result};

/// Which lock `bench lock` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchBackend {
    /// The MPI one-sided lock service.
    Rma,
    /// POSIX fcntl record locks (F_SETLKW) on the lock file (--file).
    Fcntl,
    /// Linux open-file-description locks (F_OFD_SETLKW) on the lock file (--file).
    Ofd,
}

impl BenchBackend {
    fn fcntl_kind(self) -> Option<FcntlKind> {
        match self {
            BenchBackend::Rma => None,
            BenchBackend::Fcntl => Some(FcntlKind::Posix),
            BenchBackend::Ofd => Some(FcntlKind::Ofd),
        }
    }
}

/// Options of `brlock bench lock`.
#[derive(Debug, Args)]
pub struct LockBenchArgs {
    /// The lock to measure.
    #[arg(long, value_enum, default_value_t = BenchBackend::Rma)]
    pub backend: BenchBackend,
    /// Lock file of --backend fcntl and ofd (created if missing, left in place); every rank
    /// must reach the same file. Default: a file in a new temporary directory chosen by rank 0
    /// and removed afterwards (single node only). With --backend rma it is only recorded,
    /// with its file system type, and must exist or be in an existing directory.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Odd ranks use this path instead of --file: the same file through a second mount of a
    /// distributed file system (a second client).
    #[arg(long, value_name = "PATH", requires = "file")]
    pub alt_file: Option<PathBuf>,
    /// Which ranges the ranks request.
    #[arg(long, value_enum, default_value_t = Pattern::Disjoint)]
    pub pattern: Pattern,
    /// Which modes the ranks request.
    #[arg(long, value_enum, default_value_t = ModeMix::Exclusive)]
    pub mode: ModeMix,
    /// Timed operations per rank (and raw epoch pairs per rank).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub iters: u64,
    /// Microseconds each holder keeps its range (spinning) while holding it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub hold_us: u64,
    /// Untimed operations (and raw epoch pairs) per rank before each timed phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub warmup: u64,
    /// Seed of the request streams.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rank that holds the lock table (and the raw phase's table).
    #[arg(long, default_value_t = 0)]
    pub home: i32,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The report: one JSON object on rank 0. Latencies are in microseconds, merged over all
/// ranks' operations of the timed phase.
#[derive(Debug, Serialize)]
struct Report {
    /// Always "lock".
    bench: &'static str,
    backend: BenchBackend,
    pattern: Pattern,
    mode: ModeMix,
    ranks: i32,
    /// Timed operations (and raw pairs) per rank.
    iters: u64,
    warmup: u64,
    hold_us: u64,
    seed: u64,
    home: i32,
    /// Timed operations of all ranks.
    operations: u64,
    /// Wall time of the timed lock phase, barrier to barrier, the longest over ranks.
    seconds: f64,
    /// `operations / seconds` (checker epochs included in the time).
    ops_per_s: f64,
    /// Time in the lock call plus time in the unlock call, per operation.
    lock_unlock_us: Latency,
    lock_us: Latency,
    unlock_us: Latency,
    /// Mean of `raw_epoch_pair`.
    raw_epoch_pair_us: f64,
    /// Bare exchange pairs spaced like the lock phase's operations.
    raw_epoch_pair: Latency,
    /// Bare exchange pairs back to back.
    raw_back_to_back: Latency,
    /// `lock_unlock_us.mean / raw_epoch_pair_us` (one-sided service only).
    ratio_to_raw: Option<f64>,
    /// The same ratio of the medians.
    ratio_to_raw_p50: Option<f64>,
    /// The same ratio of the means of the samples at or below each 99th percentile.
    ratio_to_raw_trimmed: Option<f64>,
    /// Operations in which the checker saw a conflicting holder (warm-up included): must be 0.
    violations: u64,
    /// Wake-ups left over at shutdown (one-sided service only): must be 0.
    leftover_messages: Option<u64>,
    /// Table epochs per timed operation (one-sided service only; 2 when uncontended).
    epochs_per_op: Option<f64>,
    retries: Option<u64>,
    waits: Option<u64>,
    /// The lock file rank 0 used (fcntl, ofd), or `--file` as given, made absolute (rma).
    file: Option<String>,
    /// `--alt-file`, made absolute.
    alt_file: Option<String>,
    /// File system type of `file`.
    fs_type: Option<String>,
    mpi_library: String,
    /// `OMPI_MCA_osc`, as `--mca osc` sets it.
    osc: Option<String>,
    /// CPUs rank 0 may run on (`available_parallelism`: 1 when the launcher binds it to one
    /// core).
    cores: usize,
    /// CPUs online on rank 0's host.
    cpus_online: Option<usize>,
    /// `OMPI_MCA_mpi_yield_when_idle` as rank 0 saw it.
    yield_when_idle: Option<String>,
    host: Option<String>,
    /// No violation and no leftover message.
    ok: bool,
}

/// What one rank's lock phase produced.
struct Phase {
    records: Vec<Record>,
    violations: u64,
    seconds: f64,
    /// Protocol counters of the timed operations (one-sided service only).
    stats: Option<Stats>,
    leftover: u64,
}

/// Runs the benchmark on every rank.
///
/// # Errors
/// MPI errors and lock errors.
pub fn run(rt: &Runtime, args: &LockBenchArgs) -> Result<ExitCode> {
    let world = rt.world();
    if !(0..rt.size()).contains(&args.home) {
        if rt.rank() == 0 {
            report_error(
                rt,
                &Error::InvalidArgument(format!(
                    "home rank {} is not a rank of the job (0..{})",
                    args.home,
                    rt.size()
                )),
            );
        }
        return Ok(ExitCode::from(2));
    }
    // Files first, before any window exists, so that a bad path ends the run on every rank
    // with one error line and no collective left waiting.
    let mut lock_file = match args.backend.fcntl_kind() {
        Some(kind) => {
            match LockFile::open(rt, args.file.as_deref(), args.alt_file.as_deref(), kind)? {
                Some(file) => Some(file),
                None => return Ok(ExitCode::FAILURE),
            }
        }
        None => None,
    };
    // Rank 0 records the file (the one it uses) and its file system.
    let mut fs_type = None;
    let mut ok = true;
    if rt.rank() == 0 {
        let path = lock_file.as_ref().map(|f| f.path.clone()).or_else(|| {
            args.file
                .as_deref()
                .map(|p| absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        });
        if let Some(path) = path {
            match sysinfo::fs_type(&path) {
                Ok(fs) => fs_type = Some(fs),
                // The file itself is not needed by the one-sided service, but a path that
                // cannot exist is a mistake worth stopping for (an unmounted file system).
                Err(e) if lock_file.is_none() => {
                    report_error(rt, &e);
                    ok = false;
                }
                Err(e) => tracing::warn!(error = %e, "file system type unknown"),
            }
        }
    }
    if !all_ok(world, ok) {
        return Ok(ExitCode::FAILURE);
    }

    let checker = StampChecker::new(rt)?;
    let cfg = LoopConfig {
        pattern: args.pattern,
        mode: args.mode,
        iters: args.iters,
        seed: args.seed,
        hold: Duration::from_micros(args.hold_us),
        home: args.home,
        try_percent: 0,
        timeout: Duration::ZERO,
        busy_home_ms: 0,
        arrivals: false,
    };
    let raw = raw_epoch_pairs(rt, &cfg, args.warmup, &checker)?;
    let raw_spaced = gather_to_root(world, &raw.spaced);
    let raw_back_to_back = gather_to_root(world, &raw.back_to_back);
    let phase = match lock_file.as_mut() {
        Some(file) => lock_phase(rt, args, &cfg, &mut file.lock, &checker, |_| None)?,
        None => {
            let mut lock = RmaLock::open(world, args.home)?;
            let mut phase = lock_phase(rt, args, &cfg, &mut lock, &checker, |l| Some(l.stats()))?;
            phase.leftover = lock.shutdown()?.leftover;
            phase
        }
    };
    // Every rank has released its last range: close the lock files (and remove rank 0's
    // temporary directory).
    let file = lock_file.take().map(|f| f.path.display().to_string());

    let stats = phase.stats.unwrap_or_default();
    let mine = [
        phase.violations,
        phase.leftover,
        stats.epochs,
        stats.retries,
        stats.waits,
    ];
    let mut sums = [0u64; 5];
    world.all_reduce_into(&mine[..], &mut sums[..], SystemOperation::sum());
    let mut seconds = 0.0f64;
    world.all_reduce_into(&phase.seconds, &mut seconds, SystemOperation::max());
    let records = gather_records(checker.comm(), &phase.records);
    checker.free()?;
    let [violations, leftover, epochs, retries, waits] = sums;
    let ok = violations == 0 && leftover == 0;

    let (Some(records), Some(raw_spaced), Some(raw_back_to_back)) =
        (records, raw_spaced, raw_back_to_back)
    else {
        return Ok(exit_code(ok));
    };
    let rma = args.backend == BenchBackend::Rma;
    let operations = records.len() as u64;
    let lock_unlock_ns: Vec<u64> = records.iter().map(|r| r.lock_ns + r.unlock_ns).collect();
    let trimmed = (trimmed_mean(&lock_unlock_ns), trimmed_mean(&raw_spaced));
    let raw = Latency::of(raw_spaced);
    let lock_unlock = Latency::of(lock_unlock_ns);
    let report = Report {
        bench: "lock",
        backend: args.backend,
        pattern: args.pattern,
        mode: args.mode,
        ranks: rt.size(),
        iters: args.iters,
        warmup: args.warmup,
        hold_us: args.hold_us,
        seed: args.seed,
        home: args.home,
        operations,
        seconds,
        ops_per_s: operations as f64 / seconds.max(1e-9),
        lock_unlock_us: lock_unlock,
        lock_us: Latency::of(records.iter().map(|r| r.lock_ns).collect()),
        unlock_us: Latency::of(records.iter().map(|r| r.unlock_ns).collect()),
        raw_epoch_pair_us: raw.mean,
        raw_epoch_pair: raw,
        raw_back_to_back: Latency::of(raw_back_to_back),
        ratio_to_raw: (rma && raw.mean > 0.0).then(|| lock_unlock.mean / raw.mean),
        ratio_to_raw_p50: (rma && raw.p50 > 0.0).then(|| lock_unlock.p50 / raw.p50),
        ratio_to_raw_trimmed: (rma && trimmed.1 > 0.0).then(|| trimmed.0 / trimmed.1),
        violations,
        leftover_messages: rma.then_some(leftover),
        epochs_per_op: rma.then(|| epochs as f64 / operations.max(1) as f64),
        retries: rma.then_some(retries),
        waits: rma.then_some(waits),
        file: file.or_else(|| {
            args.file
                .as_deref()
                .map(|p| absolute(p).unwrap_or_else(|_| p.to_path_buf()))
                .map(|p| p.display().to_string())
        }),
        alt_file: args
            .alt_file
            .as_deref()
            .map(|p| absolute(p).unwrap_or_else(|_| p.to_path_buf()))
            .map(|p| p.display().to_string()),
        fs_type,
        mpi_library: library_summary(rt),
        osc: requested_osc(),
        cores: sysinfo::cores(),
        cpus_online: sysinfo::cpus_online(),
        // As this process saw it: `main` sets it when there seem to be more ranks than cores.
        yield_when_idle: std::env::var("OMPI_MCA_mpi_yield_when_idle").ok(),
        host: sysinfo::hostname(),
        ok,
    };
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&summary_line(&report))?;
    }
    Ok(exit_code(ok))
}

/// The mean of the samples at or below the 99th percentile. On a shared machine a handful of
/// operations preempted for a scheduler time slice (milliseconds) can double the plain mean
/// of sub-microsecond operations; this leaves them out.
fn trimmed_mean(ns: &[u64]) -> f64 {
    let mut sorted = ns.to_vec();
    sorted.sort_unstable();
    let n = (sorted.len() * 99).div_ceil(100);
    if n == 0 {
        return 0.0;
    }
    sorted[..n].iter().sum::<u64>() as f64 / n as f64 / 1e3
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn summary_line(r: &Report) -> String {
    let ratio = r
        .ratio_to_raw
        .map_or(String::new(), |x| format!(" ({x:.2}x raw)"));
    let file = match (&r.file, &r.fs_type) {
        (Some(f), Some(fs)) => format!(", file {f} ({fs})"),
        (Some(f), None) => format!(", file {f}"),
        _ => String::new(),
    };
    format!(
        "bench lock: backend {:?}, pattern {:?}, mode {:?}, {} ranks x {} ops{file}: \
         lock+unlock mean {:.2} us{ratio}, p50 {:.2}, p99 {:.2}, max {:.1}; \
         raw epoch pair mean {:.2} us, p50 {:.2}; {:.0} ops/s; {} violations: {}",
        r.backend,
        r.pattern,
        r.mode,
        r.ranks,
        r.iters,
        r.lock_unlock_us.mean,
        r.lock_unlock_us.p50,
        r.lock_unlock_us.p99,
        r.lock_unlock_us.max,
        r.raw_epoch_pair.mean,
        r.raw_epoch_pair.p50,
        r.ops_per_s,
        r.violations,
        if r.ok { "OK" } else { "FAILED" }
    )
}

/// One rank's raw epoch pairs, in nanoseconds.
struct RawPairs {
    /// Spaced by the checker's epochs, as in the lock phase.
    spaced: Vec<u64>,
    /// Back to back.
    back_to_back: Vec<u64>,
}

/// The raw phase on this rank, on a fresh table window homed at `cfg.home`: `cfg.iters`
/// timed pairs of bare exchanges after `warmup` untimed ones, between barriers, twice. First
/// spaced exactly as the lock phase spaces lock and unlock (the same request stream, the
/// checker's stamp, hold and unstamp between the two exchanges, untimed, their findings
/// ignored), then back to back.
///
/// # Errors
/// MPI errors.
fn raw_epoch_pairs(
    rt: &Runtime,
    cfg: &LoopConfig,
    warmup: u64,
    checker: &StampChecker,
) -> Result<RawPairs> {
    let world = rt.world();
    let mut transport = RmaTransport::new(world, cfg.home)?;
    let (rank, size) = (transport.rank(), transport.size());
    let mut table = vec![0u64; size * SLOT_WORDS];
    let idle = Slot::IDLE.encode();
    let mut olds = Vec::new();
    let mut raw = RawPairs {
        spaced: Vec::with_capacity(cfg.iters as usize),
        back_to_back: Vec::with_capacity(cfg.iters as usize),
    };
    for spaced in [true, false] {
        let mut work = Workload::new(cfg.pattern, cfg.mode, rank, size, cfg.seed);
        for i in 0..warmup + cfg.iters {
            if i == warmup {
                world.barrier();
            }
            let (first, count, mode) = work.next_cells();
            // What the protocol's first attempt publishes.
            let range = Workload::range(first, count);
            let active = Slot::request(State::Active, range, mode, NO_TICKET).encode();
            // Timed like the lock phase times lock and unlock: each exchange on its own,
            // summed. On a virtual machine one clock read costs tens of nanoseconds, a tenth
            // of an epoch pair under `osc sm`: timing the pair as one interval would flatter
            // the raw figure.
            let t0 = Instant::now();
            transport.exchange(&active, true, &mut table)?;
            let acquire = t0.elapsed();
            if spaced {
                checker.hold(rank as Rank, first, count, mode, cfg.hold, &mut olds)?;
            }
            let t1 = Instant::now();
            transport.exchange(&idle, false, &mut table)?;
            let ns = (acquire + t1.elapsed()).as_nanos() as u64;
            if i >= warmup {
                if spaced {
                    raw.spaced.push(ns);
                } else {
                    raw.back_to_back.push(ns);
                }
            }
        }
        world.barrier();
    }
    // Dropping the transport frees its window and communicator (collective).
    drop(transport);
    Ok(raw)
}

/// The lock phase on this rank: `--warmup` untimed operations, then `--iters` timed ones
/// between barriers. `stats` reads the lock's protocol counters, if it has any.
///
/// # Errors
/// Lock and MPI errors.
fn lock_phase<L: RangeLock>(
    rt: &Runtime,
    args: &LockBenchArgs,
    cfg: &LoopConfig,
    lock: &mut L,
    checker: &StampChecker,
    stats: impl Fn(&L) -> Option<Stats>,
) -> Result<Phase> {
    let mut scratch = Vec::with_capacity(args.warmup as usize);
    let warm = LoopConfig {
        iters: args.warmup,
        seed: cfg.seed.wrapping_add(1),
        ..*cfg
    };
    let mut violations = drive(rt, &warm, lock, checker, &mut scratch)?;
    let before = stats(lock);
    let mut records = Vec::with_capacity(cfg.iters as usize);
    checker.comm().barrier();
    let t0 = Instant::now();
    violations += drive(rt, cfg, lock, checker, &mut records)?;
    checker.comm().barrier();
    let seconds = t0.elapsed().as_secs_f64();
    let stats = match (before, stats(lock)) {
        (Some(a), Some(b)) => Some(Stats {
            acquisitions: b.acquisitions - a.acquisitions,
            abandoned: b.abandoned - a.abandoned,
            retries: b.retries - a.retries,
            max_retries: b.max_retries,
            epochs: b.epochs - a.epochs,
            waits: b.waits - a.waits,
            wakeups_sent: b.wakeups_sent - a.wakeups_sent,
            wakeups_received: b.wakeups_received - a.wakeups_received,
        }),
        _ => None,
    };
    Ok(Phase {
        records,
        violations,
        seconds,
        stats,
        leftover: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::trimmed_mean;

    #[test]
    fn trimmed_mean_leaves_out_the_top_percent() {
        let mut ns = vec![1000u64; 99];
        ns.push(1_000_000_000);
        assert_eq!(trimmed_mean(&ns), 1.0);
        assert_eq!(trimmed_mean(&[2000]), 2.0);
        assert_eq!(trimmed_mean(&[]), 0.0);
    }
}

//! `bench lock`: latency and throughput of lock+unlock, for the MPI one-sided lock
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
//!    figure is reported as well (`raw_back_to_back`). With `--pattern same` a third loop
//!    measures the **hand-off floor** (`handoff_floor`): a token passed round the ranks
//!    with the same exchanges, wake-up message and holding as a lock+unlock and no protocol
//!    decisions. Under one contended range every lock+unlock also waits for the other ranks'
//!    turns, which the raw pair does not; the floor does, so it is what any lock that hands
//!    the range from rank to rank costs at best on this transport.
//! 2. **Lock phase.** Every rank runs `--iters` requests through the shared acquisition loop
//!    of `check lock` ([`crate::check::stamp`]), with the exclusion checker on: a broken lock
//!    reports violations and fails the run instead of looking fast. Per operation, the time
//!    spent in the lock call and in the unlock call are summed (the checker's stamp epochs in
//!    between are not counted); throughput is operations over the wall time of the phase,
//!    which does include the checker's two epochs per operation.
//!
//! Per-operation samples of every rank are merged on rank 0.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::{Communicator, Rank};
use serde::Serialize;

use crate::check::lock::{absolute, LockBackend, LockFile};
use crate::check::lock::{open_service, service_stats, shutdown_service, validate_homes};
use crate::check::stamp::{
    drive, gather_records, gather_to_root, Latency, LoopConfig, Record, StampChecker,
};
use crate::check::workload::{ModeMix, Pattern, Workload};
use crate::check::{mpi_library, requested_osc, Check, Outcome, Run};
use crate::collective::agree_result;
use crate::error::{Error, Result};
use crate::lock::rma::spread_homes;
use crate::lock::RangeLock;
use crate::protocol::Algorithm;
use crate::protocol::{Slot, State, Stats, Transport, NO_TICKET, SLOT_WORDS};
use crate::transport::rma::RmaTransport;

/// What `bench lock` does.
#[derive(Debug, Clone)]
pub struct LockBench {
    /// The lock to measure (not [`LockBackend::None`]).
    pub backend: LockBackend,
    /// Lock file of the fcntl backends (created if missing, left in place); every rank must
    /// reach the same file. Default: a file in a new temporary directory chosen by rank 0 and
    /// removed afterwards (single node only). With the one-sided service it is only recorded,
    /// with its file system type, and must exist or be in an existing directory.
    pub file: Option<PathBuf>,
    /// Odd ranks use this path instead of `file`: the same file through a second mount.
    pub alt_file: Option<PathBuf>,
    /// Which ranges the ranks request.
    pub pattern: Pattern,
    /// Which modes the ranks request.
    pub mode: ModeMix,
    /// Timed operations per rank (and raw epoch pairs per rank).
    pub iters: u64,
    /// Microseconds each holder keeps its range (spinning) while holding it.
    pub hold_us: u64,
    /// Untimed operations (and raw epoch pairs) per rank before each timed phase.
    pub warmup: u64,
    /// Seed of the request streams.
    pub seed: u64,
    /// Rank that holds the lock table (and the raw phase's table).
    pub home: Rank,
    /// The one-sided service's algorithm.
    pub algorithm: Algorithm,
    /// Home ranks of the one-sided service's shards (1: one table on `home`).
    pub homes: usize,
    /// Stripe size of the shards, in bytes.
    pub stripe: u64,
}

/// The report: one object on rank 0. Latencies are in microseconds, merged over all ranks'
/// operations of the timed phase.
#[derive(Debug, Serialize)]
pub struct LockBenchReport {
    /// Always "lock".
    pub bench: &'static str,
    /// The lock measured.
    pub backend: LockBackend,
    /// Which ranges the ranks requested.
    pub pattern: Pattern,
    /// Which modes.
    pub mode: ModeMix,
    /// Ranks.
    pub ranks: i32,
    /// Timed operations (and raw pairs) per rank.
    pub iters: u64,
    /// Untimed operations per rank before each phase.
    pub warmup: u64,
    /// Microseconds each holder kept its range.
    pub hold_us: u64,
    /// Seed of the request streams.
    pub seed: u64,
    /// The lock table's rank.
    pub home: i32,
    /// The one-sided service's algorithm (one-sided service only).
    pub algorithm: Option<Algorithm>,
    /// The home ranks of the one-sided service's shards (one-sided service only).
    pub homes: Option<Vec<i32>>,
    /// Stripe size of the shards in bytes (one-sided service only).
    pub stripe: Option<u64>,
    /// Epochs each home served in the timed phase, all ranks (one-sided service only).
    pub epochs_per_home: Option<Vec<u64>>,
    /// The busiest home's share of the epochs (one-sided service only; `1 / homes` when the
    /// load is spread evenly).
    pub busiest_home_share: Option<f64>,
    /// Timed operations of all ranks.
    pub operations: u64,
    /// Wall time of the timed lock phase, barrier to barrier, the longest over ranks.
    pub seconds: f64,
    /// `operations / seconds` (checker epochs included in the time).
    pub ops_per_s: f64,
    /// Time in the lock call plus time in the unlock call, per operation.
    pub lock_unlock_us: Latency,
    /// Time in the lock call.
    pub lock_us: Latency,
    /// Time in the unlock call.
    pub unlock_us: Latency,
    /// Mean of `raw_epoch_pair`.
    pub raw_epoch_pair_us: f64,
    /// Bare exchange pairs spaced like the lock phase's operations.
    pub raw_epoch_pair: Latency,
    /// Bare exchange pairs back to back.
    pub raw_back_to_back: Latency,
    /// `--pattern same`: the hand-off floor, a token passed round the ranks with the lock
    /// phase's epochs, message and holding (no protocol decisions), timed like lock+unlock.
    pub handoff_floor: Option<Latency>,
    /// `lock_unlock_us.mean / handoff_floor.mean` (one-sided service, `--pattern same`).
    pub ratio_to_handoff_floor: Option<f64>,
    /// `lock_unlock_us.mean / raw_epoch_pair_us` (one-sided service only).
    pub ratio_to_raw: Option<f64>,
    /// The same ratio of the medians.
    pub ratio_to_raw_p50: Option<f64>,
    /// The same ratio of the means of the samples at or below each 99th percentile.
    pub ratio_to_raw_trimmed: Option<f64>,
    /// Operations in which the checker saw a conflicting holder (warm-up included): must be 0.
    pub violations: u64,
    /// Wake-ups left over at shutdown (one-sided service only): must be 0.
    pub leftover_messages: Option<u64>,
    /// Table epochs per timed operation (one-sided service only; 2 when uncontended).
    pub epochs_per_op: Option<f64>,
    /// Wake-up (handoff: grant) messages per timed operation (one-sided service only).
    pub messages_per_op: Option<f64>,
    /// Bytes moved between the ranks and the table window per timed operation, read and
    /// written (one-sided service only): the table layout's cost.
    pub bytes_per_op: Option<f64>,
    /// Failed grant attempts followed by another (one-sided service only).
    pub retries: Option<u64>,
    /// Times a rank blocked for a wake-up (one-sided service only).
    pub waits: Option<u64>,
    /// The lock file rank 0 used (fcntl, ofd), or `file` as given, made absolute (rma).
    pub file: Option<String>,
    /// `alt_file`, made absolute.
    pub alt_file: Option<String>,
    /// File system type of `file`.
    pub fs_type: Option<String>,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`, as `--mca osc` sets it.
    pub osc: Option<String>,
    /// CPUs rank 0 may run on (`available_parallelism`: 1 when the launcher binds it to one
    /// core).
    pub cores: usize,
    /// CPUs online on rank 0's host.
    pub cpus_online: Option<usize>,
    /// `OMPI_MCA_mpi_yield_when_idle` as rank 0 saw it.
    pub yield_when_idle: Option<String>,
    /// Rank 0's host name.
    pub host: Option<String>,
    /// No violation and no leftover message.
    pub ok: bool,
}

/// What one rank's lock phase produced.
struct Phase {
    records: Vec<Record>,
    violations: u64,
    seconds: f64,
    /// Protocol counters of the timed operations (one-sided service only).
    stats: Option<Stats>,
    /// This rank's epochs of the timed operations at each home (one-sided service only).
    epochs_per_home: Vec<u64>,
    leftover: u64,
}

impl Check for LockBench {
    type Report = LockBenchReport;
    type Prepared = PreparedLockBench;

    /// Rank 0's share: every rank's records and raw samples, gathered, and the latency lists.
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let bytes = {
            let samples = u128::from(self.iters) * (u128::from(ranks.max(0) as u32) + 1);
            crate::check::stamp::records_memory(self.iters, ranks) + samples * 8 * 4
        };
        (bytes, "--iters x ranks")
    }

    /// Refuses the negative control (a benchmark measures locks) and a home rank outside the
    /// job.
    fn validate(&self, ranks: i32) -> Result<()> {
        if self.backend == LockBackend::None {
            return Err(Error::InvalidArgument(
                "bench lock measures a lock: --backend rma, fcntl or ofd".into(),
            ));
        }
        if !(0..ranks).contains(&self.home) {
            return Err(Error::InvalidArgument(format!(
                "home rank {} is not a rank of the job (0..{ranks})",
                self.home
            )));
        }
        validate_homes(self.backend, self.homes, self.stripe, ranks)
    }

    /// Opens the lock file of the fcntl backends and records, on rank 0, the file and its file
    /// system type (for the one-sided service a path that cannot exist is refused: an
    /// unmounted file system is a mistake worth stopping for).
    fn prepare<C: Communicator>(self, comm: &C) -> Result<PreparedLockBench> {
        self.validate(comm.size())?;
        let lock_file = match self.backend.fcntl_kind() {
            Some(kind) => Some(LockFile::open(
                comm,
                self.file.as_deref(),
                self.alt_file.as_deref(),
                kind,
            )?),
            None => None,
        };
        // Rank 0 records the file (the one it uses) and its file system.
        let mut fs_type = Ok(None);
        if comm.rank() == 0 {
            let path = lock_file.as_ref().map(|f| f.path.clone()).or_else(|| {
                self.file
                    .as_deref()
                    .map(|p| absolute(p).unwrap_or_else(|_| p.to_path_buf()))
            });
            if let Some(path) = path {
                fs_type = match crate::host::fs_type(&path) {
                    Ok(fs) => Ok(Some(fs)),
                    Err(e) if lock_file.is_none() => Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "file system type unknown");
                        Ok(None)
                    }
                };
            }
        }
        let fs_type = agree_result(comm, "find the file system", fs_type)?;
        Ok(PreparedLockBench {
            bench: self,
            lock_file,
            fs_type,
        })
    }
}

/// A [`LockBench`] ready to run.
#[derive(Debug)]
pub struct PreparedLockBench {
    bench: LockBench,
    lock_file: Option<LockFile>,
    fs_type: Option<String>,
}

impl Run for PreparedLockBench {
    type Report = LockBenchReport;

    /// Runs the raw phase and the lock phase on every rank of `comm`. Every rank passes
    /// without violations and leftover messages; rank 0 gets the report.
    fn run<C: Communicator>(mut self, comm: &C) -> Result<Outcome<LockBenchReport>> {
        let args = &self.bench;
        let checker = StampChecker::new(comm)?;
        let cfg = LoopConfig::new(
            args.pattern,
            args.mode,
            args.iters,
            args.seed,
            Duration::from_micros(args.hold_us),
            args.home,
        );
        let world = checker.comm();
        let phases = phases(args, self.lock_file.as_mut(), world, &cfg, &checker);
        let (raw, phase) = match phases {
            Ok(phases) => phases,
            Err(e) => {
                // Agreed: every rank frees the checker's window together.
                let _ = checker.free();
                return Err(e);
            }
        };
        let raw_spaced = gather_to_root(world, &raw.spaced);
        let raw_back_to_back = gather_to_root(world, &raw.back_to_back);
        let raw_handoff = gather_to_root(world, &raw.handoff);
        // Every rank has released its last range: close the lock files (and remove rank 0's
        // temporary directory).
        let file = self.lock_file.take().map(|f| f.path.display().to_string());

        let stats = phase.stats.unwrap_or_default();
        let mine = [
            phase.violations,
            phase.leftover,
            stats.epochs,
            stats.retries,
            stats.waits,
            stats.wakeups_sent,
            stats.words,
        ];
        let mut sums = [0u64; 7];
        world.all_reduce_into(&mine[..], &mut sums[..], SystemOperation::sum());
        let mut seconds = 0.0f64;
        world.all_reduce_into(&phase.seconds, &mut seconds, SystemOperation::max());
        let mut mine_per_home = phase.epochs_per_home.clone();
        mine_per_home.resize(args.homes, 0);
        let mut per_home = vec![0u64; args.homes];
        world.all_reduce_into(
            &mine_per_home[..],
            &mut per_home[..],
            SystemOperation::sum(),
        );
        let records = gather_records(world, &phase.records);
        checker.free()?;
        let [violations, leftover, epochs, retries, waits, messages, words] = sums;
        let ok = violations == 0 && leftover == 0;

        let (Some(records), Some(raw_spaced), Some(raw_back_to_back)) =
            (records, raw_spaced, raw_back_to_back)
        else {
            return Ok(Outcome::quiet(ok));
        };
        let rma = args.backend == LockBackend::Rma;
        let operations = records.len() as u64;
        let lock_unlock_ns: Vec<u64> = records.iter().map(|r| r.lock_ns + r.unlock_ns).collect();
        let trimmed = (trimmed_mean(&lock_unlock_ns), trimmed_mean(&raw_spaced));
        let raw = Latency::of(raw_spaced);
        let lock_unlock = Latency::of(lock_unlock_ns);
        let floor = raw_handoff.filter(|h| !h.is_empty()).map(Latency::of);
        let made_absolute = |p: &std::path::Path| {
            absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let report = LockBenchReport {
            bench: "lock",
            backend: args.backend,
            pattern: args.pattern,
            mode: args.mode,
            ranks: comm.size(),
            iters: args.iters,
            warmup: args.warmup,
            hold_us: args.hold_us,
            seed: args.seed,
            home: args.home,
            algorithm: rma.then_some(args.algorithm),
            homes: rma
                .then(|| spread_homes(comm.size(), args.homes, args.home).ok())
                .flatten(),
            stripe: rma.then_some(args.stripe),
            busiest_home_share: rma.then(|| {
                per_home.iter().copied().max().unwrap_or(0) as f64
                    / per_home.iter().sum::<u64>().max(1) as f64
            }),
            epochs_per_home: rma.then_some(per_home),
            operations,
            seconds,
            ops_per_s: operations as f64 / seconds.max(1e-9),
            lock_unlock_us: lock_unlock,
            lock_us: Latency::of(records.iter().map(|r| r.lock_ns).collect()),
            unlock_us: Latency::of(records.iter().map(|r| r.unlock_ns).collect()),
            raw_epoch_pair_us: raw.mean,
            raw_epoch_pair: raw,
            raw_back_to_back: Latency::of(raw_back_to_back),
            ratio_to_handoff_floor: floor
                .as_ref()
                .filter(|f| rma && f.mean > 0.0)
                .map(|f| lock_unlock.mean / f.mean),
            handoff_floor: floor,
            ratio_to_raw: (rma && raw.mean > 0.0).then(|| lock_unlock.mean / raw.mean),
            ratio_to_raw_p50: (rma && raw.p50 > 0.0).then(|| lock_unlock.p50 / raw.p50),
            ratio_to_raw_trimmed: (rma && trimmed.1 > 0.0).then(|| trimmed.0 / trimmed.1),
            violations,
            leftover_messages: rma.then_some(leftover),
            epochs_per_op: rma.then(|| epochs as f64 / operations.max(1) as f64),
            messages_per_op: rma.then(|| messages as f64 / operations.max(1) as f64),
            bytes_per_op: rma.then(|| 8.0 * words as f64 / operations.max(1) as f64),
            retries: rma.then_some(retries),
            waits: rma.then_some(waits),
            file: file.or_else(|| args.file.as_deref().map(made_absolute)),
            alt_file: args.alt_file.as_deref().map(made_absolute),
            fs_type: self.fs_type.take(),
            mpi_library: mpi_library(),
            osc: requested_osc(),
            cores: crate::host::cores(),
            cpus_online: crate::host::cpus_online(),
            // As this process saw it: the `brlock` binary sets it when there seem to be more
            // ranks than cores.
            yield_when_idle: std::env::var("OMPI_MCA_mpi_yield_when_idle").ok(),
            host: crate::host::hostname(),
            ok,
        };
        Ok(Outcome::reported(ok, report))
    }
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

impl fmt::Display for LockBenchReport {
    /// One line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        let ratio = r
            .ratio_to_raw
            .map_or(String::new(), |x| format!(" ({x:.2}x raw)"));
        let file = match (&r.file, &r.fs_type) {
            (Some(file), Some(fs)) => format!(", file {file} ({fs})"),
            (Some(file), None) => format!(", file {file}"),
            _ => String::new(),
        };
        let algorithm = r
            .algorithm
            .map_or(String::new(), |a| format!(" (algorithm {a})"));
        let homes = match (&r.homes, &r.epochs_per_home) {
            (Some(h), Some(e)) if h.len() > 1 => format!(
                ", {} homes {h:?} of {}-byte stripes serving {e:?} epochs",
                h.len(),
                r.stripe.unwrap_or(0)
            ),
            _ => String::new(),
        };
        let floor = match (&r.handoff_floor, r.ratio_to_handoff_floor) {
            (Some(h), Some(x)) => format!("; hand-off floor mean {:.2} us ({x:.2}x)", h.mean),
            (Some(h), None) => format!("; hand-off floor mean {:.2} us", h.mean),
            _ => String::new(),
        };
        let costs = match (r.epochs_per_op, r.messages_per_op, r.bytes_per_op) {
            (Some(e), Some(m), Some(b)) => {
                format!("; {e:.2} epochs, {m:.2} messages and {b:.0} bytes per lock+unlock")
            }
            _ => String::new(),
        };
        write!(
            f,
            "bench lock: backend {:?}{algorithm}{homes}, pattern {:?}, mode {:?}, {} ranks x {} ops{file}: \
             lock+unlock mean {:.2} us{ratio}, p50 {:.2}, p99 {:.2}, max {:.1}; \
             raw epoch pair mean {:.2} us, p50 {:.2}{floor}; {:.0} ops/s{costs}; {} violations: {}",
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
}

/// One rank's raw epoch pairs, in nanoseconds.
/// The raw phase, then the lock phase (collective; every error is agreed, and the lock service
/// is shut down on every rank whatever happened).
fn phases(
    args: &LockBench,
    lock_file: Option<&mut LockFile>,
    world: &impl Communicator,
    cfg: &LoopConfig,
    checker: &StampChecker,
) -> Result<(RawPairs, Phase)> {
    let raw = raw_epoch_pairs(world, cfg, args.warmup, checker)?;
    let phase = match lock_file {
        Some(file) => lock_phase(args.warmup, cfg, &mut file.lock, checker, |_| None)?,
        None => {
            let mut lock = open_service(world, args.home, args.homes, args.stripe, args.algorithm)?;
            let phase = lock_phase(args.warmup, cfg, &mut lock, checker, |l| {
                Some(service_stats(l))
            });
            let drained = shutdown_service(world, lock);
            let mut phase = phase?;
            phase.leftover = drained?.leftover;
            phase
        }
    };
    Ok((raw, phase))
}

struct RawPairs {
    /// Spaced by the checker's epochs, as in the lock phase.
    spaced: Vec<u64>,
    /// Back to back.
    back_to_back: Vec<u64>,
    /// The hand-off floor (`--pattern same` only, else empty): see [`time_handoff_floor`].
    handoff: Vec<u64>,
}

/// How long a rank of the hand-off floor waits for the token before it gives up (a rank that
/// failed stops passing it on).
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The raw phase on this rank, on a fresh table window homed at `cfg.home`: `cfg.iters`
/// timed pairs of bare exchanges after `warmup` untimed ones, between barriers, twice. First
/// spaced exactly as the lock phase spaces lock and unlock (the same request stream, the
/// checker's stamp, hold and unstamp between the two exchanges, untimed, their findings
/// ignored), then back to back.
///
/// # Errors
/// MPI errors.
fn raw_epoch_pairs(
    world: &impl Communicator,
    cfg: &LoopConfig,
    warmup: u64,
    checker: &StampChecker,
) -> Result<RawPairs> {
    let mut transport = RmaTransport::new(world, cfg.home)?;
    let mut tokens = Tokens {
        sent: vec![0; transport.size()],
        received: 0,
    };
    let raw = time_raw_pairs(world, cfg, warmup, checker, &mut transport);
    let raw = agree_result(world, "time raw epoch pairs", raw).and_then(|mut raw| {
        if cfg.pattern == Pattern::Same {
            let floor =
                time_handoff_floor(world, cfg, warmup, checker, &mut transport, &mut tokens);
            raw.handoff = agree_result(world, "time the hand-off floor", floor)?;
        }
        Ok(raw)
    });
    // The hand-off floor's tokens are accounted for like wake-ups: the teardown drains any a
    // failed run left behind.
    let closed = agree_result(
        world,
        "free the table window",
        transport.shutdown(&tokens.sent, tokens.received, true),
    );
    let raw = raw?;
    closed.map(|_| raw)
}

/// The timed loops of [`raw_epoch_pairs`] on this rank.
fn time_raw_pairs(
    world: &impl Communicator,
    cfg: &LoopConfig,
    warmup: u64,
    checker: &StampChecker,
    transport: &mut RmaTransport,
) -> Result<RawPairs> {
    let (rank, size) = (transport.rank(), transport.size());
    let mut table = vec![0u64; size * SLOT_WORDS];
    let idle = Slot::IDLE.encode();
    let mut olds = Vec::new();
    let mut raw = RawPairs {
        spaced: Vec::with_capacity(cfg.iters as usize),
        back_to_back: Vec::with_capacity(cfg.iters as usize),
        handoff: Vec::new(),
    };
    // The first error of this rank: after it the rank does no more epochs but still joins
    // the barriers, so that the others are not left waiting in one.
    let mut failed = Ok(());
    for spaced in [true, false] {
        let mut work = Workload::new(cfg.pattern, cfg.mode, rank, size, cfg.seed);
        for i in 0..warmup + cfg.iters {
            if i == warmup {
                world.barrier();
            }
            if failed.is_err() {
                continue;
            }
            let (first, count, mode) = work.next_cells();
            // What the protocol's first attempt publishes.
            let range = Workload::range(first, count);
            let active = Slot::request(State::Active, range, mode, NO_TICKET).encode();
            // Timed like the lock phase times lock and unlock: each exchange on its own,
            // summed. On a virtual machine one clock read costs tens of nanoseconds, a tenth
            // of an epoch pair under `osc sm`: timing the pair as one interval would flatter
            // the raw figure.
            let mut pair = || -> Result<u64> {
                let t0 = Instant::now();
                transport.exchange(&active, true, &mut table)?;
                let acquire = t0.elapsed();
                if spaced {
                    checker.hold(rank as Rank, first, count, mode, cfg.hold, &mut olds)?;
                }
                let t1 = Instant::now();
                transport.exchange(&idle, false, &mut table)?;
                Ok((acquire + t1.elapsed()).as_nanos() as u64)
            };
            match pair() {
                Ok(ns) if i >= warmup => {
                    if spaced {
                        raw.spaced.push(ns);
                    } else {
                        raw.back_to_back.push(ns);
                    }
                }
                Ok(_) => {}
                Err(e) => failed = Err(e),
            }
        }
        world.barrier();
    }
    failed.map(|()| raw)
}

/// Wake-up messages the hand-off floor sent (per destination) and received.
struct Tokens {
    sent: Vec<u64>,
    received: u64,
}

/// The hand-off floor on this rank (`--pattern same`): what the best lock that hands one
/// range from rank to rank could cost on this transport, with the lock phase's epochs and
/// messages and no protocol decisions. A token goes round the ranks in rank order; per
/// operation a rank publishes itself (the acquire-like exchange), waits for the token (a
/// wake-up message, received as the lock's waiters receive theirs), holds the range as the
/// lock phase does (the checker's stamp, hold and unstamp, untimed), then does the
/// release-like exchange and sends the token on. Timed like the lock phase: from the start of
/// the acquire-like exchange to the token's arrival, plus the release-like exchange and the
/// send. Under one contended range a lock+unlock also waits for every other rank's turn, so
/// this, not the raw epoch pair, is the contended lock's floor.
///
/// # Errors
/// MPI errors, or a token that does not arrive within [`TOKEN_TIMEOUT`].
fn time_handoff_floor(
    world: &impl Communicator,
    cfg: &LoopConfig,
    warmup: u64,
    checker: &StampChecker,
    transport: &mut RmaTransport,
    tokens: &mut Tokens,
) -> Result<Vec<u64>> {
    let (rank, size) = (transport.rank(), transport.size());
    let mut table = vec![0u64; size * SLOT_WORDS];
    let idle = Slot::IDLE.encode();
    let mut olds = Vec::new();
    let mut samples = Vec::with_capacity(cfg.iters as usize);
    let mut work = Workload::new(cfg.pattern, cfg.mode, rank, size, cfg.seed);
    let total = warmup + cfg.iters;
    let next = (rank + 1) % size;
    // After its first error a rank does no more turns but still joins the barriers; the ranks
    // after it in the ring then time out waiting for the token and do the same.
    let mut failed = Ok(());
    world.barrier();
    for i in 0..total {
        if i == warmup {
            world.barrier();
        }
        if failed.is_err() {
            continue;
        }
        let mut turn = || -> Result<u64> {
            let (first, count, mode) = work.next_cells();
            let range = Workload::range(first, count);
            let waiting = Slot::request(State::Waiting, range, mode, NO_TICKET).encode();
            let t0 = Instant::now();
            transport.exchange(&waiting, true, &mut table)?;
            // Rank 0's first turn needs no token; every other turn is handed over by the rank
            // before.
            if rank != 0 || i > 0 {
                if !transport.wait_wakeup(Some(Instant::now() + TOKEN_TIMEOUT))? {
                    return Err(Error::InvalidArgument(format!(
                        "bench lock: rank {rank} waited {TOKEN_TIMEOUT:?} for the hand-off \
                         floor's token"
                    )));
                }
                tokens.received += 1;
            }
            let acquire = t0.elapsed();
            checker.hold(rank as Rank, first, count, mode, cfg.hold, &mut olds)?;
            let t1 = Instant::now();
            transport.exchange(&idle, false, &mut table)?;
            // The last rank's last turn ends the ring.
            if !(rank == size - 1 && i == total - 1) {
                transport.send_wakeup(next)?;
                tokens.sent[next] += 1;
            }
            Ok((acquire + t1.elapsed()).as_nanos() as u64)
        };
        match turn() {
            Ok(ns) if i >= warmup => samples.push(ns),
            Ok(_) => {}
            Err(e) => failed = Err(e),
        }
    }
    world.barrier();
    failed.map(|()| samples)
}

/// The lock phase on this rank: `warmup` untimed operations, then `cfg.iters` timed ones
/// between barriers. `stats` reads the lock's protocol counters, if it has any.
///
/// # Errors
/// Lock and MPI errors.
fn lock_phase<L: RangeLock>(
    warmup: u64,
    cfg: &LoopConfig,
    lock: &mut L,
    checker: &StampChecker,
    stats: impl Fn(&L) -> Option<(Stats, Vec<u64>)>,
) -> Result<Phase> {
    let mut scratch = Vec::with_capacity(usize::try_from(warmup).unwrap_or(0));
    let warm = LoopConfig {
        iters: warmup,
        seed: cfg.seed.wrapping_add(1),
        ..*cfg
    };
    let warmed = drive(&warm, lock, checker, &mut scratch);
    // The agreements double as the barriers around the timed loop.
    let mut violations = agree_result(checker.comm(), "warm up", warmed)?;
    let before = stats(lock);
    let mut records = Vec::with_capacity(cfg.iters as usize);
    let t0 = Instant::now();
    let timed = drive(cfg, lock, checker, &mut records);
    let timed = agree_result(checker.comm(), "acquire and release", timed);
    let seconds = t0.elapsed().as_secs_f64();
    violations += timed?;
    let (stats, epochs_per_home) = match (before, stats(lock)) {
        (Some((a, home_a)), Some((b, home_b))) => (
            Some(Stats {
                acquisitions: b.acquisitions - a.acquisitions,
                abandoned: b.abandoned - a.abandoned,
                retries: b.retries - a.retries,
                max_retries: b.max_retries,
                epochs: b.epochs - a.epochs,
                words: b.words - a.words,
                waits: b.waits - a.waits,
                wakeups_sent: b.wakeups_sent - a.wakeups_sent,
                wakeups_received: b.wakeups_received - a.wakeups_received,
            }),
            home_b.iter().zip(&home_a).map(|(b, a)| b - a).collect(),
        ),
        _ => (None, Vec::new()),
    };
    Ok(Phase {
        records,
        violations,
        seconds,
        stats,
        epochs_per_home,
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

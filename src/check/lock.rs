//! `check lock`: every rank repeatedly takes byte ranges and a checker that does not trust the
//! lock verifies mutual exclusion, the bypass bound and wake-up accounting.
//!
//! The checker ([`super::stamp`]) keeps its own window on rank 0, separate from the lock's
//! table, stamps every holder's cells with atomic adds and counts any conflicting stamp it
//! finds as a violation. [`LockBackend::None`] takes no lock at all: the negative control,
//! which must report violations.
//!
//! [`LockBackend::Fcntl`] and [`LockBackend::Ofd`] check the kernel's record locks (POSIX and
//! Linux open-file-description locks, [`crate::lock::fcntl`]) on one lock file through the same
//! checker. They must show no violation either; the bypass bound is reported but not required
//! of them, since fcntl locks are not granted in arrival order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::{Communicator, Rank};
use serde::Serialize;

use super::stamp::{drive, gather_records, Latency, LoopConfig, Record, StampChecker};
use super::verify::{max_bypass, Grant, CHECKED_SHARDS};
use super::workload::{ModeMix, Pattern};
use super::{mpi_library, requested_osc, Check, Outcome, Run, TempDir};
use crate::choice::choice;
use crate::collective::{agree_result, path_from, split_path};
use crate::error::{Error, Result};
use crate::lock::rma::spread_homes;
use crate::lock::{FcntlKind, FcntlLock, NoLock, RmaLock, Sharded};
use crate::protocol::Algorithm;
use crate::protocol::{Drained, Stats};

choice! {
    /// A byte-range lock the checks and benchmarks can drive.
    pub enum LockBackend {
        /// The MPI one-sided lock service.
        Rma = "rma",
        /// POSIX fcntl record locks (F_SETLKW) on the lock file (--file).
        Fcntl = "fcntl",
        /// Linux open-file-description locks (F_OFD_SETLKW) on the lock file (--file).
        Ofd = "ofd",
        /// No lock at all: the negative control.
        None = "none",
    }
}

impl LockBackend {
    /// The fcntl lock kind of the file-lock backends.
    pub fn fcntl_kind(self) -> Option<FcntlKind> {
        match self {
            LockBackend::Fcntl => Some(FcntlKind::Posix),
            LockBackend::Ofd => Some(FcntlKind::Ofd),
            LockBackend::Rma | LockBackend::None => None,
        }
    }
}

/// The fcntl lock of one rank on the shared lock file.
#[derive(Debug)]
pub struct LockFile {
    /// The lock.
    pub lock: FcntlLock,
    /// The path this rank opened (absolute).
    pub path: PathBuf,
    /// On rank 0, the temporary directory it created (removed on drop).
    _temp: Option<TempDir>,
}

impl LockFile {
    /// Collective: opens the lock file on every rank.
    ///
    /// Even ranks open `file`; odd ranks open `alt_file` when it is given (the same file
    /// through another mount, say), `file` otherwise. A leader opens each path first — rank 0
    /// `file` (or a file in a new temporary directory when `file` is `None`), rank 1
    /// `alt_file` — so that a missing directory or a permission problem is reported once per
    /// path; then the leaders hand the absolute paths to the others, who open them.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank, naming the failing rank and its error (an
    /// [`Error::Io`] naming the path).
    pub fn open(
        comm: &impl Communicator,
        file: Option<&Path>,
        alt_file: Option<&Path>,
        kind: FcntlKind,
    ) -> Result<LockFile> {
        let rank = comm.rank();
        // A leader's lock file, kept for itself; the others learn its path.
        let mut led: Option<LockFile> = None;
        let mut lead = |path: PathBuf, temp: Option<TempDir>| -> Result<PathBuf> {
            let file = LockFile::open_at(path, kind, temp)?;
            let path = file.path.clone();
            led = Some(file);
            Ok(path)
        };
        let main = path_from(comm, 0, "open the lock file", || match file {
            Some(path) => lead(absolute(path)?, None),
            None => {
                let dir = TempDir::create("brlock-check-lock")?;
                lead(dir.path().join("brlock.lock"), Some(dir))
            }
        })?;
        let alt = match alt_file.filter(|_| comm.size() > 1) {
            Some(alt) => Some(path_from(comm, 1, "open the lock file", || {
                lead(absolute(alt)?, None)
            })?),
            None => None,
        };
        let opened = match led {
            Some(led) => Ok(led),
            None => {
                let path = split_path(rank, &main, alt.as_deref()).to_path_buf();
                LockFile::open_at(path, kind, None).map_err(|e| {
                    if file.is_none() {
                        Error::InvalidArgument(format!(
                            "{e} (the default lock file is in rank 0's temporary directory: \
                             with ranks on several nodes, pass --file on a shared file system)"
                        ))
                    } else {
                        e
                    }
                })
            }
        };
        agree_result(comm, "open the lock file", opened)
    }

    /// This rank's lock on `path` (`temp`: the directory holding it, removed on drop).
    fn open_at(path: PathBuf, kind: FcntlKind, temp: Option<TempDir>) -> Result<LockFile> {
        Ok(LockFile {
            lock: FcntlLock::open(&path, kind)?,
            path,
            _temp: temp,
        })
    }
}

/// A path made absolute, so that a relative path names the same file on ranks started in
/// another working directory. Symbolic links are kept: mount points may differ.
///
/// # Errors
/// [`Error::Io`] if the working directory cannot be read.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|source| Error::Io {
        op: "resolve",
        path: path.display().to_string(),
        source,
    })
}

/// What `check lock` does.
#[derive(Debug, Clone)]
pub struct LockCheck {
    /// The lock to check.
    pub backend: LockBackend,
    /// Which ranges the ranks request.
    pub pattern: Pattern,
    /// Which modes the ranks request.
    pub mode: ModeMix,
    /// Acquisitions per rank.
    pub iters: u64,
    /// Seed of the request streams.
    pub seed: u64,
    /// How long each holder keeps its range (spinning) between stamping and re-checking.
    pub hold: Duration,
    /// Lock file of the fcntl backends (default: one in a temporary directory of rank 0).
    pub file: Option<PathBuf>,
    /// Rank that holds the lock table.
    pub home: Rank,
    /// Percentage of requests that first try `try_lock`, then `lock_timeout`, then block.
    pub try_percent: u64,
    /// Timeout of the `lock_timeout` step.
    pub timeout: Duration,
    /// Halfway through, keep the home rank busy outside MPI for this many milliseconds.
    pub busy_home_ms: u64,
    /// The one-sided service's algorithm.
    pub algorithm: Algorithm,
    /// Home ranks the one-sided service is sharded over (1: one table on `home`; more: spread
    /// from `home` by [`spread_homes`]).
    pub homes: usize,
    /// Stripe size of the shards, in bytes.
    pub stripe: u64,
}

/// The stripe size the checks and benchmarks use by default: two cells of the workload, so
/// that each rank's range of `--pattern disjoint` is a stripe of its own.
pub const DEFAULT_STRIPE: u64 = 2 * super::workload::CELL_BYTES;

/// Refuses shard settings the checker cannot measure: 1 to [`CHECKED_SHARDS`] homes, no more
/// than the ranks, and more than one only for the one-sided service; a stripe of at least 1.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the setting.
pub fn validate_homes(backend: LockBackend, homes: usize, stripe: u64, ranks: i32) -> Result<()> {
    let ranks = usize::try_from(ranks.max(1)).unwrap_or(1);
    if homes == 0 || homes > CHECKED_SHARDS.min(ranks) {
        return Err(Error::InvalidArgument(format!(
            "--homes {homes}: must be 1 to {} (at most the {ranks} ranks and the checker's \
             {CHECKED_SHARDS} shards)",
            CHECKED_SHARDS.min(ranks)
        )));
    }
    if homes > 1 && backend != LockBackend::Rma {
        return Err(Error::InvalidArgument(
            "--homes applies only to --backend rma".into(),
        ));
    }
    if stripe == 0 {
        return Err(Error::InvalidArgument(
            "--stripe must be at least 1 byte".into(),
        ));
    }
    Ok(())
}

/// Opens the one-sided service as a [`Sharded`] lock over `homes` homes spread from `home`
/// (one shard when `homes` is 1). Collective over `comm`.
///
/// # Errors
/// As [`spread_homes`] and [`RmaLock::open_sharded`].
pub fn open_service<C: Communicator>(
    comm: &C,
    home: Rank,
    homes: usize,
    stripe: u64,
    algorithm: Algorithm,
) -> Result<Sharded<RmaLock>> {
    RmaLock::open_sharded(
        comm,
        &spread_homes(comm.size(), homes, home)?,
        stripe,
        algorithm,
    )
}

/// The counters of every shard summed, and each shard's epochs (this rank's share of the
/// epochs that shard's home served).
pub fn service_stats(lock: &Sharded<RmaLock>) -> (Stats, Vec<u64>) {
    let mut sum = Stats::default();
    let mut per_home = Vec::new();
    for s in lock.shards() {
        let st = s.stats();
        sum.acquisitions += st.acquisitions;
        sum.abandoned += st.abandoned;
        sum.retries += st.retries;
        sum.max_retries = sum.max_retries.max(st.max_retries);
        sum.epochs += st.epochs;
        sum.words += st.words;
        sum.waits += st.waits;
        sum.wakeups_sent += st.wakeups_sent;
        sum.wakeups_received += st.wakeups_received;
        per_home.push(st.epochs);
    }
    (sum, per_home)
}

/// Collective: shuts every shard down in order, each agreed; the drains summed.
///
/// # Errors
/// The first agreed shutdown failure.
pub fn shutdown_service<C: Communicator>(comm: &C, lock: Sharded<RmaLock>) -> Result<Drained> {
    let mut total = Drained::default();
    let mut first = Ok(());
    for shard in lock.into_shards() {
        match agree_result(comm, "shut the lock service down", shard.shutdown()) {
            Ok(d) => {
                total.drained += d.drained;
                total.leftover += d.leftover;
            }
            Err(e) if first.is_ok() => first = Err(e),
            Err(_) => {}
        }
    }
    first.map(|()| total)
}

impl Check for LockCheck {
    type Report = LockReport;
    type Prepared = PreparedLockCheck;

    /// Rank 0's share: every rank's acquisition records, gathered.
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let bytes = { super::stamp::records_memory(self.iters, ranks) };
        (bytes, "--iters x ranks")
    }

    /// Refuses a lock file with a backend that takes none, and shard settings
    /// [`validate_homes`] refuses.
    fn validate(&self, ranks: i32) -> Result<()> {
        if self.file.is_some() && self.backend.fcntl_kind().is_none() {
            return Err(Error::InvalidArgument(
                "--file applies only to --backend fcntl and --backend ofd".into(),
            ));
        }
        validate_homes(self.backend, self.homes, self.stripe, ranks)
    }

    /// Opens the lock file of the fcntl backends ([`LockFile::open`]).
    fn prepare<C: Communicator>(self, comm: &C) -> Result<PreparedLockCheck> {
        self.validate(comm.size())?;
        let lock_file = match self.backend.fcntl_kind() {
            Some(kind) => Some(LockFile::open(comm, self.file.as_deref(), None, kind)?),
            None => None,
        };
        Ok(PreparedLockCheck {
            check: self,
            lock_file,
        })
    }
}

/// A [`LockCheck`] ready to run.
#[derive(Debug)]
pub struct PreparedLockCheck {
    check: LockCheck,
    lock_file: Option<LockFile>,
}

/// The report of `check lock` (rank 0).
#[derive(Debug, Serialize)]
pub struct LockReport {
    /// Always "lock".
    pub check: &'static str,
    /// The lock checked.
    pub backend: LockBackend,
    /// Which ranges the ranks requested.
    pub pattern: Pattern,
    /// Which modes.
    pub mode: ModeMix,
    /// Ranks.
    pub ranks: i32,
    /// Acquisitions per rank.
    pub iters: u64,
    /// The lock table's rank.
    pub home: i32,
    /// The one-sided service's algorithm (`rma` backend only).
    pub algorithm: Option<Algorithm>,
    /// The home ranks of the one-sided service's shards (`rma` backend only).
    pub homes: Option<Vec<i32>>,
    /// Stripe size of the shards in bytes (`rma` backend only).
    pub stripe: Option<u64>,
    /// Epochs each home served, all ranks (`rma` backend only).
    pub epochs_per_home: Option<Vec<u64>>,
    /// The lock file rank 0 used (fcntl backends).
    pub lock_file: Option<String>,
    /// Ranges granted, all ranks.
    pub acquisitions: u64,
    /// Grants that overlapped a conflicting holder: must be 0.
    pub violations: u64,
    /// Most later-arriving conflicting requests granted before one request.
    pub max_bypass: u64,
    /// Wake-ups left at shutdown: must be 0.
    pub leftover_messages: u64,
    /// Stale wake-ups consumed at shutdown.
    pub stale_wakeups_drained: u64,
    /// Failed grant attempts followed by another.
    pub retries: u64,
    /// Times a rank blocked for a wake-up.
    pub waits: u64,
    /// Wake-ups sent.
    pub wakeups_sent: u64,
    /// Requests given up.
    pub abandoned: u64,
    /// Table epochs.
    pub epochs: u64,
    /// Wall time, barrier to barrier.
    pub seconds: f64,
    /// Acquisitions per second.
    pub ops_per_s: f64,
    /// Time in the lock call(s).
    pub lock_us: Latency,
    /// See [`LockCheck::busy_home_ms`].
    pub busy_home_ms: u64,
    /// See [`LockCheck::try_percent`].
    pub try_percent: u64,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// No violation, no leftover message, and (one-sided service) bypass 0.
    pub ok: bool,
}

impl std::fmt::Display for LockReport {
    /// One line (two with a lock file, which comes first).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(path) = &self.lock_file {
            writeln!(f, "check lock: lock file {path}")?;
        }
        let algorithm = self
            .algorithm
            .map_or(String::new(), |a| format!(" (algorithm {a})"));
        let homes = match (&self.homes, &self.epochs_per_home) {
            (Some(h), Some(e)) if h.len() > 1 => format!(
                ", {} homes {h:?} of {}-byte stripes serving {e:?} epochs",
                h.len(),
                self.stripe.unwrap_or(0)
            ),
            _ => String::new(),
        };
        let per = |n: u64| n as f64 / self.acquisitions.max(1) as f64;
        write!(
            f,
            "check lock: backend {:?}{algorithm}{homes}, pattern {:?}, mode {:?}, {} ranks: {} acquisitions, \
             {} violations, max bypass {}, {} leftover messages ({} stale wake-ups drained), \
             {:.2} epochs and {:.2} messages per acquisition, \
             lock p50 {:.1} us, p99 {:.1} us, max {:.1} us, {:.0} ops/s: {}",
            self.backend,
            self.pattern,
            self.mode,
            self.ranks,
            self.acquisitions,
            self.violations,
            self.max_bypass,
            self.leftover_messages,
            self.stale_wakeups_drained,
            per(self.epochs),
            per(self.wakeups_sent),
            self.lock_us.p50,
            self.lock_us.p99,
            self.lock_us.max,
            self.ops_per_s,
            if self.ok { "OK" } else { "FAILED" }
        )
    }
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

impl Run for PreparedLockCheck {
    type Report = LockReport;

    /// Runs the check on every rank of `comm`. Rank 0 gets the report; every rank passes
    /// unless a real lock (not [`LockBackend::None`]) showed a violation or a leftover
    /// message.
    fn run<C: Communicator>(mut self, comm: &C) -> Result<Outcome<LockReport>> {
        let args = &self.check;
        let checker = StampChecker::new(comm)?;
        let cfg = LoopConfig {
            try_percent: args.try_percent,
            timeout: args.timeout,
            busy_home_ms: args.busy_home_ms,
            arrivals: true,
            ..LoopConfig::new(
                args.pattern,
                args.mode,
                args.iters,
                args.seed,
                args.hold,
                args.home,
            )
        };
        let mut totals = Totals::default();
        let mut epochs_per_home = vec![0u64; args.homes];
        let mut records = Vec::with_capacity(usize::try_from(args.iters).unwrap_or(0));
        checker.comm().barrier();
        let started = Instant::now();
        let driven = match (args.backend, self.lock_file.as_mut()) {
            (LockBackend::Rma, _) => {
                open_service(comm, args.home, args.homes, args.stripe, args.algorithm).and_then(
                    |mut lock| {
                        let driven = drive(&cfg, &mut lock, &checker, &mut records);
                        // Every rank's loop is over (the agreement waits for all): shut down together.
                        let driven = agree_result(checker.comm(), "acquire and release", driven);
                        let (stats, per_home) = service_stats(&lock);
                        totals.stats = stats;
                        // One acquisition per granted request, however many shards it took.
                        totals.stats.acquisitions = records.len() as u64;
                        epochs_per_home = per_home;
                        let drained = shutdown_service(checker.comm(), lock);
                        totals.violations = driven?;
                        totals.drained = drained?;
                        Ok(())
                    },
                )
            }
            (LockBackend::Fcntl | LockBackend::Ofd, Some(file)) => {
                let driven = drive(&cfg, &mut file.lock, &checker, &mut records);
                totals.stats.acquisitions = args.iters;
                agree_result(checker.comm(), "acquire and release", driven)
                    .map(|v| totals.violations = v)
            }
            (LockBackend::Fcntl | LockBackend::Ofd, None) => {
                unreachable!("the lock file of the fcntl backends is opened by prepare")
            }
            (LockBackend::None, _) => {
                let mut lock = NoLock::default();
                let driven = drive(&cfg, &mut lock, &checker, &mut records);
                totals.stats.acquisitions = args.iters;
                agree_result(checker.comm(), "acquire and release", driven)
                    .map(|v| totals.violations = v)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        if let Err(e) = driven {
            // Agreed: every rank frees the checker's window together.
            let _ = checker.free();
            return Err(e);
        }
        // Every rank has released its last range: close the lock files (and remove rank 0's
        // temporary directory).
        let lock_path = self.lock_file.take().map(|f| f.path.display().to_string());

        let mut sums = [0u64; 9];
        checker
            .comm()
            .all_reduce_into(&totals.words()[..], &mut sums[..], SystemOperation::sum());
        epochs_per_home.resize(args.homes, 0);
        let mut served = vec![0u64; args.homes];
        checker.comm().all_reduce_into(
            &epochs_per_home[..],
            &mut served[..],
            SystemOperation::sum(),
        );
        let report = gather_records(checker.comm(), &records).map(|all| {
            let mut r = self.summarise(comm.size(), &all, sums, seconds, lock_path);
            if r.backend == LockBackend::Rma {
                r.epochs_per_home = Some(served);
            }
            r
        });
        checker.free()?;
        let negative_control = args.backend == LockBackend::None;
        Ok(match report {
            Some(report) => Outcome::reported(report.ok || negative_control, report),
            None => Outcome::quiet((sums[1] == 0 && sums[2] == 0) || negative_control),
        })
    }
}

impl PreparedLockCheck {
    fn summarise(
        &self,
        ranks: i32,
        all: &[Record],
        sums: [u64; 9],
        seconds: f64,
        lock_file: Option<String>,
    ) -> LockReport {
        let args = &self.check;
        let grants: Vec<Grant> = all.iter().map(|r| r.grant).collect();
        let latencies: Vec<u64> = all.iter().map(|r| r.lock_ns).collect();
        let [acquisitions, violations, leftover, drained, retries, waits, wakeups_sent, abandoned, epochs] =
            sums;
        let bypass = max_bypass(&grants);
        let ok = match args.backend {
            LockBackend::Rma => violations == 0 && leftover == 0 && bypass == 0,
            // The kernel grants in no particular order: exclusion only.
            LockBackend::Fcntl | LockBackend::Ofd | LockBackend::None => violations == 0,
        };
        LockReport {
            check: "lock",
            backend: args.backend,
            pattern: args.pattern,
            mode: args.mode,
            ranks,
            iters: args.iters,
            home: args.home,
            algorithm: (args.backend == LockBackend::Rma).then_some(args.algorithm),
            homes: (args.backend == LockBackend::Rma)
                .then(|| spread_homes(ranks, args.homes, args.home).ok())
                .flatten(),
            stripe: (args.backend == LockBackend::Rma).then_some(args.stripe),
            epochs_per_home: None,
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
            mpi_library: mpi_library(),
            osc: requested_osc(),
            ok,
        }
    }
}

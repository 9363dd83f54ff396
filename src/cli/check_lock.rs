//! `brlock check lock`: every rank repeatedly takes byte ranges and a checker that does not
//! trust the lock verifies mutual exclusion, the bypass bound and wake-up accounting.
//!
//! The checker keeps its own window on rank 0, separate from the lock's table: a grant
//! counter, an arrival counter, and one word per cell of the byte space. A holder stamps each
//! cell of its range with atomic adds (an exclusive holder adds `(rank + 1) << 32`, a shared
//! holder adds 1) and checks what was there before: an exclusive holder must find 0, a shared
//! holder no exclusive stamp. It holds for `--hold-us`, then removes its stamps and checks
//! again that nothing conflicting appeared. Any mismatch is a violation. `--backend none`
//! takes no lock at all: the negative control, which must report violations.
//!
//! `--backend fcntl` and `--backend ofd` check the kernel's record locks (POSIX and Linux
//! open-file-description locks, [`brlock::fcntl`]) on one lock file through the same checker.
//! They must show no violation either; the bypass bound is reported but not required of them,
//! since fcntl locks are not granted in arrival order.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::{emit, emit_json, library_summary, report_error, requested_osc};
use brlock::fcntl::{FcntlKind, FcntlLock};
use brlock::lock::NoLock;
use brlock::protocol::Stats;
use brlock::runtime::Runtime;
use brlock::sys::{LockKind, Op, OwnedComm, Window};
use brlock::transport::rma::RmaLock;
use brlock::transport::Drained;
use brlock::verify::{max_bypass, Grant};
use brlock::workload::{ModeMix, Pattern, Workload};
use brlock::{Error, LockMode, RangeLock, Result};

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

const GRANT_COUNTER: usize = 0;
const ARRIVAL_COUNTER: usize = 1;
const FIRST_CELL: usize = 2;
const EXCLUSIVE_UNIT: u64 = 1 << 32;
/// Words per gathered record: the [`Grant`] fields plus the latency in nanoseconds.
const RECORD_WORDS: usize = 8;

/// Latency summary in microseconds.
#[derive(Debug, Default, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(mut ns: Vec<u64>) -> Latency {
        if ns.is_empty() {
            return Latency::default();
        }
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
        Latency {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
            mean: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3,
        }
    }
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
    let ranks = world.size();
    // The lock file is opened first, before any window exists, so that a bad path ends the
    // run on every rank with one error line and no collective left waiting.
    let mut lock_file = match (args.backend.fcntl_kind(), &args.file) {
        (Some(kind), _) => match LockFile::open(rt, args.file.as_deref(), kind)? {
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
    let checker = OwnedComm::duplicate(world)?;
    let cells = Workload::cells_for(ranks as usize) as usize;
    let words = if checker.rank() == 0 {
        FIRST_CELL + cells
    } else {
        0
    };
    let stamps = Window::allocate(checker.comm(), words)?;

    let mut records = Vec::with_capacity(args.iters as usize * RECORD_WORDS);
    checker.comm().barrier();
    let started = Instant::now();
    let totals = match (args.backend, lock_file.as_mut()) {
        (CheckBackend::Fcntl | CheckBackend::Ofd, Some(file)) => {
            let mut totals = drive(rt, args, &mut file.lock, &stamps, &mut records)?;
            totals.stats.acquisitions = args.iters;
            totals
        }
        (CheckBackend::Fcntl | CheckBackend::Ofd, None) => {
            unreachable!("the lock file of the fcntl backends is opened above")
        }
        (CheckBackend::Rma, _) => {
            let mut lock = RmaLock::open(world, args.home)?;
            let mut totals = drive(rt, args, &mut lock, &stamps, &mut records)?;
            totals.stats = lock.stats();
            totals.drained = lock.shutdown()?;
            totals
        }
        (CheckBackend::None, _) => {
            let mut lock = NoLock::default();
            let mut totals = drive(rt, args, &mut lock, &stamps, &mut records)?;
            totals.stats.acquisitions = args.iters;
            totals
        }
    };
    checker.comm().barrier();
    let seconds = started.elapsed().as_secs_f64();
    // Every rank has released its last range: close the lock files (and remove rank 0's
    // temporary directory).
    let lock_path = lock_file.take().map(|f| f.path.display().to_string());

    let mut sums = [0u64; 9];
    checker
        .comm()
        .all_reduce_into(&totals.words()[..], &mut sums[..], SystemOperation::sum());
    let root = checker.comm().process_at_rank(0);
    let report = if checker.rank() == 0 {
        let mut all = vec![0u64; records.len() * ranks as usize];
        root.gather_into_root(&records[..], &mut all[..]);
        Some(summarise(rt, args, &all, sums, seconds, lock_path))
    } else {
        root.gather_into(&records[..]);
        None
    };
    stamps.free()?;
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
    all: &[u64],
    sums: [u64; 9],
    seconds: f64,
    lock_file: Option<String>,
) -> Report {
    let mut grants = Vec::with_capacity(all.len() / RECORD_WORDS);
    let mut latencies = Vec::with_capacity(all.len() / RECORD_WORDS);
    for w in all.chunks_exact(RECORD_WORDS) {
        grants.push(Grant {
            rank: w[0] as usize,
            ticket: w[1],
            arrival_seq: w[2],
            grant_seq: w[3],
            start: w[4],
            end: w[5],
            exclusive: w[6] != 0,
        });
        latencies.push(w[7]);
    }
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

/// The acquisition loop of one rank. Appends one record per acquisition to `records`.
fn drive<L: RangeLock>(
    rt: &Runtime,
    args: &LockCheckArgs,
    lock: &mut L,
    stamps: &Window,
    records: &mut Vec<u64>,
) -> Result<Totals> {
    let rank = rt.rank();
    let mut work = Workload::new(
        args.pattern,
        args.mode,
        rank as usize,
        rt.size() as usize,
        args.seed,
    );
    let hold = Duration::from_micros(args.hold_us);
    let mut totals = Totals::default();
    let mut olds = Vec::new();
    for i in 0..args.iters {
        if args.busy_home_ms > 0 && i == args.iters / 2 && rank == args.home {
            tracing::info!(ms = args.busy_home_ms, "home rank busy outside MPI");
            std::thread::sleep(Duration::from_millis(args.busy_home_ms));
        }
        let (first, count, mode) = work.next_cells();
        let range = Workload::range(first, count);
        let use_try = args.try_percent > 0 && work.rng().below(100) < args.try_percent;

        // Arrival: where the grant order stands now, and the checker's own arrival stamp.
        let (mut arrival_seq, mut stamp) = arrival(stamps)?;
        let t0 = Instant::now();
        let mut granted = use_try && lock.try_lock(range, mode)?;
        if use_try && !granted {
            (arrival_seq, stamp) = arrival(stamps)?;
            granted = lock.lock_timeout(range, mode, Duration::from_micros(args.timeout_us))?;
        }
        if !granted {
            if use_try {
                (arrival_seq, stamp) = arrival(stamps)?;
            }
            lock.lock(range, mode)?;
        }
        let latency = t0.elapsed().as_nanos() as u64;
        let ticket = lock.arrival_ticket().unwrap_or(stamp);

        let unit = match mode {
            LockMode::Exclusive => (rank as u64 + 1) * EXCLUSIVE_UNIT,
            LockMode::Shared => 1,
        };
        olds.clear();
        olds.resize(count as usize, 0);
        let mut grant_seq = 0;
        let one = 1u64;
        stamps.with_lock(0, LockKind::Shared, |e| {
            e.fetch_and_op(&one, &mut grant_seq, GRANT_COUNTER, Op::Sum)?;
            for (c, old) in olds.iter_mut().enumerate() {
                e.fetch_and_op(&unit, old, FIRST_CELL + first as usize + c, Op::Sum)?;
            }
            Ok(())
        })?;
        let mut bad = olds.iter().any(|&old| !compatible(mode, old, 0));
        spin(hold);
        let minus = unit.wrapping_neg();
        stamps.with_lock(0, LockKind::Shared, |e| {
            for (c, old) in olds.iter_mut().enumerate() {
                e.fetch_and_op(&minus, old, FIRST_CELL + first as usize + c, Op::Sum)?;
            }
            Ok(())
        })?;
        bad |= olds.iter().any(|&old| !compatible(mode, old, unit));
        lock.unlock()?;
        if bad {
            totals.violations += 1;
            tracing::debug!(%range, %mode, "exclusion violated");
        }
        records.extend_from_slice(&[
            rank as u64,
            ticket,
            arrival_seq,
            grant_seq,
            range.start(),
            range.end(),
            u64::from(mode == LockMode::Exclusive),
            latency,
        ]);
    }
    Ok(totals)
}

/// Reads the grant counter and takes a checker arrival stamp, in one epoch.
fn arrival(stamps: &Window) -> Result<(u64, u64)> {
    let (mut seq, mut stamp) = (0u64, 0u64);
    let one = 1u64;
    stamps.with_lock(0, LockKind::Shared, |e| {
        e.atomic_read(&mut seq, GRANT_COUNTER)?;
        e.fetch_and_op(&one, &mut stamp, ARRIVAL_COUNTER, Op::Sum)
    })?;
    Ok((seq, stamp))
}

/// Whether a cell word `old` seen by a holder in `mode` is consistent with the lock's promise,
/// given that the holder's own stamp `mine` is included in it (0 before stamping).
fn compatible(mode: LockMode, old: u64, mine: u64) -> bool {
    let others = old.wrapping_sub(mine);
    match mode {
        LockMode::Exclusive => others == 0,
        LockMode::Shared => others >> 32 == 0,
    }
}

fn spin(d: Duration) {
    if d.is_zero() {
        return;
    }
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Longest lock-file path rank 0 can hand to the others.
const PATH_MAX: usize = 4096;

/// The fcntl lock of one rank on the shared lock file.
struct LockFile {
    lock: FcntlLock,
    path: PathBuf,
    /// On rank 0, the temporary directory it created (removed on drop).
    _temp: Option<TempDir>,
}

impl LockFile {
    /// Collective: rank 0 picks the path (`file`, or a file in a new temporary directory) and
    /// opens it first, so that a missing directory or a permission problem is reported once;
    /// then the others open it. Returns `None` on every rank if any rank failed; each rank
    /// that failed has printed its one error line.
    fn open(rt: &Runtime, file: Option<&Path>, kind: FcntlKind) -> Result<Option<LockFile>> {
        let world = rt.world();
        let root = world.process_at_rank(0);
        let mut ok = 1u8;
        let mut path_buf = [0u8; PATH_MAX];
        let mut opened = None;
        if rt.rank() == 0 {
            match open_on_root(file, kind) {
                Ok((lock, path, temp)) => {
                    let bytes = path.as_os_str().as_bytes();
                    if bytes.len() < PATH_MAX && !bytes.contains(&0) {
                        path_buf[..bytes.len()].copy_from_slice(bytes);
                        opened = Some(LockFile {
                            lock,
                            path,
                            _temp: temp,
                        });
                    } else {
                        ok = 0;
                        report_error(
                            rt,
                            &Error::InvalidArgument(format!(
                                "lock file path longer than {} bytes: {}",
                                PATH_MAX - 1,
                                path.display()
                            )),
                        );
                    }
                }
                Err(e) => {
                    ok = 0;
                    report_error(rt, &e);
                }
            }
        }
        root.broadcast_into(&mut ok);
        if ok == 0 {
            return Ok(None);
        }
        root.broadcast_into(&mut path_buf[..]);
        if rt.rank() != 0 {
            let len = path_buf.iter().position(|&b| b == 0).unwrap_or(PATH_MAX);
            let path = PathBuf::from(OsStr::from_bytes(&path_buf[..len]));
            match FcntlLock::open(&path, kind) {
                Ok(lock) => {
                    opened = Some(LockFile {
                        lock,
                        path,
                        _temp: None,
                    });
                }
                Err(e) => {
                    ok = 0;
                    let hint = if file.is_none() {
                        " (the default lock file is in rank 0's temporary directory: with \
                         ranks on several nodes, pass --file on a shared file system)"
                    } else {
                        ""
                    };
                    report_error(rt, &format!("{e}{hint}"));
                }
            }
        }
        let mut all_ok = 0u8;
        world.all_reduce_into(&ok, &mut all_ok, SystemOperation::min());
        Ok(if all_ok == 1 { opened } else { None })
    }
}

/// Rank 0's part of [`LockFile::open`]: the path, the temporary directory if one was made,
/// and the opened lock.
fn open_on_root(
    file: Option<&Path>,
    kind: FcntlKind,
) -> Result<(FcntlLock, PathBuf, Option<TempDir>)> {
    let (path, temp) = match file {
        // Absolute, so that a relative --file names the same file on ranks started in
        // another working directory. Symbolic links are kept: mount points may differ.
        Some(path) => (
            std::path::absolute(path).map_err(|source| Error::Io {
                op: "resolve",
                path: path.display().to_string(),
                source,
            })?,
            None,
        ),
        None => {
            let dir = TempDir::create()?;
            (dir.0.join("brlock.lock"), Some(dir))
        }
    };
    let lock = FcntlLock::open(&path, kind)?;
    Ok((lock, path, temp))
}

/// A directory created by rank 0 for the default lock file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("brlock-check-lock-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|source| Error::Io {
            op: "create directory",
            path: dir.display().to_string(),
            source,
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove the lock file's temporary directory");
        }
    }
}

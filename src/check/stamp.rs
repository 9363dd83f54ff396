//! What `check lock` and `bench lock` share: the stamp checker that does not trust the lock,
//! the per-rank acquisition loop driving any [`RangeLock`] under it, the per-operation records
//! gathered to rank 0, and latency summaries.
//!
//! The checker keeps its own window on rank 0, separate from the lock's table: a grant
//! counter, an arrival counter, and one word per cell of the byte space. A holder stamps each
//! cell of its range with atomic adds (an exclusive holder adds `(rank + 1) << 32`, a shared
//! holder adds 1) and checks what was there before: an exclusive holder must find 0, a shared
//! holder no exclusive stamp. It holds for the hold time, then removes its stamps and checks
//! again that nothing conflicting appeared. Any mismatch is a violation.

use std::time::{Duration, Instant};

use mpi::collective::Root;
use mpi::point_to_point::Source;
use mpi::topology::{Communicator, Rank, SimpleCommunicator};
use serde::Serialize;

use super::verify::{tickets_of, Grant, CHECKED_SHARDS};
use super::workload::{ModeMix, Pattern, Workload};
use crate::error::Result;
use crate::lock::RangeLock;
use crate::range::LockMode;
use crate::sys::{LockKind, Op, OwnedComm, Window};

const GRANT_COUNTER: usize = 0;
const ARRIVAL_COUNTER: usize = 1;
const FIRST_CELL: usize = 2;
const EXCLUSIVE_UNIT: u64 = 1 << 32;

/// Latency summary in microseconds.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// The summary of samples in nanoseconds (all zero when there are none).
    pub fn of(mut ns: Vec<u64>) -> Latency {
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

/// What one acquisition of the loop recorded.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// The grant as the bypass check needs it.
    pub grant: Grant,
    /// Time spent in the lock call(s), in nanoseconds.
    pub lock_ns: u64,
    /// Time spent in the unlock call, in nanoseconds.
    pub unlock_ns: u64,
}

impl Record {
    /// Words per record when gathered.
    pub const WORDS: usize = 8 + CHECKED_SHARDS;

    fn words(&self) -> [u64; Record::WORDS] {
        let g = &self.grant;
        let mut w = [0; Record::WORDS];
        w[..8].copy_from_slice(&[
            g.rank as u64,
            g.arrival_seq,
            g.grant_seq,
            g.start,
            g.end,
            u64::from(g.exclusive),
            self.lock_ns,
            self.unlock_ns,
        ]);
        w[8..].copy_from_slice(&g.tickets);
        w
    }

    fn from_words(w: &[u64]) -> Record {
        let mut tickets = [0; CHECKED_SHARDS];
        tickets.copy_from_slice(&w[8..Record::WORDS]);
        Record {
            grant: Grant {
                rank: w[0] as usize,
                tickets,
                arrival_seq: w[1],
                grant_seq: w[2],
                start: w[3],
                end: w[4],
                exclusive: w[5] != 0,
            },
            lock_ns: w[6],
            unlock_ns: w[7],
        }
    }
}

/// What rank 0 holds of `iters` acquisition records of each of `ranks` ranks: its own, every
/// rank's gathered as words, and the records rebuilt from them.
pub fn records_memory(iters: u64, ranks: i32) -> u128 {
    let per = (Record::WORDS * 8 + std::mem::size_of::<Record>()) as u128;
    u128::from(iters) * (u128::from(ranks.max(0) as u32) + 1) * per
}

/// Collective over `comm`: every rank's samples (the same number on every rank), in rank
/// order, on rank 0; `None` elsewhere.
pub fn gather_to_root(comm: &SimpleCommunicator, mine: &[u64]) -> Option<Vec<u64>> {
    let root = comm.process_at_rank(0);
    if comm.rank() == 0 {
        let mut all = vec![0u64; mine.len() * comm.size() as usize];
        root.gather_into_root(mine, &mut all[..]);
        Some(all)
    } else {
        root.gather_into(mine);
        None
    }
}

/// Collective: every rank's records (each rank must have the same number), on rank 0.
pub fn gather_records(comm: &SimpleCommunicator, records: &[Record]) -> Option<Vec<Record>> {
    let words: Vec<u64> = records.iter().flat_map(Record::words).collect();
    gather_to_root(comm, &words).map(|all| {
        all.chunks_exact(Record::WORDS)
            .map(Record::from_words)
            .collect()
    })
}

/// The checker's window: counters and one stamp word per cell on rank 0, on a private
/// duplicate of the world communicator.
pub struct StampChecker {
    // Field order is drop order: the window is freed before its communicator.
    stamps: Window,
    comm: OwnedComm,
}

impl StampChecker {
    /// Collective over `comm` (on a private duplicate).
    ///
    /// # Errors
    /// MPI errors.
    pub fn new(comm: &impl Communicator) -> Result<StampChecker> {
        let comm = OwnedComm::duplicate(comm)?;
        let cells = Workload::cells_for(comm.size() as usize) as usize;
        let words = if comm.rank() == 0 {
            FIRST_CELL + cells
        } else {
            0
        };
        let stamps = Window::allocate(comm.comm(), words)?;
        Ok(StampChecker { stamps, comm })
    }

    /// The checker's private communicator.
    pub fn comm(&self) -> &SimpleCommunicator {
        self.comm.comm()
    }

    /// Collective: frees the window and the communicator.
    ///
    /// # Errors
    /// MPI errors.
    pub fn free(self) -> Result<()> {
        self.stamps.free()?;
        self.comm.free()
    }

    /// Lets MPI make progress on the other ranks' stamps (a nonblocking probe), for rank 0
    /// while it waits outside MPI.
    fn progress(&self) {
        let _ = self.comm().any_process().immediate_probe();
    }

    /// Reads the grant counter and takes a checker arrival stamp, in one epoch.
    fn arrival(&self) -> Result<(u64, u64)> {
        let (mut seq, mut stamp) = (0u64, 0u64);
        let one = 1u64;
        self.stamps.with_lock(0, LockKind::Shared, |e| {
            e.atomic_read(&mut seq, GRANT_COUNTER)?;
            e.fetch_and_op(&one, &mut stamp, ARRIVAL_COUNTER, Op::Sum)
        })?;
        Ok((seq, stamp))
    }

    /// Adds `unit` to `olds.len()` cells from `first`, returning the previous values in
    /// `olds`; with `count_grant`, also takes the next position in the grant order.
    fn add(&self, first: u64, unit: u64, olds: &mut [u64], count_grant: bool) -> Result<u64> {
        let mut grant_seq = 0;
        let one = 1u64;
        self.stamps.with_lock(0, LockKind::Shared, |e| {
            if count_grant {
                e.fetch_and_op(&one, &mut grant_seq, GRANT_COUNTER, Op::Sum)?;
            }
            for (c, old) in olds.iter_mut().enumerate() {
                e.fetch_and_op(&unit, old, FIRST_CELL + first as usize + c, Op::Sum)?;
            }
            Ok(())
        })?;
        Ok(grant_seq)
    }

    /// What a holder does while it holds `count` cells from `first` in `mode`: stamps them
    /// (taking the next position in the grant order), spins for `hold`, removes its stamps.
    /// Returns the grant position and whether a conflicting stamp was seen. `olds` is scratch
    /// space.
    pub fn hold(
        &self,
        rank: Rank,
        first: u64,
        count: u64,
        mode: LockMode,
        hold: Duration,
        olds: &mut Vec<u64>,
    ) -> Result<(u64, bool)> {
        let unit = match mode {
            LockMode::Exclusive => (rank as u64 + 1) * EXCLUSIVE_UNIT,
            LockMode::Shared => 1,
        };
        olds.clear();
        olds.resize(count as usize, 0);
        let grant_seq = self.add(first, unit, olds, true)?;
        let mut bad = olds.iter().any(|&old| !compatible(mode, old, 0));
        spin(hold);
        self.add(first, unit.wrapping_neg(), olds, false)?;
        bad |= olds.iter().any(|&old| !compatible(mode, old, unit));
        Ok((grant_seq, bad))
    }
}

/// What the acquisition loop does on every rank.
#[derive(Debug, Clone, Copy)]
pub struct LoopConfig {
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
    /// The lock's home rank (for `busy_home_ms`).
    pub home: Rank,
    /// Percentage of requests that first try `try_lock`, then `lock_timeout`, then block.
    pub try_percent: u64,
    /// Timeout of the `lock_timeout` step.
    pub timeout: Duration,
    /// Halfway through, keep the home rank busy outside MPI for this many milliseconds.
    pub busy_home_ms: u64,
    /// Take a checker arrival stamp before each request (an extra checker epoch), which the
    /// bypass check needs. Without it the records' `arrival_seq` is 0 and their ticket is the
    /// lock's own (or 0).
    pub arrivals: bool,
}

impl LoopConfig {
    /// `iters` requests of `pattern` and `mode` from request stream `seed`, each held for
    /// `hold`, on a lock homed at `home`: every request blocks until granted, the home rank is
    /// never kept busy, and no arrival stamps are taken.
    pub fn new(
        pattern: Pattern,
        mode: ModeMix,
        iters: u64,
        seed: u64,
        hold: Duration,
        home: Rank,
    ) -> LoopConfig {
        LoopConfig {
            pattern,
            mode,
            iters,
            seed,
            hold,
            home,
            try_percent: 0,
            timeout: Duration::ZERO,
            busy_home_ms: 0,
            arrivals: false,
        }
    }
}

/// The acquisition loop of one rank: `cfg.iters` requests, each checked by `checker`.
/// Appends one record per acquisition to `records` and returns the number of exclusion
/// violations this rank saw.
///
/// # Errors
/// Lock and MPI errors.
pub fn drive<L: RangeLock>(
    cfg: &LoopConfig,
    lock: &mut L,
    checker: &StampChecker,
    records: &mut Vec<Record>,
) -> Result<u64> {
    let comm = checker.comm();
    let rank = comm.rank();
    let mut work = Workload::new(
        cfg.pattern,
        cfg.mode,
        rank as usize,
        comm.size() as usize,
        cfg.seed,
    );
    let arrival = || {
        if cfg.arrivals {
            checker.arrival()
        } else {
            Ok((0, 0))
        }
    };
    let mut violations = 0;
    let mut olds = Vec::new();
    for i in 0..cfg.iters {
        if cfg.busy_home_ms > 0 && i == cfg.iters / 2 && rank == cfg.home {
            tracing::info!(ms = cfg.busy_home_ms, "home rank busy outside MPI");
            std::thread::sleep(Duration::from_millis(cfg.busy_home_ms));
        }
        let (first, count, mode) = work.next_cells();
        let range = Workload::range(first, count);
        let use_try = cfg.try_percent > 0 && work.rng().below(100) < cfg.try_percent;

        // Arrival: where the grant order stands now, and the checker's own arrival stamp.
        let (mut arrival_seq, mut stamp) = arrival()?;
        let t0 = Instant::now();
        let mut granted = use_try && lock.try_lock(range, mode)?;
        if use_try && !granted {
            (arrival_seq, stamp) = arrival()?;
            granted = lock.lock_timeout(range, mode, cfg.timeout)?;
        }
        if !granted {
            if use_try {
                (arrival_seq, stamp) = arrival()?;
            }
            if rank == 0 {
                // This rank hosts the checker's window: while the lock waits outside MPI
                // (fcntl), the holder's stamps need it to make progress under osc pt2pt/ucx.
                lock.lock_progressing(range, mode, &mut || checker.progress())?;
            } else {
                lock.lock(range, mode)?;
            }
        }
        let lock_ns = t0.elapsed().as_nanos() as u64;
        let tickets = match lock.arrival_tickets() {
            t if t.is_empty() => tickets_of(&[(0, stamp)]),
            t => tickets_of(&t),
        };

        let held = checker.hold(rank, first, count, mode, cfg.hold, &mut olds);
        // Released even if the checker failed: a rank that returns holding a range would
        // leave the others waiting for it.
        let t1 = Instant::now();
        let unlocked = lock.unlock();
        let unlock_ns = t1.elapsed().as_nanos() as u64;
        let (grant_seq, bad) = held?;
        unlocked?;
        if bad {
            violations += 1;
            tracing::debug!(%range, %mode, "exclusion violated");
        }
        records.push(Record {
            grant: Grant::new(rank as usize, tickets, arrival_seq, grant_seq, range, mode),
            lock_ns,
            unlock_ns,
        });
    }
    Ok(violations)
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

//! `check rma`: validate a cluster's one-sided communication through [`crate::sys`].
//!
//! Every rank runs the same sequence of checks, separated by barriers; each check yields a
//! local verdict, and the verdicts are combined with a reduction so that every rank agrees on
//! the outcome and exits with the same code. Rank 0 prints the report.
//!
//! The read-modify-write check has a negative control, `--unsafe-rmw`: the get and the put go
//! into two separate epochs, so concurrent increments race and updates are lost. It shows the
//! check can fail.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::{mpi_library, requested_osc, Check, Outcome, Run};
use crate::error::{Error, Result};
use crate::sys::{LockKind, Op, OwnedComm, Window};

/// What `check rma` does.
#[derive(Debug, Clone, Copy)]
pub struct RmaCheck {
    /// Operations per rank in each check.
    pub iters: u64,
    /// The negative control: with `Some(spin)`, the read-modify-write check does its get and
    /// its put in two separate epochs, `spin` apart, so that concurrent increments race and
    /// updates are lost. Lost updates are then the expected outcome and do not fail the run.
    pub unsafe_rmw: Option<Duration>,
}

/// Words of the pattern each rank writes into rank 0's window.
const PATTERN_WORDS: usize = 8;

/// Where each check keeps its data in the window (the same layout on every rank).
#[derive(Clone, Copy)]
struct Layout {
    ranks: usize,
}

impl Layout {
    /// Rank `r`'s pattern: words `pattern(r)..pattern(r) + PATTERN_WORDS` (used on rank 0).
    fn pattern(self, rank: usize) -> usize {
        rank * PATTERN_WORDS
    }
    /// The fetch-and-op counter (rank 0).
    fn fetch_counter(self) -> usize {
        self.ranks * PATTERN_WORDS
    }
    /// The read-modify-write counter (rank 0).
    fn rmw_counter(self) -> usize {
        self.fetch_counter() + 1
    }
    /// Words combined with MPI_MAX, MPI_MIN, MPI_BOR, MPI_BAND (rank 0), then words combined
    /// with MAX and MIN by accumulate and MAX by fetch_and_op using values of 2^63 and more.
    fn reductions(self) -> [usize; 7] {
        let base = self.rmw_counter() + 1;
        std::array::from_fn(|i| base + i)
    }
    /// `ranks` words of sums, one per contributing rank (on every rank).
    fn sums(self) -> usize {
        self.reductions()[6] + 1
    }
    fn words(self) -> usize {
        self.sums() + self.ranks
    }
}

/// The value rank `rank` writes at word `i` of its pattern in round `round`.
fn pattern(rank: usize, round: u64) -> [u64; PATTERN_WORDS] {
    std::array::from_fn(|i| ((rank as u64 + 1) << 40) ^ (round << 8) ^ i as u64)
}

/// One probe of the MPI library: its name in the report, what it shows, and its local verdict.
struct Probe {
    name: &'static str,
    what: &'static str,
    run: fn(&Ctx) -> Result<bool>,
}

/// What every check needs.
struct Ctx<'a> {
    comm: &'a OwnedComm,
    win: &'a Window,
    layout: Layout,
    rank: usize,
    ranks: usize,
    iters: u64,
    spin: Option<Duration>,
    /// Filled in by the read-modify-write check on rank 0: (final counter, expected).
    rmw: std::cell::Cell<(u64, u64)>,
}

const CHECKS: &[Probe] = &[
    Probe {
        name: "bounds",
        what: "out-of-bounds operations and bad targets are rejected before MPI",
        run: bounds,
    },
    Probe {
        name: "put_get",
        what: "each rank puts a pattern into rank 0 and gets it back (exclusive epochs)",
        run: put_get,
    },
    Probe {
        name: "shared_get",
        what: "all ranks concurrently get every pattern under shared locks",
        run: shared_get,
    },
    Probe {
        name: "fetch_and_op",
        what: "fetch_and_op(SUM, 1) on one counter: N*size in total, every value fetched once",
        run: fetch_and_op,
    },
    Probe {
        name: "rmw",
        what: "get, flush, put increments inside one exclusive epoch lose no update",
        run: rmw,
    },
    Probe {
        name: "accumulate",
        what: "accumulate(SUM) of every rank into every rank's slots",
        run: accumulate,
    },
    Probe {
        name: "reductions",
        what: "accumulate with MAX, MIN, BOR, BAND on rank 0",
        run: reductions,
    },
    Probe {
        name: "unsigned_minmax",
        what: "MAX and MIN compare uint64 words of 2^63 and more as unsigned",
        run: unsigned_minmax,
    },
];

/// The report of `check rma` (rank 0).
#[derive(Debug, Serialize)]
pub struct RmaReport {
    /// Ranks.
    pub ranks: usize,
    /// Operations per rank in each check.
    pub iters: u64,
    /// Whether the read-modify-write check ran as the negative control.
    pub unsafe_rmw: bool,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// The MPI library.
    pub mpi_library: String,
    /// Each check's verdict, agreed by every rank (the negative control is not a check).
    pub checks: BTreeMap<&'static str, bool>,
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Increments the read-modify-write check made.
    pub rmw_expected: u64,
    /// The counter they left.
    pub rmw_final: u64,
    /// `rmw_expected - rmw_final`.
    pub lost_updates: i64,
    /// Rank 0's time per check.
    pub seconds: BTreeMap<&'static str, f64>,
    /// Every check passed.
    pub ok: bool,
}

impl Check for RmaCheck {
    type Report = RmaReport;
    type Prepared = RmaCheck;

    /// Rank 0's share: every rank's fetched values, gathered.
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let bytes = { u128::from(self.iters) * (u128::from(ranks.max(0) as u32) + 1) * 8 };
        (bytes, "--iters x ranks")
    }

    /// Nothing to open.
    fn prepare<C: Communicator>(self, _comm: &C) -> Result<RmaCheck> {
        Ok(self)
    }
}

impl Run for RmaCheck {
    type Report = RmaReport;

    /// Runs every check on every rank of `comm`. Every rank passes if every check
    /// passed; rank 0 gets the report.
    ///
    /// # Errors
    /// MPI errors.
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<RmaReport>> {
        let comm = OwnedComm::duplicate(comm)?;
        let ranks = usize::try_from(comm.size()).unwrap_or(0);
        let rank = usize::try_from(comm.rank()).unwrap_or(0);
        let layout = Layout { ranks };
        let win = Window::allocate(comm.comm(), layout.words())?;
        let ctx = Ctx {
            comm: &comm,
            win: &win,
            layout,
            rank,
            ranks,
            iters: self.iters,
            spin: self.unsafe_rmw,
            rmw: std::cell::Cell::new((0, 0)),
        };
        let (verdicts, seconds) = run_all(&ctx)?;
        let (rmw_final, rmw_expected) = ctx.rmw.get();
        win.free()?;
        comm.free()?;

        let mut checks = BTreeMap::new();
        for (check, &ok) in CHECKS.iter().zip(&verdicts) {
            // The unsafe variant is a negative control, not a check.
            if !(self.unsafe_rmw.is_some() && check.name == "rmw") {
                checks.insert(check.name, ok);
            }
        }
        let passed = checks.values().filter(|&&ok| ok).count();
        let ok = passed == checks.len();
        if rank != 0 {
            return Ok(Outcome::quiet(ok));
        }
        Ok(Outcome::reported(
            ok,
            RmaReport {
                ranks,
                iters: self.iters,
                unsafe_rmw: self.unsafe_rmw.is_some(),
                osc: requested_osc(),
                mpi_library: mpi_library(),
                passed,
                failed: checks.len() - passed,
                ok,
                checks,
                rmw_expected,
                rmw_final,
                lost_updates: rmw_expected as i64 - rmw_final as i64,
                seconds,
            },
        ))
    }
}

/// Runs the checks in order; returns the verdicts every rank agrees on and rank 0's timings.
fn run_all(ctx: &Ctx) -> Result<(Vec<bool>, BTreeMap<&'static str, f64>)> {
    let world = ctx.comm.comm();
    let mut local = Vec::with_capacity(CHECKS.len());
    let mut seconds = BTreeMap::new();
    for check in CHECKS {
        world.barrier();
        let start = Instant::now();
        let ok = (check.run)(ctx)?;
        world.barrier();
        seconds.insert(check.name, start.elapsed().as_secs_f64());
        tracing::debug!("check {}: {}", check.name, if ok { "ok" } else { "FAILED" });
        local.push(i32::from(ok));
    }
    let mut global = vec![0i32; local.len()];
    world.all_reduce_into(&local[..], &mut global[..], SystemOperation::min());
    Ok((global.iter().map(|&v| v == 1).collect(), seconds))
}

impl fmt::Display for RmaReport {
    /// A line per check, the read-modify-write count and the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "check rma: {} ranks, {} iterations, osc {}, {}",
            self.ranks,
            self.iters,
            self.osc.as_deref().unwrap_or("(library default)"),
            self.mpi_library
        )?;
        for check in CHECKS {
            let Some(&ok) = self.checks.get(check.name) else {
                continue;
            };
            let secs = self.seconds.get(check.name).copied().unwrap_or(0.0);
            writeln!(
                f,
                "  {:6} {:15} {:8.3} s  {}",
                if ok { "ok" } else { "FAILED" },
                check.name,
                secs,
                check.what
            )?;
        }
        writeln!(
            f,
            "read-modify-write: {} of {} increments, {} lost{}",
            self.rmw_final,
            self.rmw_expected,
            self.lost_updates,
            if self.unsafe_rmw {
                " (--unsafe-rmw: separate get and put epochs, losses expected)"
            } else {
                ""
            }
        )?;
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

fn rank_of(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// Bad displacements, lengths and targets fail with `InvalidArgument`.
fn bounds(ctx: &Ctx) -> Result<bool> {
    let win = ctx.win;
    let end = win.words(0).unwrap_or(0);
    let invalid = |r: Result<()>| matches!(r, Err(Error::InvalidArgument(_)));
    let mut two = [0u64; 2];
    Ok(
        invalid(win.with_lock(0, LockKind::Shared, |e| e.put(&[1], end)))
            && invalid(win.with_lock(0, LockKind::Shared, |e| e.get(&mut two, end - 1)))
            && invalid(win.with_lock(0, LockKind::Shared, |e| {
                e.accumulate(&[1], usize::MAX, Op::Sum)
            }))
            && invalid(win.with_lock(win.size(), LockKind::Shared, |_| Ok(())))
            && invalid(win.with_lock(-1, LockKind::Shared, |_| Ok(())))
            && invalid(win.with_lock(0, LockKind::Shared, |_| {
                win.with_lock(0, LockKind::Shared, |_| Ok(()))
            })),
    )
}

fn put_get(ctx: &Ctx) -> Result<bool> {
    let disp = ctx.layout.pattern(ctx.rank);
    let mut ok = true;
    for round in 0..ctx.iters {
        let src = pattern(ctx.rank, round);
        let mut back = [0u64; PATTERN_WORDS];
        ctx.win.with_lock(0, LockKind::Exclusive, |e| {
            e.put(&src, disp)?;
            e.flush()?;
            e.get(&mut back, disp)
        })?;
        ok &= back == src;
    }
    Ok(ok)
}

fn shared_get(ctx: &Ctx) -> Result<bool> {
    let last = ctx.iters - 1;
    let expected: Vec<u64> = (0..ctx.ranks).flat_map(|r| pattern(r, last)).collect();
    let mut seen = vec![0u64; expected.len()];
    let mut ok = true;
    for _ in 0..ctx.iters {
        seen.fill(0);
        ctx.win.with_lock(0, LockKind::Shared, |e| {
            e.get(&mut seen, ctx.layout.pattern(0))
        })?;
        ok &= seen == expected;
    }
    Ok(ok)
}

fn fetch_and_op(ctx: &Ctx) -> Result<bool> {
    let disp = ctx.layout.fetch_counter();
    let mut fetched = vec![0u64; usize::try_from(ctx.iters).unwrap_or(0)];
    for value in fetched.iter_mut() {
        ctx.win.with_lock(0, LockKind::Shared, |e| {
            e.fetch_and_op(&1, value, disp, Op::Sum)
        })?;
    }
    let world = ctx.comm.comm();
    let root = world.process_at_rank(0);
    if ctx.rank != 0 {
        root.gather_into(&fetched[..]);
        return Ok(true);
    }
    let mut all = vec![0u64; fetched.len() * ctx.ranks];
    root.gather_into_root(&fetched[..], &mut all[..]);
    // Every other rank has finished its operations before it entered the gather.
    let total = read_word(ctx.win, disp)?;
    all.sort_unstable();
    let unique = all.iter().zip(0u64..).all(|(&v, i)| v == i);
    Ok(total == all.len() as u64 && unique)
}

/// Atomically reads rank 0's word `disp`.
fn read_word(win: &Window, disp: usize) -> Result<u64> {
    let mut value = 0;
    win.with_lock(0, LockKind::Shared, |e| e.atomic_read(&mut value, disp))?;
    Ok(value)
}

fn rmw(ctx: &Ctx) -> Result<bool> {
    let disp = ctx.layout.rmw_counter();
    for _ in 0..ctx.iters {
        let (mut old, mut new) = ([0u64], [0u64]);
        match ctx.spin {
            None => ctx.win.with_lock(0, LockKind::Exclusive, |e| {
                e.flushed(|e| e.get(&mut old, disp))?;
                new[0] = old[0] + 1;
                e.put(&new, disp)
            })?,
            Some(spin) => {
                ctx.win
                    .with_lock(0, LockKind::Shared, |e| e.get(&mut old, disp))?;
                spin_for(spin);
                new[0] = old[0] + 1;
                ctx.win
                    .with_lock(0, LockKind::Exclusive, |e| e.put(&new, disp))?;
            }
        }
    }
    ctx.comm.comm().barrier();
    if ctx.rank != 0 {
        return Ok(true);
    }
    let total = read_word(ctx.win, disp)?;
    let expected = ctx.iters * ctx.ranks as u64;
    ctx.rmw.set((total, expected));
    Ok(total == expected)
}

/// Busy-waits (without entering MPI) for `span`.
fn spin_for(span: Duration) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

fn accumulate(ctx: &Ctx) -> Result<bool> {
    let disp = ctx.layout.sums();
    let ranks = ctx.ranks as u64;
    let mine: Vec<u64> = (1..=ranks).map(|s| (ctx.rank as u64 + 1) * s).collect();
    for i in 0..ctx.iters {
        let target = rank_of(((i + ctx.rank as u64) % ranks) as usize);
        ctx.win.with_lock(target, LockKind::Shared, |e| {
            e.accumulate(&mine, disp, Op::Sum)
        })?;
    }
    ctx.comm.comm().barrier();
    let mut sums = vec![0u64; ctx.ranks];
    ctx.win
        .with_lock(rank_of(ctx.rank), LockKind::Shared, |e| {
            e.get(&mut sums, disp)
        })?;
    // Rank r targeted this rank in the rounds i with (i + r) % ranks == this rank.
    let me = ctx.rank as u64;
    let weight: u64 = (0..ranks)
        .map(|r| {
            let first = (me + ranks - r) % ranks;
            let rounds = ctx.iters / ranks + u64::from(first < ctx.iters % ranks);
            (r + 1) * rounds
        })
        .sum();
    Ok(sums.iter().zip(1u64..).all(|(&sum, s)| sum == s * weight))
}

fn reductions(ctx: &Ctx) -> Result<bool> {
    let [max, min, bor, band, ..] = ctx.layout.reductions();
    // Values stay below 2^63: MIN starts at the largest of them.
    init_on_rank0(ctx, &[(min, i64::MAX as u64), (band, u64::MAX)])?;
    let bit = 1u64 << (ctx.rank % 64);
    let (set, clear) = ([bit], [!bit]);
    for i in 0..ctx.iters {
        let value = [ctx.rank as u64 * ctx.iters + i + 1];
        ctx.win.with_lock(0, LockKind::Shared, |e| {
            e.accumulate(&value, max, Op::Max)?;
            e.accumulate(&value, min, Op::Min)?;
            e.accumulate(&set, bor, Op::BitOr)?;
            e.accumulate(&clear, band, Op::BitAnd)
        })?;
    }
    let bits = (0..ctx.ranks.min(64)).fold(0u64, |acc, r| acc | 1 << r);
    let expected = [ctx.ranks as u64 * ctx.iters, 1, bits, !bits];
    verify_on_rank0(ctx, "reductions (max, min, bor, band)", max, &expected)
}

/// MPICH 4.0.2 (Debian) fails this: it orders `MPI_UINT64_T` as signed in `MPI_MAX` and
/// `MPI_MIN`, so values with the top bit set count as smaller than small ones.
fn unsigned_minmax(ctx: &Ctx) -> Result<bool> {
    let [.., umax, umin, fmax] = ctx.layout.reductions();
    init_on_rank0(ctx, &[(umin, u64::MAX)])?;
    const TOP: u64 = 1 << 63;
    let mut previous = 0;
    for i in 0..ctx.iters {
        let value = TOP + ctx.rank as u64 * ctx.iters + i;
        ctx.win.with_lock(0, LockKind::Shared, |e| {
            e.accumulate(std::slice::from_ref(&value), umax, Op::Max)?;
            e.accumulate(std::slice::from_ref(&value), umin, Op::Min)?;
            e.fetch_and_op(&value, &mut previous, fmax, Op::Max)
        })?;
    }
    let top = TOP + ctx.ranks as u64 * ctx.iters - 1;
    verify_on_rank0(ctx, "unsigned max, min, fetch max", umax, &[top, TOP, top])
}

/// Rank 0 writes `(word, value)` pairs into its window; then every rank synchronises.
fn init_on_rank0(ctx: &Ctx, words: &[(usize, u64)]) -> Result<()> {
    if ctx.rank == 0 {
        for (disp, value) in words {
            ctx.win.with_lock(0, LockKind::Exclusive, |e| {
                e.put(std::slice::from_ref(value), *disp)
            })?;
        }
    }
    ctx.comm.comm().barrier();
    Ok(())
}

/// After every rank has finished, rank 0 compares its words `disp..` with `expected` (other
/// ranks agree); a mismatch is logged.
fn verify_on_rank0(ctx: &Ctx, what: &str, disp: usize, expected: &[u64]) -> Result<bool> {
    ctx.comm.comm().barrier();
    if ctx.rank != 0 {
        return Ok(true);
    }
    let mut seen = vec![0u64; expected.len()];
    ctx.win
        .with_lock(0, LockKind::Shared, |e| e.get(&mut seen, disp))?;
    if seen != expected {
        tracing::warn!("{what}: found {seen:x?}, expected {expected:x?} (hex)");
    }
    Ok(seen == expected)
}

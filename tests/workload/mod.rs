//! The simulated-rank workload shared by `tests/model_loom.rs`, `tests/model_shuttle.rs` and
//! `tests/sim_stress.rs` (a module, not a test crate of its own: each of those files says
//! `mod workload;`).
//!
//! A [`Scenario`] gives every rank a list of [`Op`]s (lock / try_lock / lock_timeout of a range
//! in a mode) and the [`Faults`] to run with. [`simulate`] runs it on the simulated transport
//! (`run_ranks`, built on `brlock`'s sync shim, so the same code runs on real threads, under
//! loom and under shuttle), with an [`Observer`] told about every arrival, grant and release.
//! [`check`] then asserts the protocol's promises, each with its own panic message so that the
//! controls (deliberately broken protocol variants) can assert which promise broke:
//!
//! * [`EXCLUSION`]: no grant overlapped a conflicting holder;
//! * [`BYPASS`]: no request was granted after a later-arriving conflicting one
//!   (`max_bypass() == 0`);
//! * [`LEFTOVER`]: every wake-up was consumed at shutdown (`leftover == 0` on every rank);
//! * [`LOST_GRANT`]: a plain `lock` always ends in a grant, and the observer saw exactly the
//!   grants the ranks report.
//!
//! "No deadlock / nobody stranded" is the model checker's own check (every thread must finish;
//! loom panics with "deadlock; threads = ...", shuttle with "deadlock! blocked tasks: ...");
//! on real threads `tests/sim_stress.rs` runs a watchdog.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use brlock::check::verify::{Observed, Observer};
use brlock::lock::Sharded;
use brlock::protocol::{Algorithm, Faults, LockClient, Stats, WakePolicy};
use brlock::protocol::{Drained, Transport};
use brlock::transport::sim::run_ranks_sharded;
use brlock::{ByteRange, LockMode, RangeLock};

/// Panic message prefix of a mutual exclusion failure.
pub const EXCLUSION: &str = "mutual exclusion violated";
/// Panic message prefix of a bypass-bound failure.
pub const BYPASS: &str = "bypass bound violated";
/// Panic message prefix of wake-ups left over at shutdown.
pub const LEFTOVER: &str = "wake-ups left over at shutdown";
/// Panic message prefix of a `lock` that returned without the range, or grant bookkeeping
/// that does not add up.
pub const LOST_GRANT: &str = "grant accounting broken";
/// Handoff only: every message is a grant its waiter consumes, so none may be drained at
/// shutdown, and no request retries.
pub const STALE_GRANT: &str = "handoff grant message not consumed by its waiter";

/// How a request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `lock`: wait as long as it takes.
    Lock,
    /// `try_lock`: never wait.
    Try,
    /// `lock_timeout`. Under the model checkers any timed wait gives up as soon as it would
    /// block with no wake-up pending, whatever the duration.
    Timeout(Duration),
}

/// One request of one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// How it is requested.
    pub how: How,
    /// The range.
    pub range: ByteRange,
    /// The mode.
    pub mode: LockMode,
}

/// `[start, end)` in `mode`, requested `how`.
pub fn op(how: How, start: u64, end: u64, mode: LockMode) -> Op {
    Op {
        how,
        range: ByteRange::new(start, end).expect("test ranges are valid"),
        mode,
    }
}

/// Exclusive `lock` of `[start, end)`.
pub fn x(start: u64, end: u64) -> Op {
    op(How::Lock, start, end, LockMode::Exclusive)
}

/// Shared `lock` of `[start, end)`.
pub fn s(start: u64, end: u64) -> Op {
    op(How::Lock, start, end, LockMode::Shared)
}

/// A timeout long enough never to fire on real threads in a model test; under the model
/// checkers a timed wait gives up whenever it would block with nothing pending.
pub const LONG: Duration = Duration::from_secs(3600);

/// What every rank does, and with which protocol variant.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `plans[r]` is rank `r`'s sequence of requests.
    pub plans: Vec<Vec<Op>>,
    /// Injected faults (all default = the real protocol).
    pub faults: Faults,
    /// Which waiters a release wakes.
    pub wake: WakePolicy,
    /// The algorithm ([`Scenario::new`]: the 2005 one, whose controls are the older ones).
    pub algorithm: Algorithm,
    /// Shards of a [`Sharded`] lock (1: the plain service, no `Sharded` around it).
    pub shards: usize,
    /// Stripe size of the shards, in bytes.
    pub stripe: u64,
    /// Odd ranks take shards in decreasing order (the deadlock control of sharding).
    pub shards_out_of_order: bool,
}

impl Scenario {
    /// The real protocol running `plans`.
    pub fn new(plans: Vec<Vec<Op>>) -> Self {
        Scenario {
            plans,
            faults: Faults::default(),
            wake: WakePolicy::default(),
            algorithm: Algorithm::Tr2005,
            shards: 1,
            stripe: 1,
            shards_out_of_order: false,
        }
    }

    /// The same plans on `shards` shards of `stripe` bytes.
    pub fn sharded(mut self, shards: usize, stripe: u64) -> Self {
        self.shards = shards;
        self.stripe = stripe;
        self
    }

    /// The same plans with odd ranks taking shards in decreasing order.
    pub fn with_shards_out_of_order(mut self) -> Self {
        self.shards_out_of_order = true;
        self
    }

    /// The same plans run by `algorithm`.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The same plans with releases that wake by `wake`.
    pub fn with_wake_policy(mut self, wake: WakePolicy) -> Self {
        self.wake = wake;
        self
    }

    /// The same plans under a broken variant.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Number of ranks.
    pub fn ranks(&self) -> usize {
        self.plans.len()
    }
}

/// What one rank saw.
#[derive(Debug, Clone, Copy)]
pub struct RankReport {
    /// The rank.
    pub rank: usize,
    /// Plain `lock`s made.
    pub locks: u64,
    /// Requests granted (any kind).
    pub granted: u64,
    /// Requests given up (`try_lock` / `lock_timeout` returning false).
    pub gave_up: u64,
    /// The client's counters before shutdown.
    pub stats: Stats,
    /// What the shutdown drain found.
    pub drained: Drained,
}

/// How one rank runs: the protocol variant and, for a sharded lock, its shape.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub faults: Faults,
    pub wake: WakePolicy,
    pub algorithm: Algorithm,
    pub stripe: u64,
    pub shards_out_of_order: bool,
}

fn client<T: Transport>(t: T, v: Variant) -> LockClient<T> {
    LockClient::new(t)
        .with_faults(v.faults)
        .with_wake_policy(v.wake)
        .with_algorithm(v.algorithm)
}

/// One rank's side of the workload: run `ops` through a `LockClient` over each transport of
/// `ts` (one: the plain service; more: a [`Sharded`] lock over them), reporting to `obs`;
/// `hold(rank)` runs while the range is held. Ends with `shutdown()` of every service
/// (collective).
pub fn run_rank<T: Transport>(
    mut ts: Vec<T>,
    obs: &Observer,
    ops: &[Op],
    v: Variant,
    hold: fn(usize),
) -> RankReport {
    let rank = ts[0].rank();
    let ((locks, granted, gave_up), stats, drained) = if ts.len() == 1 {
        let mut lock = client(ts.remove(0), v);
        let counts = run_ops(&mut lock, rank, obs, ops, hold);
        let stats = lock.stats();
        (counts, stats, lock.shutdown().expect("shutdown failed"))
    } else {
        let clients = ts.into_iter().map(|t| client(t, v)).collect();
        let mut lock = Sharded::new(clients, v.stripe).expect("a valid sharded lock");
        if v.shards_out_of_order && rank % 2 == 1 {
            lock = lock.with_shards_out_of_order();
        }
        let counts = run_ops(&mut lock, rank, obs, ops, hold);
        let (mut stats, mut drained) = (Stats::default(), Drained::default());
        for shard in lock.into_shards() {
            let s = shard.stats();
            stats.retries += s.retries;
            stats.waits += s.waits;
            let d = shard.shutdown().expect("shutdown failed");
            drained.drained += d.drained;
            drained.leftover += d.leftover;
        }
        // A sharded request is one acquisition of the whole lock, however many shards it
        // took.
        stats.acquisitions = counts.1;
        (counts, stats, drained)
    };
    RankReport {
        rank,
        locks,
        granted,
        gave_up,
        stats,
        drained,
    }
}

/// Runs `ops` on `lock`; returns (plain locks, granted, given up).
fn run_ops<L: RangeLock>(
    lock: &mut L,
    rank: usize,
    obs: &Observer,
    ops: &[Op],
    hold: fn(usize),
) -> (u64, u64, u64) {
    let (mut locks, mut granted, mut gave_up) = (0, 0, 0);
    for op in ops {
        let arrival = obs.arriving();
        let got = match op.how {
            How::Lock => {
                locks += 1;
                lock.lock(op.range, op.mode).expect("lock failed");
                true
            }
            How::Try => lock.try_lock(op.range, op.mode).expect("try_lock failed"),
            How::Timeout(d) => lock
                .lock_timeout(op.range, op.mode, d)
                .expect("lock_timeout failed"),
        };
        if got {
            granted += 1;
            assert_eq!(
                lock.held(),
                Some((op.range, op.mode)),
                "{LOST_GRANT}: rank {rank} was granted but does not hold its range"
            );
            let tickets = lock.arrival_tickets();
            assert!(!tickets.is_empty(), "a granted request has a ticket");
            obs.granted(rank, op.range, op.mode, &tickets, arrival);
            hold(rank);
            obs.releasing(rank);
            lock.unlock().expect("unlock failed");
        } else {
            gave_up += 1;
            assert_eq!(
                lock.held(),
                None,
                "rank {rank} gave up but still holds a range"
            );
        }
    }
    (locks, granted, gave_up)
}

/// Hold a range without doing anything (the model checkers interleave at every
/// synchronisation point anyway).
pub fn no_hold(_rank: usize) {}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the observer saw.
    pub observed: Observed,
    /// Per-rank reports, in rank order.
    pub reports: Vec<RankReport>,
    /// The algorithm that ran.
    pub algorithm: Algorithm,
}

impl Outcome {
    /// Grants that overlapped a conflicting holder.
    pub fn violations(&self) -> u64 {
        self.observed.violations
    }

    /// The bypass measure.
    pub fn max_bypass(&self) -> u64 {
        self.observed.max_bypass()
    }

    /// Wake-ups left over summed over ranks.
    pub fn leftover(&self) -> u64 {
        self.reports.iter().map(|r| r.drained.leftover).sum()
    }

    /// Stale wake-ups drained at shutdown summed over ranks.
    pub fn drained(&self) -> u64 {
        self.reports.iter().map(|r| r.drained.drained).sum()
    }

    /// Requests granted summed over ranks.
    pub fn granted(&self) -> u64 {
        self.reports.iter().map(|r| r.granted).sum()
    }

    /// Requests given up summed over ranks.
    pub fn gave_up(&self) -> u64 {
        self.reports.iter().map(|r| r.gave_up).sum()
    }

    /// Times a rank blocked for a wake-up, summed over ranks.
    pub fn waits(&self) -> u64 {
        self.reports.iter().map(|r| r.stats.waits).sum()
    }
}

/// Run `sc` on simulated ranks (threads of whatever `brlock`'s sync shim is built on) and
/// collect what happened. Must be called inside the model when under loom or shuttle.
pub fn simulate(sc: &Scenario, hold: fn(usize)) -> Outcome {
    let n = sc.ranks();
    let obs = Observer::new(n);
    let rank_obs = obs.clone();
    let plans = sc.plans.clone();
    let variant = Variant {
        faults: sc.faults,
        wake: sc.wake,
        algorithm: sc.algorithm,
        stripe: sc.stripe,
        shards_out_of_order: sc.shards_out_of_order,
    };
    let reports = run_ranks_sharded(n, sc.shards, move |ts| {
        let r = ts[0].rank();
        run_rank(ts, &rank_obs, &plans[r], variant, hold)
    });
    Outcome {
        observed: obs.observed(),
        reports,
        algorithm: sc.algorithm,
    }
}

/// Assert every promise except deadlock freedom on `out`, panicking with [`EXCLUSION`],
/// [`BYPASS`], [`LEFTOVER`], [`LOST_GRANT`] or (handoff) [`STALE_GRANT`].
pub fn check(out: &Outcome) {
    let grants = &out.observed.grants;
    assert!(
        out.observed.violations == 0,
        "{EXCLUSION}: {} grant(s) overlapped a conflicting holder; grants in order: {grants:?}",
        out.observed.violations
    );
    let bypass = out.max_bypass();
    assert!(
        bypass == 0,
        "{BYPASS}: max_bypass = {bypass} (a request was granted after a later-arriving \
         conflicting one); grants in order: {grants:?}"
    );
    for r in &out.reports {
        assert!(
            r.drained.leftover == 0,
            "{LEFTOVER}: rank {} has {} wake-up(s) pending after shutdown ({:?}, {:?})",
            r.rank,
            r.drained.leftover,
            r.drained,
            r.stats
        );
        if out.algorithm == Algorithm::Handoff {
            assert!(
                r.drained.drained == 0 && r.stats.retries == 0,
                "{STALE_GRANT}: rank {}: {:?}, {:?}",
                r.rank,
                r.drained,
                r.stats
            );
        }
        assert!(
            r.granted >= r.locks && r.stats.acquisitions == r.granted,
            "{LOST_GRANT}: rank {}: {r:?}",
            r.rank
        );
    }
    assert_eq!(
        grants.len() as u64,
        out.granted(),
        "{LOST_GRANT}: observer saw {} grants, ranks report {}",
        grants.len(),
        out.granted()
    );
}

/// [`simulate`] then [`check`].
pub fn simulate_and_check(sc: &Scenario, hold: fn(usize)) -> Outcome {
    let out = simulate(sc, hold);
    check(&out);
    out
}

/// Counters summed over the executions a model checker ran, to show what the runs covered.
/// Plain std atomics: not part of the model.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Executions run to completion.
    pub executions: AtomicU64,
    /// Executions in which some request was given up.
    pub with_give_up: AtomicU64,
    /// Executions in which some rank blocked for a wake-up.
    pub with_wait: AtomicU64,
    /// Executions in which a stale wake-up was drained at shutdown.
    pub with_drain: AtomicU64,
    /// Grants over all executions.
    pub grants: AtomicU64,
}

impl Coverage {
    /// Account for one completed execution.
    pub fn record(&self, out: &Outcome) {
        self.executions.fetch_add(1, Ordering::Relaxed);
        if out.gave_up() > 0 {
            self.with_give_up.fetch_add(1, Ordering::Relaxed);
        }
        if out.waits() > 0 {
            self.with_wait.fetch_add(1, Ordering::Relaxed);
        }
        if out.drained() > 0 {
            self.with_drain.fetch_add(1, Ordering::Relaxed);
        }
        self.grants.fetch_add(out.granted(), Ordering::Relaxed);
    }

    /// (executions, with_give_up, with_wait, with_drain, grants)
    pub fn get(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.executions.load(Ordering::Relaxed),
            self.with_give_up.load(Ordering::Relaxed),
            self.with_wait.load(Ordering::Relaxed),
            self.with_drain.load(Ordering::Relaxed),
            self.grants.load(Ordering::Relaxed),
        )
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (e, g, w, d, n) = self.get();
        write!(
            f,
            "{e} executions, {n} grants; executions with a give-up: {g}, with a wait: {w}, \
             with a stale wake-up drained: {d}"
        )
    }
}

/// A tiny seeded xorshift64* generator (no extra crates).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut v = self.0;
        v ^= v >> 12;
        v ^= v << 25;
        v ^= v >> 27;
        self.0 = v;
        v.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Parameters of [`random_plans`].
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Requests per rank.
    pub ops: usize,
    /// Ranges start in `0..space`.
    pub space: u64,
    /// Range lengths are `1..=max_len`.
    pub max_len: u64,
    /// Percent of requests that are shared.
    pub shared_pct: u64,
    /// Percent of requests made with `try_lock`.
    pub try_pct: u64,
    /// Percent of requests made with `lock_timeout`.
    pub timeout_pct: u64,
    /// Timeouts are drawn from these. Under the model checkers use only `Duration::ZERO`
    /// (gives up at the first failed attempt) and [`LONG`] (gives up when it would block with
    /// nothing pending): any other value makes the outcome depend on the wall clock, which the
    /// checkers cannot replay.
    pub timeouts: &'static [Duration],
}

/// Random plans for `ranks` ranks from `seed`.
pub fn random_plans(seed: u64, ranks: usize, mix: Mix) -> Vec<Vec<Op>> {
    let mut rng = XorShift::new(seed);
    (0..ranks)
        .map(|_| {
            (0..mix.ops)
                .map(|_| {
                    let start = rng.below(mix.space);
                    let len = 1 + rng.below(mix.max_len);
                    let mode = if rng.chance(mix.shared_pct) {
                        LockMode::Shared
                    } else {
                        LockMode::Exclusive
                    };
                    let roll = rng.below(100);
                    let how = if roll < mix.try_pct {
                        How::Try
                    } else if roll < mix.try_pct + mix.timeout_pct {
                        How::Timeout(mix.timeouts[rng.below(mix.timeouts.len() as u64) as usize])
                    } else {
                        How::Lock
                    };
                    op(how, start, start + len, mode)
                })
                .collect()
        })
        .collect()
}

/// Text of a caught panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Run `f`, which must panic with a message containing `expected`; returns the message.
pub fn expect_panic(expected: &str, f: impl FnOnce()) -> String {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    match result {
        Ok(()) => panic!(
            "the checker did not catch the injected bug (expected a panic with {expected:?})"
        ),
        Err(payload) => {
            let text = panic_text(&*payload);
            assert!(
                text.contains(expected),
                "the checker failed for another reason than expected ({expected:?}): {}",
                // Shuttle appends a (long) schedule; keep the report readable.
                text.chars().take(2000).collect::<String>()
            );
            text
        }
    }
}

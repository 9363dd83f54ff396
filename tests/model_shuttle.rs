//! Randomised-schedule model checks of the lock protocol with shuttle.
//!
//! ```text
//! RUSTFLAGS="--cfg shuttle" cargo test --release --target-dir target/shuttle --test model_shuttle
//! ```
//!
//! Every test runs the real `LockClient` over the simulated transport (`brlock`'s sync shim
//! resolves to shuttle's `Mutex`/`Condvar`/threads under `--cfg shuttle`), one shuttle task per
//! simulated rank, under shuttle's random scheduler or its PCT scheduler (which finds bugs of
//! small "depth" -- a few ordering constraints -- with a known probability per run). Where loom
//! (tests/model_loom.rs) is exhaustive for two and three ranks, this file goes wide: 8, 64 and
//! 1000 ranks with randomly drawn ranges, modes and try/timeout requests from fixed seeds.
//! A timed wait gives up under shuttle as soon as it would block with no wake-up pending, so
//! `lock_timeout` (with a long timeout) gives up at every point the schedule allows.
//!
//! Checked in every execution (see tests/workload/mod.rs): mutual exclusion, zero bypass, no
//! wake-up left over at shutdown, grant accounting; and, by shuttle itself, no deadlock (every
//! rank finishes, which also shows that no give-up strands a waiter).
//!
//! Schedulers are seeded, so a run is reproducible; a failure prints shuttle's schedule, which
//! `shuttle::replay` replays.
//!
//! The controls run each deliberately broken protocol variant (`Faults`) and assert that the
//! checker fails, for the right reason.
#![cfg(shuttle)]

mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brlock::protocol::{Algorithm, Faults, WakePolicy};
use brlock::LockMode::{Exclusive, Shared};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::{Config, FailurePersistence, MaxSteps, Runner};
use workload::{
    check, expect_panic, no_hold, op, random_plans, simulate, x, Coverage, How, Mix, Scenario,
    BYPASS, EXCLUSION, LEFTOVER, LONG, LOST_GRANT, STALE_GRANT,
};

/// Timeouts the model tests draw from: give up at the first failed attempt, or whenever a wait
/// would block with nothing pending. Both are independent of the wall clock.
const MODEL_TIMEOUTS: &[Duration] = &[Duration::ZERO, LONG];

/// A mix with a fifth of the requests try_lock, a fifth lock_timeout, a third shared.
fn mix(ops: usize, space: u64, max_len: u64) -> Mix {
    Mix {
        ops,
        space,
        max_len,
        shared_pct: 35,
        try_pct: 20,
        timeout_pct: 20,
        timeouts: MODEL_TIMEOUTS,
    }
}

fn config(failures: FailurePersistence) -> Config {
    let mut config = Config::new();
    // Each rank's task runs the protocol plus the observer and the collective shutdown; a
    // failure formats long messages. 32 KiB (the default) is tight; 1000 tasks x 256 KiB of
    // (lazily touched) stack is fine.
    config.stack_size = 256 * 1024;
    // 1000 ranks: the shutdown barrier alone is O(ranks^2) steps (every arrival notifies all
    // waiters). No test here can livelock, so the bound only guards against a runaway.
    config.max_steps = MaxSteps::FailAfter(100_000_000);
    config.failure_persistence = failures;
    config
}

/// Run `sc` under `scheduler`, checking every execution; returns what the executions covered.
fn run<S: Scheduler + 'static>(name: &str, sc: Scenario, scheduler: S) -> Arc<Coverage> {
    run_with(name, sc, scheduler, FailurePersistence::Print)
}

fn run_with<S: Scheduler + 'static>(
    name: &str,
    sc: Scenario,
    scheduler: S,
    failures: FailurePersistence,
) -> Arc<Coverage> {
    let coverage = Arc::new(Coverage::default());
    let cov = coverage.clone();
    let started = Instant::now();
    let ranks = sc.ranks();
    Runner::new(scheduler, config(failures)).run(move || {
        let out = simulate(&sc, no_hold);
        check(&out);
        cov.record(&out);
    });
    eprintln!(
        "{name}: {ranks} ranks: {coverage} ({:.1?})",
        started.elapsed()
    );
    coverage
}

fn random(seed: u64, iterations: usize) -> RandomScheduler {
    RandomScheduler::new_from_seed(seed, iterations)
}

fn pct(seed: u64, depth: usize, iterations: usize) -> PctScheduler {
    PctScheduler::new_from_seed(seed, depth, iterations)
}

/// Every promise held and the runs did exercise waiting and giving up.
fn assert_exercised(cov: &Coverage) {
    let (execs, gave_up, waits, _, grants) = cov.get();
    assert!(execs > 0 && grants > 0, "{cov}");
    assert!(waits > 0, "no execution ever waited: {cov}");
    assert!(gave_up > 0, "no execution ever gave up a request: {cov}");
}

// ---------------------------------------------------------------------------------------------
// Small and medium worlds, many schedules.

#[test]
fn eight_ranks_random_mix_random_scheduler() {
    let sc = Scenario::new(random_plans(0x5EED_0008, 8, mix(6, 24, 8)));
    let cov = run(
        "eight_ranks_random_mix_random_scheduler",
        sc,
        random(8, 4000),
    );
    assert_exercised(&cov);
}

#[test]
fn eight_ranks_random_mix_pct_depth_3() {
    let sc = Scenario::new(random_plans(0x5EED_1008, 8, mix(6, 24, 8)));
    let cov = run("eight_ranks_random_mix_pct_depth_3", sc, pct(9, 3, 4000));
    assert_exercised(&cov);
}

/// Eight ranks hammering one range: the longest waiting chains and the most stale wake-ups.
#[test]
fn eight_ranks_hot_range_pct_depth_2() {
    let plans = (0..8)
        .map(|r| {
            let mode = if r % 3 == 0 { Shared } else { Exclusive };
            vec![
                op(How::Lock, 0, 10, mode),
                op(How::Timeout(LONG), 0, 10, Exclusive),
                x(0, 10),
                op(How::Try, 0, 10, mode),
            ]
        })
        .collect();
    let cov = run(
        "eight_ranks_hot_range_pct_depth_2",
        Scenario::new(plans),
        pct(10, 2, 3000),
    );
    let (_, _, _, drained, _) = cov.get();
    assert!(drained > 0, "no stale wake-up ever drained: {cov}");
    assert_exercised(&cov);
}

#[test]
fn sixty_four_ranks_random_mix() {
    let sc = Scenario::new(random_plans(0x5EED_0064, 64, mix(4, 192, 10)));
    let cov = run("sixty_four_ranks_random_mix", sc, random(64, 300));
    assert_exercised(&cov);
}

/// The 2005 algorithm's release (wake every conflicting waiter) is a real variant, not a
/// fault: it must keep every property.
#[test]
fn sixty_four_ranks_random_mix_waking_all_conflicting() {
    let sc = Scenario::new(random_plans(0x5EED_2064, 64, mix(4, 192, 10)))
        .with_wake_policy(WakePolicy::AllConflicting);
    let cov = run(
        "sixty_four_ranks_random_mix_waking_all_conflicting",
        sc,
        random(64, 300),
    );
    assert_exercised(&cov);
}

#[test]
fn sixty_four_ranks_random_mix_pct_depth_3() {
    let sc = Scenario::new(random_plans(0x5EED_1064, 64, mix(4, 192, 10)));
    let cov = run(
        "sixty_four_ranks_random_mix_pct_depth_3",
        sc,
        pct(65, 3, 200),
    );
    assert_exercised(&cov);
}

// ---------------------------------------------------------------------------------------------
// A thousand ranks.

/// 1000 ranks, each with a few requests on ranges drawn from `0..space` (length 1..=8), and
/// every 250th rank also takes the whole space exclusively, which conflicts with everyone
/// (convoys: one release wakes every conflicting waiter).
fn thousand_ranks(seed: u64, ops: usize, space: u64) -> Scenario {
    many_ranks(seed, 1000, ops, space)
}

/// `ranks` ranks with `ops` random requests each in `0..space`, and every 250th rank also
/// wanting the whole space once.
fn many_ranks(seed: u64, ranks: usize, ops: usize, space: u64) -> Scenario {
    let mut plans = random_plans(seed, ranks, mix(ops, space, 8));
    for plan in plans.iter_mut().step_by(250) {
        plan.push(x(0, space + 8));
    }
    Scenario::new(plans)
}

/// The random scheduler only: PCT runs one task at a time by priority, which with 1000 tasks
/// means almost no contention (and it is far slower per step at this size).
#[test]
fn thousand_ranks_sparse_random_scheduler() {
    // Ranges in 0..4000: each overlaps a couple of neighbours'.
    let sc = thousand_ranks(0x5EED_1000, 2, 4000);
    let cov = run(
        "thousand_ranks_sparse_random_scheduler",
        sc,
        random(1000, 10),
    );
    assert_exercised(&cov);
}

#[test]
fn thousand_ranks_dense_random_scheduler() {
    // Ranges in 0..500: each overlaps about a dozen others'.
    let sc = thousand_ranks(0x5EED_2000, 2, 500);
    let cov = run("thousand_ranks_dense_random_scheduler", sc, random(1001, 8));
    assert_exercised(&cov);
}

// ---------------------------------------------------------------------------------------------
// Controls: each broken variant must make the checker fail, for its own reason. Each control
// first runs the same scenario and schedules with the real protocol (which must pass).

fn control<S: Scheduler + 'static>(
    name: &str,
    sc: Scenario,
    f: Faults,
    scheduler: impl Fn() -> S,
    expected: &str,
) {
    control_with(name, sc.clone(), sc.with_faults(f), scheduler, expected);
}

/// [`control`] with the broken variant given as a scenario of its own.
fn control_with<S: Scheduler + 'static>(
    name: &str,
    sc: Scenario,
    broken: Scenario,
    scheduler: impl Fn() -> S,
    expected: &str,
) {
    run(&format!("{name} (real protocol)"), sc, scheduler());
    let text = expect_panic(expected, || {
        // The schedule of a failure is long and not needed here.
        run_with(name, broken, scheduler(), FailurePersistence::None);
    });
    for other in [
        EXCLUSION,
        BYPASS,
        LEFTOVER,
        LOST_GRANT,
        STALE_GRANT,
        "deadlock!",
    ] {
        if other != expected {
            assert!(
                !text.contains(other),
                "{name}: failed with {other:?} instead of {expected:?}: {text}"
            );
        }
    }
    let line = text.lines().find(|l| l.contains(expected)).unwrap_or("");
    eprintln!("{name}: caught as expected: {line}");
}

fn faults(set: impl FnOnce(&mut Faults)) -> Faults {
    let mut f = Faults::default();
    set(&mut f);
    f
}

/// Four ranks, same range, two exclusive locks each.
fn four_exclusive_twice() -> Scenario {
    Scenario::new(vec![vec![x(0, 10), x(0, 10)]; 4])
}

#[test]
fn control_ignore_conflicts_breaks_exclusion() {
    control(
        "control_ignore_conflicts",
        four_exclusive_twice(),
        faults(|f| f.ignore_conflicts = true),
        || pct(1, 2, 200),
        EXCLUSION,
    );
}

#[test]
fn control_ignore_tickets_breaks_bypass_bound() {
    control(
        "control_ignore_tickets",
        four_exclusive_twice(),
        faults(|f| f.ignore_tickets = true),
        || pct(2, 3, 500),
        BYPASS,
    );
}

#[test]
fn control_skip_drain_leaves_wakeups() {
    control(
        "control_skip_drain",
        four_exclusive_twice(),
        faults(|f| f.skip_drain = true),
        || pct(3, 3, 500),
        LEFTOVER,
    );
}

#[test]
fn control_skip_release_wakeups_deadlocks() {
    control(
        "control_skip_release_wakeups",
        four_exclusive_twice(),
        faults(|f| f.skip_release_wakeups = true),
        || pct(4, 2, 200),
        "deadlock!",
    );
}

/// Needs a ticketless first ACTIVE attempt that makes an older, retrying waiter block, and the
/// retreat behind it (see client.rs); two ranks where one locks twice suffice. PCT at depth 3
/// misses it in 2000 schedules (it needs more ordering constraints); the random scheduler
/// finds it for every seed tried (0..10) within 2000 schedules.
#[test]
fn control_skip_retreat_wakeups_deadlocks() {
    control(
        "control_skip_retreat_wakeups",
        Scenario::new(vec![vec![x(0, 10), x(0, 10)], vec![x(0, 10)]]),
        faults(|f| f.skip_retreat_wakeups = true),
        || random(5, 2000),
        "deadlock!",
    );
}

/// A release must wake every waiter that nothing else blocks, not just the oldest: rank 0
/// holds [0, 20) while rank 1 waits for [0, 5) and rank 2 for [10, 15); waking only rank 1
/// strands rank 2.
#[test]
fn control_wake_oldest_only_deadlocks() {
    control(
        "control_wake_oldest_only",
        Scenario::new(vec![vec![x(0, 20)], vec![x(0, 5)], vec![x(10, 15)]]),
        faults(|f| f.wake_oldest_only = true),
        || random(7, 2000),
        "deadlock!",
    );
}

/// The same controls at scale: 64 ranks with random plans, the broken variants that show up
/// under random schedules without a crafted scenario. (Random scheduler: PCT at this size
/// mostly runs ranks one after another and sees little contention.)
#[test]
fn control_sixty_four_ranks_ignore_conflicts_and_tickets() {
    let sc = Scenario::new(random_plans(0x5EED_C064, 64, mix(4, 64, 10)));
    control(
        "control_64_ignore_conflicts",
        sc.clone(),
        faults(|f| f.ignore_conflicts = true),
        || random(6, 20),
        EXCLUSION,
    );
    control(
        "control_64_ignore_tickets",
        sc,
        faults(|f| f.ignore_tickets = true),
        || random(7, 20),
        BYPASS,
    );
}

/// The exclusion checker at full size: one schedule of the sparse 1000-rank scenario with
/// conflicts ignored.
#[test]
fn control_thousand_ranks_ignore_conflicts() {
    control(
        "control_1000_ignore_conflicts",
        thousand_ranks(0x5EED_C100, 2, 4000),
        faults(|f| f.ignore_conflicts = true),
        || random(8, 1),
        EXCLUSION,
    );
}

// ---------------------------------------------------------------------------------------------
// The handoff algorithm: the same worlds and properties (plus, in `workload::check`, no grant
// message left for the drain and no retries), and its own controls.

fn handoff(sc: Scenario) -> Scenario {
    sc.with_algorithm(Algorithm::Handoff)
}

/// Eight ranks on one range, mixed modes, every kind of request.
fn eight_hot_range() -> Scenario {
    let plans = (0..8)
        .map(|r| {
            let mode = if r % 3 == 0 { Shared } else { Exclusive };
            vec![
                op(How::Lock, 0, 10, mode),
                op(How::Timeout(LONG), 0, 10, Exclusive),
                x(0, 10),
                op(How::Try, 0, 10, mode),
            ]
        })
        .collect();
    Scenario::new(plans)
}

#[test]
fn handoff_eight_ranks_random_mix_random_scheduler() {
    let sc = handoff(Scenario::new(random_plans(0x5EED_0008, 8, mix(6, 24, 8))));
    let cov = run(
        "handoff_eight_ranks_random_mix_random_scheduler",
        sc,
        random(8, 4000),
    );
    assert_exercised(&cov);
}

#[test]
fn handoff_eight_ranks_random_mix_pct_depth_3() {
    let sc = handoff(Scenario::new(random_plans(0x5EED_1008, 8, mix(6, 24, 8))));
    let cov = run(
        "handoff_eight_ranks_random_mix_pct_depth_3",
        sc,
        pct(9, 3, 4000),
    );
    assert_exercised(&cov);
}

#[test]
fn handoff_eight_ranks_hot_range_pct_depth_2() {
    let cov = run(
        "handoff_eight_ranks_hot_range_pct_depth_2",
        handoff(eight_hot_range()),
        pct(10, 2, 3000),
    );
    assert_exercised(&cov);
}

#[test]
fn handoff_sixty_four_ranks_random_mix() {
    let sc = handoff(Scenario::new(random_plans(
        0x5EED_0064,
        64,
        mix(4, 192, 10),
    )));
    let cov = run("handoff_sixty_four_ranks_random_mix", sc, random(64, 300));
    assert_exercised(&cov);
}

#[test]
fn handoff_thousand_ranks_dense_random_scheduler() {
    let sc = handoff(thousand_ranks(0x5EED_2000, 2, 500));
    let cov = run(
        "handoff_thousand_ranks_dense_random_scheduler",
        sc,
        random(1001, 8),
    );
    assert_exercised(&cov);
}

// ---------------------------------------------------------------------------------------------
// Sharded homes: the same properties through a `Sharded` lock over 2 or 4 services, stripes of
// 4 bytes, so that most ranges span several shards; bypass is compared shard by shard.

#[test]
fn sharded_handoff_two_shards_random_mix() {
    let sc = handoff(Scenario::new(random_plans(0x5EED_5002, 8, mix(6, 24, 8)))).sharded(2, 4);
    let cov = run("sharded_handoff_two_shards_random_mix", sc, random(52, 300));
    assert_exercised(&cov);
}

#[test]
fn sharded_handoff_four_shards_pct_depth_3() {
    let sc = handoff(Scenario::new(random_plans(0x5EED_5004, 8, mix(6, 24, 8)))).sharded(4, 4);
    let cov = run(
        "sharded_handoff_four_shards_pct_depth_3",
        sc,
        pct(54, 3, 300),
    );
    assert_exercised(&cov);
}

#[test]
fn sharded_tr2005_two_shards_random_mix() {
    let sc = Scenario::new(random_plans(0x5EED_6002, 8, mix(6, 24, 8))).sharded(2, 4);
    let cov = run("sharded_tr2005_two_shards_random_mix", sc, random(62, 300));
    assert_exercised(&cov);
}

#[test]
fn control_shards_out_of_order_deadlocks() {
    // Two ranks want 0..8, which spans both shards; the odd one takes them in reverse.
    let sc = handoff(Scenario::new(vec![vec![x(0, 8), x(0, 8)]; 2])).sharded(2, 4);
    control_with(
        "control_shards_out_of_order",
        sc.clone(),
        sc.with_shards_out_of_order(),
        || pct(7, 2, 200),
        "deadlock!",
    );
}

/// 4,096 simulated ranks, where the request list's epochs move the live requests only (the
/// 2005 slot table would move 128 KiB per epoch here).
#[test]
fn handoff_4096_ranks_random_scheduler() {
    let sc = handoff(many_ranks(0x5EED_4096, 4096, 1, 8192));
    let cov = run("handoff_4096_ranks_random_scheduler", sc, random(4097, 6));
    assert_exercised(&cov);
}

/// 4,096 simulated ranks on 4 sharded homes (stripes of 64 bytes).
#[test]
fn sharded_handoff_4096_ranks_four_shards() {
    let sc = handoff(many_ranks(0x5EED_4004, 4096, 1, 8192)).sharded(4, 64);
    let cov = run(
        "sharded_handoff_4096_ranks_four_shards",
        sc,
        random(4004, 2),
    );
    assert_exercised(&cov);
}

#[test]
fn control_handoff_ignore_conflicts_breaks_exclusion() {
    control(
        "control_handoff_ignore_conflicts",
        handoff(four_exclusive_twice()),
        faults(|f| f.ignore_conflicts = true),
        || pct(1, 2, 200),
        EXCLUSION,
    );
}

#[test]
fn control_handoff_grant_conflicting_breaks_exclusion() {
    control(
        "control_handoff_grant_conflicting",
        handoff(four_exclusive_twice()),
        faults(|f| f.grant_conflicting = true),
        || random(11, 500),
        EXCLUSION,
    );
}

#[test]
fn control_handoff_lose_grant_message_deadlocks() {
    control(
        "control_handoff_lose_grant_message",
        handoff(four_exclusive_twice()),
        faults(|f| f.lose_grant_message = true),
        || random(12, 200),
        "deadlock!",
    );
}

/// Each rank's timed request is its last, so the ignored grant's message is left for the
/// drain (an earlier one would be taken by the rank's next wait for its own grant).
#[test]
fn control_handoff_timeout_ignores_grant_leaves_grant_message() {
    let plan = vec![x(0, 10), op(How::Timeout(LONG), 0, 10, Exclusive)];
    control(
        "control_handoff_timeout_ignores_grant",
        handoff(Scenario::new(vec![plan; 4])),
        faults(|f| f.timeout_ignores_grant = true),
        || random(13, 2000),
        STALE_GRANT,
    );
}

//! Exhaustive and preemption-bounded model checks of the lock protocol with loom.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --target-dir target/loom --test model_loom
//! ```
//!
//! Every test runs the real `LockClient` over the simulated transport (`brlock`'s sync shim
//! resolves to loom's `Mutex`/`Condvar`/threads under `--cfg loom`), with simulated ranks as
//! loom threads, and explores every interleaving (up to loom's partial-order reduction, and up
//! to the preemption bound where one is set) of their synchronisation operations: table
//! epochs, wake-up sends and receives, the observer's bookkeeping, the collective shutdown.
//! A timed wait (`try_lock`, `lock_timeout`) gives up under loom as soon as it would block with
//! no wake-up pending, so giving up is explored at every point where it can happen.
//!
//! Checked in every execution (see `tests/workload/mod.rs`): mutual exclusion, zero bypass,
//! no wake-up left over at shutdown, grant accounting; and, by loom itself, no deadlock (every
//! rank finishes, which also shows that no give-up strands a waiter).
//!
//! Bounds. Exhaustive exploration is feasible only for the smallest models: two ranks with one
//! request each (about 100,000 executions, ~10 s). Two ranks where one of them locks twice did
//! not finish exhaustively in 15 minutes, so the two-rank models with more requests use a
//! preemption bound of 4 to 6 (in each test's name), and the three-rank models a bound of 2
//! (`PREEMPTION_BOUND_3`). A bound of N explores every execution with at most N preemptive
//! context switches (switching away from a thread that could have continued); switches where a
//! thread blocks (on a mutex, a wake-up, the shutdown barrier) are free and unbounded. Every
//! injected bug below is found at a bound of 2 (the retreat-wake-up deadlock is not reached at
//! bound 1; the others are). Each model alone takes ~2-15 s on this 2-core machine when it is
//! otherwise idle; run as a file with cargo's two test threads, each takes 10-45 s and the whole
//! file about 2.5 minutes. Four ranks (loom's limit is 4 threads besides the main one) did not
//! finish even at bound 1 within a minute;
//! wider worlds are shuttle's job (tests/model_shuttle.rs).
//!
//! The controls run each deliberately broken protocol variant (`Faults`) on the smallest model
//! that exposes it, and assert that the checker fails for the right reason.
#![cfg(loom)]

mod workload;

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use brlock::protocol::{Algorithm, Faults};
use brlock::LockMode::{Exclusive, Shared};
use loom::model::Builder;
use workload::{
    check, expect_panic, no_hold, op, s, simulate, x, Coverage, How, Op, Scenario, BYPASS,
    EXCLUSION, LEFTOVER, LONG, LOST_GRANT, STALE_GRANT,
};

/// Preemption bound of the three-rank models. At 2 each model takes 5-7 s here (50,000-62,000
/// executions); at 3 the three-rank exclusive model alone explored > 570,000 executions in a
/// minute without finishing.
const PREEMPTION_BOUND_3: usize = 2;

/// Run `sc` under loom with `preemption_bound` (None = exhaustive), checking every execution;
/// returns what the executions covered.
fn model(name: &str, sc: Scenario, preemption_bound: Option<usize>) -> Arc<Coverage> {
    let mut builder = Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.max_branches = 100_000;
    let coverage = Arc::new(Coverage::default());
    let cov = coverage.clone();
    let started = Instant::now();
    builder.check(move || {
        let out = simulate(&sc, no_hold);
        check(&out);
        cov.record(&out);
    });
    eprintln!(
        "{name}: {coverage} (preemption bound {preemption_bound:?}, {:.1?})",
        started.elapsed()
    );
    coverage
}

fn try_x(start: u64, end: u64) -> Op {
    op(How::Try, start, end, Exclusive)
}

fn try_s(start: u64, end: u64) -> Op {
    op(How::Try, start, end, Shared)
}

fn timed_x(start: u64, end: u64) -> Op {
    op(How::Timeout(LONG), start, end, Exclusive)
}

fn timed_s(start: u64, end: u64) -> Op {
    op(How::Timeout(LONG), start, end, Shared)
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// Two ranks, one exclusive lock of the same range each.
fn two_exclusive() -> Scenario {
    Scenario::new(vec![vec![x(0, 10)], vec![x(0, 10)]])
}

/// Two ranks on the same range; rank 0 locks twice, so its second request can arrive while rank
/// 1 waits (the ticket rule, the retreat wake-up and stale wake-ups all come into play).
fn two_exclusive_relock() -> Scenario {
    Scenario::new(vec![vec![x(0, 10), x(0, 10)], vec![x(0, 10)]])
}

/// Two ranks locking the same range twice each.
fn two_exclusive_twice_each() -> Scenario {
    Scenario::new(vec![vec![x(0, 10), x(0, 10)], vec![x(0, 10), x(0, 10)]])
}

/// Two ranks, overlapping ranges, shared and exclusive mixed (shared/shared on overlapping
/// ranges must be able to coexist; every other overlapping pair conflicts).
fn two_mixed_overlapping() -> Scenario {
    Scenario::new(vec![vec![s(0, 10), x(5, 15)], vec![x(8, 12), s(0, 20)]])
}

/// Two ranks with try_lock and lock_timeout in every role, including giving up while the other
/// rank may have blocked on our ACTIVE slot.
fn two_try_and_timeout() -> Scenario {
    Scenario::new(vec![
        vec![x(0, 10), try_x(0, 10)],
        vec![timed_s(5, 15), x(0, 10)],
    ])
}

/// Three ranks, one exclusive lock of the same range each.
fn three_exclusive() -> Scenario {
    Scenario::new(vec![vec![x(0, 10)], vec![x(0, 10)], vec![x(0, 10)]])
}

/// The chain of the protocol notes: A [0,10), B [5,15), C [12,20), all exclusive: A and C do
/// not conflict, B conflicts with both. If a waiter stayed visible as a holder, C could wait on
/// B waiting on A with nobody to wake C. Rank 0 (A) locks twice.
fn three_chain() -> Scenario {
    Scenario::new(vec![
        vec![x(0, 10), x(0, 10)],
        vec![x(5, 15)],
        vec![x(12, 20)],
    ])
}

/// Two overlapping readers and a writer covering both.
fn three_readers_writer() -> Scenario {
    Scenario::new(vec![vec![s(0, 10)], vec![s(5, 15)], vec![x(0, 20)]])
}

/// Three ranks: a holder, a try_lock and a lock_timeout, on overlapping ranges.
fn three_try_and_timeout() -> Scenario {
    Scenario::new(vec![
        vec![x(0, 10)],
        vec![try_s(5, 15)],
        vec![timed_x(0, 20)],
    ])
}

// ---------------------------------------------------------------------------------------------
// Two ranks.

#[test]
fn two_ranks_exclusive_same_range_exhaustive() {
    let cov = model(
        "two_ranks_exclusive_same_range_exhaustive",
        two_exclusive(),
        None,
    );
    let (_, _, waits, _, _) = cov.get();
    assert!(waits > 0, "no execution ever waited: {cov}");
}

#[test]
fn two_ranks_try_lock_gives_up_exhaustive() {
    let sc = Scenario::new(vec![vec![try_x(0, 10)], vec![x(0, 10)]]);
    let cov = model("two_ranks_try_lock_gives_up_exhaustive", sc, None);
    let (execs, gave_up, waits, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs && waits > 0, "{cov}");
}

#[test]
fn two_ranks_lock_timeout_gives_up_exhaustive() {
    let sc = Scenario::new(vec![vec![timed_x(0, 10)], vec![x(0, 10)]]);
    let cov = model("two_ranks_lock_timeout_gives_up_exhaustive", sc, None);
    let (execs, gave_up, _, drained, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs && drained > 0, "{cov}");
}

#[test]
fn two_ranks_exclusive_relock_preemption_bound_6() {
    let cov = model(
        "two_ranks_exclusive_relock_preemption_bound_6",
        two_exclusive_relock(),
        Some(6),
    );
    let (_, _, waits, drained, _) = cov.get();
    assert!(waits > 0 && drained > 0, "{cov}");
}

#[test]
fn two_ranks_exclusive_twice_each_preemption_bound_4() {
    model(
        "two_ranks_exclusive_twice_each_preemption_bound_4",
        two_exclusive_twice_each(),
        Some(4),
    );
}

#[test]
fn two_ranks_mixed_modes_overlapping_preemption_bound_5() {
    model(
        "two_ranks_mixed_modes_overlapping_preemption_bound_5",
        two_mixed_overlapping(),
        Some(5),
    );
}

#[test]
fn two_ranks_try_and_timeout_preemption_bound_5() {
    let cov = model(
        "two_ranks_try_and_timeout_preemption_bound_5",
        two_try_and_timeout(),
        Some(5),
    );
    let (execs, gave_up, waits, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs && waits > 0, "{cov}");
}

// ---------------------------------------------------------------------------------------------
// Three ranks, preemption bound PREEMPTION_BOUND_3 (= 2).

#[test]
fn three_ranks_exclusive_same_range_preemption_bound_2() {
    model(
        "three_ranks_exclusive_same_range_preemption_bound_2",
        three_exclusive(),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn three_ranks_overlapping_chain_preemption_bound_2() {
    model(
        "three_ranks_overlapping_chain_preemption_bound_2",
        three_chain(),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn three_ranks_readers_and_writer_preemption_bound_2() {
    model(
        "three_ranks_readers_and_writer_preemption_bound_2",
        three_readers_writer(),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn three_ranks_try_and_timeout_preemption_bound_2() {
    let cov = model(
        "three_ranks_try_and_timeout_preemption_bound_2",
        three_try_and_timeout(),
        Some(PREEMPTION_BOUND_3),
    );
    let (execs, gave_up, _, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs, "{cov}");
}

// ---------------------------------------------------------------------------------------------
// Controls: each broken variant must make the checker fail, for its own reason. Each control
// first runs the same model with the real protocol (which must pass), then with the fault.

fn faults(set: impl FnOnce(&mut Faults)) -> Faults {
    let mut f = Faults::default();
    set(&mut f);
    f
}

/// A control whose failure is a panic of our own checks (the model runs to that execution and
/// unwinds normally): it is caught in-process.
fn control_in_process(name: &str, sc: Scenario, bound: Option<usize>, f: Faults, expected: &str) {
    model(&format!("{name} (real protocol)"), sc.clone(), bound);
    let broken = sc.with_faults(f);
    let text = expect_panic(expected, || {
        model(&format!("{name} (broken)"), broken, bound);
    });
    eprintln!(
        "{name}: caught as expected: {}",
        text.lines().next().unwrap_or("")
    );
}

/// Environment variable naming the child test a deadlock control runs.
const CHILD_ENV: &str = "BRLOCK_LOOM_CONTROL_CHILD";

/// Loom reports a deadlock by panicking with "deadlock; threads = [...]" from its scheduler;
/// unwinding then drops loom objects of the dead execution, whose destructors panic again, and
/// the process aborts. So a deadlock control runs its model in a child process (this test
/// binary, running one ignored `child_*` test) and asserts on the child's exit and output.
fn control_deadlock_in_child(name: &str, child: &str, sc: Scenario, bound: Option<usize>) {
    model(&format!("{name} (real protocol)"), sc, bound);
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, child)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running the child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{name}: the broken protocol passed the model check:\n{text}"
    );
    assert!(
        text.contains("deadlock; threads = "),
        "{name}: the child failed, but not with loom's deadlock report:\n{text}"
    );
    for other in [EXCLUSION, BYPASS, LEFTOVER, LOST_GRANT, STALE_GRANT] {
        assert!(
            !text.contains(other),
            "{name}: the child failed for another reason ({other}):\n{text}"
        );
    }
    let line = text
        .lines()
        .find(|l| l.contains("deadlock; threads"))
        .unwrap_or("");
    eprintln!("{name}: caught as expected: {line}");
}

/// Whether this process is the child run for `child` (otherwise the child test does nothing,
/// so that `cargo test -- --ignored` stays green).
fn is_child(child: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(child)
}

#[test]
fn control_ignore_conflicts_breaks_exclusion() {
    control_in_process(
        "control_ignore_conflicts",
        two_exclusive(),
        Some(2),
        faults(|f| f.ignore_conflicts = true),
        EXCLUSION,
    );
}

#[test]
fn control_ignore_tickets_breaks_bypass_bound() {
    control_in_process(
        "control_ignore_tickets",
        two_exclusive_relock(),
        Some(2),
        faults(|f| f.ignore_tickets = true),
        BYPASS,
    );
}

#[test]
fn control_skip_drain_leaves_wakeups() {
    control_in_process(
        "control_skip_drain",
        two_exclusive_relock(),
        Some(2),
        faults(|f| f.skip_drain = true),
        LEFTOVER,
    );
}

#[test]
fn control_skip_release_wakeups_deadlocks() {
    control_deadlock_in_child(
        "control_skip_release_wakeups",
        "child_skip_release_wakeups",
        two_exclusive(),
        Some(2),
    );
}

#[test]
#[ignore = "run in a child process by control_skip_release_wakeups_deadlocks"]
fn child_skip_release_wakeups() {
    if is_child("child_skip_release_wakeups") {
        let sc = two_exclusive().with_faults(faults(|f| f.skip_release_wakeups = true));
        model("child_skip_release_wakeups", sc, Some(2));
    }
}

/// The retreat wake-up needs: rank 1 waiting with ticket t; rank 0's next request's first,
/// ticketless ACTIVE epoch (ticket > t) makes rank 1 -- woken by rank 0's release and retrying --
/// block again on that ACTIVE slot; rank 0 then retreats to WAITING behind the older rank 1.
/// Without the retreat wake-up both wait forever. Two ranks suffice (rank 0 locks twice); it
/// takes two preemptions, so the control runs at bound 2 (at bound 1 the bug is not reached).
#[test]
fn control_skip_retreat_wakeups_deadlocks() {
    control_deadlock_in_child(
        "control_skip_retreat_wakeups",
        "child_skip_retreat_wakeups",
        two_exclusive_relock(),
        Some(2),
    );
}

#[test]
#[ignore = "run in a child process by control_skip_retreat_wakeups_deadlocks"]
fn child_skip_retreat_wakeups() {
    if is_child("child_skip_retreat_wakeups") {
        let sc = two_exclusive_relock().with_faults(faults(|f| f.skip_retreat_wakeups = true));
        model("child_skip_retreat_wakeups", sc, Some(2));
    }
}

// ---------------------------------------------------------------------------------------------
// The handoff algorithm: the same models and properties, plus (checked for handoff in
// `workload::check`) no grant message left for the drain and no retries.

fn handoff(sc: Scenario) -> Scenario {
    sc.with_algorithm(Algorithm::Handoff)
}

#[test]
fn handoff_two_ranks_exclusive_same_range_exhaustive() {
    let cov = model(
        "handoff_two_ranks_exclusive_same_range_exhaustive",
        handoff(two_exclusive()),
        None,
    );
    let (_, _, waits, _, _) = cov.get();
    assert!(waits > 0, "no execution ever waited: {cov}");
}

#[test]
fn handoff_two_ranks_lock_timeout_gives_up_exhaustive() {
    let sc = handoff(Scenario::new(vec![vec![timed_x(0, 10)], vec![x(0, 10)]]));
    let cov = model(
        "handoff_two_ranks_lock_timeout_gives_up_exhaustive",
        sc,
        None,
    );
    let (execs, gave_up, waits, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs && waits > 0, "{cov}");
}

#[test]
fn handoff_two_ranks_exclusive_relock_preemption_bound_6() {
    model(
        "handoff_two_ranks_exclusive_relock_preemption_bound_6",
        handoff(two_exclusive_relock()),
        Some(6),
    );
}

#[test]
fn handoff_two_ranks_mixed_modes_overlapping_preemption_bound_5() {
    model(
        "handoff_two_ranks_mixed_modes_overlapping_preemption_bound_5",
        handoff(two_mixed_overlapping()),
        Some(5),
    );
}

#[test]
fn handoff_two_ranks_try_and_timeout_preemption_bound_5() {
    let cov = model(
        "handoff_two_ranks_try_and_timeout_preemption_bound_5",
        handoff(two_try_and_timeout()),
        Some(5),
    );
    let (execs, gave_up, waits, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs && waits > 0, "{cov}");
}

#[test]
fn handoff_three_ranks_exclusive_same_range_preemption_bound_2() {
    model(
        "handoff_three_ranks_exclusive_same_range_preemption_bound_2",
        handoff(three_exclusive()),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn handoff_three_ranks_overlapping_chain_preemption_bound_2() {
    model(
        "handoff_three_ranks_overlapping_chain_preemption_bound_2",
        handoff(three_chain()),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn handoff_three_ranks_readers_and_writer_preemption_bound_2() {
    model(
        "handoff_three_ranks_readers_and_writer_preemption_bound_2",
        handoff(three_readers_writer()),
        Some(PREEMPTION_BOUND_3),
    );
}

#[test]
fn handoff_three_ranks_try_and_timeout_preemption_bound_2() {
    let cov = model(
        "handoff_three_ranks_try_and_timeout_preemption_bound_2",
        handoff(three_try_and_timeout()),
        Some(PREEMPTION_BOUND_3),
    );
    let (execs, gave_up, _, _, _) = cov.get();
    assert!(gave_up > 0 && gave_up < execs, "{cov}");
}

// Handoff controls.

#[test]
fn control_handoff_ignore_conflicts_breaks_exclusion() {
    control_in_process(
        "control_handoff_ignore_conflicts",
        handoff(two_exclusive()),
        Some(2),
        faults(|f| f.ignore_conflicts = true),
        EXCLUSION,
    );
}

/// A release that grants every waiter behind it: with two waiters on one range, the second
/// is granted while the first holds.
#[test]
fn control_handoff_grant_conflicting_breaks_exclusion() {
    control_in_process(
        "control_handoff_grant_conflicting",
        handoff(three_exclusive()),
        Some(PREEMPTION_BOUND_3),
        faults(|f| f.grant_conflicting = true),
        EXCLUSION,
    );
}

/// A timed-out waiter that withdraws without seeing that the release granted it in the
/// meantime: its grant message is never consumed (loom gives up a timed wait at every point,
/// so the grant in flight at the deadline is explored).
#[test]
fn control_handoff_timeout_ignores_grant_leaves_grant_message() {
    control_in_process(
        "control_handoff_timeout_ignores_grant",
        handoff(Scenario::new(vec![vec![timed_x(0, 10)], vec![x(0, 10)]])),
        None,
        faults(|f| f.timeout_ignores_grant = true),
        STALE_GRANT,
    );
}

#[test]
fn control_handoff_lose_grant_message_deadlocks() {
    control_deadlock_in_child(
        "control_handoff_lose_grant_message",
        "child_handoff_lose_grant_message",
        handoff(two_exclusive()),
        Some(2),
    );
}

#[test]
#[ignore = "run in a child process by control_handoff_lose_grant_message_deadlocks"]
fn child_handoff_lose_grant_message() {
    if is_child("child_handoff_lose_grant_message") {
        let sc = handoff(two_exclusive()).with_faults(faults(|f| f.lose_grant_message = true));
        model("child_handoff_lose_grant_message", sc, Some(2));
    }
}

//! Stress tests of the lock protocol on real threads: 16 to 32 simulated ranks (the protocol's
//! `LockClient` over the in-process simulated transport, `brlock::transport::sim`), each making
//! hundreds of requests with ranges, modes and request kinds (lock / try_lock / lock_timeout
//! with real, short timeouts) drawn from a seeded xorshift generator.
//!
//! ```text
//! cargo test --test sim_stress             # a few seconds
//! cargo test --release --test sim_stress   # the same, faster
//! ```
//!
//! Checked after every run (tests/workload/mod.rs): mutual exclusion, zero bypass, no wake-up
//! left over at shutdown, grant accounting. A watchdog turns a deadlock (a rank that never
//! finishes) into a failure instead of a hang.
//!
//! The negative control runs the protocol with conflicts ignored and shows that the observer
//! does see overlapping conflicting holders on real threads.

mod workload;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use brlock::protocol::{Algorithm, Faults, WakePolicy};
use workload::{check, random_plans, simulate, x, Mix, Outcome, Scenario};

/// How long a whole run may take before the watchdog calls it a deadlock. Generous: the runs
/// take well under a second each in a release build, a few seconds in a debug build.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Real timeouts: zero, and short ones that do expire while the range is contended.
const STRESS_TIMEOUTS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_micros(50),
    Duration::from_micros(200),
    Duration::from_millis(1),
    Duration::from_millis(5),
];

/// Hold a range for a moment: give the other threads a chance to run (and, were exclusion
/// broken, to overlap).
fn brief_hold(_rank: usize) {
    for _ in 0..3 {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
}

/// Hold long enough that two holders overlap in time for sure when exclusion is broken.
fn long_hold(_rank: usize) {
    std::thread::sleep(Duration::from_micros(200));
}

/// Run `sc` on real threads under a watchdog.
fn run(name: &str, sc: Scenario, hold: fn(usize)) -> Outcome {
    let (done, outcome) = mpsc::channel();
    let started = Instant::now();
    let ranks = sc.ranks();
    std::thread::Builder::new()
        .name(format!("{name}-driver"))
        .spawn(move || {
            let out = simulate(&sc, hold);
            let _ = done.send(out);
        })
        .expect("spawning the driver thread");
    let out = match outcome.recv_timeout(WATCHDOG) {
        Ok(out) => out,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "deadlock: {name}: {ranks} ranks did not all finish within {WATCHDOG:?} \
             (a waiter was stranded)"
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{name}: a simulated rank panicked (see above)")
        }
    };
    eprintln!(
        "{name}: {ranks} ranks, {} grants, {} given up, {} waits, {} stale wake-ups drained, \
         max bypass {}, violations {} ({:.1?})",
        out.granted(),
        out.gave_up(),
        out.waits(),
        out.drained(),
        out.max_bypass(),
        out.violations(),
        started.elapsed()
    );
    out
}

fn mix(ops: usize, space: u64, max_len: u64, try_pct: u64, timeout_pct: u64) -> Mix {
    Mix {
        ops,
        space,
        max_len,
        shared_pct: 35,
        try_pct,
        timeout_pct,
        timeouts: STRESS_TIMEOUTS,
    }
}

#[test]
fn sixteen_ranks_random_mix() {
    for seed in [1_u64, 2, 3] {
        let sc = Scenario::new(random_plans(seed, 16, mix(300, 64, 16, 15, 15)));
        let out = run(
            &format!("sixteen_ranks_random_mix seed {seed}"),
            sc,
            brief_hold,
        );
        check(&out);
        assert!(
            out.waits() > 0 && out.gave_up() > 0,
            "no contention: {out:?}"
        );
    }
}

/// The handoff algorithm on real threads with real timeouts (which race with grants in
/// flight): every property, no grant message left over, no retries.
#[test]
fn sixteen_ranks_random_mix_handoff() {
    for seed in [1_u64, 2, 3] {
        let sc = Scenario::new(random_plans(seed, 16, mix(300, 64, 16, 15, 15)))
            .with_algorithm(Algorithm::Handoff);
        let out = run(
            &format!("sixteen_ranks_random_mix_handoff seed {seed}"),
            sc,
            brief_hold,
        );
        check(&out);
        assert!(
            out.waits() > 0 && out.gave_up() > 0,
            "no contention: {out:?}"
        );
    }
}

/// Sharded homes on real threads with real timeouts, both algorithms: 2 and 4 shards of
/// 8-byte stripes under ranges of up to 16 bytes, so most requests take several shards and a
/// timeout can fire with some already held.
#[test]
fn sixteen_ranks_random_mix_sharded() {
    for (seed, shards, algorithm) in [
        (1_u64, 2, Algorithm::Handoff),
        (2, 4, Algorithm::Handoff),
        (3, 4, Algorithm::Tr2005),
    ] {
        let sc = Scenario::new(random_plans(seed, 16, mix(300, 64, 16, 15, 15)))
            .with_algorithm(algorithm)
            .sharded(shards, 8);
        let out = run(
            &format!("sixteen_ranks_random_mix_sharded seed {seed}, {shards} shards, {algorithm}"),
            sc,
            brief_hold,
        );
        check(&out);
        assert!(
            out.waits() > 0 && out.gave_up() > 0,
            "no contention: {out:?}"
        );
    }
}

/// The 2005 algorithm's release (wake every conflicting waiter) is a real variant, not a
/// fault: on real threads with real timeouts it keeps every property too.
#[test]
fn sixteen_ranks_random_mix_waking_all_conflicting() {
    let sc = Scenario::new(random_plans(4, 16, mix(300, 64, 16, 15, 15)))
        .with_wake_policy(WakePolicy::AllConflicting);
    let out = run(
        "sixteen_ranks_random_mix_waking_all_conflicting",
        sc,
        brief_hold,
    );
    check(&out);
    assert!(out.waits() > 0, "no contention: {out:?}");
}

#[test]
fn thirty_two_ranks_random_mix() {
    for seed in [11_u64, 12] {
        let sc = Scenario::new(random_plans(seed, 32, mix(200, 128, 16, 15, 15)));
        let out = run(
            &format!("thirty_two_ranks_random_mix seed {seed}"),
            sc,
            brief_hold,
        );
        check(&out);
        assert!(
            out.waits() > 0 && out.gave_up() > 0,
            "no contention: {out:?}"
        );
    }
}

/// Everyone on a few overlapping bytes: long queues, many stale wake-ups.
#[test]
fn thirty_two_ranks_hot_range() {
    let sc = Scenario::new(random_plans(21, 32, mix(150, 4, 4, 10, 10)));
    let out = run("thirty_two_ranks_hot_range", sc, brief_hold);
    check(&out);
    assert!(out.waits() > 0, "no contention: {out:?}");
}

/// Mostly giving up: try_lock and short timeouts racing with waiters that must not be
/// stranded by them.
#[test]
fn twenty_four_ranks_give_up_heavy() {
    let sc = Scenario::new(random_plans(31, 24, mix(250, 32, 8, 30, 50)));
    let out = run("twenty_four_ranks_give_up_heavy", sc, brief_hold);
    check(&out);
    assert!(out.gave_up() > 0, "nothing was given up: {out:?}");
}

/// Negative control: with conflicts ignored, the observer must see conflicting holders overlap.
#[test]
fn control_ignore_conflicts_is_caught_on_real_threads() {
    let f = Faults {
        ignore_conflicts: true,
        ..Faults::default()
    };
    let sc = Scenario::new(vec![vec![x(0, 10); 20]; 16]).with_faults(f);
    let out = run("control_ignore_conflicts", sc, long_hold);
    assert!(
        out.violations() > 0,
        "the observer saw no exclusion violation with conflicts ignored: {out:?}"
    );
    let text = workload::expect_panic(workload::EXCLUSION, || check(&out));
    eprintln!(
        "control_ignore_conflicts: caught: {}",
        text.lines().next().unwrap_or("")
    );
}

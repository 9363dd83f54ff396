//! The lock service under `mpirun`, through `brlock check lock`: every pattern and mode at 2,
//! 4 and 8 ranks under the `sm` and `pt2pt` one-sided components, the negative control, the
//! give-up paths, a busy home rank, and bad input.
//!
//! Sizes fit CI; `scripts/check-lock.sh` runs at least 10^4 acquisitions per configuration.

mod common;

use std::time::Duration;

use common::{RunOutput, OSC_COMPONENTS};
use serde_json::Value;

const PATTERNS: &[&str] = &["disjoint", "same", "random"];
const MODES: &[&str] = &["exclusive", "shared", "mixed"];

fn check_lock(ranks: usize, osc: &str, args: &[&str]) -> (RunOutput, Value) {
    let out = common::brlock(ranks)
        .osc(osc)
        .args(["check", "lock", "--json"])
        .args(args.iter().copied())
        .timeout(Duration::from_secs(180))
        .run();
    let json = out.rank0_json();
    (out, json)
}

fn u(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric `{key}` in {json}"))
}

/// Every pattern and mode at `ranks` under `osc`: 0 violations, 0 leftover messages, no
/// later arrival granted first, every acquisition done.
fn matrix(ranks: usize, osc: &str) {
    let iters = match ranks {
        2 => 200,
        4 => 100,
        _ => 40,
    };
    for pattern in PATTERNS {
        for mode in MODES {
            let iters_s = iters.to_string();
            let (out, json) = check_lock(
                ranks,
                osc,
                &["--pattern", pattern, "--mode", mode, "--iters", &iters_s],
            );
            let what = format!("{ranks} ranks, osc {osc}, {pattern}/{mode}");
            assert!(out.success(), "{what}: {}", out.failure_message());
            assert_eq!(u(&json, "violations"), 0, "{what}: {json}");
            assert_eq!(u(&json, "leftover_messages"), 0, "{what}: {json}");
            assert_eq!(u(&json, "max_bypass"), 0, "{what}: {json}");
            assert_eq!(
                u(&json, "acquisitions"),
                iters * ranks as u64,
                "{what}: {json}"
            );
            assert_eq!(json["ok"], Value::Bool(true), "{what}: {json}");
        }
    }
}

#[test]
fn sm_2_ranks_every_pattern_and_mode() {
    matrix(2, "sm");
}

#[test]
fn sm_4_ranks_every_pattern_and_mode() {
    matrix(4, "sm");
}

#[test]
fn sm_8_ranks_every_pattern_and_mode() {
    matrix(8, "sm");
}

#[test]
fn pt2pt_2_ranks_every_pattern_and_mode() {
    matrix(2, "pt2pt");
}

#[test]
fn pt2pt_4_ranks_every_pattern_and_mode() {
    matrix(4, "pt2pt");
}

#[test]
fn pt2pt_8_ranks_every_pattern_and_mode() {
    matrix(8, "pt2pt");
}

/// The 2005 algorithm and sharded homes (2 and 4, both algorithms) at 4 ranks under `sm`
/// and `pt2pt`, every pattern, mixed modes, with give-ups: the same promises as the default
/// service, bypass compared shard by shard, and with 4 homes each disjoint range served by
/// its own home.
#[test]
fn both_algorithms_and_sharded_homes_4_ranks() {
    for osc in OSC_COMPONENTS {
        for (algorithm, homes) in [("tr2005", 1), ("handoff", 2), ("handoff", 4), ("tr2005", 2)] {
            for pattern in PATTERNS {
                let homes_s = homes.to_string();
                let (out, json) = check_lock(
                    4,
                    osc,
                    &[
                        "--pattern",
                        pattern,
                        "--mode",
                        "mixed",
                        "--iters",
                        "100",
                        "--try-percent",
                        "20",
                        "--algorithm",
                        algorithm,
                        "--homes",
                        &homes_s,
                    ],
                );
                let what = format!("osc {osc}, {algorithm}, {homes} homes, {pattern}");
                assert!(out.success(), "{what}: {}", out.failure_message());
                assert_eq!(u(&json, "violations"), 0, "{what}: {json}");
                assert_eq!(u(&json, "leftover_messages"), 0, "{what}: {json}");
                assert_eq!(u(&json, "max_bypass"), 0, "{what}: {json}");
                assert_eq!(json["algorithm"], algorithm, "{what}: {json}");
                let served: Vec<u64> = json["epochs_per_home"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{what}: no epochs_per_home in {json}"))
                    .iter()
                    .map(|e| e.as_u64().unwrap_or(0))
                    .collect();
                assert_eq!(served.len(), homes, "{what}: {json}");
                if *pattern == "disjoint" && homes == 4 && algorithm == "handoff" {
                    // Rank r's range is stripe r, served by home r alone: 2 epochs per
                    // acquisition, a try that fails never happens (nothing conflicts).
                    assert_eq!(served, vec![200; 4], "{what}: {json}");
                }
            }
        }
    }
}

/// Sharded settings the checker cannot measure are refused with one line, before MPI work.
#[test]
fn bad_homes_are_one_line_errors() {
    for (args, says) in [
        (&["--homes", "3"][..], "at most the 2 ranks"),
        (
            &["--homes", "2", "--backend", "fcntl"][..],
            "only to --backend rma",
        ),
    ] {
        let out = common::brlock(2)
            .args(["check", "lock"])
            .args(args.iter().copied())
            .timeout(Duration::from_secs(60))
            .run();
        assert!(!out.success(), "{args:?} was accepted");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}

/// The negative control: without a lock the same checker sees violations.
#[test]
fn no_lock_same_range_is_caught() {
    for osc in OSC_COMPONENTS {
        let (out, json) = check_lock(
            4,
            osc,
            // Each holder keeps its range for 200 us: even ranks time-sliced on few cores
            // overlap, so the unlocked run must collide.
            &[
                "--backend",
                "none",
                "--pattern",
                "same",
                "--iters",
                "300",
                "--hold-us",
                "200",
            ],
        );
        assert!(out.success(), "{}", out.failure_message());
        assert!(
            u(&json, "violations") > 0,
            "osc {osc}: the checker saw no violation without a lock: {json}"
        );
        assert_eq!(json["ok"], Value::Bool(false), "{json}");
    }
}

/// try_lock and lock_timeout giving up under contention strand nobody: every rank still
/// finishes, and the abandoned requests' wake-ups are all accounted for.
#[test]
fn give_up_paths_strand_no_one() {
    for osc in OSC_COMPONENTS {
        let (out, json) = check_lock(
            4,
            osc,
            &[
                "--pattern",
                "same",
                "--mode",
                "mixed",
                "--iters",
                "150",
                "--try-percent",
                "50",
                "--timeout-us",
                "50",
                "--hold-us",
                "200",
            ],
        );
        assert!(out.success(), "{}", out.failure_message());
        assert_eq!(u(&json, "violations"), 0, "{json}");
        assert_eq!(u(&json, "leftover_messages"), 0, "{json}");
        assert_eq!(u(&json, "max_bypass"), 0, "{json}");
        assert!(u(&json, "abandoned") > 0, "no request gave up: {json}");
    }
}

/// The home rank sits outside MPI for a second in the middle of the run: nothing deadlocks
/// and the check still passes (the latency effect is measured by scripts/check-lock.sh).
#[test]
fn busy_home_rank_does_not_deadlock() {
    for osc in OSC_COMPONENTS {
        let (out, json) = check_lock(
            4,
            osc,
            &[
                "--pattern",
                "same",
                "--iters",
                "100",
                "--busy-home-ms",
                "1000",
            ],
        );
        assert!(out.success(), "{}", out.failure_message());
        assert_eq!(u(&json, "violations"), 0, "{json}");
        assert_eq!(u(&json, "leftover_messages"), 0, "{json}");
        assert_eq!(json["busy_home_ms"], 1000, "{json}");
    }
}

/// The table can live on any rank.
#[test]
fn table_on_another_home_rank() {
    let (out, json) = check_lock(3, "pt2pt", &["--home", "2", "--iters", "100"]);
    assert!(out.success(), "{}", out.failure_message());
    assert_eq!(u(&json, "violations"), 0, "{json}");
    assert_eq!(json["home"], 2, "{json}");
}

/// A home rank outside the communicator is one clear error line and a failing exit, not a
/// hang.
#[test]
fn bad_home_rank_is_one_line_error() {
    let out = common::brlock(2)
        .args(["check", "lock", "--home", "7"])
        .timeout(Duration::from_secs(60))
        .run();
    assert!(!out.timed_out, "{}", out.describe());
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("brlock: error:") && out.stderr.contains("home rank 7"),
        "{}",
        out.describe()
    );
}

/// The kernel's fcntl locks through the same checker, at 4 ranks on one lock file: POSIX
/// record locks (`--backend fcntl`) and open-file-description locks (`--backend ofd`), full
/// and partial overlaps, mixed modes, and a run that also takes the try-lock and polling
/// timeout paths. Mutual exclusion must hold; the bypass bound is not asked of fcntl.
///
/// Also under `osc pt2pt`, where the checker's stamps need its home (rank 0) to make MPI
/// progress: before rank 0 waited for fcntl locks with `lock_progressing`, it sat in
/// `F_SETLKW` while the holder it waited for could not finish stamping, and the same-range
/// runs hung until the launcher's timeout.
#[test]
fn fcntl_and_ofd_4_ranks_mixed_modes_no_violations() {
    for (backend, osc) in [
        ("fcntl", "sm"),
        ("ofd", "sm"),
        ("fcntl", "pt2pt"),
        ("ofd", "pt2pt"),
    ] {
        for (pattern, extra) in [
            ("same", &[][..]),
            ("random", &[][..]),
            ("same", &["--try-percent", "50", "--timeout-us", "50"][..]),
        ] {
            let mut args = vec![
                "--backend",
                backend,
                "--pattern",
                pattern,
                "--mode",
                "mixed",
                "--iters",
                "100",
            ];
            args.extend_from_slice(extra);
            let (out, json) = check_lock(4, osc, &args);
            let what = format!("backend {backend}, osc {osc}, {pattern}/mixed {extra:?}");
            assert!(out.success(), "{what}: {}", out.failure_message());
            assert_eq!(u(&json, "violations"), 0, "{what}: {json}");
            assert_eq!(u(&json, "acquisitions"), 400, "{what}: {json}");
            assert_eq!(json["backend"], backend, "{what}: {json}");
            assert!(json["lock_file"].is_string(), "{what}: {json}");
            assert_eq!(json["ok"], Value::Bool(true), "{what}: {json}");
        }
    }
}

/// A `--file` in a directory that does not exist: one `brlock: error:` line naming the path,
/// a failing exit, and no hang (rank 0 fails to open it, the others must not wait for it).
#[test]
fn fcntl_lock_file_in_missing_directory_is_one_line_error() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let missing = std::env::temp_dir()
        .join(format!(
            "brlock-missing-{}-{nanos}/no-such-dir",
            std::process::id()
        ))
        .join("lock");
    let missing = missing.to_str().expect("a UTF-8 temporary path");
    for backend in ["fcntl", "ofd"] {
        let out = common::brlock(4)
            .args(["check", "lock", "--backend", backend, "--file", missing])
            .args(["--iters", "10"])
            .timeout(Duration::from_secs(60))
            .run();
        assert!(!out.timed_out, "{}", out.describe());
        assert!(!out.success(), "{}", out.describe());
        let errors: Vec<&str> = out
            .stderr_by_rank
            .iter()
            .flat_map(|s| s.lines())
            .filter(|l| l.contains("brlock: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", out.describe());
        assert!(
            errors[0].contains(missing) && errors[0].contains("No such file or directory"),
            "{}",
            out.describe()
        );
    }
}

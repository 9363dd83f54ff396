//! `brlock demo` (the README's run command) under `mpirun`: its integrity check passes with
//! the lock, and fails without it (the check can see lost updates).

mod common;

use std::time::Duration;

fn demo(extra: &[&str]) -> common::RunOutput {
    common::brlock(4)
        .args(["demo"])
        .args(extra.iter().copied())
        .timeout(Duration::from_secs(120))
        .run()
}

#[test]
fn demo_integrity_check_passes_with_the_lock() {
    let out = demo(&[]);
    assert!(out.success(), "{}", out.failure_message());
    let rank0 = out.rank_lines(0).join("\n");
    assert!(
        rank0.contains("integrity check:") && rank0.contains(": OK"),
        "{}",
        out.describe()
    );
}

#[test]
fn demo_without_the_lock_loses_updates() {
    let out = demo(&["--no-lock", "--rounds", "400"]);
    assert!(!out.timed_out, "{}", out.describe());
    assert!(
        !out.success(),
        "the unlocked demo passed: {}",
        out.describe()
    );
    let rank0 = out.rank_lines(0).join("\n");
    assert!(
        rank0.contains("FAILED") && rank0.contains("increments lost"),
        "{}",
        out.describe()
    );
}

#[test]
fn demo_in_a_missing_directory_is_one_line_error() {
    let dir = std::env::temp_dir().join(format!("brlock-no-such-dir-{}", std::process::id()));
    let out = demo(&["--dir", dir.to_str().expect("utf-8 temp path")]);
    assert!(!out.timed_out, "{}", out.describe());
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("brlock: error:") && out.stderr.contains("not a directory"),
        "{}",
        out.describe()
    );
}

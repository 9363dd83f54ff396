//! The MPI window layer (`brlock::sys`) end to end, through `brlock check rma` and
//! `brlock info` under `mpirun`.
//!
//! Tests whose names contain `two_ranks` run under any launcher, MPICH included
//! (`BRLOCK_MPIRUN=mpirun.mpich cargo test --test window two_ranks`); the `osc_*` tests select
//! an Open MPI one-sided component and are skipped under MPICH.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{launcher_is_mpich, RunOutput};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Checks MPICH 4.0.2 is known to fail: it orders `MPI_UINT64_T` as signed in MAX/MIN.
const KNOWN_MPICH_FAILURES: &[&str] = &["unsigned_minmax"];

fn check_rma(ranks: usize, osc: Option<&str>, extra: &[&str]) -> (RunOutput, Value) {
    let mut job = common::brlock(ranks)
        .args(["check", "rma", "--json"])
        .args(extra.iter().copied())
        .timeout(TIMEOUT);
    if let Some(osc) = osc {
        job = job.osc(osc);
    }
    let out = job.run();
    let json = out.rank0_json();
    (out, json)
}

/// The `checks` object as (name, ok) pairs; panics if it is missing or malformed.
fn checks(json: &Value, out: &RunOutput) -> Vec<(String, bool)> {
    let map = json["checks"]
        .as_object()
        .unwrap_or_else(|| panic!("no `checks` object in {json}\n{}", out.describe()));
    assert!(!map.is_empty(), "no checks ran: {json}");
    map.iter()
        .map(|(name, ok)| {
            let ok = ok
                .as_bool()
                .unwrap_or_else(|| panic!("check {name} is not a bool in {json}"));
            (name.clone(), ok)
        })
        .collect()
}

/// Every check passed, `ok` says so, the exit status agrees, and no update was lost.
fn assert_all_pass(out: &RunOutput, json: &Value, ranks: usize) {
    for (name, ok) in checks(json, out) {
        assert!(ok, "check {name} failed: {json}\n{}", out.describe());
    }
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["ranks"], ranks, "{json}");
    assert_eq!(json["lost_updates"], 0, "{json}");
    assert_eq!(json["unsafe_rmw"], false, "{json}");
    assert!(out.success(), "{}", out.failure_message());
    for r in 1..ranks {
        assert!(
            out.rank_lines(r).is_empty(),
            "rank {r} printed on stdout:\n{}",
            out.describe()
        );
    }
}

/// The negative control: separate get and put epochs lose updates, which is reported but is
/// not a failure.
fn assert_loses_updates(out: &RunOutput, json: &Value) {
    assert_eq!(json["unsafe_rmw"], true, "{json}");
    let lost = json["lost_updates"].as_i64().unwrap_or(0);
    assert!(
        lost > 0,
        "the racy read-modify-write lost no update, so the check cannot tell: {json}\n{}",
        out.describe()
    );
    let names: Vec<String> = checks(json, out).into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.iter().any(|n| n == "rmw"),
        "the racy variant must not count as a check: {json}"
    );
}

fn skip_under_mpich(test: &str) -> bool {
    if launcher_is_mpich() {
        eprintln!("note: {test} selects an Open MPI osc component; skipped under MPICH");
        return true;
    }
    false
}

fn osc_check_rma_passes(osc: &str, ranks: usize) {
    if skip_under_mpich(&format!("osc {osc} at {ranks} ranks")) {
        return;
    }
    let (out, json) = check_rma(ranks, Some(osc), &[]);
    assert_eq!(json["osc"], osc, "{json}");
    assert_all_pass(&out, &json, ranks);
}

fn osc_unsafe_rmw_loses_updates(osc: &str) {
    if skip_under_mpich(&format!("osc {osc} negative control")) {
        return;
    }
    let (out, json) = check_rma(2, Some(osc), &["--unsafe-rmw", "--iters", "2000"]);
    assert_loses_updates(&out, &json);
    assert_eq!(json["ok"], true, "the other checks must pass: {json}");
    assert!(out.success(), "{}", out.failure_message());
}

#[test]
fn osc_sm_check_rma_passes_at_2_ranks() {
    osc_check_rma_passes("sm", 2);
}

#[test]
fn osc_sm_check_rma_passes_at_4_ranks() {
    osc_check_rma_passes("sm", 4);
}

#[test]
fn osc_pt2pt_check_rma_passes_at_2_ranks() {
    osc_check_rma_passes("pt2pt", 2);
}

#[test]
fn osc_pt2pt_check_rma_passes_at_4_ranks() {
    osc_check_rma_passes("pt2pt", 4);
}

#[test]
fn osc_sm_unsafe_rmw_loses_updates() {
    osc_unsafe_rmw_loses_updates("sm");
}

#[test]
fn osc_pt2pt_unsafe_rmw_loses_updates() {
    osc_unsafe_rmw_loses_updates("pt2pt");
}

/// Under the launcher's default one-sided implementation (Open MPI's, or MPICH's).
#[test]
fn two_ranks_check_rma() {
    let (out, json) = check_rma(2, None, &[]);
    if !launcher_is_mpich() {
        assert_all_pass(&out, &json, 2);
        return;
    }
    let mut all = true;
    for (name, ok) in checks(&json, &out) {
        if !ok && KNOWN_MPICH_FAILURES.contains(&name.as_str()) {
            eprintln!("note: known MPICH defect: check {name} failed");
        } else {
            assert!(ok, "check {name} failed: {json}\n{}", out.describe());
        }
        all &= ok;
    }
    assert_eq!(json["ok"], all, "{json}");
    assert_eq!(out.success(), all, "exit status disagrees with ok: {json}");
    assert_eq!(json["lost_updates"], 0, "{json}");
}

#[test]
fn two_ranks_unsafe_rmw_loses_updates() {
    let (out, json) = check_rma(2, None, &["--unsafe-rmw", "--iters", "2000"]);
    assert_loses_updates(&out, &json);
}

fn info(ranks: usize) -> (RunOutput, Value) {
    let out = common::brlock(ranks)
        .args(["info", "--json"])
        .timeout(TIMEOUT)
        .run_ok();
    let json = out.rank0_json();
    for r in 1..ranks {
        assert!(
            out.rank_lines(r).is_empty(),
            "rank {r} printed on stdout:\n{}",
            out.describe()
        );
    }
    (out, json)
}

fn assert_info_keys(json: &Value, ranks: usize) {
    assert_eq!(json["ranks"], ranks, "{json}");
    assert!(
        json["mpi_library"].as_str().is_some_and(|s| !s.is_empty()),
        "{json}"
    );
    let version = json["mpi_version"].as_str().unwrap_or_default();
    assert!(
        version.split('.').count() == 2 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "mpi_version should look like \"3.1\": {json}"
    );
    assert!(
        json["thread_level"]
            .as_str()
            .is_some_and(|s| s.starts_with("MPI_THREAD_")),
        "{json}"
    );
    for key in ["osc", "launcher_detected"] {
        assert!(json.get(key).is_some(), "missing key {key}: {json}");
    }
}

#[test]
fn info_json_at_4_ranks() {
    let (_, json) = info(4);
    assert_info_keys(&json, 4);
    assert!(json["launcher_detected"].is_string(), "{json}");
}

#[test]
fn two_ranks_info_json() {
    let (_, json) = info(2);
    assert_info_keys(&json, 2);
}

/// Runs the binary directly (no launcher) with a timeout; returns (exit code, stdout, stderr).
fn run_direct(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brlock"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brlock");
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for brlock") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`brlock {}` without mpirun hung for {limit:?}",
                    args.join(" ")
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    (status.code(), stdout, stderr)
}

/// Started without a launcher, `brlock` is a one-rank MPI job (a singleton).
#[test]
fn singleton_info_without_mpirun() {
    let (code, stdout, stderr) = run_direct(&["info", "--json"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_info_keys(&json, 1);
    assert_eq!(json["launcher_detected"], Value::Null, "{json}");
}

#[test]
fn bad_arguments_print_one_error_line() {
    for args in [
        &["check", "rma", "--iters", "0"][..],
        &["check", "rma", "--iters", "many"],
        &["info", "--bogus"],
        &["frobnicate"],
    ] {
        let (code, stdout, stderr) = run_direct(args, Duration::from_secs(30));
        assert_eq!(code, Some(2), "brlock {args:?}: stderr: {stderr}");
        assert!(stdout.is_empty(), "brlock {args:?}: stdout: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "brlock {args:?}: stderr: {stderr}");
        assert!(
            lines[0].starts_with("brlock: error: "),
            "brlock {args:?}: stderr: {stderr}"
        );
    }
}

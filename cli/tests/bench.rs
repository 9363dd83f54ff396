//! `brlock bench lock` under `mpirun`: every backend reports its keys with the exclusion
//! checker clean, and bad input is one error line, a failing exit and no hang.
//!
//! Sizes are small and nothing here asserts a time: these runs check the report, not the
//! machine. Measurements are made with release builds (see the README).

mod common;

use std::time::Duration;

use brlock::check::TempDir;
use common::RunOutput;
use serde_json::Value;

const LATENCY_KEYS: &[&str] = &["p50", "p90", "p99", "max", "mean"];

fn bench_lock(ranks: usize, osc: &str, args: &[&str]) -> RunOutput {
    common::brlock(ranks)
        .osc(osc)
        .args(["bench", "lock"])
        .args(args.iter().copied())
        .timeout(Duration::from_secs(120))
        .run()
}

fn num(json: &Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no numeric `{key}` in {json}"))
}

/// A path in a directory that does not exist.
fn missing_path() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir()
        .join(format!(
            "brlock-bench-missing-{}-{nanos}/no-such-dir",
            std::process::id()
        ))
        .join("lock")
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string()
}

/// A fresh directory under the temporary directory, removed on drop.
struct Scratch(TempDir);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(TempDir::create(&format!("brlock-bench-{name}")).expect("a scratch directory"))
    }

    fn file(&self, name: &str) -> String {
        self.0
            .path()
            .join(name)
            .to_str()
            .expect("a UTF-8 temporary path")
            .to_string()
    }
}

/// The keys every report carries, with the values a clean run must have.
fn assert_report(json: &Value, backend: &str, pattern: &str, ranks: u64, iters: u64) {
    assert_eq!(json["bench"], "lock", "{json}");
    assert_eq!(json["backend"], backend, "{json}");
    assert_eq!(json["pattern"], pattern, "{json}");
    assert_eq!(json["mode"], "exclusive", "{json}");
    assert_eq!(json["ranks"], ranks, "{json}");
    assert_eq!(json["iters"], iters, "{json}");
    assert_eq!(json["hold_us"], 0, "{json}");
    assert_eq!(json["operations"], ranks * iters, "{json}");
    assert_eq!(json["violations"], 0, "{json}");
    assert_eq!(json["ok"], true, "{json}");
    for object in ["lock_unlock_us", "raw_epoch_pair"] {
        for k in LATENCY_KEYS {
            assert!(json[object][k].is_number(), "no {object}.{k} in {json}");
        }
    }
    assert!(num(json, "raw_epoch_pair_us") > 0.0, "{json}");
    assert_eq!(
        json["raw_epoch_pair_us"], json["raw_epoch_pair"]["mean"],
        "{json}"
    );
    assert!(num(json, "ops_per_s") > 0.0, "{json}");
    assert!(num(json, "seconds") > 0.0, "{json}");
    assert!(
        json["lock_unlock_us"]["mean"].as_f64() > Some(0.0),
        "{json}"
    );
    assert!(num(json, "cores") >= 1.0, "{json}");
    assert!(json["mpi_library"].is_string(), "{json}");
    for k in ["file", "alt_file", "fs_type", "osc", "host"] {
        assert!(json.get(k).is_some(), "no `{k}` in {json}");
    }
    // The hand-off floor is measured under one contended range only, for every backend.
    if pattern == "same" {
        for k in LATENCY_KEYS {
            assert!(
                json["handoff_floor"][k].is_number(),
                "no handoff_floor.{k} in {json}"
            );
        }
    } else {
        assert!(json["handoff_floor"].is_null(), "{json}");
    }
    if backend == "rma" {
        assert!(num(json, "ratio_to_raw") > 0.0, "{json}");
        assert_eq!(json["leftover_messages"], 0, "{json}");
        assert_eq!(
            json["ratio_to_handoff_floor"].is_number(),
            pattern == "same",
            "{json}"
        );
    } else {
        assert!(json["ratio_to_raw"].is_null(), "{json}");
        assert!(json["file"].is_string(), "{json}");
        assert!(json["fs_type"].is_string(), "{json}");
    }
}

/// Every backend, uncontended and contended, at 2 ranks: the report has its keys and the
/// checker saw no violation.
#[test]
fn every_backend_reports_its_keys_at_2_ranks() {
    for backend in ["rma", "fcntl", "ofd"] {
        for pattern in ["disjoint", "same"] {
            let out = bench_lock(
                2,
                "sm",
                &[
                    "--json",
                    "--backend",
                    backend,
                    "--pattern",
                    pattern,
                    "--iters",
                    "200",
                    "--warmup",
                    "20",
                ],
            );
            assert!(
                out.success(),
                "{backend}/{pattern}: {}",
                out.failure_message()
            );
            let json = out.rank0_json();
            assert_report(&json, backend, pattern, 2, 200);
            assert_eq!(json["osc"], "sm", "{json}");
        }
    }
}

/// Under `osc pt2pt` (the home rank must enter MPI for others' epochs to progress) the
/// one-sided service reports too.
#[test]
fn rma_under_pt2pt_reports_its_keys() {
    let out = bench_lock(
        2,
        "pt2pt",
        &["--json", "--pattern", "same", "--iters", "100"],
    );
    assert!(out.success(), "{}", out.failure_message());
    assert_report(&out.rank0_json(), "rma", "same", 2, 100);
}

/// `--file` and `--alt-file` are recorded (absolute), with the file system type of `--file`;
/// odd ranks lock through the alternative path, here the same file by a second name.
#[test]
fn files_and_file_system_are_recorded() {
    let dir = Scratch::new("files");
    let file = dir.file("lock");
    let link = dir.file("link");
    std::fs::write(&file, b"").expect("create the lock file");
    std::os::unix::fs::symlink(&file, &link).expect("a second name for the lock file");
    for backend in ["ofd", "rma"] {
        let out = bench_lock(
            2,
            "sm",
            &[
                "--json",
                "--backend",
                backend,
                "--pattern",
                "same",
                "--iters",
                "100",
                "--file",
                &file,
                "--alt-file",
                &link,
            ],
        );
        assert!(out.success(), "{backend}: {}", out.failure_message());
        let json = out.rank0_json();
        assert_report(&json, backend, "same", 2, 100);
        assert_eq!(json["file"], file.as_str(), "{json}");
        assert_eq!(json["alt_file"], link.as_str(), "{json}");
        assert!(
            json["fs_type"].as_str().is_some_and(|s| !s.is_empty()),
            "{json}"
        );
    }
}

/// The human summary is one line on rank 0 and nothing on the others.
#[test]
fn text_summary_is_one_line_on_rank_0() {
    let out = bench_lock(2, "sm", &["--iters", "50"]);
    assert!(out.success(), "{}", out.failure_message());
    let lines = out.rank_lines(0);
    assert_eq!(lines.len(), 1, "{}", out.describe());
    assert!(
        lines[0].starts_with("bench lock:") && lines[0].ends_with("OK"),
        "{}",
        out.describe()
    );
    assert!(out.rank_lines(1).is_empty(), "{}", out.describe());
}

/// The `brlock: error:` lines of a job.
fn error_lines(out: &RunOutput) -> Vec<&str> {
    out.stderr_by_rank
        .iter()
        .flat_map(|s| s.lines())
        .chain(out.untagged.iter().map(String::as_str))
        .filter(|l| l.contains("brlock: error:"))
        .collect()
}

/// One error line containing every one of `needles`, a failing exit, no hang.
fn assert_one_line_error(out: &RunOutput, needles: &[&str]) {
    assert!(!out.timed_out, "{}", out.describe());
    assert!(!out.success(), "{}", out.describe());
    let errors = error_lines(out);
    assert_eq!(errors.len(), 1, "{}", out.describe());
    for n in needles {
        assert!(errors[0].contains(n), "no `{n}` in: {}", out.describe());
    }
}

/// A `--file` in a directory that does not exist (what a path on an unmounted file system
/// is): one line naming the path, for every backend and for the alternative path too.
#[test]
fn missing_directory_is_one_line_error() {
    let missing = missing_path();
    for backend in ["fcntl", "ofd", "rma"] {
        let out = bench_lock(
            4,
            "sm",
            &["--backend", backend, "--file", &missing, "--iters", "10"],
        );
        assert_one_line_error(&out, &[&missing, "No such file or directory"]);
    }
    let dir = Scratch::new("alt");
    let good = dir.file("lock");
    let out = bench_lock(
        4,
        "sm",
        &[
            "--backend",
            "fcntl",
            "--file",
            &good,
            "--alt-file",
            &missing,
            "--iters",
            "10",
        ],
    );
    assert_one_line_error(&out, &[&missing, "No such file or directory"]);
}

/// A lock file that cannot be opened for writing (here: a directory).
#[test]
fn unusable_lock_file_is_one_line_error() {
    let dir = Scratch::new("dir");
    let path = dir.file("");
    let out = bench_lock(
        2,
        "sm",
        &["--backend", "fcntl", "--file", &path, "--iters", "10"],
    );
    assert_one_line_error(&out, &["Is a directory"]);
}

/// Unknown backends and inconsistent options are refused by the parser: one line per job.
#[test]
fn usage_errors_are_one_line() {
    let out = bench_lock(2, "sm", &["--backend", "none"]);
    assert_one_line_error(&out, &["'none'", "--backend"]);
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        out.describe()
    );
    let out = bench_lock(2, "sm", &["--alt-file", "/tmp/x"]);
    assert_one_line_error(&out, &["--file"]);
    let out = bench_lock(2, "sm", &["--home", "5"]);
    assert_one_line_error(&out, &["home rank 5"]);
}

//! Shared-file appends under `mpirun`: `brlock collect` with the deterministic line generator
//! the test program `tests/programs/emit_lines.rs`, checked by a verifier that regenerates
//! every line (`brlock::io::append::records`), and `brlock bench append`.
//!
//! Negative controls: appends without the reservation (`--unsafe-no-reserve`) must make the
//! verifier fail, in `collect` and in the bench. Sizes are CI-sized (4 ranks, a few thousand
//! lines); nothing here asserts a time.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brlock::io::append::records::{verify, verify_index, Expected, Verdict};
use common::{RunOutput, OSC_COMPONENTS};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

const RANKS: usize = 4;

/// The test program `tests/programs/emit_lines.rs`, up to date.
fn emit_lines() -> PathBuf {
    common::example(env!("CARGO_MANIFEST_DIR"), "emit_lines")
}

fn tmp_dir(name: &str) -> PathBuf {
    common::fresh_dir(&std::env::temp_dir(), &format!("brlock-append-{name}"))
}

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

/// Reads a file after dropping its cached pages (a GlusterFS client may hold stale ones).
fn read_fresh(path: &Path) -> Vec<u8> {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).expect("posix_fadvise");
    let mut data = Vec::new();
    f.read_to_end(&mut data)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    data
}

/// `brlock collect [extra] -- emit_lines --lines N [gen]` on `ranks` ranks.
fn collect(ranks: usize, osc: &str, extra: &[String], lines: u64, gen: &[&str]) -> RunOutput {
    common::brlock(ranks)
        .osc(osc)
        .arg("collect")
        .args(extra.iter().cloned())
        .arg("--")
        .arg(s(&emit_lines()))
        .args(["--lines".to_string(), lines.to_string()])
        .args(gen.iter().copied())
        .timeout(Duration::from_secs(120))
        .run()
}

fn check(out: &Path, expected: &Expected, ordered: bool, run: &RunOutput) -> Verdict {
    let v = verify(&read_fresh(out), expected, ordered);
    assert!(v.ok(), "{}: {v:?}\n{}", out.display(), run.describe());
    v
}

fn check_index(out: &Path, index: &Path, expected: &Expected, run: &RunOutput) {
    let v = verify_index(&read_fresh(out), &read_fresh(index), expected);
    assert!(v.ok(), "{}: {v:?}\n{}", index.display(), run.describe());
    assert_eq!(v.entries, expected.records());
}

/// 4 ranks x `lines` lines under each one-sided component, checked line by line and through
/// the index (and against the `--json` summary when asked for).
fn collect_checked(name: &str, extra: &[&str], lines: u64, seed: u64, ordered: bool) {
    for osc in OSC_COMPONENTS {
        let dir = tmp_dir(&format!("{name}-{osc}"));
        let (out, index) = (dir.join("out.txt"), dir.join("out.idx"));
        let mut args = vec!["--out".into(), s(&out), "--index".into(), s(&index)];
        args.extend(extra.iter().map(|a| a.to_string()));
        let seed_arg = seed.to_string();
        let run = collect(RANKS, osc, &args, lines, &["--seed", &seed_arg]);
        assert!(run.success(), "{}", run.failure_message());
        let expected = Expected::uniform(seed, RANKS as u32, lines);
        let v = check(&out, &expected, ordered, &run);
        check_index(&out, &index, &expected, &run);
        if extra.contains(&"--json") {
            let json = run.rank0_json();
            assert_eq!(json["lines"], expected.records(), "{json}");
            assert_eq!(json["bytes"], v.bytes, "{json}");
            assert_eq!(json["file_end"], v.bytes, "{json}");
        }
    }
}

#[test]
fn collect_every_line_once_and_intact_with_index() {
    collect_checked("plain", &[], 2000, 1, false);
}

#[test]
fn collect_ordered_is_in_rank_order() {
    collect_checked("ordered", &["--ordered", "--json"], 1000, 5, true);
}

/// Negative control: without the reservation, ranks write over each other's records, and the
/// verifier sees it (and does not see it in the same run with the reservation, above).
#[test]
fn collect_without_reservation_is_caught_by_the_verifier() {
    let dir = tmp_dir("no-reserve");
    let out = dir.join("out.txt");
    let run = collect(
        RANKS,
        "sm",
        &[
            "--unsafe-no-reserve".into(),
            "--batch-bytes".into(),
            "1".into(),
            "--out".into(),
            s(&out),
        ],
        2000,
        &[],
    );
    assert!(run.success(), "{}", run.failure_message());
    let v = verify(
        &read_fresh(&out),
        &Expected::uniform(1, RANKS as u32, 2000),
        false,
    );
    assert!(!v.ok(), "racy appends went unnoticed: {v:?}");
    assert!(v.missing > 0, "{v:?}");
}

/// The output file through two GlusterFS clients: even ranks write through mount a, odd ranks
/// through mount b; the result is read back through both.
#[test]
fn collect_on_glusterfs_through_two_clients() {
    let (a, b) = common::gluster_mounts();
    for ordered in [false, true] {
        let dir_a = common::fresh_dir(&a, "brlock-append-collect");
        let dir_b = b.join(dir_a.file_name().expect("a directory name"));
        let name = |d: &Path, f: &str| s(&d.join(f));
        let mut extra = vec![
            "--out".into(),
            name(&dir_a, "out.txt"),
            "--alt-out".into(),
            name(&dir_b, "out.txt"),
            "--index".into(),
            name(&dir_a, "out.idx"),
            "--alt-index".into(),
            name(&dir_b, "out.idx"),
        ];
        if ordered {
            extra.push("--ordered".into());
        }
        let run = collect(RANKS, "sm", &extra, 1000, &[]);
        assert!(run.success(), "{}", run.failure_message());
        let expected = Expected::uniform(1, RANKS as u32, 1000);
        for dir in [&dir_a, &dir_b] {
            check(&dir.join("out.txt"), &expected, ordered, &run);
            check_index(&dir.join("out.txt"), &dir.join("out.idx"), &expected, &run);
        }
        let _ = std::fs::remove_dir_all(&dir_a);
    }
}

/// A rank whose command fails: the exit status is non-zero, rank 0's one line names the rank,
/// and every other rank's output (and the failing rank's output before it failed) is intact.
#[test]
fn collect_failing_rank_is_named_and_the_rest_is_intact() {
    for ordered in [false, true] {
        let dir = tmp_dir("failing");
        let out = dir.join("out.txt");
        let mut extra = vec!["--out".into(), s(&out)];
        if ordered {
            extra.push("--ordered".into());
        }
        let run = collect(RANKS, "sm", &extra, 1000, &["--fail-rank", "2"]);
        assert!(!run.timed_out, "{}", run.describe());
        assert!(
            !run.success(),
            "a failed command went unreported: {}",
            run.describe()
        );
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("brlock: error: collect:"))
            .unwrap_or_else(|| panic!("no error line\n{}", run.describe()));
        assert!(
            line.contains("1 of 4 ranks failed (rank 2: ") && line.contains("status 3"),
            "{line}"
        );
        assert!(
            run.stderr
                .contains("[rank 2] emit_lines: rank 2 fails on purpose"),
            "the command's stderr is not passed through with the rank: {}",
            run.describe()
        );
        let mut expected = Expected::uniform(1, RANKS as u32, 1000);
        expected.per_rank[2] = 500;
        check(&out, &expected, ordered, &run);
    }
}

/// A command that cannot start and one killed by a signal are named as such; a last line
/// without newline gets one; `{rank}` and BRLOCK_RANK/BRLOCK_SIZE reach the command.
#[test]
fn collect_names_unstartable_and_killed_commands() {
    let dir = tmp_dir("kinds");
    let out = dir.join("out.txt");
    let script = "case $BRLOCK_RANK in \
                  1) exec /no/such/program ;; \
                  2) kill -9 $$ ;; \
                  *) printf 'arg %s env %s/%s\\nlast' \"$0\" \"$BRLOCK_RANK\" \"$BRLOCK_SIZE\" ;; \
                  esac";
    let run = common::brlock(3)
        .args(["collect", "--ordered", "--out", &s(&out), "--"])
        .args(["sh", "-c", script, "r{rank}"])
        .timeout(Duration::from_secs(60))
        .run();
    assert!(!run.timed_out && !run.success(), "{}", run.describe());
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("brlock: error: collect:"))
        .unwrap_or_else(|| panic!("no error line\n{}", run.describe()));
    assert!(
        line.contains("2 of 3 ranks failed")
            && line.contains("rank 1: `sh` exited with status 127")
            && line.contains("rank 2: `sh` killed by signal 9"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read the output"),
        "arg r0 env 0/3\nlast\n"
    );

    let run = common::brlock(2)
        .args(["collect", "--out", &s(&dir.join("none.txt")), "--"])
        .arg("/no/such/program")
        .timeout(Duration::from_secs(60))
        .run();
    assert!(!run.timed_out && !run.success(), "{}", run.describe());
    assert!(
        run.stderr
            .contains("could not start: No such file or directory"),
        "{}",
        run.describe()
    );
}

fn bench_append(ranks: usize, args: &[String]) -> RunOutput {
    common::brlock(ranks)
        .osc("sm")
        .args(["bench", "append", "--json"])
        .args(args.iter().cloned())
        .timeout(Duration::from_secs(120))
        .run()
}

#[test]
fn bench_append_every_method_verifies() {
    let dir = tmp_dir("bench");
    for (method, files) in [("rma", 1), ("flock", 1), ("files", 4 * 300)] {
        let run = bench_append(
            RANKS,
            &[
                "--method".into(),
                method.into(),
                "--records".into(),
                "300".into(),
                "--dir".into(),
                s(&dir),
            ],
        );
        assert!(run.success(), "{}", run.failure_message());
        let json = run.rank0_json();
        assert_eq!(json["method"], method, "{json}");
        assert_eq!(json["verified"], true, "{json}");
        assert_eq!(json["records"], 4 * 300, "{json}");
        assert_eq!(json["files_created"], files, "{json}");
        assert!(json["seconds"].as_f64().is_some_and(|t| t > 0.0), "{json}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).expect("list").count(),
        0,
        "the bench left files behind"
    );
}

/// Negative control of the bench's check.
#[test]
fn bench_append_without_reservation_fails_its_check() {
    let dir = tmp_dir("bench-neg");
    let run = bench_append(
        RANKS,
        &[
            "--unsafe-no-reserve".into(),
            "--records".into(),
            "2000".into(),
            "--batch-bytes".into(),
            "1".into(),
            "--dir".into(),
            s(&dir),
        ],
    );
    assert!(!run.timed_out, "{}", run.describe());
    assert!(!run.success(), "{}", run.describe());
    let json = run.rank0_json();
    assert_eq!(json["verified"], false, "{json}");
}

/// On GlusterFS: one-sided appends through two clients (even ranks through mount a, odd ranks
/// through mount b) verify. The flock baseline runs through one client only: through two, its
/// `O_APPEND` writes go where each client's cached file size says the end is, and records get
/// overwritten although every write holds the flock (observed here; the bench reports it as
/// `verified: false`, see docs/appends.md).
#[test]
fn bench_append_on_glusterfs() {
    let (a, b) = common::gluster_mounts();
    let dir_a = common::fresh_dir(&a, "brlock-append-bench");
    let dir_b = b.join(dir_a.file_name().expect("a directory name"));
    for (method, two_clients) in [("rma", true), ("flock", false)] {
        let mut args = vec![
            "--method".into(),
            method.into(),
            "--records".into(),
            "100".into(),
            "--dir".into(),
            s(&dir_a),
        ];
        if two_clients {
            args.extend(["--alt-dir".into(), s(&dir_b)]);
        }
        let run = bench_append(RANKS, &args);
        assert!(run.success(), "{}", run.failure_message());
        let json = run.rank0_json();
        assert_eq!(json["verified"], true, "{json}");
        assert_eq!(json["fs_type"], "fuse.glusterfs", "{json}");
    }
    let _ = std::fs::remove_dir_all(&dir_a);
}

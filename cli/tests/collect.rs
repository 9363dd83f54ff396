//! `brlock collect` as a task farm (issue 16): many tasks on few ranks, the index as the
//! checkpoint, resume and retry with exactly-once output, and the ways the old `collect` lost
//! data silently, each with a test.
//!
//! The tasks are the test program `tests/programs/emit_lines.rs --task-mode`: task `L` sleeps
//! 0 to `--max-ms` ms and prints records `(L, 0..n)`, `n` from 0 to 20, each 1 to 4096 bytes,
//! all functions of the seed and `L`, so the verifier regenerates every expected line.
//! `collect-cat` (no MPI) prints what the index vouches for.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use brlock::io::append::index::{Fnv, Index, Status, Stream, TaskState};
use brlock::io::append::records::{line, task_lines, verify, Expected};
use common::{nearly_full_disk, RunOutput};
use serde_json::Value;

fn emit_lines() -> PathBuf {
    common::example(env!("CARGO_MANIFEST_DIR"), "emit_lines")
}

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

fn local_dir(name: &str) -> PathBuf {
    common::fresh_dir(&std::env::temp_dir(), &format!("brlock-farm-{name}"))
}

/// `brlock collect --out OUT [extra] -- emit_lines --task-mode [gen]` on `ranks` ranks.
fn farm(ranks: usize, out: &Path, extra: &[&str], gen: &[&str]) -> common::MpiRun {
    common::brlock(ranks)
        .osc("sm")
        .args(["collect", "--out", &s(out)])
        .args(extra.iter().copied())
        .arg("--")
        .arg(s(&emit_lines()))
        .arg("--task-mode")
        .args(gen.iter().copied())
        .timeout(Duration::from_secs(600))
}

/// `brlock collect-cat OUT args` (needs no MPI): exit status and stdout.
fn cat(out: &Path, args: &[&str]) -> (i32, Vec<u8>, String) {
    let o = Command::new(common::binary())
        .arg("collect-cat")
        .arg(out)
        .args(args)
        .output()
        .expect("run collect-cat");
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn index_of(out: &Path) -> Index {
    let mut p = out.as_os_str().to_owned();
    p.push(".idx");
    Index::parse(&std::fs::read(PathBuf::from(p)).expect("read the index"))
}

fn json(run: &RunOutput) -> Value {
    run.rank0_json()
}

/// `collect-cat --by-task` is exactly tasks `first..=last`'s records, each once, in task order.
fn assert_exactly_once(out: &Path, first: u32, last: u32, max_lines: u64, what: &str) {
    let (code, data, err) = cat(out, &["--by-task"]);
    assert_eq!(code, 0, "{what}: collect-cat failed: {err}");
    let expected = Expected::tasks(1, first..=last, max_lines);
    let v = verify(&data, &expected, true);
    assert!(v.ok(), "{what}: {v:?}");
}

/// Every task of the index finished once successfully, with its status and timing.
fn assert_all_recorded(index: &Index, tasks: u64, what: &str) {
    for t in 0..tasks {
        assert_eq!(
            index.state(t),
            TaskState::Succeeded,
            "{what}: task index {t}"
        );
        let successes = index.attempts_of(t).filter(|(_, a)| a.succeeded()).count();
        assert_eq!(
            successes, 1,
            "{what}: task index {t} has {successes} successful attempts"
        );
        let (_, a) = index.chosen(t).expect("chosen");
        let d = a.done.as_ref().expect("done");
        assert!(
            d.start_ms > 1_700_000_000_000,
            "{what}: no start time: {d:?}"
        );
    }
}

/// Acceptance: 5,000 tasks of random duration and output on 8 ranks, local disk and
/// GlusterFS (ranks on two clients): every task's output exactly once and intact, the status
/// and timing of every task in the index.
#[test]
fn five_thousand_tasks_on_eight_ranks_local_and_gluster() {
    let (ga, gb) = common::gluster_dirs("farm-5000");
    let local = local_dir("5000");
    for (name, out, alt) in [
        ("local disk", local.join("out"), None),
        (
            "GlusterFS, two clients",
            ga.join("out"),
            Some(gb.join("out")),
        ),
    ] {
        let mut extra = vec!["--tasks", "1-5000", "--jobs", "2", "--json"];
        let alt_s;
        let alt_idx;
        if let Some(alt) = &alt {
            alt_s = s(alt);
            alt_idx = format!("{alt_s}.idx");
            extra.extend(["--alt-out", &alt_s, "--alt-index", &alt_idx]);
        }
        let run = farm(8, &out, &extra, &[]).run();
        assert!(run.success(), "{name}: {}", run.failure_message());
        let j = json(&run);
        assert_eq!(j["succeeded"], 5000, "{name}: {j}");
        assert_exactly_once(&out, 1, 5000, 20, name);
        let index = index_of(&out);
        assert_all_recorded(&index, 5000, name);
        assert_eq!(index.damaged, 0, "{name}");
    }
}

/// Acceptance: kill the whole job (SIGKILL to mpirun) at five moments, each followed by
/// `--resume`: at the end every task has exactly one committed successful attempt and
/// `collect-cat` shows every task's output once. No task outlives the killed job. Negative
/// control: the raw output file, read without the index, holds the killed attempts' output
/// too, and the verifier sees it.
#[test]
fn killed_five_times_and_resumed_exactly_once() {
    let dir = local_dir("kill");
    let out = dir.join("out");
    let gen = ["--max-ms", "30"];
    let tasks = ["--tasks", "1-1500", "--jobs", "2"];
    for (i, after) in [2.1, 3.3, 1.7, 2.9, 3.8].into_iter().enumerate() {
        let mut extra = tasks.to_vec();
        if i > 0 {
            extra.push("--resume");
        }
        let run = farm(8, &out, &extra, &gen)
            .signal_after(Duration::from_secs_f64(after), "KILL")
            .run();
        assert!(!run.timed_out, "kill {i}: {}", run.describe());
        assert!(
            run.survivors.is_empty(),
            "kill {i}: processes outlived the killed job: {:?}\n{}",
            run.survivors,
            run.describe()
        );
    }
    let run = farm(
        8,
        &out,
        &[&tasks[..], &["--resume", "--json"]].concat(),
        &gen,
    )
    .run();
    assert!(run.success(), "{}", run.failure_message());
    let index = index_of(&out);
    assert_all_recorded(&index, 1500, "after five kills");
    assert_exactly_once(&out, 1, 1500, 20, "after five kills");
    // The negative control: without the index the file is not exactly-once.
    let raw = std::fs::read(&out).expect("read the output");
    let v = verify(&raw, &Expected::tasks(1, 1..=1500, 20), true);
    assert!(
        !v.ok(),
        "the raw file verified although five runs were killed: the check would not see loss"
    );
}

/// Acceptance: tasks that fail on purpose (about 10%) are recorded with their status;
/// `--retries 2` runs them again (and they pass on their second attempt); without retries
/// `--resume-failed` runs only them again.
#[test]
fn failing_tasks_are_recorded_retried_and_resumed() {
    let gen = [
        "--max-ms",
        "5",
        "--fail-percent",
        "10",
        "--fail-attempts",
        "1",
    ];
    let dir = local_dir("fail");
    // With retries: everything succeeds, the failing tasks on attempt 2.
    let out = dir.join("retried");
    let run = farm(
        4,
        &out,
        &["--tasks", "1-300", "--retries", "2", "--json"],
        &gen,
    )
    .run();
    assert!(run.success(), "{}", run.failure_message());
    let j = json(&run);
    let retried = j["retried"].as_u64().expect("retried");
    assert!(retried > 10, "about 30 tasks should have failed once: {j}");
    let index = index_of(&out);
    assert_all_recorded(&index, 300, "with retries");
    let failed_attempts = index
        .attempts
        .values()
        .filter(|a| a.done.as_ref().is_some_and(|d| d.status == Status::Exit(3)))
        .count() as u64;
    assert_eq!(
        failed_attempts, retried,
        "each retry follows one recorded failure"
    );
    assert_exactly_once(&out, 1, 300, 20, "with retries");

    // Without retries: recorded as failed, then --resume-failed runs exactly them.
    let out = dir.join("resumed");
    let run = farm(4, &out, &["--tasks", "1-300", "--json"], &gen).run();
    assert!(
        !run.success(),
        "failed tasks must fail the run\n{}",
        run.describe()
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("brlock: error: collect:"))
        .unwrap_or_default();
    assert!(
        line.contains("tasks failed") && line.contains("status 3"),
        "{line}"
    );
    let before = index_of(&out);
    let failed: Vec<u64> = (0..300)
        .filter(|&t| before.state(t) == TaskState::Failed)
        .collect();
    assert_eq!(
        failed.len() as u64,
        retried,
        "the same tasks fail in both runs"
    );
    // --resume runs nothing: every task finished.
    let run = farm(4, &out, &["--tasks", "1-300", "--resume", "--json"], &gen).run();
    assert_eq!(json(&run)["tasks"], 0, "{}", run.describe());
    let run = farm(
        4,
        &out,
        &["--tasks", "1-300", "--resume-failed", "--json"],
        &gen,
    )
    .run();
    assert!(run.success(), "{}", run.failure_message());
    assert_eq!(json(&run)["tasks"], failed.len() as u64);
    let after = index_of(&out);
    assert_all_recorded(&after, 300, "after --resume-failed");
    for t in 0..300 {
        let attempts = after.attempts_of(t).count();
        let want = if failed.contains(&t) { 2 } else { 1 };
        assert_eq!(
            attempts, want,
            "task index {t}: only the failed ones run again"
        );
    }
    assert_exactly_once(&out, 1, 300, 20, "after --resume-failed");
}

/// Loss case: two jobs with the same `--out` at once. The second is refused with one line
/// while the first runs, through the other GlusterFS client; the first's output is intact.
#[test]
fn a_second_job_on_a_file_being_written_is_refused() {
    let (a, b) = common::gluster_dirs("farm-claim");
    let out = a.join("out");
    // The first job: one rank started directly (a singleton), long enough to overlap.
    let mut first = Command::new(common::binary())
        .args(["collect", "--out", &s(&out), "--tasks", "1-60", "--"])
        .arg(s(&emit_lines()))
        .args(["--task-mode", "--max-ms", "300"])
        .env("OMPI_MCA_plm_rsh_agent", "")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the first job");
    // Wait until the first job has claimed the file and recorded a task (its index grows),
    // not a fixed time: on a loaded machine a singleton's start can take seconds.
    let index = a.join("out.idx");
    let started = std::time::Instant::now();
    while std::fs::metadata(&index).map_or(true, |m| m.len() == 0) {
        if let Some(status) = first.try_wait().expect("poll the first job") {
            panic!("the first job ended ({status}) before it recorded a task");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first job recorded no task in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = farm(
        2,
        &b.join("out"),
        &["--tasks", "1-60", "--index", &s(&b.join("other.idx"))],
        &[],
    )
    .run();
    let overlapped = first.try_wait().expect("poll the first job").is_none();
    let status = first.wait().expect("wait for the first job");
    assert!(
        overlapped,
        "the first job ended before the second did: no overlap to test\n{}",
        second.describe()
    );
    assert!(
        !second.success(),
        "the second job was not refused\n{}",
        second.describe()
    );
    assert!(
        second
            .stderr
            .contains("is being written by another collect job"),
        "{}",
        second.describe()
    );
    assert!(status.success(), "the first job failed");
    assert_exactly_once(&out, 1, 60, 20, "the first job");
}

/// Loss cases: `--index` equal to `--out`, and an `--alt-out` that is a different existing
/// file, are refused before anything is written.
#[test]
fn files_that_would_corrupt_each_other_are_refused() {
    let dir = local_dir("same");
    let out = dir.join("out");
    std::fs::write(&out, b"keep me\n").expect("write");
    let run = farm(2, &out, &["--tasks", "1-4", "--index", &s(&out)], &[]).run();
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("name the same file"),
        "{}",
        run.describe()
    );
    let other = dir.join("other");
    std::fs::write(&other, b"other\n").expect("write");
    let run = farm(2, &out, &["--tasks", "1-4", "--alt-out", &s(&other)], &[]).run();
    assert!(!run.success(), "{}", run.describe());
    assert!(
        run.stderr.contains("is another file than"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read(&out).expect("read"), b"keep me\n");
    assert_eq!(std::fs::read(&other).expect("read"), b"other\n");
}

/// Loss case: a full disk. The job ends with a non-zero status and one line naming ENOSPC;
/// the index claims only what is on disk (every extent it records is intact, the summary's
/// bytes are the extents' bytes) and `collect-cat` shows only whole tasks.
#[test]
fn a_full_disk_ends_the_job_and_the_index_claims_only_what_is_on_disk() {
    let dir = nearly_full_disk("farm", 1 << 20);
    let out = dir.join("out");
    let run = farm(
        4,
        &out,
        &[
            "--tasks",
            "1-400",
            "--jobs",
            "2",
            "--json",
            "--batch-bytes",
            "65536",
        ],
        &["--max-ms", "2"],
    )
    .run();
    assert!(!run.success() && !run.timed_out, "{}", run.describe());
    let ours: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("brlock: error:"))
        .collect();
    assert!(
        ours.len() == 1 && ours[0].contains("ENOSPC"),
        "{ours:#?}\n{}",
        run.describe()
    );
    let j = json(&run);
    let index = index_of(&out);
    let data = std::fs::read(&out).expect("read the output");
    let recorded: u64 = index
        .attempts
        .values()
        .flat_map(|a| a.extents.iter())
        .filter(|e| e.stream == Stream::Out)
        .map(|e| e.len)
        .sum();
    assert_eq!(
        j["bytes"].as_u64(),
        Some(recorded),
        "the summary claims other bytes than the index: {j}"
    );
    // Every succeeded task's output is exactly its records.
    let mut whole = 0;
    for t in index.tasks() {
        let Some((_, a)) = index.chosen(t) else {
            continue;
        };
        let mut bytes = Vec::new();
        for e in a.output() {
            bytes.extend_from_slice(&data[e.offset as usize..(e.offset + e.len) as usize]);
        }
        let label = t as u32 + 1;
        let mut expected = Vec::new();
        for seq in 0..task_lines(1, label, 20) {
            expected.extend_from_slice(&line(1, label, seq));
            expected.push(b'\n');
        }
        assert_eq!(bytes, expected, "task {label}");
        assert_eq!(a.done.as_ref().map(|d| d.checksum), Some(Fnv::of(&bytes)));
        whole += 1;
    }
    assert!(whole < 400, "the disk did not fill: {j}");
    let (code, _, err) = cat(&out, &["--by-task"]);
    assert_eq!(code, 0, "collect-cat after a full disk: {err}");
}

/// Loss case: SIGINT to mpirun (a user's Ctrl-C). What the tasks printed is committed and
/// synced, the interrupted attempts are recorded, the tasks are killed, and the job says so;
/// `--resume` then completes it.
#[test]
fn an_interrupted_job_keeps_what_was_printed_and_resumes() {
    let dir = local_dir("int");
    let out = dir.join("out");
    // One task per rank: print 200 records, then wait; the batches are never old enough to be
    // committed on their own.
    let script = format!("{} --lines 200; sleep 60", s(&emit_lines()));
    let run = common::brlock(4)
        .osc("sm")
        .args([
            "collect",
            "--out",
            &s(&out),
            "--index",
            &s(&dir.join("out.idx")),
            "--batch-ms",
            "600000",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .signal_after(Duration::from_secs(4), "INT")
        .timeout(Duration::from_secs(120))
        .run();
    assert!(!run.success() && !run.timed_out, "{}", run.describe());
    assert!(
        run.survivors.is_empty(),
        "tasks outlived the job: {:?}",
        run.survivors
    );
    assert!(
        run.stderr.contains("stopped by signal"),
        "{}",
        run.describe()
    );
    let index = index_of(&out);
    let data = std::fs::read(&out).expect("read");
    for r in 0..4u32 {
        let attempts: Vec<_> = index.attempts_of(u64::from(r)).collect();
        assert_eq!(attempts.len(), 1, "rank {r}");
        let (_, a) = attempts[0];
        assert_eq!(
            a.done.as_ref().map(|d| d.status),
            Some(Status::Interrupted),
            "rank {r}"
        );
        let mut bytes = Vec::new();
        for e in a.output() {
            bytes.extend_from_slice(&data[e.offset as usize..(e.offset + e.len) as usize]);
        }
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(
            lines, 200,
            "rank {r}: what it printed before the signal was dropped"
        );
    }
}

/// Loss cases: `kill -9` of one rank (its task kills it) ends the job, and no task outlives
/// it; a rank that dies between its reservation and its write leaves a hole that `--resume`
/// marks in the index and `collect-cat` never shows.
#[test]
fn dead_ranks_take_their_tasks_and_leave_no_data_behind_as_output() {
    let dir = local_dir("dead");
    let out = dir.join("out");
    // The task's parent is its supervisor; the supervisor's parent is the rank.
    let script = "if [ \"$BRLOCK_RANK\" = 1 ]; then sleep 1; \
                  kill -9 $(cut -d' ' -f4 /proc/$PPID/stat); fi; sleep 60";
    let run = common::brlock(4)
        .osc("sm")
        .args([
            "collect",
            "--out",
            &s(&out),
            "--tasks",
            "1-8",
            "--",
            "sh",
            "-c",
            script,
        ])
        .timeout(Duration::from_secs(120))
        .run();
    assert!(!run.success() && !run.timed_out, "{}", run.describe());
    assert!(
        !run.notes.iter().any(|n| n.contains("leftover")),
        "tasks outlived their ranks: {:?}",
        run.notes
    );

    let out = dir.join("hole");
    let gen = ["--max-ms", "5"];
    let run = farm(
        4,
        &out,
        &[
            "--tasks",
            "1-200",
            "--batch-bytes",
            "4096",
            "--unsafe-die-after-reserve",
            "3",
        ],
        &gen,
    )
    .run();
    assert!(!run.success(), "rank 1 was to die\n{}", run.describe());
    let run = farm(4, &out, &["--tasks", "1-200", "--resume", "--json"], &gen).run();
    assert!(run.success(), "{}", run.failure_message());
    let index = index_of(&out);
    assert!(
        !index.holes.is_empty(),
        "the dead rank's reservation was not marked as a hole"
    );
    assert_all_recorded(&index, 200, "after the hole");
    assert_exactly_once(&out, 1, 200, 20, "after the hole");
}

/// `collect-cat`: one task, the status summary, and (negative control) output changed after
/// the run is refused, not printed.
#[test]
fn collect_cat_prints_one_task_the_status_and_refuses_damage() {
    let dir = local_dir("cat");
    let out = dir.join("out");
    let run = farm(
        2,
        &out,
        &[
            "--tasks",
            "10-19",
            "--tag",
            "--errors",
            &s(&dir.join("err")),
        ],
        &["--max-ms", "1"],
    )
    .run();
    assert!(run.success(), "{}", run.failure_message());
    let (code, one, _) = cat(&out, &["--task", "13"]);
    assert_eq!(code, 0);
    let text = String::from_utf8_lossy(&one);
    assert!(text.lines().all(|l| l.starts_with("13\t")), "{text}");
    assert_eq!(text.lines().count() as u64, task_lines(1, 13, 20));
    let (code, status, _) = cat(&out, &["--status", "--json"]);
    assert_eq!(code, 0);
    let j: Value = serde_json::from_slice(&status).expect("JSON");
    assert_eq!(
        (j["tasks"].as_u64(), j["succeeded"].as_u64()),
        (Some(10), Some(10)),
        "{j}"
    );
    let (code, _, err) = cat(&out, &["--task", "99"]);
    assert_ne!(code, 0, "an unknown task must be an error");
    assert!(err.contains("no task 99"), "{err}");
    // Damage one byte of the output: the task it belongs to is refused.
    let mut data = std::fs::read(&out).expect("read");
    let at = data.len() / 2;
    data[at] ^= 0x20;
    std::fs::write(&out, &data).expect("write");
    let (code, _, err) = cat(&out, &[]);
    assert_ne!(code, 0, "damaged output was printed");
    assert!(err.contains("does not match its index record"), "{err}");
}

/// Aggregation on GlusterFS: the ranks of the node funnel their batches to one writer, which
/// makes fewer writes than there are batches; the output is exactly once.
#[test]
fn aggregation_makes_fewer_larger_writes_on_gluster() {
    let (a, _) = common::gluster_dirs("farm-agg");
    let out = a.join("out");
    let run = farm(
        8,
        &out,
        &[
            "--tasks",
            "1-800",
            "--aggregate",
            "on",
            "--batch-bytes",
            "8192",
            "--json",
        ],
        &["--max-ms", "3"],
    )
    .run();
    assert!(run.success(), "{}", run.failure_message());
    let j = json(&run);
    assert_eq!(j["aggregated"], true, "{j}");
    let (writes, batches) = (
        j["write_calls"].as_u64().unwrap_or(0),
        j["batches"].as_u64().unwrap_or(0),
    );
    assert!(writes < batches, "aggregation wrote once per batch: {j}");
    assert_exactly_once(&out, 1, 800, 20, "aggregated");
}

//! Failure paths of the command line (issue 13): an I/O error on one rank never hangs the job
//! and is reported once; the wrong launcher is refused before any file is touched; sizes and
//! numeric options are bounded before memory is taken.
//!
//! The full disk is a 2 MiB tmpfs filled to the last block (`scripts/fulldisk.sh`, which needs
//! root to mount; without it these tests fail with the reason). `BRLOCK_TEST_BINARY=path`
//! runs them against another build, e.g. the commit before the fix, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{full_disk, launcher_is_mpich, RunOutput};

/// How long a failing command may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(10);

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A directory of its own on the full disk (a directory takes no data block on tmpfs).
fn full_dir(name: &str) -> PathBuf {
    common::fresh_dir(&full_disk(), name)
}

/// The lines the ranks wrote to stderr (the launcher's own messages are not among them).
fn rank_error_lines(run: &RunOutput) -> Vec<String> {
    run.stderr_by_rank
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Every command that writes a file, with the arguments that put its files on `dir`.
fn writers(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let f = |name: &str| s(&dir.join(name));
    let d = s(dir);
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            "check atomicity",
            v(&["check", "atomicity", "--file", &f("a.dat")]),
        ),
        (
            "check atomicity --noncontig",
            v(&["check", "atomicity", "--noncontig", "--file", &f("a.dat")]),
        ),
        (
            "check noncontig",
            v(&["check", "noncontig", "--file", &f("n.dat")]),
        ),
        (
            "check noncontig --backend none",
            v(&[
                "check",
                "noncontig",
                "--backend",
                "none",
                "--file",
                &f("n.dat"),
            ]),
        ),
        (
            "bench atomic",
            v(&["bench", "atomic", "--file", &f("b.dat")]),
        ),
        ("bench sieve", v(&["bench", "sieve", "--file", &f("s.dat")])),
        ("bench append", v(&["bench", "append", "--dir", &d])),
        (
            "bench append --method flock",
            v(&["bench", "append", "--method", "flock", "--dir", &d]),
        ),
        (
            "bench append --method files",
            v(&["bench", "append", "--method", "files", "--dir", &d]),
        ),
        ("demo", v(&["demo", "--dir", &d])),
        (
            "collect",
            v(&["collect", "--out", &f("c.out"), "--", "seq", "1", "20000"]),
        ),
        (
            "collect --ordered",
            v(&[
                "collect",
                "--ordered",
                "--out",
                &f("c.out"),
                "--",
                "seq",
                "1",
                "20000",
            ]),
        ),
    ]
}

/// Issue 13, items 1, 5 and 6: on a full disk every command that writes a file ends within
/// the limit, with a non-zero status and one line naming the failing rank and `ENOSPC`, no
/// abort, and leaves no run directory behind.
#[test]
fn a_full_disk_fails_every_writer_fast_with_one_line() {
    let mut problems = Vec::new();
    for ranks in [2, 4] {
        let dir = full_dir(&format!("writers-{ranks}"));
        for (name, args) in writers(&dir) {
            let run = common::brlock(ranks).args(args).timeout(LIMIT).run();
            let lines = rank_error_lines(&run);
            let what = format!("{name} at {ranks} ranks");
            if run.timed_out {
                problems.push(format!("{what}: hung\n{}", run.describe()));
                continue;
            }
            if run.success() {
                problems.push(format!(
                    "{what}: succeeded on a full disk\n{}",
                    run.describe()
                ));
                continue;
            }
            let one = lines.len() == 1
                && lines[0].starts_with("brlock: error: ")
                && lines[0].contains("rank")
                && lines[0].contains("ENOSPC");
            if !one {
                problems.push(format!(
                    "{what}: expected one line naming the rank and ENOSPC, got {lines:#?}\n{}",
                    run.describe()
                ));
            }
            if run.stderr.contains("MPI_ABORT") {
                problems.push(format!("{what}: the job was aborted\n{}", run.describe()));
            }
            let left: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with("brlock-bench-append"))
                        .collect()
                })
                .unwrap_or_default();
            if !left.is_empty() {
                problems.push(format!("{what}: left {left:?} behind"));
            }
            // Leave the disk full for the next command.
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The MPI-IO backends report the full disk too (as `ENOSPC`: ompio says it wrote fewer bytes,
/// and the file system is found full). The MPI library prints a line of its own as well.
#[test]
fn a_full_disk_through_mpi_io_names_enospc() {
    let dir = full_dir("mpiio");
    for args in [
        vec!["check", "noncontig", "--backend", "mpiio", "--file"],
        vec!["bench", "atomic", "--backend", "mpiio", "--file"],
    ] {
        let file = s(&dir.join("m.dat"));
        let run = common::brlock(2)
            .args(args.clone())
            .arg(file)
            .timeout(LIMIT)
            .run();
        assert!(
            !run.timed_out && !run.success(),
            "{args:?}\n{}",
            run.describe()
        );
        let ours: Vec<String> = rank_error_lines(&run)
            .into_iter()
            .filter(|l| l.starts_with("brlock:"))
            .collect();
        assert!(
            ours.len() == 1 && ours[0].contains("rank 0") && ours[0].contains("ENOSPC"),
            "{args:?}: {ours:#?}\n{}",
            run.describe()
        );
        let _ = std::fs::remove_file(dir.join("m.dat"));
    }
}

/// The lock-file commands need no space on the disk: a full one does not stop them.
#[test]
fn lock_files_work_on_a_full_disk() {
    let dir = full_dir("locks");
    let file = s(&dir.join("l.lock"));
    for args in [
        vec![
            "check",
            "lock",
            "--backend",
            "fcntl",
            "--iters",
            "200",
            "--file",
            &file,
        ],
        vec![
            "bench",
            "lock",
            "--backend",
            "ofd",
            "--iters",
            "200",
            "--file",
            &file,
        ],
    ] {
        let run = common::brlock(2).args(args.clone()).timeout(LIMIT).run();
        assert!(run.success(), "{args:?}\n{}", run.describe());
    }
}

/// Issue 13, item 2: a build started by the other MPI's launcher runs as separate one-rank
/// jobs. It refuses with one line, and before touching any file. The Open MPI build is started
/// with MPICH's launcher here; the MPICH leg of `scripts/test.sh` runs this test with the
/// MPICH build and Open MPI's `mpirun`.
#[test]
fn the_wrong_launcher_is_refused_before_touching_files() {
    let other = if launcher_is_mpich() {
        "mpirun"
    } else {
        "mpirun.mpich"
    };
    let dir = common::fresh_dir(&std::env::temp_dir(), "brlock-launcher");
    let out = dir.join("out.txt");
    let run = common::brlock(2)
        .launcher(other)
        .args(["collect", "--out", &s(&out), "--", "echo", "hello"])
        .timeout(Duration::from_secs(60))
        .run();
    assert!(!run.timed_out && !run.success(), "{}", run.describe());
    let lines: Vec<String> = rank_error_lines(&run)
        .into_iter()
        .chain(run.untagged.iter().cloned())
        .filter(|l| l.starts_with("brlock:"))
        .collect();
    assert!(
        lines.len() == 1 && lines[0].contains("built against") && lines[0].contains("=2"),
        "{lines:#?}\n{}",
        run.describe()
    );
    assert!(
        !out.exists(),
        "{} was created before the refusal",
        out.display()
    );
}

/// Issue 13, items 3 and 4: settings whose memory or time would be absurd are refused with
/// one line and status 2 before anything is allocated; every numeric option is bounded.
#[test]
fn sizes_and_numbers_are_bounded_before_anything_runs() {
    let cases: [&[&str]; 5] = [
        &[
            "bench",
            "sieve",
            "--block",
            "16",
            "--stride",
            "1073741824",
            "--count",
            "16777216",
        ],
        &["check", "lock", "--busy-home-ms", "18446744073709551615"],
        &["check", "lock", "--timeout-us", "18446744073709551615"],
        &["bench", "append", "--records", "100000000"],
        &[
            "check",
            "atomicity",
            "--sieve-buffer",
            "18446744073709551615",
        ],
    ];
    for args in cases {
        let run = common::brlock(2)
            .args(args.iter().copied())
            .timeout(Duration::from_secs(60))
            .run();
        assert!(!run.timed_out, "{args:?}\n{}", run.describe());
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(2),
            "{args:?}\n{}",
            run.describe()
        );
        let lines = rank_error_lines(&run);
        assert!(
            lines.len() == 1 && lines[0].starts_with("brlock: error: "),
            "{args:?}: {lines:#?}\n{}",
            run.describe()
        );
        assert!(
            !run.stderr.contains("memory allocation"),
            "{}",
            run.describe()
        );
    }
}

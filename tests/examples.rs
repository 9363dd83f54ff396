//! Every runnable example of `examples/` under `mpirun` (`cargo test` builds them), with what it
//! prints and leaves behind checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use brlock_testkit::{example, fresh_dir, MpiRun, RunOutput};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh directory on local disk (under the target directory, not a tmpfs).
fn local_dir(name: &str) -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples");
    fresh_dir(&parent, name)
}

/// Runs example `name` on 4 ranks with a fresh local file named `file` as its argument.
fn run_example(name: &str, file: &str) -> (RunOutput, PathBuf) {
    let file = local_dir(name).join(file);
    let out = MpiRun::new(4, example(env!("CARGO_MANIFEST_DIR"), name))
        .arg(file.display().to_string())
        .timeout(TIMEOUT)
        .run();
    assert!(out.success(), "{}", out.failure_message());
    (out, file)
}

/// `examples/lock_ranges.rs` runs two independent lock services side by side, holding a range
/// on both at once.
#[test]
fn lock_ranges_runs_two_services() {
    let out = MpiRun::new(4, example(env!("CARGO_MANIFEST_DIR"), "lock_ranges"))
        .timeout(TIMEOUT)
        .run();
    assert!(out.success(), "{}", out.failure_message());
    for r in 0..4 {
        let lines = out.rank_lines(r).join("\n");
        assert!(
            lines.contains(&format!("rank {r}: locked")) && lines.contains("leftover wake-ups: 0"),
            "rank {r}: {}",
            out.describe()
        );
    }
}

/// `examples/atomic_file.rs`: overlapping atomic writes, then one noncontiguous read. Every
/// byte of the region must come from one whole block of some rank (a block is one letter).
#[test]
fn atomic_file_example_runs() {
    let (out, file) = run_example("atomic_file", "a.dat");
    for r in 0..4 {
        let lines = out.rank_lines(r).join("\n");
        assert!(
            lines.contains(&format!("rank {r}: wrote")),
            "{}",
            out.describe()
        );
    }
    let bytes = std::fs::read(&file).expect("read the example's file");
    assert_eq!(bytes.len(), 2048 * 5);
    // Every 2 KiB half-block is written by one or two ranks, each writing whole blocks: it
    // holds one letter throughout.
    for half in bytes.chunks(2048) {
        assert!(half.iter().all(|&b| b == half[0] && b.is_ascii_lowercase()));
    }
}

/// `examples/shared_append.rs`: independent appends never interleave, and the ordered append
/// comes last, in rank order.
#[test]
fn shared_append_example_runs() {
    let (_, file) = run_example("shared_append", "log.txt");
    let text = std::fs::read_to_string(&file).expect("read the example's log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 16, "{text}");
    let mut records: Vec<&str> = lines[..12].to_vec();
    records.sort_unstable();
    let mut expected: Vec<String> = (0..4)
        .flat_map(|r| (0..3).map(move |i| format!("rank {r}: record {i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(records, expected, "{text}");
    let ordered: Vec<String> = (0..4).map(|r| format!("rank {r}: in rank order")).collect();
    assert_eq!(lines[12..], ordered[..], "{text}");
}

/// `examples/try_and_timeout.rs`: while rank 0 holds the range, every other rank's
/// `try_acquire` finds it busy and its `acquire_timeout` gives up; then `acquire` waits and
/// gets it, and nothing is left over.
#[test]
fn try_and_timeout_give_up_then_wait() {
    let out = MpiRun::new(4, example(env!("CARGO_MANIFEST_DIR"), "try_and_timeout"))
        .timeout(TIMEOUT)
        .run();
    assert!(out.success(), "{}", out.failure_message());
    for r in 1..4 {
        let lines = out.rank_lines(r).join("\n");
        assert!(
            lines.contains("try_acquire busy, acquire_timeout timed out, acquire granted"),
            "rank {r}: {}",
            out.describe()
        );
    }
    for r in 0..4 {
        assert!(
            out.rank_lines(r)
                .iter()
                .any(|l| l.ends_with("leftover wake-ups: 0")),
            "rank {r}: {}",
            out.describe()
        );
    }
}

/// `examples/fcntl_lock.rs`: the same read-modify-write loop loses no update under the
/// one-sided service and under the kernel's open-file-description locks.
#[test]
fn fcntl_lock_example_counts_every_update() {
    let (out, _) = run_example("fcntl_lock", "counter");
    let lines = out.rank_lines(0).join("\n");
    assert!(
        lines.contains("after the one-sided lock the counter is 400"),
        "{}",
        out.describe()
    );
    assert!(
        lines.contains("the counter is 800 (800 expected)"),
        "{}",
        out.describe()
    );
}

/// `examples/data_sieving.rs`: interleaved blocks written sieved and piece by piece, every
/// block intact both times, and sieving with far fewer I/O calls.
#[test]
fn data_sieving_example_keeps_every_block() {
    let (out, _) = run_example("data_sieving", "s.dat");
    let lines = out.rank_lines(0).join("\n");
    assert!(
        lines.contains("written always: 0 of 8192 blocks wrong")
            && lines.contains("written never: 0 of 8192 blocks wrong"),
        "{}",
        out.describe()
    );
    for r in 0..4 {
        assert!(
            out.rank_lines(r)
                .iter()
                .any(|l| l.contains("2 I/O calls sieved, 2048 piece by piece")),
            "rank {r}: {}",
            out.describe()
        );
    }
}

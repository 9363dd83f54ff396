//! `brlock bench atomic` and `brlock bench sieve` under `mpirun`: every backend and method
//! runs and reports a complete JSON summary; the sieve bench's read-back verifies. Sizes are
//! CI-sized; nothing here asserts a time.

mod common;

use std::path::Path;
use std::time::Duration;

use common::RunOutput;

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

/// `brlock bench SUB ARGS --json` on `ranks` ranks; MPI-IO runs get ROMIO.
fn bench(ranks: usize, sub: &str, romio: bool, args: &[String]) -> RunOutput {
    let mut run = common::brlock(ranks)
        .args(["bench", sub])
        .args(args.iter().cloned())
        .arg("--json")
        .timeout(Duration::from_secs(180));
    if romio {
        run = run.env("OMPI_MCA_io", "romio321");
    }
    let out = run.run();
    assert!(out.success(), "{}", out.failure_message());
    out
}

fn atomic(ranks: usize, backend: &str, extra: &[String]) -> serde_json::Value {
    let mut args = vec![
        "--backend".to_string(),
        backend.into(),
        "--ops".into(),
        "100".into(),
    ];
    args.extend(extra.iter().cloned());
    let json = bench(ranks, "atomic", backend == "mpiio", &args).rank0_json();
    assert_eq!(json["bench"], "atomic", "{json}");
    assert_eq!(json["backend"], backend, "{json}");
    assert_eq!(json["ranks"], ranks, "{json}");
    assert_eq!(json["ops"], 100 * ranks as u64, "{json}");
    assert_eq!(json["atomic"], backend != "nonatomic", "{json}");
    for key in ["seconds", "us_per_op", "ops_per_s"] {
        assert!(
            json[key].as_f64().is_some_and(|v| v >= 0.0),
            "{key}: {json}"
        );
    }
    for key in ["file", "fs_type", "mpi_library"] {
        assert!(json[key].is_string(), "{key}: {json}");
    }
    for key in [
        "alt_file",
        "coherence",
        "io_component",
        "osc",
        "write_us",
        "read_us",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    if backend != "nonatomic" {
        // Atomic mode: no read sees half of a write.
        assert_eq!(json["torn_reads"], 0, "{json}");
    }
    json
}

fn sieve(ranks: usize, method: &str, extra: &[String]) -> serde_json::Value {
    let mut args = vec![
        "--method".to_string(),
        method.into(),
        "--count".into(),
        "256".into(),
        "--reps".into(),
        "2".into(),
    ];
    args.extend(extra.iter().cloned());
    let json = bench(ranks, "sieve", method == "mpiio", &args).rank0_json();
    assert_eq!(json["bench"], "sieve", "{json}");
    assert_eq!(json["method"], method, "{json}");
    assert_eq!(json["verified"], true, "{json}");
    assert_eq!(json["mismatched_blocks"], 0, "{json}");
    assert_eq!(json["bytes"], ranks as u64 * 256 * 64 * 2, "{json}");
    assert_eq!(
        (json["block"].clone(), json["stride"].clone()),
        (64.into(), 256.into())
    );
    assert!(json["mb_per_s"].as_f64().is_some(), "{json}");
    json
}

#[test]
fn bench_atomic_rma_mixed_and_writes_only() {
    let json = atomic(4, "rma", &[]);
    assert_eq!(json["mix"], "mixed", "{json}");
    assert_eq!(json["coherence"], "none", "{json}");
    let json = atomic(4, "rma", &["--writes-only".into()]);
    assert_eq!(json["mix"], "writes", "{json}");
    assert_eq!(json["reads"], 0, "{json}");
    assert!(json["read_us"].is_null(), "{json}");
}

#[test]
fn bench_atomic_nonatomic() {
    let json = atomic(4, "nonatomic", &["--mix".into(), "reads".into()]);
    assert_eq!(json["writes"], 0, "{json}");
}

#[test]
fn bench_atomic_mpiio_romio() {
    let json = atomic(4, "mpiio", &[]);
    assert_eq!(json["io_component"], "ROMIO", "{json}");
}

#[test]
fn bench_sieve_sieve() {
    let json = sieve(2, "sieve", &[]);
    // One call per repetition and rank, each sieved.
    assert!(json["windows"].as_u64().is_some_and(|w| w >= 4), "{json}");
}

#[test]
fn bench_sieve_pieces() {
    let json = sieve(4, "pieces", &[]);
    assert_eq!(json["windows"], 0, "{json}");
    assert_eq!(json["io_calls"], 4 * 256 * 2, "{json}");
}

#[test]
fn bench_sieve_mpiio_romio() {
    let json = sieve(2, "mpiio", &[]);
    assert_eq!(json["io_component"], "ROMIO", "{json}");
    assert!(json["io_calls"].is_null(), "{json}");
}

/// A stride too small for the ranks' blocks is refused, not written.
#[test]
fn bench_sieve_refuses_overlapping_blocks() {
    let out = common::brlock(2)
        .args(["bench", "sieve", "--stride", "64", "--json"])
        .timeout(Duration::from_secs(60))
        .run();
    assert!(!out.success(), "{}", out.describe());
}

/// On GlusterFS through two clients (odd ranks through mount b): the atomic bench with the
/// lock service and the sieve bench (sieved writes under the lock, read back fresh) verify.
#[test]
fn bench_io_on_glusterfs() {
    let (a, b) = common::gluster_mounts();
    let dir_a = common::fresh_dir(&a, "brlock-bench-io");
    let dir_b = b.join(dir_a.file_name().expect("a directory name"));
    let file = |name: &str| {
        vec![
            "--file".to_string(),
            s(&dir_a.join(name)),
            "--alt-file".into(),
            s(&dir_b.join(name)),
        ]
    };
    let json = atomic(4, "rma", &file("atomic"));
    assert_eq!(json["fs_type"], "fuse.glusterfs", "{json}");
    assert_ne!(json["coherence"], "none", "{json}");
    let json = sieve(2, "sieve", &file("sieve"));
    assert_eq!(json["fs_type"], "fuse.glusterfs", "{json}");
    let _ = std::fs::remove_dir_all(&dir_a);
}

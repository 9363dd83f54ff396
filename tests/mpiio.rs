//! The MPI-IO layer (`brlock::sys::MpiFile`, `brlock::io::mpiio`) end to end, through
//! the test program `tests/programs/mpiio_checks.rs` under `mpirun`, on local disk.
//!
//! Open MPI runs each check set under both of its MPI-IO components: `ompio` (its default)
//! and ROMIO (`--mca io romio321`, set here as `OMPI_MCA_io`). Under MPICH
//! (`BRLOCK_MPIRUN=mpirun.mpich`, with the crate built against MPICH) the component choice
//! does not apply and each check set runs once, on ROMIO.

use brlock_testkit as common;

use std::path::PathBuf;
use std::time::Duration;

use common::{fresh_dir, launcher_is_mpich, MpiRun, RunOutput};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Open MPI's MPI-IO components worth testing; `None` is the launcher's default.
fn io_components() -> Vec<Option<&'static str>> {
    if launcher_is_mpich() {
        vec![None]
    } else {
        vec![Some("ompio"), Some("romio321")]
    }
}

/// The test program `mpiio_checks` (`tests/programs/mpiio_checks.rs`), up to date.
fn example() -> PathBuf {
    common::example(env!("CARGO_MANIFEST_DIR"), "mpiio_checks")
}

/// Runs `mpiio_checks SET DIR` on `ranks` ranks with MPI-IO component `io`, in a fresh
/// directory under the system's temporary directory.
fn run_checks(set: &str, ranks: usize, io: Option<&str>) -> RunOutput {
    let dir = fresh_dir(&std::env::temp_dir(), &format!("brlock-mpiio-{set}"));
    let mut job = MpiRun::new(ranks, example())
        .args([set, &dir.to_string_lossy()])
        .timeout(TIMEOUT);
    if let Some(io) = io {
        job = job.env("OMPI_MCA_io", io);
    }
    job.run()
}

/// Every check of `set` passes on every rank, and only rank 0 prints.
fn assert_checks_pass(set: &str, ranks: usize, io: Option<&str>) -> Value {
    let out = run_checks(set, ranks, io);
    let what = format!("{set} at {ranks} ranks, io {io:?}");
    assert!(out.success(), "{what}: {}", out.failure_message());
    let json = out.rank0_json();
    let checks = json["checks"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no checks in {json}"));
    assert!(!checks.is_empty(), "{what}: no checks ran: {json}");
    for (name, ok) in checks {
        assert_eq!(
            ok,
            &Value::Bool(true),
            "{what}: check {name} failed: {json}"
        );
    }
    assert_eq!(json["ok"], true, "{what}: {json}");
    assert_eq!(json["ranks"], ranks, "{what}: {json}");
    for r in 1..ranks {
        assert!(
            out.rank_lines(r).is_empty(),
            "{what}: rank {r} printed on stdout:\n{}",
            out.describe()
        );
    }
    json
}

/// The sys layer: contiguous round trip, short reads at the end of the file, strided
/// (hvector) and irregular (hindexed) views with per-rank displacements leaving the gaps
/// untouched, atomic mode round trip, empty views refused.
#[test]
fn sys_file_checks_pass_at_2_ranks() {
    for io in io_components() {
        assert_checks_pass("sys", 2, io);
    }
}

/// Derived datatypes (contiguous, vector, indexed, struct) flatten to the byte runs their
/// constructors imply; overlapping and decreasing type maps are refused; an access through a
/// view built from one maps to the right file pieces. One rank: the types are local.
#[test]
fn datatypes_flatten_to_their_byte_runs() {
    assert_checks_pass("types", 1, None);
}

#[test]
fn sys_file_checks_pass_at_3_ranks() {
    for io in io_components() {
        assert_checks_pass("sys", 3, io);
    }
}

/// `MpiIoFile` as a `ParallelFile`: typed short reads (contiguous and noncontiguous, the
/// latter also under ROMIO, which reports full counts), per-rank views restricted to the
/// prepared pieces with the gaps untouched, atomic mode agreed on and a disagreement refused
/// on every rank; and the implementation is told apart (ROMIO vs ompio).
#[test]
fn io_mpiio_file_checks_pass_at_2_ranks() {
    for io in io_components() {
        let json = assert_checks_pass("io", 2, io);
        let expected = match io {
            Some("romio321") | None => "ROMIO",
            _ => "ompio",
        };
        assert_eq!(
            json["facts"]["implementation"], expected,
            "io {io:?}: {json}"
        );
        assert_eq!(
            json["facts"]["ignores_atomicity"],
            expected == "ompio",
            "io {io:?}: {json}"
        );
    }
}

#[test]
fn io_mpiio_file_checks_pass_at_3_ranks() {
    for io in io_components() {
        assert_checks_pass("io", 3, io);
    }
}

/// Opening a file that does not exist fails on every rank with one error line naming the
/// path and the cause, a non-zero exit status, and no hang.
#[test]
fn missing_file_error_names_the_path() {
    for io in io_components() {
        let out = run_checks("missing", 2, io);
        assert!(!out.timed_out, "{}", out.describe());
        assert!(!out.success(), "{}", out.describe());
        for r in 0..2 {
            let err = &out.stderr_by_rank[r];
            assert!(
                err.contains("brlock: error: MPI_File_open ")
                    && err.contains("no-such-dir/no-such-file")
                    && err.contains("MPI_ERR_NO_SUCH_FILE"),
                "io {io:?}, rank {r}: {}",
                out.describe()
            );
        }
    }
}

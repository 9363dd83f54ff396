//! Every error code the C API can return, provoked from C by `tests/c/errors_check.c`
//! (written against `brlock.h` alone): NULL handles and out-parameters, empty and
//! overflowing ranges, a bad mode or timeout, a double lock, unlock without a lock, opening
//! before `MPI_Init`, a missing file (on every rank, and on one rank only: the others get the
//! collective code), a full disk for appends (`ENOSPC`), a read past the end of an atomic
//! file, bad noncontiguous piece lists, and the wrong MPI library (the program built with
//! MPICH's `mpicc.mpich` and run by `mpirun.mpich` against the Open MPI build of libbrlock,
//! or the other way round for the MPICH build).
//! No case aborts the process: every job ends normally.

mod common;

use std::time::Duration;

use common::{build, built_for_mpich, fields, fresh_dir, mpicc, nearly_full_disk, number, MpiRun};

#[test]
fn every_error_code_is_returned_not_aborted() {
    let exe = build("tests/c/errors_check.c", &mpicc());
    let dir = fresh_dir(&std::env::temp_dir(), "brlock-capi-errors");
    let full = nearly_full_disk("capi-full", 0);
    for ranks in [2, 3] {
        let out = MpiRun::new(ranks, &exe)
            .arg("--dir")
            .arg(dir.to_string_lossy())
            .arg("--full")
            .arg(full.to_string_lossy())
            .timeout(Duration::from_secs(120))
            .run();
        assert!(out.success(), "{ranks} ranks: {}", out.failure_message());
        let f = fields(&out, "errors_check ");
        assert_eq!(number(&f, "failures"), 0, "{}", out.describe());
        assert!(number(&f, "cases") > 60 * ranks as u64, "{f:?}");
    }
}

#[test]
fn the_wrong_mpi_library_is_refused_with_its_code() {
    // The other MPI than the library's: its compiler wrapper and its launcher.
    let (compiler, launcher) = if built_for_mpich() {
        ("mpicc", "mpirun")
    } else {
        ("mpicc.mpich", "mpirun.mpich")
    };
    let exe = build("tests/c/errors_check.c", compiler);
    let out = MpiRun::new(2, exe)
        .launcher(launcher)
        .arg("--wrong-mpi")
        .timeout(Duration::from_secs(60))
        .run();
    assert!(out.success(), "{}", out.failure_message());
    let f = fields(&out, "errors_check ");
    assert_eq!(number(&f, "failures"), 0, "{}", out.describe());
    assert!(number(&f, "cases") >= 10, "{f:?}");
}

//! The exclusion check of `tests/c/lock_check.c`, a C program written against `brlock.h`
//! alone and built with `mpicc` and `pkg-config`, at 2, 4 and 8 ranks under Open MPI's `sm`
//! and `pt2pt` one-sided components: 0 violations with the locks, violations without them
//! (`--nolock`, the negative control: the checker can fail). With `MPICC=mpicc.mpich` and
//! `BRLOCK_MPIRUN=mpirun.mpich` (the MPICH leg of scripts/test.sh) the same against MPICH.

mod common;

use std::time::Duration;

use common::{build, fields, mpicc, number, MpiRun, OSC_COMPONENTS};

fn lock_check(ranks: usize, osc: &str, args: &[&str]) -> (u64, u64) {
    let exe = build("tests/c/lock_check.c", &mpicc());
    let out = MpiRun::new(ranks, exe)
        .osc(osc)
        .args(args.iter().copied())
        .timeout(Duration::from_secs(180))
        .run();
    let what = format!("{ranks} ranks, osc {osc}, {args:?}");
    assert!(out.success(), "{what}: {}", out.failure_message());
    let f = fields(&out, "lock_check ");
    eprintln!("{what}: {f:?}");
    (number(&f, "violations"), number(&f, "acquisitions"))
}

fn with_and_without_locks(ranks: usize) {
    let iters = match ranks {
        2 => "150",
        4 => "80",
        _ => "40",
    };
    for osc in OSC_COMPONENTS {
        for mode in ["exclusive", "mixed"] {
            let args = ["--iters", iters, "--mode", mode];
            let (violations, acquisitions) = lock_check(ranks, osc, &args);
            assert_eq!(
                violations, 0,
                "{ranks} ranks, osc {osc}, {mode}: violations"
            );
            assert_eq!(acquisitions, ranks as u64 * iters.parse::<u64>().unwrap());
        }
        let (violations, _) = lock_check(
            ranks,
            osc,
            &["--iters", iters, "--mode", "exclusive", "--nolock"],
        );
        assert!(
            violations > 0,
            "{ranks} ranks, osc {osc}: the checker saw no violation without locks"
        );
    }
}

#[test]
fn two_ranks_exclude_and_the_negative_control_fails() {
    with_and_without_locks(2);
}

#[test]
fn four_ranks_exclude_and_the_negative_control_fails() {
    with_and_without_locks(4);
}

#[test]
fn eight_ranks_exclude_and_the_negative_control_fails() {
    with_and_without_locks(8);
}

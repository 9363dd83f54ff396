//! A rank that fails inside a user's closure, while it holds an `AtomicFile` and a lock, never
//! hangs the job: with the documented rule (agree, then close on every rank) every rank gets
//! the error; a program that just returns early has its job ended by the `Runtime`. The
//! negative control leaks the handles behind the library's back and must hang.
//! Program: `tests/programs/early_error.rs`.

use std::path::PathBuf;
use std::time::Duration;

use brlock_testkit::{example, fresh_dir, MpiRun, RunOutput};

const RANKS: usize = 4;

fn early_error(mode: &str, osc: &str, timeout: Duration) -> RunOutput {
    let dir = fresh_dir(&std::env::temp_dir(), "brlock-early-error");
    let file: PathBuf = dir.join("shared.dat");
    MpiRun::new(RANKS, example(env!("CARGO_MANIFEST_DIR"), "early_error"))
        .osc(osc)
        .args([mode.to_string(), file.display().to_string()])
        .timeout(timeout)
        .run()
}

#[test]
fn agreeing_on_a_closure_error_returns_it_on_every_rank() {
    for osc in ["sm", "pt2pt"] {
        let run = early_error("agree", osc, Duration::from_secs(60));
        assert!(!run.timed_out, "hung under osc {osc}\n{}", run.describe());
        assert!(!run.success(), "{}", run.describe());
        for r in 0..RANKS {
            let lines = run.rank_lines(r);
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("error: work failed on rank 1") && l.contains("on purpose")),
                "rank {r} did not get rank 1's error (osc {osc})\n{}",
                run.describe()
            );
        }
        assert!(
            !run.stderr.contains("MPI_ABORT"),
            "an agreed error must end the job normally\n{}",
            run.describe()
        );
    }
}

#[test]
fn an_early_return_ends_the_job_instead_of_hanging() {
    for osc in ["sm", "pt2pt"] {
        let run = early_error("return", osc, Duration::from_secs(60));
        assert!(!run.timed_out, "hung under osc {osc}\n{}", run.describe());
        assert!(!run.success(), "{}", run.describe());
        assert!(
            run.stderr.contains("rank 1: ending the job")
                && run.stderr.contains("dropped without its collective free"),
            "the job did not end with the one-line reason (osc {osc})\n{}",
            run.describe()
        );
    }
}

/// The negative control: handles leaked with `mem::forget` escape the library, and the failing
/// rank finalizes while the others wait in the collective close. This must hang; the helper's
/// timeout kills it.
#[test]
fn negative_control_leaking_behind_the_librarys_back_hangs() {
    let run = early_error("forget", "sm", Duration::from_secs(15));
    assert!(
        run.timed_out,
        "the negative control was expected to hang, so that the test above can fail\n{}",
        run.describe()
    );
}

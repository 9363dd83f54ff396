//! Tests of the `mpirun` helper itself, with plain programs (`sh`, `sleep`) as ranks, so that
//! they do not depend on what brlock can do.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use brlock_testkit as common;
use common::{launcher_available, processes_with_marker, MpiRun};

/// The rank number as the launcher tells it to each process (Open MPI or MPICH).
const PRINT_RANK: &str = "echo \"hello from ${OMPI_COMM_WORLD_RANK:-$PMI_RANK}\"";

#[test]
fn output_parsers() {
    common::parse_selftest();
}

#[test]
fn hanging_job_is_killed_at_its_timeout_and_leaves_no_process() {
    let started = Instant::now();
    let out = MpiRun::new(2, "sleep")
        .arg("600")
        .timeout(Duration::from_secs(3))
        .run();
    let took = started.elapsed();
    assert!(out.timed_out, "expected a timeout:\n{}", out.describe());
    assert!(!out.success());
    assert!(
        took < Duration::from_secs(10),
        "run() took {took:?} to give up on a 3 s timeout"
    );
    let survivors = processes_with_marker(&out.marker);
    assert!(
        survivors.is_empty(),
        "processes of the killed job survive: {survivors:?}\n{}",
        out.describe()
    );
}

#[test]
fn run_ok_on_a_hanging_job_panics_saying_it_timed_out() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        MpiRun::new(2, "sh")
            // Ranks that ignore SIGTERM: the launcher must still get rid of them.
            .args(["-c", "trap '' TERM; sleep 600"])
            .timeout(Duration::from_secs(3))
            .run_ok()
    }));
    let payload = result.expect_err("run_ok() must panic on a job that hangs");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("timed out after 3.0 s") && message.contains("deadlock?"),
        "unexpected panic message:\n{message}"
    );
    assert!(
        message.contains("command: "),
        "no command line in:\n{message}"
    );
}

#[test]
fn output_is_collected_per_rank() {
    let out = MpiRun::new(3, "sh")
        .args([
            "-c",
            &format!("{PRINT_RANK}; echo \"err $PMI_RANK$OMPI_COMM_WORLD_RANK\" >&2"),
        ])
        .run_ok();
    assert_eq!(out.by_rank.len(), 3, "{}", out.describe());
    for r in 0..3 {
        assert_eq!(
            out.by_rank[r],
            format!("hello from {r}"),
            "{}",
            out.describe()
        );
        assert_eq!(
            out.stderr_by_rank[r],
            format!("err {r}"),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn output_is_collected_per_rank_under_mpich() {
    if !launcher_available("mpirun.mpich") {
        eprintln!("note: mpirun.mpich not installed; skipping the MPICH parsing check");
        return;
    }
    let out = MpiRun::new(2, "sh")
        .launcher("mpirun.mpich")
        .osc("sm")
        .args(["-c", PRINT_RANK])
        .run_ok();
    assert_eq!(
        out.by_rank,
        vec!["hello from 0", "hello from 1"],
        "{}",
        out.describe()
    );
    assert!(
        out.notes.iter().any(|n| n.contains("not applicable")),
        "osc under MPICH must be noted: {:?}",
        out.notes
    );
}

#[test]
fn oversubscribed_job_runs() {
    // More ranks than cores: `--oversubscribe` (and yield when idle) under Open MPI.
    let out = MpiRun::new(8, "sh").args(["-c", PRINT_RANK]).run_ok();
    for r in 0..8 {
        assert_eq!(
            out.by_rank[r],
            format!("hello from {r}"),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn failing_rank_is_reported_with_its_status() {
    let job = || {
        MpiRun::new(3, "sh").args([
            "-c",
            "echo before; [ \"${OMPI_COMM_WORLD_RANK:-$PMI_RANK}\" = 1 ] && exit 3; exit 0",
        ])
    };
    let out = job().run();
    assert!(!out.timed_out);
    assert!(!out.success());
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        out.describe()
    );

    let payload = catch_unwind(AssertUnwindSafe(|| job().run_ok()))
        .expect_err("run_ok() must panic when a rank fails");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("exit status: 3") && message.contains("--- rank 1 stdout ---"),
        "unexpected panic message:\n{message}"
    );
}

#[test]
fn rank0_json_finds_the_object_rank_0_printed() {
    let out = MpiRun::new(2, "sh")
        .args([
            "-c",
            "r=${OMPI_COMM_WORLD_RANK:-$PMI_RANK}; echo \"log line $r\"; \
             [ \"$r\" = 0 ] && echo '{\"ranks\": 2, \"ok\": true}'; exit 0",
        ])
        .run_ok();
    let v = out.rank0_json();
    assert_eq!(v["ranks"], 2);
    assert_eq!(v["ok"], true);

    let silent = MpiRun::new(1, "true").run_ok();
    let payload = catch_unwind(AssertUnwindSafe(|| silent.rank0_json()))
        .expect_err("rank0_json() must panic without a JSON object");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("no JSON object"), "{message}");
}

#[test]
fn leftover_processes_of_a_finished_job_are_killed() {
    // A rank starts a detached process (own session) and exits: the launcher is satisfied,
    // but the helper's sweep must find the process by its marker and kill it.
    let out = MpiRun::new(1, "sh")
        .args(["-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 & exit 0"])
        .timeout(Duration::from_secs(30))
        .run_ok();
    assert!(
        out.notes.iter().any(|n| n.contains("leftover")),
        "expected a note about a killed leftover: {:?}",
        out.notes
    );
    assert!(processes_with_marker(&out.marker).is_empty());
}

#[test]
fn hanging_job_under_mpich_is_killed() {
    if !launcher_available("mpirun.mpich") {
        eprintln!("note: mpirun.mpich not installed; skipping the MPICH timeout check");
        return;
    }
    let out = MpiRun::new(2, "sleep")
        .launcher("mpirun.mpich")
        .arg("600")
        .timeout(Duration::from_secs(2))
        .run();
    assert!(out.timed_out, "{}", out.describe());
    assert!(
        processes_with_marker(&out.marker).is_empty(),
        "{}",
        out.describe()
    );
}

#[test]
fn launcher_that_ignores_sigterm_is_killed_with_its_ranks() {
    // A stand-in launcher that ignores SIGTERM and has a "rank" in a session of its own (as
    // Open MPI's ranks are in process groups of their own): SIGTERM does nothing, SIGKILL to
    // the launcher's group misses the rank, and only the marker sweep finds it.
    let dir = std::env::temp_dir().join(format!("brlock-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let launcher = dir.join("stuck-mpirun");
    std::fs::write(
        &launcher,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'mpirun (Open MPI) stand-in'; exit 0; fi\n\
         trap '' TERM\n\
         setsid sleep 600 </dev/null >/dev/null 2>&1 &\n\
         echo '[1,0]<stdout>:started'\n\
         sleep 600\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let started = Instant::now();
    let out = MpiRun::new(1, "unused")
        .launcher(launcher.to_string_lossy())
        .timeout(Duration::from_secs(2))
        .run();
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.timed_out, "{}", out.describe());
    assert_eq!(out.by_rank, vec!["started"], "{}", out.describe());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        out.notes.iter().any(|n| n.contains("leftover")),
        "the detached rank should have been swept: {:?}",
        out.notes
    );
    assert!(
        processes_with_marker(&out.marker).is_empty(),
        "{}",
        out.describe()
    );
}

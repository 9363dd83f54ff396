//! Reads that stop at the end of the file the way MPI reads do
//! ([`brlock::io::AtomicFile::read_pieces_available`]), through the test program
//! `tests/programs/read_available.rs`: in atomic mode every rank gets exactly the bytes the
//! file holds, also through a second GlusterFS client right after another client grew the
//! file, with no sync; outside atomic mode (the negative control) the second client reads
//! short.

use std::time::Duration;

use brlock_testkit::{example, fresh_dir, gluster_dirs, MpiRun, RunOutput};

fn read_available(mode: &str, a: &str, b: &str, osc: &str) -> RunOutput {
    MpiRun::new(2, example(env!("CARGO_MANIFEST_DIR"), "read_available"))
        .osc(osc)
        .args([mode, a, b])
        .timeout(Duration::from_secs(60))
        .run()
}

#[test]
fn atomic_reads_stop_at_the_end_of_the_file_on_local_disk() {
    let dir = fresh_dir(&std::env::temp_dir(), "brlock-read-available");
    let file = dir.join("f.dat").display().to_string();
    let run = read_available("atomic", &file, &file, "sm");
    assert!(run.success(), "{}", run.describe());
}

#[test]
fn atomic_reads_see_the_size_another_client_left_on_glusterfs() {
    for osc in ["sm", "pt2pt"] {
        let (a, b) = gluster_dirs("brlock-read-available");
        let run = read_available(
            "atomic",
            &a.join("f.dat").display().to_string(),
            &b.join("f.dat").display().to_string(),
            osc,
        );
        assert!(run.success(), "osc {osc}: {}", run.describe());
        assert!(run.stdout.contains("fuse.glusterfs"), "{}", run.describe());
    }
}

/// The negative control: outside atomic mode nothing refreshes the second client's idea of
/// the file, and a read within its cache timeout (1 s) comes back short. A slow run can pass
/// the cache timeout, so the control needs to show the hazard in one of five runs.
#[test]
fn control_plain_reads_through_a_second_client_come_back_short() {
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let (a, b) = gluster_dirs("brlock-read-available-control");
        let run = read_available(
            "plain",
            &a.join("f.dat").display().to_string(),
            &b.join("f.dat").display().to_string(),
            "sm",
        );
        assert!(!run.timed_out, "{}", run.describe());
        if !run.success() {
            // Short, not failed: every rank read and reported its counts.
            assert!(
                !run.stdout.contains("error:") && run.stdout.matches(" bytes on ").count() == 2,
                "the control failed for another reason: {}",
                run.describe()
            );
            return;
        }
        outcomes.push(run.stdout);
    }
    panic!("five plain runs through two clients all read the right bytes: {outcomes:?}");
}

//! The interposition library under unmodified MPI programs: C and Fortran programs of our own
//! (`tests/programs/`) built with the MPI's compiler wrappers, run with `libbrlock-mpiio.so`
//! preloaded and without it, on GlusterFS with the ranks split across its two client mounts
//! (odd ranks see the second client's mount at the first's path, in a private mount
//! namespace) and on local disk. Under Open MPI both MPI-IO components run (ompio, the
//! default, and ROMIO: `romio321`); under MPICH (`BRLOCK_MPIRUN=mpirun.mpich
//! MPICC=mpicc.mpich`) its ROMIO, at 3 ranks.
//!
//! The library is built and installed by `scripts/install.sh --mpiio` into a scratch prefix,
//! for the MPI of `$MPICC`. `LD_PRELOAD` is set by the wrapper script right before it execs
//! the program, so neither the launcher nor the wrapper's shell loads the library.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use brlock_testkit::{
    fresh_dir, gluster_dirs, launcher_is_mpich, target_and_profile, workspace_root, MpiRun,
};

/// Runs of each program with the library, per MPI-IO component (the acceptance's 10).
const RUNS: usize = 10;
/// Runs without the library, at most, until one shows the hazard.
const CONTROL_RUNS: usize = 3;

/// Runs `cmd` and panics with its output unless it succeeds.
fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `libbrlock-mpiio.so`, installed once per test binary by `scripts/install.sh --mpiio` with
/// this test's target directory and profile.
fn library() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let (target, profile) = target_and_profile();
        let prefix = fresh_dir(&target.join("tmp"), "mpiio-prefix");
        let mut cmd = Command::new("bash");
        cmd.arg(workspace_root().join("scripts/install.sh"))
            .arg("--prefix")
            .arg(&prefix)
            .arg("--target-dir")
            .arg(&target)
            .arg("--mpiio");
        if profile != "release" {
            cmd.arg("--debug");
        }
        run_ok(cmd, "scripts/install.sh --mpiio");
        let lib = prefix.join("lib/libbrlock-mpiio.so");
        assert!(lib.is_file(), "install.sh left no {}", lib.display());
        lib
    })
    .clone()
}

/// The scratch directory of this test binary's programs.
fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fresh_dir(&target_and_profile().0.join("tmp"), "mpiio-bin"))
        .clone()
}

/// The C compiler wrapper (`$MPICC`, default `mpicc`) and the Fortran one (`$MPIFORT`, else
/// `mpifort.mpich` for MPICH, `mpifort` for Open MPI).
fn compilers() -> (String, String) {
    let cc = std::env::var("MPICC").unwrap_or_else(|_| "mpicc".into());
    let fort = std::env::var("MPIFORT").unwrap_or_else(|_| {
        if launcher_is_mpich() {
            "mpifort.mpich".into()
        } else {
            "mpifort".into()
        }
    });
    (cc, fort)
}

/// The command that runs test program `source` (under `tests/programs/`): built once per test
/// binary, or a Python script run by Debian's `/usr/bin/python3` (where `python3-mpi4py` is).
fn program(source: &str) -> Vec<String> {
    if source.ends_with(".py") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/programs")
            .join(source);
        return vec![PYTHON.into(), script.to_string_lossy().into_owned()];
    }
    vec![built(source).to_string_lossy().into_owned()]
}

/// The Python of Debian's `python3-mpi4py` (scripts/setup.sh installs it).
const PYTHON: &str = "/usr/bin/python3";

/// Test program `source` (under `tests/programs/`) built once per test binary.
fn built(source: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = built.get(source) {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(source);
    // `shared_ptr.c` and `shared_ptr.f90` must not build the same file.
    let exe = bin_dir().join(source.replace('.', "-"));
    let (cc, fort) = compilers();
    let mut cmd = if source.ends_with(".f90") {
        let mut c = Command::new(&fort);
        c.arg("-Wall");
        c
    } else {
        let mut c = Command::new(&cc);
        c.args(["-Wall", "-Wextra", "-Werror"]);
        c
    };
    cmd.arg("-O2").arg(&src).arg("-o").arg(&exe);
    run_ok(cmd, &format!("compiling {source}"));
    built.insert(source.to_string(), exe.clone());
    exe
}

/// The wrapper `mpirun` starts: odd ranks (Open MPI's `OMPI_COMM_WORLD_RANK`, MPICH's
/// `PMI_RANK`) mount `$SPLIT_B` over `$SPLIT_A` in a private mount namespace when both are
/// set; with `$READ_ONLY_DIR` every rank sees that directory mounted read-only (a private
/// namespace too); then every rank execs the program with `LD_PRELOAD=$PRELOAD` when that is
/// set.
fn wrapper() -> PathBuf {
    static WRAPPER: OnceLock<PathBuf> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            let path = bin_dir().join("split-clients.sh");
            let script = r#"#!/bin/sh
# Odd ranks see the second GlusterFS client's mount at the first's path (a private mount
# namespace); the program alone gets LD_PRELOAD.
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}
if [ -n "$READ_ONLY_DIR" ]; then
    exec unshare -m sh -c 'mount --bind "$READ_ONLY_DIR" "$READ_ONLY_DIR" && mount -o remount,bind,ro "$READ_ONLY_DIR" && exec env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "$@"' sh "$@"
fi
if [ -n "$SPLIT_A" ] && [ -n "$SPLIT_B" ] && [ $((rank % 2)) -eq 1 ]; then
    exec unshare -m sh -c 'mount --bind "$SPLIT_B" "$SPLIT_A" && exec env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "$@"' sh "$@"
fi
exec env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "$@"
"#;
            std::fs::write(&path, script).expect("write the wrapper");
            run_ok(
                {
                    let mut c = Command::new("chmod");
                    c.arg("+x").arg(&path);
                    c
                },
                "chmod",
            );
            path
        })
        .clone()
}

/// Where a job's file lives.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// GlusterFS, odd ranks through the second client.
    TwoClients,
    /// A local directory.
    Local,
}

/// One job's settings.
#[derive(Clone, Copy, Debug)]
struct Job {
    /// Open MPI's MPI-IO component (`OMPI_MCA_io`); `None` for MPICH or the default.
    io: Option<&'static str>,
    /// Whether the library is preloaded.
    preload: bool,
    place: Place,
    /// When the job is killed.
    timeout: Duration,
}

impl Job {
    /// A job with the usual time limit.
    fn new(io: Option<&'static str>, preload: bool, place: Place) -> Job {
        Job {
            io,
            preload,
            place,
            timeout: TIMEOUT,
        }
    }
}

/// A job's time limit: far more than a passing run takes (a few seconds).
const TIMEOUT: Duration = Duration::from_secs(90);
/// The time limit of ompio's control runs without the library: across two clients its own
/// shared pointer hung in 4 of 10 runs here (lost no record when it finished).
const OMPIO_CONTROL_TIMEOUT: Duration = Duration::from_secs(20);

/// The MPI-IO components this MPI offers the tests: Open MPI's ompio and ROMIO, or MPICH's one.
fn components() -> Vec<Option<&'static str>> {
    if launcher_is_mpich() {
        vec![None]
    } else {
        vec![Some("ompio"), Some("romio321")]
    }
}

/// Ranks per job: 4 under Open MPI, 3 under MPICH (slow one-sided progress when
/// oversubscribed, `../shared/notes/environment.md`).
fn ranks() -> usize {
    if launcher_is_mpich() {
        3
    } else {
        4
    }
}

/// Rank 0's verdict line ("NAME: OK ..." or "NAME: FAILED ..."), or what happened instead.
fn verdict(out: &brlock_testkit::RunOutput) -> String {
    out.rank_lines(0)
        .into_iter()
        .find(|l| l.contains(": OK") || l.contains(": FAILED"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| format!("no verdict: {}", out.outcome()))
}

/// Runs test program `exe` (its command words) once as `job`; returns whether it passed and rank 0's verdict line.
fn run(exe: &[String], name: &str, job: Job, extra_env: &[(&str, &str)]) -> (bool, String) {
    let file_name = format!(
        "{name}.{}.{}",
        job.io.unwrap_or("mpi"),
        if job.preload { "lib" } else { "plain" }
    );
    let mut cmd = MpiRun::new(ranks(), wrapper())
        .timeout(job.timeout)
        .args(exe.iter().cloned());
    let path = match job.place {
        Place::TwoClients => {
            let (a, _) = gluster_dirs(&format!("mpiio-{name}"));
            let (ma, mb) = brlock_testkit::gluster_mounts();
            cmd = cmd
                .env("SPLIT_A", ma.to_string_lossy())
                .env("SPLIT_B", mb.to_string_lossy());
            a.join(&file_name)
        }
        Place::Local => fresh_dir(&bin_dir(), &format!("local-{name}")).join(&file_name),
    };
    cmd = cmd.arg(path.to_string_lossy());
    if job.preload {
        cmd = cmd.env("PRELOAD", library().to_string_lossy());
    }
    if let Some(io) = job.io {
        cmd = cmd.env("OMPI_MCA_io", io);
    }
    for (k, v) in extra_env {
        cmd = cmd.env(*k, *v);
    }
    let out = cmd.run();
    let verdict = verdict(&out);
    let passed = out.success() && verdict.contains(": OK");
    if !passed && job.preload && extra_env.is_empty() {
        eprintln!("{}", out.failure_message());
    }
    (passed, verdict)
}

/// `RUNS` runs of `source` with the library across two clients, under every component: all
/// must pass. Prints the count per component.
fn passes_with_library(source: &str, name: &str, runs: usize) {
    let exe = program(source);
    let mut failures = Vec::new();
    for io in components() {
        let job = Job::new(io, true, Place::TwoClients);
        let mut passed = 0;
        for _ in 0..runs {
            let (ok, verdict) = run(&exe, name, job, &[]);
            if ok {
                passed += 1;
            } else {
                failures.push(format!("{}: {verdict}", io.unwrap_or("mpi")));
            }
        }
        println!(
            "{name} with libbrlock-mpiio, two GlusterFS clients, {} ranks, io {}: {passed} of {runs} runs passed",
            ranks(),
            io.unwrap_or("(MPICH ROMIO)")
        );
    }
    assert!(failures.is_empty(), "failed runs: {failures:#?}");
}

#[test]
fn shared_pointer_appends_across_two_clients() {
    passes_with_library("shared_ptr.c", "shared_ptr", RUNS);
}

#[test]
fn ordered_blocks_across_two_clients() {
    passes_with_library("ordered.c", "ordered", RUNS);
}

#[test]
fn fortran_write_shared_across_two_clients() {
    passes_with_library("shared_ptr.f90", "shared_ptr_f", 2);
}

/// mpi4py's `File.Write_shared` and `File.Write_ordered`. Debian's `python3-mpi4py` is built
/// for Open MPI: under MPICH the test says so and does nothing.
#[test]
fn mpi4py_write_shared_across_two_clients() {
    if launcher_is_mpich() {
        println!("mpi4py: Debian's python3-mpi4py is built for Open MPI; not run under MPICH");
        return;
    }
    passes_with_library("shared_ptr.py", "shared_ptr_py", 2);
}

/// The negative control: the same binary without the library loses records through ROMIO's
/// shared pointer (Open MPI's `romio321` and MPICH) across two clients; ompio's outcome (one
/// run: it passes, or hangs) is reported, not asserted.
#[test]
fn without_the_library_romio_loses_records() {
    let exe = program("shared_ptr.c");
    for io in components() {
        let ompio = io == Some("ompio");
        let job = Job {
            io,
            preload: false,
            place: Place::TwoClients,
            timeout: if ompio {
                OMPIO_CONTROL_TIMEOUT
            } else {
                TIMEOUT
            },
        };
        let mut verdicts = Vec::new();
        let mut hazard = false;
        // ompio's own pointer may hang: one run, reported.
        for _ in 0..if ompio { 1 } else { CONTROL_RUNS } {
            let (ok, verdict) = run(&exe, "control", job, &[]);
            verdicts.push(verdict);
            if !ok {
                hazard = true;
                break;
            }
        }
        let label = io.unwrap_or("(MPICH ROMIO)");
        println!(
            "shared_ptr WITHOUT the library, two GlusterFS clients, io {label}: {} of {} runs failed: {verdicts:?}",
            usize::from(hazard),
            verdicts.len()
        );
        if !ompio {
            assert!(
                hazard,
                "io {label}: no run lost records without the library ({verdicts:?}): the control shows nothing"
            );
        }
    }
}

/// On local disk, with the library, with it switched off (`BRLOCK_MPIIO=off`: a pure
/// pass-through), and without it, every program passes.
#[test]
fn local_disk_with_without_and_switched_off() {
    for (source, name) in [("shared_ptr.c", "shared_ptr"), ("ordered.c", "ordered")] {
        let exe = program(source);
        for io in components() {
            for (preload, env) in [
                (true, &[][..]),
                (true, &[("BRLOCK_MPIIO", "off")][..]),
                (false, &[][..]),
            ] {
                let job = Job::new(io, preload, Place::Local);
                let (ok, verdict) = run(&exe, name, job, env);
                assert!(ok, "{name} on local disk, {job:?} {env:?}: {verdict}");
            }
        }
    }
}

/// `BRLOCK_MPIIO=off` really passes through: across two clients under ROMIO the preloaded
/// library then loses records like the MPI library alone (skipped under ompio, which does not
/// lose them).
#[test]
fn switched_off_is_a_pass_through() {
    let exe = program("shared_ptr.c");
    let Some(io) = components().into_iter().find(|c| *c != Some("ompio")) else {
        return;
    };
    let job = Job::new(io, true, Place::TwoClients);
    let verdicts: Vec<String> = (0..CONTROL_RUNS)
        .map(|_| run(&exe, "off", job, &[("BRLOCK_MPIIO", "off")]))
        .take_while(|(ok, _)| *ok)
        .map(|(_, v)| v)
        .collect();
    assert!(
        verdicts.len() < CONTROL_RUNS,
        "with BRLOCK_MPIIO=off every run passed ({verdicts:?}): the library did not pass through"
    );
}

/// `iwrite_shared`, `read_shared`, `iread_shared`, `seek_shared` (set, end, current), a size
/// that is not a whole number of etypes (refused), `MPI_MODE_APPEND`: with the library every
/// check passes on local disk under every component. Without it the outcome is reported
/// (ompio and ROMIO each get some of these wrong even on local disk).
#[test]
fn other_pointer_calls_on_local_disk() {
    let exe = program("pointer_calls.c");
    for io in components() {
        for preload in [true, false] {
            let job = Job::new(io, preload, Place::Local);
            let (ok, verdict) = run(&exe, "pointer_calls", job, &[]);
            println!(
                "pointer_calls on local disk, io {}, {}: {verdict}",
                io.unwrap_or("(MPICH ROMIO)"),
                if preload {
                    "with the library"
                } else {
                    "WITHOUT the library"
                }
            );
            assert!(ok || !preload, "pointer_calls with the library: {verdict}");
        }
    }
}

// --- Atomic mode -------------------------------------------------------------------------

/// The modes of `atomicity.c`: one contiguous region, a strided file view, a growing file.
const ATOMICITY_MODES: [&str; 3] = ["contig", "noncontig", "grow"];

/// `atomicity.c MODE` (its command words).
fn atomicity(mode: &str) -> Vec<String> {
    let mut exe = program("atomicity.c");
    exe.push(mode.into());
    exe
}

/// With the library, across two GlusterFS clients, under every component: rank 0 writes in
/// atomic mode (a whole region, through a strided view, or appended blocks) while the others
/// read, and no read is mixed or stale. Two runs of each mode.
#[test]
fn atomic_mode_across_two_clients() {
    let mut failures = Vec::new();
    for io in components() {
        let job = Job::new(io, true, Place::TwoClients);
        for mode in ATOMICITY_MODES {
            for _ in 0..2 {
                let (ok, verdict) = run(&atomicity(mode), &format!("atomic-{mode}"), job, &[]);
                println!(
                    "with libbrlock-mpiio, io {}: {verdict}",
                    io.unwrap_or("(MPICH ROMIO)")
                );
                if !ok {
                    failures.push(format!("{}: {verdict}", io.unwrap_or("mpi")));
                }
            }
        }
    }
    assert!(failures.is_empty(), "failed runs: {failures:#?}");
}

/// The negative control: without the library the same binary sees what atomic mode forbids
/// across two clients, under every component (ROMIO's fcntl locks leave the client caches
/// stale; ompio ignores atomic mode), in at least one mode within two runs of each.
#[test]
fn without_the_library_atomic_mode_reads_mixed_or_stale() {
    for io in components() {
        let job = Job::new(io, false, Place::TwoClients);
        let mut verdicts = Vec::new();
        'modes: for mode in ATOMICITY_MODES {
            for _ in 0..2 {
                let (ok, verdict) = run(&atomicity(mode), &format!("atomic-{mode}"), job, &[]);
                verdicts.push(verdict);
                if !ok {
                    break 'modes;
                }
            }
        }
        let label = io.unwrap_or("(MPICH ROMIO)");
        println!("atomicity WITHOUT the library, io {label}: {verdicts:?}");
        assert!(
            verdicts.last().is_some_and(|v| v.contains(": FAILED")),
            "io {label}: no mixed or stale read without the library ({verdicts:?}): the control shows nothing"
        );
    }
}

/// HDF5 through h5py's MPI-IO driver with `f.atomic = True`, with the library, across two
/// clients: no read mixes two writes. Debian's `python3-h5py-mpi` is built for Open MPI:
/// under MPICH the test says so and does nothing.
#[test]
fn h5py_atomic_mode_across_two_clients() {
    if launcher_is_mpich() {
        println!("h5py: Debian's python3-h5py-mpi is built for Open MPI; not run under MPICH");
        return;
    }
    passes_with_library("h5_atomic.py", "h5_atomic", 2);
}

/// Two runs of `with` (the library preloaded) across two clients under component `io`, both
/// of which must pass; then the negative control, `without` (the same program, not
/// preloaded), which must fail in one of two runs. `hazard` names what the control shows.
fn passes_and_control_fails(
    with: &[String],
    without: &[String],
    name: &str,
    io: Option<&'static str>,
    hazard: &str,
) {
    let label = io.unwrap_or("(MPICH ROMIO)");
    for _ in 0..2 {
        let (ok, verdict) = run(with, name, Job::new(io, true, Place::TwoClients), &[]);
        println!("{name} with libbrlock-mpiio, two GlusterFS clients, io {label}: {verdict}");
        assert!(ok, "{name} with the library, io {label}: {verdict}");
    }
    let mut verdicts = Vec::new();
    for _ in 0..2 {
        let (ok, verdict) = run(without, name, Job::new(io, false, Place::TwoClients), &[]);
        verdicts.push(verdict);
        if !ok {
            break;
        }
    }
    println!("{name} WITHOUT the library, two GlusterFS clients, io {label}: {verdicts:?}");
    assert!(
        verdicts.last().is_some_and(|v| v.contains(": FAILED")),
        "io {label}: no {hazard} without the library ({verdicts:?}): the control shows nothing"
    );
}

// --- Large-count forms -------------------------------------------------------------------

/// `large_count.c MODE` (its command words); with `huge` it also checks that a count past
/// `INT_MAX` is refused.
fn large_count(huge: bool) -> Vec<String> {
    let mut exe = program("large_count.c");
    exe.push(if huge { "huge" } else { "plain" }.into());
    exe
}

/// MPI 4.0's large-count forms (`MPI_File_write_shared_c`, `_write_ordered_c`,
/// `_write_at_c`, ...), mixed with the `int` forms, across two clients with the library: no
/// block lost or overwritten through the shared pointer, no stale read in atomic mode, a count
/// past `INT_MAX` refused with an error. Then the negative control: the same binary without
/// the library shows the hazard (lost blocks or stale reads) in one of two runs. Only MPICH 4
/// has these forms; under Open MPI 4.1 the test says so and does nothing.
#[test]
fn large_count_forms_across_two_clients() {
    if !launcher_is_mpich() {
        println!("large_count: Open MPI 4.1 has no large-count forms; run under MPICH");
        return;
    }
    passes_and_control_fails(
        &large_count(true),
        &large_count(false),
        "large_count",
        None,
        "lost block or stale read",
    );
}

/// `MPI_File_get_size`, and `MPI_File_seek` and `MPI_File_seek_shared` to `MPI_SEEK_END`, in
/// atomic mode across two clients: after rank 0 appends, every rank sees the new end (the size
/// fresh from the server), under every component. Two runs with the library; the control, the
/// same binary without it, falls short on a rank of the second client (its cached size) in
/// one of two runs per component.
#[test]
fn seek_to_the_end_in_atomic_mode_across_two_clients() {
    let exe = program("seek_end.c");
    for io in components() {
        passes_and_control_fails(&exe, &exe, "seek_end", io, "stale end of file");
    }
}

/// Atomic mode on a file opened `MPI_MODE_RDONLY` on a read-only mount (every rank sees the
/// directory bind-mounted read-only), under every component, with the library: atomic mode
/// turns on, reads see the file, the size is right and a write is refused. A build that opened
/// its own descriptor for writing failed here (`MPI_File_set_atomicity`: read-only file
/// system). The same binary without the library is the reference: it must pass too, so a
/// failure with the library is the library's. The negative control: with the library and an
/// atomic file it cannot open (`BRLOCK_COHERENCE=bogus` makes its open fail, as the
/// read-write open on the read-only mount did), the program must report the failure.
#[test]
fn atomic_mode_on_a_read_only_mount() {
    const INTS: usize = 4096;
    let exe = program("read_only.c");
    let dir = fresh_dir(&bin_dir(), "read-only");
    let file = dir.join("data");
    let bytes: Vec<u8> = (0..INTS as i32).flat_map(i32::to_ne_bytes).collect();
    std::fs::write(&file, bytes).expect("write the read-only test's file");
    for io in components() {
        let label = io.unwrap_or("(MPICH ROMIO)");
        // (preloaded, BRLOCK_COHERENCE, must pass)
        for (preload, coherence, pass) in
            [(false, "", true), (true, "", true), (true, "bogus", false)]
        {
            let mut cmd = MpiRun::new(ranks(), wrapper())
                .timeout(TIMEOUT)
                .args(exe.iter().cloned())
                .arg(file.to_string_lossy())
                .arg(INTS.to_string())
                .env("READ_ONLY_DIR", dir.to_string_lossy())
                .env("BRLOCK_COHERENCE", coherence);
            if preload {
                cmd = cmd.env("PRELOAD", library().to_string_lossy());
            }
            if let Some(io) = io {
                cmd = cmd.env("OMPI_MCA_io", io);
            }
            let out = cmd.run();
            let verdict = verdict(&out);
            let with = if preload { "with" } else { "WITHOUT" };
            println!("read_only {with} the library (BRLOCK_COHERENCE={coherence:?}), io {label}: {verdict}");
            if pass {
                assert!(
                    out.success() && verdict.contains(": OK"),
                    "read_only {with} the library, io {label}: {verdict}\n{}",
                    out.failure_message()
                );
            } else {
                assert!(
                    verdict.contains(": FAILED"),
                    "read_only with an atomic file that cannot open, io {label}: {verdict}: the control shows nothing"
                );
            }
        }
    }
}

//! The C and Fortran examples (`capi/examples/`), built against the installed libbrlock and
//! run under `mpirun`: the lock counter is exact; 8 ranks x 10,000 shared appends of random
//! length are each in the file once and intact (and the ordered ones in rank order); no read
//! of an atomic file sees a mix of two writers; the Fortran lock and append examples pass at
//! 4 ranks.

mod common;

use std::time::Duration;

use common::{build, fields, fresh_dir, number, MpiRun, OSC_COMPONENTS};

/// Runs example `source` at `ranks` under `osc` with `args`, and returns its result line.
fn run(
    source: &str,
    compiler: &str,
    ranks: usize,
    osc: &str,
    args: &[String],
) -> std::collections::HashMap<String, String> {
    let exe = build(source, compiler);
    let out = MpiRun::new(ranks, exe)
        .osc(osc)
        .args(args.iter().cloned())
        .timeout(Duration::from_secs(240))
        .run();
    let what = format!("{source} ({compiler}) at {ranks} ranks, osc {osc}");
    assert!(out.success(), "{what}: {}", out.failure_message());
    let tag = std::path::Path::new(source)
        .file_stem()
        .map(|s| format!("{} ", s.to_string_lossy()))
        .unwrap_or_default();
    let f = fields(&out, &tag);
    eprintln!("{what}: {f:?}");
    let ok = f.get("ok").map(String::as_str);
    assert!(matches!(ok, Some("1" | "T")), "{what}: {f:?}");
    f
}

fn scratch(name: &str) -> String {
    let dir = fresh_dir(&std::env::temp_dir(), "brlock-capi-examples");
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn c_lock_example_counts_exactly() {
    for osc in OSC_COMPONENTS {
        for ranks in [2, 4] {
            let f = run(
                "examples/c/lock.c",
                "mpicc",
                ranks,
                osc,
                &[scratch("counter"), "100".into()],
            );
            assert_eq!(number(&f, "counter"), 100 * ranks as u64);
        }
    }
}

#[test]
fn c_append_example_8_ranks_10000_records_each_once_and_intact() {
    for osc in OSC_COMPONENTS {
        let f = run(
            "examples/c/append.c",
            "mpicc",
            8,
            osc,
            &[scratch("appends"), "10000".into()],
        );
        assert_eq!(number(&f, "records"), 8 * 10_001);
        for key in ["missing", "duplicates", "corrupt"] {
            assert_eq!(number(&f, key), 0, "{key}: {f:?}");
        }
        assert_eq!(number(&f, "ordered_in_rank_order"), 1);
    }
}

#[test]
fn fortran_lock_example_at_4_ranks() {
    let f = run(
        "examples/fortran/lock.f90",
        "mpifort",
        4,
        "sm",
        &[scratch("fcounter"), "50".into()],
    );
    assert_eq!(number(&f, "counter"), 200);
}

#[test]
fn fortran_append_example_at_4_ranks() {
    let f = run(
        "examples/fortran/append.f90",
        "mpifort",
        4,
        "sm",
        &[scratch("fappends"), "2000".into()],
    );
    assert_eq!(number(&f, "records"), 8000);
    for key in ["missing", "duplicates", "corrupt"] {
        assert_eq!(number(&f, key), 0, "{key}: {f:?}");
    }
}

#[test]
fn c_atomic_example_never_reads_a_mix_of_writers() {
    for osc in OSC_COMPONENTS {
        let f = run(
            "examples/c/atomic.c",
            "mpicc",
            4,
            osc,
            &[scratch("atomic"), "40".into()],
        );
        assert_eq!(number(&f, "mixed"), 0, "{f:?}");
        assert_eq!(number(&f, "reads"), 160, "{f:?}");
    }
}

/// The complete C program of the README's section "Using it from C, C++ and Fortran" builds
/// and runs (so the README cannot drift from the API).
#[test]
fn readme_c_program_builds_and_runs() {
    let readme = std::fs::read_to_string(common::workspace_root().join("README.md"))
        .expect("read README.md");
    let section = readme
        .split("## Using it from C, C++ and Fortran")
        .nth(1)
        .expect("the README has the C section");
    let program = section
        .split("```c\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the C section has a ```c block");
    let dir = fresh_dir(&std::env::temp_dir(), "brlock-capi-readme");
    let source = dir.join("readme.c");
    std::fs::write(&source, program).expect("write the README's program");
    let exe = build(&source.to_string_lossy(), "mpicc");
    let out = MpiRun::new(4, exe).timeout(Duration::from_secs(60)).run();
    assert!(out.success(), "{}", out.failure_message());
    for rank in 0..4 {
        assert_eq!(
            out.rank_lines(rank),
            vec![format!("rank {rank} holds the range")],
            "{}",
            out.describe()
        );
    }
}

//! What the C and Fortran tests share: libbrlock installed into a scratch prefix by
//! `scripts/install.sh`, test programs built against it with an MPI compiler wrapper and
//! `pkg-config` (exactly as a user would), and jobs through the one `mpirun` helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub use brlock_testkit::*;

/// The prefix libbrlock is installed into for this test binary (once): `scripts/install.sh
/// --prefix P` with the build of these tests (`--debug` unless they run in release), plus
/// the Fortran module.
pub fn prefix() -> PathBuf {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let (target, profile) = target_and_profile();
            let prefix = fresh_dir(&target.join("tmp"), "capi-prefix");
            let mut cmd = Command::new("bash");
            cmd.arg(workspace_root().join("scripts/install.sh"))
                .arg("--prefix")
                .arg(&prefix)
                .arg("--target-dir")
                .arg(&target);
            if profile != "release" {
                cmd.arg("--debug");
            }
            // The Fortran module too: Open MPI's mpifort needs gfortran (scripts/setup.sh).
            cmd.arg("--fortran");
            let out = cmd
                .stdin(Stdio::null())
                .output()
                .expect("run scripts/install.sh");
            assert!(
                out.status.success(),
                "scripts/install.sh failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            prefix
        })
        .clone()
}

/// `pkg-config --cflags --libs brlock` against the installed prefix, as words.
pub fn pkg_config() -> Vec<String> {
    let pc = prefix().join("lib/pkgconfig");
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", "brlock"])
        .env("PKG_CONFIG_PATH", &pc)
        .stdin(Stdio::null())
        .output()
        .expect("run pkg-config (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "pkg-config --cflags --libs brlock failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The program built from `source` (a path under `capi/`) with the compiler wrapper
/// `compiler` (`mpicc`, `mpicc.mpich`, `mpifort`) and the flags of `brlock.pc`, once per test
/// binary.
///
/// # Panics
/// If the compiler fails: its output is the message.
pub fn build(source: &str, compiler: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{compiler}:{source}");
    if let Some(p) = BUILT
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned")
        .get(&key)
    {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let stem = Path::new(source)
        .file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let dir = fresh_dir(&prefix().join("bin"), &format!("{stem}-{compiler}"));
    let exe = dir.join(&stem);
    let mut cmd = Command::new(compiler);
    if compiler.contains("fort") {
        // The module file `brlock.mod` is in the prefix's include directory.
        cmd.arg("-Wall");
    } else {
        cmd.args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-std=c11",
            "-D_DEFAULT_SOURCE",
        ]);
    }
    cmd.arg("-O2")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(pkg_config());
    if compiler.contains("fort") {
        cmd.arg(prefix().join("lib/libbrlock_fortran.a"));
    }
    let out = cmd
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {} failed:\n{}{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    BUILT
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned")
        .insert(key, exe.clone());
    exe
}

/// The `key=value` words of the first line of `out`'s rank 0 that starts with `tag`.
pub fn fields(out: &RunOutput, tag: &str) -> HashMap<String, String> {
    let line = out
        .rank_lines(0)
        .into_iter()
        .find(|l| l.starts_with(tag))
        .unwrap_or_else(|| panic!("no `{tag}` line from rank 0:\n{}", out.describe()));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The number `key` of [`fields`].
pub fn number(f: &HashMap<String, String>, key: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number `{key}` in {f:?}"))
}

/// The C compiler wrapper of the MPI this libbrlock is built for: `$MPICC` (as for the build:
/// `mpicc.mpich` for the MPICH build), default `mpicc`.
pub fn mpicc() -> String {
    std::env::var("MPICC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "mpicc".into())
}

/// Whether this libbrlock is built for MPICH (else Open MPI).
pub fn built_for_mpich() -> bool {
    // SAFETY: the function returns a pointer to a static NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(brlock_capi::brlock_built_for_mpi()) };
    name.to_string_lossy().starts_with("MPICH")
}

//! Records which MPI library the C API is built for (the one `mpi-sys` builds against: the
//! compiler wrapper `$MPICC`, default `mpicc`), so that the library can refuse to run under
//! another one (`BRLOCK_ERR_WRONG_MPI`); and gives the shared library its soname.

use std::io::Write;
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-env-changed=MPICC");
    println!("cargo:rerun-if-changed=build.rs");
    let mpicc = std::env::var("MPICC").unwrap_or_else(|_| "mpicc".into());
    let built_for = probe(&mpicc).unwrap_or_else(|why| {
        println!("cargo:warning=cannot tell which MPI `{mpicc}` is ({why}); the C API will not check the MPI it runs under");
        String::new()
    });
    println!("cargo:rustc-env=BRLOCK_BUILT_FOR_MPI={built_for}");
    // The installed name (scripts/install.sh): programs record libbrlock.so.0, not the Rust
    // file name.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbrlock.so.0");
}

/// `Open MPI 4.1.4` or `MPICH 4.0.2`, from the macros of the wrapper's `mpi.h`.
fn probe(mpicc: &str) -> Result<String, String> {
    let mut child = Command::new(mpicc)
        .args(["-E", "-dM", "-x", "c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"#include <mpi.h>\n")
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("preprocessing mpi.h failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let define = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix("#define ")?.strip_prefix(name)?;
            rest.starts_with(' ')
                .then(|| rest.trim().trim_matches('"').to_string())
        })
    };
    if let (Some(a), Some(b), Some(c)) = (
        define("OMPI_MAJOR_VERSION"),
        define("OMPI_MINOR_VERSION"),
        define("OMPI_RELEASE_VERSION"),
    ) {
        return Ok(format!("Open MPI {a}.{b}.{c}"));
    }
    if let Some(v) = define("MPICH_VERSION") {
        return Ok(format!("MPICH {v}"));
    }
    Err("its mpi.h defines neither OMPI_MAJOR_VERSION nor MPICH_VERSION".into())
}

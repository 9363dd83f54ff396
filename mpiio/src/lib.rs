//! `libbrlock-mpiio.so`: an MPI-IO interposition library. Loaded before the MPI library
//! (`mpirun -x LD_PRELOAD=$PREFIX/lib/libbrlock-mpiio.so ./prog` under Open MPI; MPICH's
//! launcher passes `LD_PRELOAD` on), it defines MPI's shared-file-pointer functions under both
//! their `MPI_File_*` and `PMPI_File_*` names and keeps the shared pointer of every file in
//! brlock's one-sided counter ([`brlock::io::append::SharedPointer`]) instead of the MPI
//! library's hidden file, so that appends through `MPI_File_write_shared` and
//! `MPI_File_write_ordered` are neither lost nor overlapping on any file system, across client
//! caches. Outside atomic mode every access itself is forwarded to the MPI library (a
//! shared-pointer one to its explicit-offset call, `MPI_File_write_at`, ..., at the offset the
//! counter gave). In atomic mode ([`atomic`]) every data access is done by brlock's atomic
//! file over the bytes the file view maps it to, with brlock's locks and cache coherence.
//! `docs/mpiio.md` documents what is intercepted, the semantics and the limits.
//!
//! * `BRLOCK_MPIIO=off` makes every function a pure pass-through.
//! * Diagnostics are `tracing` events on stderr, filtered by `RUST_LOG` (default `warn`), each
//!   line prefixed with the rank in `MPI_COMM_WORLD`.
//!
//! The one place with `unsafe` code is the C boundary ([`boundary`]: the exported functions,
//! the look-up of the MPI library's own definitions with `dlsym(RTLD_NEXT, ...)`, packing and
//! statuses); the bookkeeping ([`shared`], [`atomic`]) is safe Rust over the library.

pub mod atomic;
#[allow(unsafe_code)]
pub mod boundary;
mod logging;
pub mod shared;

/// Whether the library is on: `BRLOCK_MPIIO` is unset or anything but `off`, `0`, `false` or
/// `no` (read once).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = !matches!(
            std::env::var("BRLOCK_MPIIO").as_deref().map(str::trim),
            Ok("off" | "OFF" | "0" | "false" | "no")
        );
        if !on {
            tracing::debug!("BRLOCK_MPIIO=off: every MPI_File call passes through");
        }
        on
    })
}

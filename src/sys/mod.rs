//! The only module with `unsafe` code: a small, safe layer over `mpi::ffi`.
//!
//! rsmpi covers MPI initialisation, communicators, point-to-point and collectives, but neither
//! one-sided communication nor MPI-IO. This module adds what the crate needs of them, and
//! nothing else in the crate touches `mpi::ffi`:
//!
//! * `check` (crate-internal): MPI return codes to [`Error::Mpi`](crate::Error::Mpi);
//! * [`library_version`], [`standard_version`], [`is_finalized`], [`abort`];
//! * [`refresh_size`]: a file's size fresh from a network file system's server;
//! * [`OwnedComm`]: a duplicated communicator that returns errors instead of aborting;
//! * [`Window`]: a window of `u64` words with bounds-checked passive-target epochs
//!   ([`Window::with_lock`], [`Epoch`]);
//! * [`MpiFile`]: an MPI-IO file ([`OpenMode`]) with positional byte reads and writes, atomic
//!   mode, and file views built from [`Pieces`](crate::pieces::Pieces);
//! * [`BorrowedComm`]: a communicator handed over by a caller (from C), used without owning it.
//!
//! # Lifetime rules
//!
//! Every object here must be freed (explicitly or by `Drop`) before MPI is finalized, that is
//! before the [`Runtime`](crate::runtime::Runtime) (rsmpi's `Universe`) is dropped, and
//! windows and files before the communicator they were created on. `Drop` never calls MPI after
//! finalization: it logs an error and leaks the handle instead.
//!
//! # Threads
//!
//! MPI is initialised with `MPI_THREAD_FUNNELED`: only the thread that initialised MPI may call
//! it. [`OwnedComm`], [`Window`] and [`MpiFile`] are neither `Send` nor `Sync`, so they stay on the thread
//! that created them.

mod comm;
mod datatype;
mod error;
mod file;
mod fs;
mod window;

pub use comm::{BorrowedComm, OwnedComm};
pub(crate) use error::check;
pub use file::{MpiFile, OpenMode};
pub use fs::refresh_size;
pub use window::{Epoch, LockKind, Op, Window};

use std::os::raw::{c_char, c_int};

use mpi::ffi;
use mpi::topology::Communicator;

/// The MPI library's own description of itself (e.g. `Open MPI v4.1.4, package: ...`),
/// trimmed of trailing whitespace and NUL bytes. May be called before `MPI_Init`.
///
/// MPI 3.1 §8.1.1, `MPI_Get_library_version`.
pub fn library_version() -> String {
    let mut buf = vec![0u8; ffi::MPI_MAX_LIBRARY_VERSION_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for MPI_MAX_LIBRARY_VERSION_STRING characters (plus one spare),
    // which is the most MPI writes; `len` is a valid out-pointer. The function may be called
    // at any time, even before initialisation.
    let code = unsafe { ffi::MPI_Get_library_version(buf.as_mut_ptr().cast::<c_char>(), &mut len) };
    if code != ffi::MPI_SUCCESS as c_int {
        return String::from("unknown MPI library");
    }
    buf.truncate(usize::try_from(len).unwrap_or(0).min(buf.len()));
    String::from_utf8_lossy(&buf)
        .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// The version of the MPI standard the library implements, as `(version, subversion)`,
/// e.g. `(3, 1)`. May be called before `MPI_Init`.
///
/// MPI 3.1 §8.1.1, `MPI_Get_version`.
pub fn standard_version() -> (i32, i32) {
    let (mut version, mut subversion): (c_int, c_int) = (0, 0);
    // SAFETY: both arguments are valid out-pointers to c_int; the function may be called at
    // any time.
    let code = unsafe { ffi::MPI_Get_version(&mut version, &mut subversion) };
    if code != ffi::MPI_SUCCESS as c_int {
        return (0, 0);
    }
    (version, subversion)
}

/// Whether `MPI_Finalize` has completed. May be called at any time.
///
/// MPI 3.1 §8.7, `MPI_Finalized`.
pub fn is_finalized() -> bool {
    let mut flag: c_int = 0;
    // SAFETY: `flag` is a valid out-pointer; MPI_Finalized may be called at any time.
    let code = unsafe { ffi::MPI_Finalized(&mut flag) };
    code == ffi::MPI_SUCCESS as c_int && flag != 0
}

/// Terminates every process of `comm`'s job with `code`, without unwinding or running
/// destructors. Use it when one rank fails in the middle of a collective operation, where
/// returning would leave the other ranks waiting forever.
///
/// MPI 3.1 §8.7, `MPI_Abort`.
pub fn abort(comm: &impl Communicator, code: i32) -> ! {
    // SAFETY: `comm.as_raw()` is a live communicator handle owned by `comm`, which is
    // borrowed for the duration of the call.
    unsafe {
        ffi::MPI_Abort(comm.as_raw(), code);
    }
    // MPI_Abort should not return; make sure of it.
    std::process::abort()
}

/// What the `Drop` of a handle we own does: frees it with `free` unless MPI is finalized
/// already — calling MPI then is erroneous, so the handle is leaked, with an error event — and
/// reports a failure as an error event, since a destructor cannot return it. `what` names the
/// handle in those events ("a window").
fn free_on_drop(what: &dyn std::fmt::Display, free: impl FnOnce() -> crate::Result<()>) {
    if is_finalized() {
        tracing::error!("{what} dropped after MPI_Finalize; its handle is leaked");
        return;
    }
    if let Err(e) = free() {
        tracing::error!("freeing {what} on drop: {e}");
    }
}

/// `MPI_ERRORS_RETURN`, for communicators and windows we own.
fn errors_return() -> ffi::MPI_Errhandler {
    // SAFETY: reading an immutable extern static that rsmpi's C shim initialises from the
    // MPI header constant; it is never written.
    unsafe { ffi::RSMPI_ERRORS_RETURN }
}

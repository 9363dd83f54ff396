//! The only module with `unsafe` code: a small, safe layer over `mpi::ffi`.
//!
//! rsmpi covers MPI initialisation, communicators, point-to-point and collectives, but neither
//! one-sided communication nor MPI-IO. This module adds what the crate needs of them, and
//! nothing else in the crate touches `mpi::ffi`:
//!
//! * `check` (crate-internal): MPI return codes to [`Error::Mpi`](crate::Error::Mpi);
//! * [`library_version`], [`library_name`], [`standard_version`], [`is_finalized`], [`abort`];
//! * [`refresh_size`]: a file's size fresh from a network file system's server;
//! * [`catch_stop_signals`], [`supervise`], [`signal_group`]: stop signals as a flag, and
//!   child processes that die with their rank (`brlock collect`);
//! * [`OwnedComm`]: a duplicated communicator that returns errors instead of aborting;
//! * [`Window`]: a window of `u64` words with bounds-checked passive-target epochs
//!   ([`Window::with_lock`], [`Epoch`]);
//! * [`MpiFile`]: an MPI-IO file ([`OpenMode`]) with positional byte reads and writes, atomic
//!   mode, and file views built from [`Pieces`](crate::pieces::Pieces);
//! * [`BorrowedComm`]: a communicator handed over by a caller (from C), used without owning it;
//! * [`type_map`]: a datatype flattened to the bytes it covers, for file views.
//!
//! # Lifetime rules
//!
//! Freeing a communicator, a window or an MPI file is collective. Every one must be freed
//! explicitly (`free`, `close`), by every rank of its group at the same point of the program,
//! before MPI is finalized (before the [`Runtime`](crate::runtime::Runtime) is dropped), and
//! windows and files before the communicator they were created on. Dropping one instead is the
//! error path: the drop does not enter the collective call, where the other ranks may never
//! join it, but leaves the handle to MPI and records it in [`abandoned`] (a group of one rank
//! is freed: no other rank is involved). Freeing the local objects (datatypes, info objects)
//! is local, and their `Drop` frees them. No `Drop` calls MPI after finalization.
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
mod process;
mod window;

pub use comm::{BorrowedComm, OwnedComm};
pub use datatype::{type_map, MAX_FLATTENED_EXTENT};
pub(crate) use error::check;
pub use file::{MpiFile, OpenMode};
pub use fs::refresh_size;
pub use process::{catch_stop_signals, signal_group, supervise};
pub use window::{Epoch, LockKind, Op, Window};

use std::os::raw::{c_char, c_int};

use mpi::ffi;
use mpi::topology::Communicator;

/// The MPI library's own description of itself (e.g. `Open MPI v4.1.4, package: ...`),
/// trimmed of trailing whitespace and NUL bytes. May be called before `MPI_Init`, and under
/// an MPI library other than the one this crate was built for (it takes no MPI handle).
///
/// The buffer is not sized by the build's `MPI_MAX_LIBRARY_VERSION_STRING` (256 in Open
/// MPI): a process that runs another MPI (MPICH's constant is 8192, and MPICH writes that
/// much) would write past it. It is larger than any implementation's constant.
///
/// MPI 3.1 §8.1.1, `MPI_Get_library_version`.
pub fn library_version() -> String {
    const ROOM: usize = 1 << 16;
    let mut buf = vec![0u8; ROOM.max(ffi::MPI_MAX_LIBRARY_VERSION_STRING as usize + 1)];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for 64 KiB, more than MPI_MAX_LIBRARY_VERSION_STRING of any MPI
    // (Open MPI 256, MPICH 8192), which bounds what MPI writes; `len` is a valid out-pointer.
    // The call takes no MPI handle, so it is sound under any MPI's ABI and before MPI_Init.
    let code = unsafe { ffi::MPI_Get_library_version(buf.as_mut_ptr().cast::<c_char>(), &mut len) };
    if code != ffi::MPI_SUCCESS as c_int {
        return String::from("unknown MPI library");
    }
    buf.truncate(usize::try_from(len).unwrap_or(0).min(buf.len()));
    String::from_utf8_lossy(&buf)
        .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// The MPI library's name and version in a few words (`Open MPI v4.1.4`, `MPICH Version:
/// 4.0.2`): the first line of [`library_version`] (MPICH's runs over many lines) up to the
/// first comma, with runs of whitespace made single spaces.
pub fn library_name() -> String {
    let version = library_version();
    let first = version.lines().next().unwrap_or_default();
    // Open MPI's first line goes on with ", package: ..., ident: ...": keep the name.
    let name = first.split(',').next().unwrap_or_default();
    name.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// What the `Drop` of a handle whose free is local (a datatype, an info object) does: frees
/// it with `free` unless MPI is finalized already (calling MPI then is erroneous, so the
/// handle is leaked, with an error event), and reports a failure as an error event, since a
/// destructor cannot return it.
fn free_on_drop(what: &dyn std::fmt::Display, free: impl FnOnce() -> crate::Result<()>) {
    if is_finalized() {
        tracing::error!("{what} dropped after MPI_Finalize; its handle is leaked");
        return;
    }
    if let Err(e) = free() {
        tracing::error!("freeing {what} on drop: {e}");
    }
}

/// Handles dropped without their collective free ([`abandoned`]).
static ABANDONED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// What the `Drop` of a handle whose free is collective (a communicator, a window, an MPI
/// file) does when the handle was not freed explicitly. A drop happens on whatever path the
/// program takes, an early return on an error included, where the other ranks may never reach
/// the matching call: entering a collective call there could wait forever. So a drop never
/// calls MPI, except where the call involves no other rank (a group of one rank, `ranks ==
/// 1`): the handle is left to MPI and recorded in [`abandoned`], and the
/// [`Runtime`](crate::runtime::Runtime), finding it there, ends the job instead of
/// finalizing. After `MPI_Finalize` calling MPI is erroneous: the handle is leaked with an
/// error event. `what` names the handle in events and in [`abandoned`].
fn free_or_abandon(
    what: &dyn std::fmt::Display,
    ranks: i32,
    free: impl FnOnce() -> crate::Result<()>,
) {
    if ranks == 1 || is_finalized() {
        return free_on_drop(what, free);
    }
    tracing::debug!("{what} dropped without being freed collectively; left to MPI");
    ABANDONED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(what.to_string());
}

/// The handles of this process whose collective free was skipped because they were dropped
/// instead of freed (see [`OwnedComm`], [`Window`], [`MpiFile`]), oldest first: usually the
/// trace of an error path. Non-empty means this rank may have left the others waiting in a
/// collective call, and that MPI still holds resources some MPI libraries refuse to finalize
/// with (MPICH's UCX device aborts in `MPI_Finalize` over leaked windows), so the
/// [`Runtime`](crate::runtime::Runtime) ends the job rather than finalize.
pub fn abandoned() -> Vec<String> {
    ABANDONED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// `MPI_ERRORS_RETURN`, for communicators and windows we own.
fn errors_return() -> ffi::MPI_Errhandler {
    // SAFETY: reading an immutable extern static that rsmpi's C shim initialises from the
    // MPI header constant; it is never written.
    unsafe { ffi::RSMPI_ERRORS_RETURN }
}

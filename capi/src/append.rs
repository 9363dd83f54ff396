//! Shared-file appends: `brlock_append_*`, over [`brlock::io::append::AppendFile`].

use std::os::raw::{c_char, c_int, c_void};

use brlock::io::append::{AppendFile, AppendOptions};
use brlock::sys::BorrowedComm;
use brlock::Error;
use mpi::ffi::MPI_Comm;

use crate::args::{bytes, hand_out, handle, path, put_opt, take_back};
use crate::status::{boundary, Failure, Outcome};

/// `brlock_append_open` flag: empty the file first (otherwise appends go after its content).
pub const BRLOCK_APPEND_TRUNCATE: c_int = 1;

/// A file shared by every rank of a communicator, appended to through a shared file pointer
/// in an MPI window (opaque; one per rank).
#[allow(non_camel_case_types)]
pub struct brlock_append_t {
    file: AppendFile,
}

/// The handle behind `file`.
///
/// # Safety
/// As [`handle`].
unsafe fn the<'a>(file: *mut brlock_append_t) -> Outcome<&'a mut brlock_append_t> {
    // SAFETY: the caller's promise, passed on.
    unsafe { handle(file, "the append handle") }
}

/// Opens the shared file over `comm` and stores the handle in `*file`.
///
/// # Safety
/// `path` is `NULL` or NUL-terminated; `file` is `NULL` or valid for a write.
unsafe fn open_over(
    comm: Result<BorrowedComm, Error>,
    path_c: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_append_t,
) -> Outcome<()> {
    if file.is_null() {
        return Err(Failure::Null("the out-parameter for the append handle"));
    }
    // SAFETY: the caller's promise about `path_c`.
    let path = unsafe { path(path_c) }?;
    if flags & !BRLOCK_APPEND_TRUNCATE != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown flags {flags:#x} (only BRLOCK_APPEND_TRUNCATE is defined)"
        ))
        .into());
    }
    let comm = comm?;
    let options = AppendOptions::truncating(flags & BRLOCK_APPEND_TRUNCATE != 0);
    let opened = AppendFile::open(comm.comm(), path, &options)?;
    // SAFETY: `file` is non-NULL (checked above) and valid for a write (caller's promise).
    unsafe {
        hand_out(
            file,
            "the out-parameter for the append handle",
            brlock_append_t { file: opened },
        )
    }
}

/// Opens `path` for shared appends on every rank of `comm` and stores the handle in `*file`.
/// **Collective**: every rank calls it (each with its own path to the same file, usually the
/// same path). Rank 0 creates the file if needed; `flags` is 0 or `BRLOCK_APPEND_TRUNCATE`.
/// The outcome is the same on every rank: if one rank fails (a missing directory, no
/// permission), every rank returns an error (that rank its own kind, the others
/// `BRLOCK_ERR_COLLECTIVE`) and no handle.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_INVALID_ARGUMENT`, `BRLOCK_ERR_IO`,
/// `BRLOCK_ERR_COLLECTIVE`, `BRLOCK_ERR_WRONG_MPI`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `comm` is a live communicator (or `MPI_COMM_NULL`); `path` is `NULL` or NUL-terminated;
/// `file` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_append_open(
    comm: MPI_Comm,
    path: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_append_t,
) -> c_int {
    boundary("brlock_append_open", || {
        // SAFETY: the caller's promises, passed on.
        unsafe { open_over(crate::mpi::borrow(comm), path, flags, file) }
    })
}

/// [`brlock_append_open`] for Fortran: `comm` is a Fortran communicator handle (`MPI_Fint`).
/// **Collective.**
///
/// # Safety
/// As [`brlock_append_open`].
#[no_mangle]
pub unsafe extern "C" fn brlock_append_open_f(
    comm: c_int,
    path: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_append_t,
) -> c_int {
    boundary("brlock_append_open_f", || {
        // SAFETY: the caller's promises, passed on.
        unsafe { open_over(crate::mpi::borrow_fortran(comm), path, flags, file) }
    })
}

/// Appends the `length` bytes at `data` as one contiguous block and stores its offset in
/// `*offset` (if `offset` is not `NULL`). Local (independent of the other ranks): one atomic
/// fetch-and-add on the shared pointer, then one positional write. `length` 0 appends nothing
/// and gives the current end (`data` may then be `NULL`).
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_IO` (a full disk: `brlock_last_errno` is `ENOSPC`;
/// the reserved bytes stay a hole of zeros), `BRLOCK_ERR_INVALID_ARGUMENT` (the file would
/// pass 2^64 bytes), `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or an open handle used by one thread at a time; `data` is `NULL` or valid
/// for reads of `length` bytes; `offset` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_append_write(
    file: *mut brlock_append_t,
    data: *const c_void,
    length: usize,
    offset: *mut u64,
) -> c_int {
    boundary("brlock_append_write", || {
        // SAFETY: the caller's promises about `file` and `data`.
        let (h, data) = unsafe { (the(file)?, bytes(data, length, "data")?) };
        let at = h.file.append(data)?;
        // SAFETY: the caller's promise about `offset`.
        unsafe { put_opt(offset, at) };
        Ok(())
    })
}

/// Appends every rank's block back to back in rank order (MPI `MPI_File_write_ordered`
/// semantics) and stores this rank's offset in `*offset` (if not `NULL`). **Collective**:
/// every rank calls it, with any length (0 included).
///
/// Errors: as [`brlock_append_write`], and `BRLOCK_ERR_COLLECTIVE` when the reservation
/// failed on another rank.
///
/// # Safety
/// As [`brlock_append_write`].
#[no_mangle]
pub unsafe extern "C" fn brlock_append_ordered(
    file: *mut brlock_append_t,
    data: *const c_void,
    length: usize,
    offset: *mut u64,
) -> c_int {
    boundary("brlock_append_ordered", || {
        // SAFETY: the caller's promises about `file` and `data`.
        let (h, data) = unsafe { (the(file)?, bytes(data, length, "data")?) };
        let at = h.file.append_ordered(data)?;
        // SAFETY: the caller's promise about `offset`.
        unsafe { put_opt(offset, at) };
        Ok(())
    })
}

/// Makes this rank's appends durable (`fdatasync`). Local.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_IO`.
///
/// # Safety
/// `file` is `NULL` or an open handle used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn brlock_append_sync(file: *mut brlock_append_t) -> c_int {
    boundary("brlock_append_sync", || {
        // SAFETY: the caller's promise about `file`.
        let h = unsafe { the(file) }?;
        Ok(h.file.sync()?)
    })
}

/// Ends appending and sets `*file` to `NULL`; stores the file's end in `*size` (if not
/// `NULL`). **Collective**: every rank syncs its writes, rank 0 also the file's metadata and
/// directory; when it returns `BRLOCK_OK` every rank's appends are durable. The handle is
/// freed also on error; `*file == NULL` does nothing.
///
/// Errors: `BRLOCK_ERR_NULL` (`file` itself), `BRLOCK_ERR_IO`, `BRLOCK_ERR_COLLECTIVE`,
/// `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or points to `NULL` or to an open handle; `size` is `NULL` or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn brlock_append_close(
    file: *mut *mut brlock_append_t,
    size: *mut u64,
) -> c_int {
    boundary("brlock_append_close", || {
        if file.is_null() {
            return Err(Failure::Null("the pointer to the append handle"));
        }
        // SAFETY: non-NULL, and points to NULL or to an open handle (caller's promise).
        let Some(handle) = (unsafe { take_back(file) }) else {
            return Ok(());
        };
        let end = handle.file.close()?;
        // SAFETY: the caller's promise about `size`.
        unsafe { put_opt(size, end) };
        Ok(())
    })
}

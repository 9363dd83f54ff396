//! Atomic files: `brlock_atomic_*`, over [`brlock::io::AtomicFile`] (MPI-IO style atomic mode
//! on the lock service).

use std::os::raw::{c_char, c_int, c_void};

use brlock::io::atomic::{AtomicFile, OpenOptions};
use brlock::io::ParallelFile;
use brlock::sys::BorrowedComm;
use brlock::{Error, Pieces};
use mpi::ffi::MPI_Comm;

use crate::args::{bytes, bytes_mut, hand_out, handle, path, put, take_back};
use crate::status::{boundary, Failure, Outcome};

/// `brlock_atomic_open` flag: rank 0 creates the file if it does not exist.
pub const BRLOCK_ATOMIC_CREATE: c_int = 1;

/// A file opened by every rank of a communicator, read and written with positional I/O, with
/// an MPI-IO style atomic mode on the lock service (opaque; one per rank).
#[allow(non_camel_case_types)]
pub struct brlock_atomic_t {
    file: AtomicFile,
}

/// The handle behind `file`.
///
/// # Safety
/// As [`handle`].
unsafe fn the<'a>(file: *mut brlock_atomic_t) -> Outcome<&'a mut brlock_atomic_t> {
    // SAFETY: the caller's promise, passed on.
    unsafe { handle(file, "the atomic file handle") }
}

/// Opens the file over `comm` and stores the handle in `*file`.
///
/// # Safety
/// `path_c` is `NULL` or NUL-terminated; `file` is `NULL` or valid for a write.
unsafe fn open_over(
    comm: Result<BorrowedComm, Error>,
    path_c: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_atomic_t,
) -> Outcome<()> {
    if file.is_null() {
        return Err(Failure::Null(
            "the out-parameter for the atomic file handle",
        ));
    }
    // SAFETY: the caller's promise about `path_c`.
    let path = unsafe { path(path_c) }?;
    if flags & !BRLOCK_ATOMIC_CREATE != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown flags {flags:#x} (only BRLOCK_ATOMIC_CREATE is defined)"
        ))
        .into());
    }
    let comm = comm?;
    let options = OpenOptions {
        create: flags & BRLOCK_ATOMIC_CREATE != 0,
        ..OpenOptions::default()
    };
    let opened = AtomicFile::open(comm.comm(), path, &options)?;
    // SAFETY: `file` is non-NULL (checked above) and valid for a write (caller's promise).
    unsafe {
        hand_out(
            file,
            "the out-parameter for the atomic file handle",
            brlock_atomic_t { file: opened },
        )
    }
}

/// Opens `path` on every rank of `comm` (each rank may name the same file by its own path)
/// and stores the handle in `*file`. **Collective.** `flags` is 0 or `BRLOCK_ATOMIC_CREATE`.
/// Atomic mode starts off, as in MPI-IO. The lock table is on rank 0.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_INVALID_ARGUMENT`, `BRLOCK_ERR_IO` (a missing file
/// without `BRLOCK_ATOMIC_CREATE`, on the rank that failed), `BRLOCK_ERR_COLLECTIVE` (on the
/// others), `BRLOCK_ERR_WRONG_MPI`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `comm` is a live communicator (or `MPI_COMM_NULL`); `path` is `NULL` or NUL-terminated;
/// `file` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_open(
    comm: MPI_Comm,
    path: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_atomic_t,
) -> c_int {
    boundary("brlock_atomic_open", || {
        // SAFETY: the caller's promises, passed on.
        unsafe { open_over(crate::mpi::borrow(comm), path, flags, file) }
    })
}

/// [`brlock_atomic_open`] for Fortran: `comm` is a Fortran communicator handle (`MPI_Fint`).
/// **Collective.**
///
/// # Safety
/// As [`brlock_atomic_open`].
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_open_f(
    comm: c_int,
    path: *const c_char,
    flags: c_int,
    file: *mut *mut brlock_atomic_t,
) -> c_int {
    boundary("brlock_atomic_open_f", || {
        // SAFETY: the caller's promises, passed on.
        unsafe { open_over(crate::mpi::borrow_fortran(comm), path, flags, file) }
    })
}

/// Switches atomic mode on (`atomic` != 0) or off. **Collective**: every rank passes the same
/// value. In atomic mode a write takes an exclusive lock on exactly its bytes and a read a
/// shared one, so every access is atomic with respect to every other.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_INVALID_ARGUMENT` (the ranks disagree),
/// `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or an open handle used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_set_atomicity(
    file: *mut brlock_atomic_t,
    atomic: c_int,
) -> c_int {
    boundary("brlock_atomic_set_atomicity", || {
        // SAFETY: the caller's promise about `file`.
        let h = unsafe { the(file) }?;
        Ok(h.file.set_atomicity(atomic != 0)?)
    })
}

/// Stores 1 in `*atomic` if atomic mode is on, else 0. Local.
///
/// # Safety
/// `file` is `NULL` or an open handle; `atomic` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_get_atomicity(
    file: *mut brlock_atomic_t,
    atomic: *mut c_int,
) -> c_int {
    boundary("brlock_atomic_get_atomicity", || {
        // SAFETY: the caller's promises about `file` and `atomic`.
        unsafe { put(atomic, "atomic", c_int::from(the(file)?.file.atomicity())) }
    })
}

/// Reads exactly `length` bytes at `offset` into `buf`. Local.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_SHORT_READ` (the file ends first),
/// `BRLOCK_ERR_RANGE`, `BRLOCK_ERR_IO`, `BRLOCK_ERR_MPI`. No lock is left held after an error.
///
/// # Safety
/// `file` is `NULL` or an open handle; `buf` is `NULL` or valid for writes of `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_read_at(
    file: *mut brlock_atomic_t,
    offset: u64,
    buf: *mut c_void,
    length: usize,
) -> c_int {
    boundary("brlock_atomic_read_at", || {
        // SAFETY: the caller's promises about `file` and `buf`.
        let (h, buf) = unsafe { (the(file)?, bytes_mut(buf, length, "buf")?) };
        Ok(h.file.read_at(offset, buf)?)
    })
}

/// Writes the `length` bytes at `data` at `offset`. Local.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_RANGE`, `BRLOCK_ERR_IO`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or an open handle; `data` is `NULL` or valid for reads of `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_write_at(
    file: *mut brlock_atomic_t,
    offset: u64,
    data: *const c_void,
    length: usize,
) -> c_int {
    boundary("brlock_atomic_write_at", || {
        // SAFETY: the caller's promises about `file` and `data`.
        let (h, data) = unsafe { (the(file)?, bytes(data, length, "data")?) };
        Ok(h.file.write_at(offset, data)?)
    })
}

/// The pieces `(offsets[i], lengths[i])` for `i < count`.
///
/// # Safety
/// Non-NULL `offsets` and `lengths` are valid for reads of `count` values.
unsafe fn pieces(offsets: *const u64, lengths: *const u64, count: usize) -> Outcome<Pieces> {
    if count > 0 && (offsets.is_null() || lengths.is_null()) {
        return Err(Failure::Null(if offsets.is_null() {
            "offsets"
        } else {
            "lengths"
        }));
    }
    let (offsets, lengths): (&[u64], &[u64]) = if count == 0 {
        (&[], &[])
    } else {
        // SAFETY: both non-NULL and valid for `count` values (the caller's promise).
        unsafe {
            (
                std::slice::from_raw_parts(offsets, count),
                std::slice::from_raw_parts(lengths, count),
            )
        }
    };
    Ok(Pieces::new(
        offsets.iter().copied().zip(lengths.iter().copied()),
    )?)
}

/// Reads the `count` pieces (`offsets[i]`, `lengths[i]`: sorted, non-overlapping) into `buf`,
/// back to back; `buf` holds exactly the sum of the lengths, `length` bytes. One lock on the
/// pieces' extent in atomic mode; data sieving decides between one large read and one read
/// per piece. Local.
///
/// Errors: as [`brlock_atomic_read_at`], and `BRLOCK_ERR_INVALID_ARGUMENT` for unsorted or
/// overlapping pieces or a buffer of the wrong size.
///
/// # Safety
/// `file` is `NULL` or an open handle; `offsets` and `lengths` are `NULL` or valid for reads
/// of `count` values; `buf` is `NULL` or valid for writes of `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_read_pieces(
    file: *mut brlock_atomic_t,
    offsets: *const u64,
    lengths: *const u64,
    count: usize,
    buf: *mut c_void,
    length: usize,
) -> c_int {
    boundary("brlock_atomic_read_pieces", || {
        // SAFETY: the caller's promises about every pointer.
        let (h, pieces, buf) = unsafe {
            (
                the(file)?,
                pieces(offsets, lengths, count)?,
                bytes_mut(buf, length, "buf")?,
            )
        };
        Ok(h.file.read_pieces(&pieces, buf)?)
    })
}

/// Writes `data` (back to back, `length` bytes: the sum of the lengths) to the `count`
/// pieces. One exclusive lock on the pieces' extent in atomic mode. Local.
///
/// Errors: as [`brlock_atomic_read_pieces`] (no short read).
///
/// # Safety
/// As [`brlock_atomic_read_pieces`], with `data` valid for reads of `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_write_pieces(
    file: *mut brlock_atomic_t,
    offsets: *const u64,
    lengths: *const u64,
    count: usize,
    data: *const c_void,
    length: usize,
) -> c_int {
    boundary("brlock_atomic_write_pieces", || {
        // SAFETY: the caller's promises about every pointer.
        let (h, pieces, data) = unsafe {
            (
                the(file)?,
                pieces(offsets, lengths, count)?,
                bytes(data, length, "data")?,
            )
        };
        Ok(h.file.write_pieces(&pieces, data)?)
    })
}

/// Makes this rank's writes durable and visible to every rank (`MPI_File_sync` semantics).
/// **Collective.**
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_IO`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or an open handle.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_sync(file: *mut brlock_atomic_t) -> c_int {
    boundary("brlock_atomic_sync", || {
        // SAFETY: the caller's promise about `file`.
        let h = unsafe { the(file) }?;
        Ok(h.file.sync()?)
    })
}

/// Closes the file and sets `*file` to `NULL`. **Collective.** The handle is freed also on
/// error; `*file == NULL` does nothing.
///
/// Errors: `BRLOCK_ERR_NULL` (`file` itself), `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `file` is `NULL` or points to `NULL` or to an open handle.
#[no_mangle]
pub unsafe extern "C" fn brlock_atomic_close(file: *mut *mut brlock_atomic_t) -> c_int {
    boundary("brlock_atomic_close", || {
        if file.is_null() {
            return Err(Failure::Null("the pointer to the atomic file handle"));
        }
        // SAFETY: non-NULL, and points to NULL or to an open handle (caller's promise).
        match unsafe { take_back(file) } {
            Some(handle) => Ok(handle.file.close()?),
            None => Ok(()),
        }
    })
}

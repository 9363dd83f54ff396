//! The lock service: `brlock_lock_*`, over [`brlock::RmaLock`].

use std::os::raw::{c_double, c_int};
use std::time::Duration;

use brlock::sys::BorrowedComm;
use brlock::{ByteRange, Error, LockMode, RangeLock, RmaLock};
use mpi::ffi::MPI_Comm;

use crate::args::{hand_out, handle, put, take_back};
use crate::status::{boundary, Failure, Outcome};

/// Shared (read) mode: compatible with other shared holders of overlapping ranges.
pub const BRLOCK_SHARED: c_int = 1;
/// Exclusive (write) mode: conflicts with every other holder of an overlapping range.
pub const BRLOCK_EXCLUSIVE: c_int = 2;

/// A lock service handle of one rank (opaque): the table on one rank of a communicator,
/// shared by every rank that opened it together. Holds at most one range at a time.
#[allow(non_camel_case_types)]
pub struct brlock_lock_t {
    lock: RmaLock,
}

/// The lock mode named by `mode`.
pub(crate) fn mode_of(mode: c_int) -> Outcome<LockMode> {
    match mode {
        BRLOCK_SHARED => Ok(LockMode::Shared),
        BRLOCK_EXCLUSIVE => Ok(LockMode::Exclusive),
        other => Err(Error::InvalidArgument(format!(
            "lock mode {other} is neither BRLOCK_SHARED ({BRLOCK_SHARED}) nor BRLOCK_EXCLUSIVE \
             ({BRLOCK_EXCLUSIVE})"
        ))
        .into()),
    }
}

/// The handle behind `lock`.
///
/// # Safety
/// As [`handle`].
unsafe fn the<'a>(lock: *mut brlock_lock_t) -> Outcome<&'a mut brlock_lock_t> {
    // SAFETY: the caller's promise, passed on.
    unsafe { handle(lock, "the lock handle") }
}

/// Opens the lock service over `comm` (collective) and stores the handle in `*lock`.
fn open_over(
    comm: Outcome<BorrowedComm>,
    home: c_int,
    lock: *mut *mut brlock_lock_t,
) -> Outcome<()> {
    if lock.is_null() {
        return Err(Failure::Null("the out-parameter for the lock handle"));
    }
    let comm = comm?;
    let opened = RmaLock::open(comm.comm(), home)?;
    // SAFETY: `lock` is non-NULL (checked above) and, by the caller's contract, valid for a
    // write of one pointer.
    unsafe {
        hand_out(
            lock,
            "the out-parameter for the lock handle",
            brlock_lock_t { lock: opened },
        )
    }
}

/// Opens a lock service over `comm` with its table on rank `home`, and stores the handle in
/// `*lock` (left untouched on failure). **Collective** over `comm`: every rank calls it with
/// the same `home`. The service uses a private duplicate of `comm`; `comm` itself must stay
/// valid until the handle is closed. MPI must be initialised by the caller.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_INVALID_ARGUMENT` (`MPI_COMM_NULL`, MPI not
/// initialised, an inter-communicator, `home` not a rank of `comm`), `BRLOCK_ERR_WRONG_MPI`,
/// `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `comm` is a live communicator (or `MPI_COMM_NULL`); `lock` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_open(
    comm: MPI_Comm,
    home: c_int,
    lock: *mut *mut brlock_lock_t,
) -> c_int {
    boundary("brlock_lock_open", || {
        // SAFETY: the caller's promise about `comm`, passed on.
        let comm = unsafe { crate::mpi::borrow(comm) }.map_err(Failure::from);
        open_over(comm, home, lock)
    })
}

/// [`brlock_lock_open`] for Fortran: `comm` is a Fortran communicator handle (`MPI_Fint`,
/// `comm%MPI_VAL` of `type(MPI_Comm)`). **Collective.**
///
/// # Safety
/// As [`brlock_lock_open`].
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_open_f(
    comm: c_int,
    home: c_int,
    lock: *mut *mut brlock_lock_t,
) -> c_int {
    boundary("brlock_lock_open_f", || {
        // SAFETY: the caller's promise about `comm`, passed on.
        let comm = unsafe { crate::mpi::borrow_fortran(comm) }.map_err(Failure::from);
        open_over(comm, home, lock)
    })
}

/// Blocks until the `length` bytes at `offset` are held in `mode` (`BRLOCK_SHARED` or
/// `BRLOCK_EXCLUSIVE`). Local (one-sided: no other rank needs to call anything).
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_RANGE` (length 0, or the end overflows),
/// `BRLOCK_ERR_INVALID_ARGUMENT` (mode), `BRLOCK_ERR_ALREADY_HELD`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// `lock` is `NULL` or an open handle, used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_lock(
    lock: *mut brlock_lock_t,
    offset: u64,
    length: u64,
    mode: c_int,
) -> c_int {
    boundary("brlock_lock_lock", || {
        // SAFETY: the caller's promise about `lock`, passed on.
        let h = unsafe { the(lock) }?;
        let (range, mode) = (ByteRange::at(offset, length)?, mode_of(mode)?);
        Ok(h.lock.lock(range, mode)?)
    })
}

/// Takes the range in `mode` if that is possible without waiting; `*acquired` is set to 1 if
/// it was taken, 0 if not. Local. Errors as [`brlock_lock_lock`].
///
/// # Safety
/// As [`brlock_lock_lock`]; `acquired` is `NULL` or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_trylock(
    lock: *mut brlock_lock_t,
    offset: u64,
    length: u64,
    mode: c_int,
    acquired: *mut c_int,
) -> c_int {
    boundary("brlock_lock_trylock", || {
        // SAFETY: the caller's promise about `lock`, passed on.
        let h = unsafe { the(lock) }?;
        if acquired.is_null() {
            return Err(Failure::Null("acquired"));
        }
        let (range, mode) = (ByteRange::at(offset, length)?, mode_of(mode)?);
        let got = h.lock.try_lock(range, mode)?;
        // SAFETY: the caller's promise about `acquired`.
        unsafe { put(acquired, "acquired", c_int::from(got)) }
    })
}

/// Like [`brlock_lock_lock`], but gives up after `seconds` (0 tries once; `INFINITY` waits
/// forever); `*acquired` is set to 1 if the range was taken, 0 if the time ran out (then
/// nothing is held and no other rank waits because of this request). Local.
///
/// Errors as [`brlock_lock_lock`], and `BRLOCK_ERR_INVALID_ARGUMENT` for a negative or NaN
/// timeout.
///
/// # Safety
/// As [`brlock_lock_trylock`].
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_timeout(
    lock: *mut brlock_lock_t,
    offset: u64,
    length: u64,
    mode: c_int,
    seconds: c_double,
    acquired: *mut c_int,
) -> c_int {
    boundary("brlock_lock_timeout", || {
        // SAFETY: the caller's promise about `lock`, passed on.
        let h = unsafe { the(lock) }?;
        if acquired.is_null() {
            return Err(Failure::Null("acquired"));
        }
        let (range, mode) = (ByteRange::at(offset, length)?, mode_of(mode)?);
        let timeout = timeout_of(seconds)?;
        let got = h.lock.lock_timeout(range, mode, timeout)?;
        // SAFETY: the caller's promise about `acquired`.
        unsafe { put(acquired, "acquired", c_int::from(got)) }
    })
}

/// The timeout `seconds` means: `Duration::MAX` for `+INFINITY` and anything too large.
fn timeout_of(seconds: c_double) -> Outcome<Duration> {
    if seconds.is_nan() || seconds < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "timeout {seconds} s is not a duration (negative or NaN)"
        ))
        .into());
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// Releases the range this handle holds. Local.
///
/// Errors: `BRLOCK_ERR_NULL`, `BRLOCK_ERR_NOT_HELD`, `BRLOCK_ERR_MPI`.
///
/// # Safety
/// As [`brlock_lock_lock`].
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_unlock(lock: *mut brlock_lock_t) -> c_int {
    boundary("brlock_lock_unlock", || {
        // SAFETY: the caller's promise about `lock`, passed on.
        let h = unsafe { the(lock) }?;
        Ok(h.lock.unlock()?)
    })
}

/// Releases what the handle holds, tears the service down and sets `*lock` to `NULL`.
/// **Collective** over the communicator it was opened on. The handle is freed also when an
/// error is returned; `*lock == NULL` is accepted and does nothing (returns `BRLOCK_OK`), so
/// closing twice is harmless.
///
/// Errors: `BRLOCK_ERR_NULL` (`lock` itself is `NULL`), `BRLOCK_ERR_MPI`, `BRLOCK_ERR_POISONED`.
///
/// # Safety
/// `lock` is `NULL` or points to `NULL` or to an open handle.
#[no_mangle]
pub unsafe extern "C" fn brlock_lock_close(lock: *mut *mut brlock_lock_t) -> c_int {
    boundary("brlock_lock_close", || {
        if lock.is_null() {
            return Err(Failure::Null("the pointer to the lock handle"));
        }
        // SAFETY: `lock` is non-NULL and, by the caller's contract, points to NULL or to an
        // open handle, which `open_over` made with `hand_out`.
        match unsafe { take_back(lock) } {
            Some(handle) => Ok(handle.lock.close()?),
            None => Ok(()),
        }
    })
}

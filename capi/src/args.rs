//! Turning C arguments into Rust values: out-parameters, buffers, paths.

use std::ffi::{CStr, OsStr};
use std::os::raw::{c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::status::{Failure, Outcome};

/// Writes `value` to the out-parameter `out` (named `what` in the error).
///
/// # Safety
/// `out` is `NULL` or valid for a write of one `T`.
pub(crate) unsafe fn put<T>(out: *mut T, what: &'static str, value: T) -> Outcome<()> {
    if out.is_null() {
        return Err(Failure::Null(what));
    }
    // SAFETY: non-NULL, and valid for a write by the contract above.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes `value` to the out-parameter `out` if it is not `NULL` (optional results).
///
/// # Safety
/// As [`put`].
pub(crate) unsafe fn put_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, and valid for a write by the contract of `put`.
        unsafe { out.write(value) };
    }
}

/// The `len` bytes at `data`; `data` may be `NULL` when `len` is 0.
///
/// # Safety
/// A non-NULL `data` is valid for reads of `len` bytes, not written during the call.
pub(crate) unsafe fn bytes<'a>(
    data: *const c_void,
    len: usize,
    what: &'static str,
) -> Outcome<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::Null(what));
    }
    // SAFETY: non-NULL and valid for `len` bytes by the contract above.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// The `len` writable bytes at `data`; `data` may be `NULL` when `len` is 0.
///
/// # Safety
/// A non-NULL `data` is valid for writes of `len` bytes and not otherwise accessed during
/// the call.
pub(crate) unsafe fn bytes_mut<'a>(
    data: *mut c_void,
    len: usize,
    what: &'static str,
) -> Outcome<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if data.is_null() {
        return Err(Failure::Null(what));
    }
    // SAFETY: non-NULL, valid for `len` bytes and unaliased by the contract above.
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
}

/// The NUL-terminated path at `path` (any bytes but NUL, as the OS takes them).
///
/// # Safety
/// A non-NULL `path` points to a NUL-terminated string.
pub(crate) unsafe fn path<'a>(path: *const c_char) -> Outcome<&'a Path> {
    if path.is_null() {
        return Err(Failure::Null("the path"));
    }
    // SAFETY: non-NULL and NUL-terminated by the contract above.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Moves `value` to the heap and stores the pointer in the out-parameter `out`.
///
/// # Safety
/// `out` is non-NULL (checked by the caller before the collective open) and valid for a
/// write.
pub(crate) unsafe fn hand_out<T>(out: *mut *mut T, what: &'static str, value: T) -> Outcome<()> {
    let raw = Box::into_raw(Box::new(value));
    // SAFETY: the caller's promise about `out`.
    unsafe { put(out, what, raw) }
}

/// Takes back the handle `*handle` (setting it to `NULL`), or `None` if it is `NULL` already.
///
/// # Safety
/// `handle` is non-NULL and points to `NULL` or to a pointer from [`hand_out`] of a `T` that
/// was not taken back since.
pub(crate) unsafe fn take_back<T>(handle: *mut *mut T) -> Option<Box<T>> {
    // SAFETY: `handle` is valid to read and write by the contract above.
    let raw = unsafe { handle.replace(std::ptr::null_mut()) };
    // SAFETY: a non-NULL `raw` came from Box::into_raw in `hand_out` and is taken back only
    // once: the caller's pointer was set to NULL above.
    (!raw.is_null()).then(|| unsafe { Box::from_raw(raw) })
}

/// The handle behind `handle` (named `what` in the error).
///
/// # Safety
/// `handle` is `NULL` or a pointer from [`hand_out`] not taken back since, used by one thread
/// at a time.
pub(crate) unsafe fn handle<'a, T>(handle: *mut T, what: &'static str) -> Outcome<&'a mut T> {
    // SAFETY: by the contract above, a non-NULL `handle` points to a live, unaliased handle.
    unsafe { handle.as_mut() }.ok_or(Failure::Null(what))
}

//! MPI return codes to [`Error`].

use std::os::raw::{c_char, c_int};

use mpi::ffi;

use crate::error::{Error, Result};

/// `Ok(())` if `code` is `MPI_SUCCESS`, otherwise [`Error::Mpi`] naming `call` and carrying
/// MPI's description of the code.
///
/// Only meaningful for objects whose error handler is `MPI_ERRORS_RETURN`; with the default
/// `MPI_ERRORS_ARE_FATAL` a failing call never returns.
///
/// MPI 3.1 §8.4, `MPI_Error_string`.
pub(crate) fn check(call: &'static str, code: c_int) -> Result<()> {
    if code == ffi::MPI_SUCCESS as c_int {
        return Ok(());
    }
    let mut message = error_string(code);
    if let Some(errno) = errno_of_class(error_class(code)) {
        if !message.contains(errno) {
            message = format!("{message} ({errno})");
        }
    }
    Err(Error::Mpi {
        call,
        code,
        message,
    })
}

/// The `errno` name matching an MPI-IO error class, so that a full disk reads the same
/// (`ENOSPC`) whichever layer hit it.
///
/// MPI 3.1 §13.7.6, I/O error classes.
fn errno_of_class(class: c_int) -> Option<&'static str> {
    [
        (ffi::MPI_ERR_NO_SPACE, "ENOSPC"),
        (ffi::MPI_ERR_QUOTA, "EDQUOT"),
        (ffi::MPI_ERR_NO_SUCH_FILE, "ENOENT"),
        (ffi::MPI_ERR_ACCESS, "EACCES"),
        (ffi::MPI_ERR_READ_ONLY, "EROFS"),
        (ffi::MPI_ERR_FILE_EXISTS, "EEXIST"),
    ]
    .into_iter()
    .find(|&(c, _)| c as c_int == class)
    .map(|(_, name)| name)
}

/// The error class of an MPI error code (e.g. `MPI_ERR_NO_SUCH_FILE` for one of ROMIO's
/// detailed codes), or `MPI_ERR_UNKNOWN` if MPI does not know the code.
///
/// MPI 3.1 §8.4, `MPI_Error_class`.
pub(crate) fn error_class(code: c_int) -> c_int {
    let mut class: c_int = 0;
    // SAFETY: `class` is a valid out-pointer; MPI_Error_class may be called at any time.
    let rc = unsafe { ffi::MPI_Error_class(code, &mut class) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return ffi::MPI_ERR_UNKNOWN as c_int;
    }
    class
}

/// MPI's text for an error code, or a placeholder if MPI does not know the code.
pub(crate) fn error_string(code: c_int) -> String {
    let mut buf = vec![0u8; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `buf` has room for MPI_MAX_ERROR_STRING characters (plus one spare), the most
    // MPI writes; `len` is a valid out-pointer. MPI_Error_string may be called at any time.
    let rc = unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr().cast::<c_char>(), &mut len) };
    if rc != ffi::MPI_SUCCESS as c_int {
        return format!("unknown MPI error code {code}");
    }
    buf.truncate(usize::try_from(len).unwrap_or(0).min(buf.len()));
    String::from_utf8_lossy(&buf)
        .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

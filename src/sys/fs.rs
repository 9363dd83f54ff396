//! The one file-system call the standard library and `nix` do not offer: a `statx` that makes
//! a network file system's client ask the server for fresh attributes.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::libc;

/// The file's size as the server has it now: `statx(fd, "", AT_EMPTY_PATH |
/// AT_STATX_FORCE_SYNC, STATX_SIZE)`. A FUSE or NFS client otherwise answers from attributes
/// cached for up to a second, and reads stop at the cached size: a file another client has
/// extended looks shorter than it is. On local file systems this is an ordinary `fstat`.
///
/// # Errors
/// The `statx` error (e.g. `ENOSYS` on kernels before 4.11).
///
/// statx(2).
pub fn refresh_size(file: &File) -> std::io::Result<u64> {
    // SAFETY: `libc::statx` is plain old data; all-zero bytes are a valid value of it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`), the
    // path is a valid NUL-terminated empty string as AT_EMPTY_PATH requires, and `stx` is a
    // valid, writable `struct statx`.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_FORCE_SYNC,
            libc::STATX_SIZE,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stx.stx_size)
}

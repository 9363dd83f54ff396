//! The crate's error type.

use crate::range::{ByteRange, LockMode, RangeError};

/// Everything that can go wrong in brlock.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An MPI call returned an error code (windows and files use `MPI_ERRORS_RETURN`).
    #[error("{call} failed: {message} (MPI error code {code})")]
    Mpi {
        /// The MPI function that failed, e.g. `MPI_Win_lock`.
        call: &'static str,
        /// The MPI error code.
        code: i32,
        /// MPI's own description of the code (`MPI_Error_string`).
        message: String,
    },
    /// A byte range could not be constructed.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// This rank already holds a range on this lock; one rank holds at most one range per lock.
    #[error("this rank already holds {held} ({held_mode}) on this lock; release it before locking {requested}")]
    AlreadyHeld {
        /// The range currently held.
        held: ByteRange,
        /// Its mode.
        held_mode: LockMode,
        /// The range that was requested.
        requested: ByteRange,
    },
    /// `unlock` was called while no range is held.
    #[error("unlock called but this rank holds no range on this lock")]
    NotHeld,
    /// A caller-supplied value is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The lock service was used after a failure left it unusable.
    #[error("the lock service is unusable after an earlier failure: {0}")]
    Poisoned(String),
    /// The kernel refused to wait for a POSIX record lock because waiting would deadlock
    /// (`EDEADLK`): a process that holds part of the range is itself waiting, directly or
    /// through others, for a range this process holds. Nothing was taken; release what this
    /// process holds before retrying.
    #[error("locking {range} of {path} would deadlock (EDEADLK): a process holding part of it waits for a range this process holds")]
    Deadlock {
        /// The range that was requested.
        range: ByteRange,
        /// The locked file.
        path: String,
    },
    /// A read reached the end of the file before it had all the bytes it asked for.
    #[error("short read from {path}: wanted {wanted} bytes at offset {offset}, the file ends after {got}")]
    ShortRead {
        /// The file read.
        path: String,
        /// Offset of the read (of the piece that came up short, for noncontiguous reads).
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes there were.
        got: u64,
    },
    /// A collective operation failed on other ranks; this rank's part succeeded but cannot
    /// go on alone. The failing ranks report their own errors.
    #[error("{op} failed on rank(s) {ranks}")]
    PeerFailed {
        /// The operation, e.g. "open".
        op: &'static str,
        /// The ranks that failed, e.g. "1, 3".
        ranks: String,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (e.g. "open", "write").
        op: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Ok` unless a range is held: every lock rejects a second acquisition with
/// [`Error::AlreadyHeld`] instead of deadlocking on itself.
///
/// # Errors
/// [`Error::AlreadyHeld`] naming what is held and what was requested.
pub(crate) fn ensure_free(held: Option<(ByteRange, LockMode)>, requested: ByteRange) -> Result<()> {
    match held {
        Some((held, held_mode)) => Err(Error::AlreadyHeld {
            held,
            held_mode,
            requested,
        }),
        None => Ok(()),
    }
}

/// `Ok` unless a negative control that needs the `testing` feature was asked for in a build
/// without it.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `what`.
#[cfg(not(feature = "testing"))]
pub(crate) fn needs_testing(asked: bool, what: &str) -> Result<()> {
    if asked {
        return Err(Error::InvalidArgument(format!(
            "{what} needs brlock built with its `testing` feature"
        )));
    }
    Ok(())
}

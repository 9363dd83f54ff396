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
    /// A collective step failed on some ranks, and every rank of the step returned it
    /// together: none is left waiting. It names every failing rank and its error, so that
    /// any rank can report the failure; on a failing rank it also holds that rank's own error
    /// ([`Error::local`]).
    #[error("{0}")]
    Collective(CollectiveFailure),
    /// What was asked cannot be done to the files as they are: another job is writing them,
    /// an index belongs to another run, a path names another file than it must.
    #[error("{0}")]
    Refused(String),
    /// The process was started by a launcher of another MPI than the one the program was
    /// built against: the launcher started several processes, and MPI sees each as a job of
    /// its own ([`crate::runtime::Runtime::init`]).
    #[error("{0}")]
    Launcher(String),
    /// A file-system operation failed. Shown with the `errno` name of an OS error (`write
    /// /x: No space left on device (ENOSPC)`).
    #[error("{op} {path}: {}", describe_os_error(source))]
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

impl Error {
    /// The error this rank itself ran into: the local error of a [`Error::Collective`] this
    /// rank took part in failing (the innermost, for nested steps), or `self`. `None` for a
    /// collective failure of other ranks only.
    pub fn local(&self) -> Option<&Error> {
        match self {
            Error::Collective(f) => f.local.as_deref().and_then(Error::local),
            other => Some(other),
        }
    }

    /// Whether every rank of a collective step returned this error together (so that none
    /// is left waiting in the step), rather than this rank alone.
    pub fn is_collective(&self) -> bool {
        matches!(self, Error::Collective(_))
    }
}

/// Which ranks failed in a collective step, and why ([`Error::Collective`]).
#[derive(Debug)]
pub struct CollectiveFailure {
    /// The step, e.g. "open".
    pub op: &'static str,
    /// Every rank that failed and its error message, in rank order.
    pub failures: Vec<(i32, String)>,
    /// This rank's own error, when it is one of them.
    pub local: Option<Box<Error>>,
}

impl CollectiveFailure {
    /// The ranks that failed.
    pub fn ranks(&self) -> impl Iterator<Item = i32> + '_ {
        self.failures.iter().map(|(r, _)| *r)
    }
}

impl std::fmt::Display for CollectiveFailure {
    /// One line: the step, then each distinct message with the ranks that had it, e.g. `open
    /// failed on rank 1: open /x: No such file or directory` or `write failed on ranks 1, 3:
    /// ...; on rank 2: ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Distinct messages in order of their first rank.
        let mut groups: Vec<(&str, Vec<i32>)> = Vec::new();
        for (rank, message) in &self.failures {
            match groups.iter_mut().find(|(m, _)| m == message) {
                Some((_, ranks)) => ranks.push(*rank),
                None => groups.push((message, vec![*rank])),
            }
        }
        write!(f, "{} failed", self.op)?;
        for (i, (message, ranks)) in groups.iter().enumerate() {
            let list: Vec<String> = ranks.iter().map(i32::to_string).collect();
            let noun = if ranks.len() == 1 { "rank" } else { "ranks" };
            let sep = if i == 0 { " on" } else { "; on" };
            write!(f, "{sep} {noun} {}: {message}", list.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for CollectiveFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.local
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An I/O error as one line: an OS error as its description and `errno` name (`No space left
/// on device (ENOSPC)`, where the standard library shows `(os error 28)`), any other as it is.
pub fn describe_os_error(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let errno = nix::errno::Errno::from_raw(code);
            match errno {
                nix::errno::Errno::UnknownErrno => err.to_string(),
                known => format!("{} ({known:?})", known.desc()),
            }
        }
        None => err.to_string(),
    }
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

//! Status codes, the per-thread last error, and the boundary every entry point goes through
//! (no panic crosses into C).

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use brlock::Error;

/// Success.
pub const BRLOCK_OK: c_int = 0;
/// A required pointer argument (a handle, an out-parameter, a buffer) is `NULL`.
pub const BRLOCK_ERR_NULL: c_int = 1;
/// An argument is out of range or inconsistent: an unknown lock mode, a negative timeout, a
/// home rank outside the communicator, `MPI_COMM_NULL`, MPI not initialised.
pub const BRLOCK_ERR_INVALID_ARGUMENT: c_int = 2;
/// A byte range is empty (length 0) or its end overflows the largest file offset (2^63 - 1).
pub const BRLOCK_ERR_RANGE: c_int = 3;
/// The handle already holds a range: release it before locking another one.
pub const BRLOCK_ERR_ALREADY_HELD: c_int = 4;
/// `unlock` was called while the handle holds no range.
pub const BRLOCK_ERR_NOT_HELD: c_int = 5;
/// An MPI call failed; the last error names the call and MPI's own error string.
pub const BRLOCK_ERR_MPI: c_int = 6;
/// A file-system operation failed (a missing file, no permission, a full disk);
/// `brlock_last_errno` gives the OS error number.
pub const BRLOCK_ERR_IO: c_int = 7;
/// A read reached the end of the file before it had every byte asked for.
pub const BRLOCK_ERR_SHORT_READ: c_int = 8;
/// The handle is unusable after an earlier failure; close it.
pub const BRLOCK_ERR_POISONED: c_int = 9;
/// Waiting would deadlock (reported by kernel record locks).
pub const BRLOCK_ERR_DEADLOCK: c_int = 10;
/// What was asked cannot be done to the files as they are (another job writes them, ...).
pub const BRLOCK_ERR_REFUSED: c_int = 11;
/// The process runs under another MPI library than the one libbrlock was built for (or was
/// started by another MPI's launcher). Nothing was done.
pub const BRLOCK_ERR_WRONG_MPI: c_int = 12;
/// A collective call failed on other ranks only: this rank returns with them so that none is
/// left waiting. The last error names the ranks and their errors.
pub const BRLOCK_ERR_COLLECTIVE: c_int = 13;
/// A bug in brlock (a Rust panic, caught at the boundary): the handle should be closed.
pub const BRLOCK_ERR_INTERNAL: c_int = 14;

/// One past the largest code, for loops over every code.
pub const BRLOCK_ERR_COUNT: c_int = 15;

/// Why an entry point failed: the library's error, or a problem with the C arguments
/// themselves.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A `NULL` pointer where one was required; names the argument.
    Null(&'static str),
    /// An error of the library.
    Lib(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Lib(e)
    }
}

impl From<brlock::RangeError> for Failure {
    fn from(e: brlock::RangeError) -> Self {
        Failure::Lib(Error::Range(e))
    }
}

/// Shorthand for the result of an entry point's body.
pub(crate) type Outcome<T> = std::result::Result<T, Failure>;

/// The status code of a library error: its kind, or, for a collective failure, the kind of
/// this rank's own error ([`BRLOCK_ERR_COLLECTIVE`] if this rank did not fail itself).
fn code_of(e: &Error) -> c_int {
    let Some(local) = e.local() else {
        return BRLOCK_ERR_COLLECTIVE;
    };
    match local {
        Error::Mpi { .. } => BRLOCK_ERR_MPI,
        Error::Range(_) => BRLOCK_ERR_RANGE,
        Error::AlreadyHeld { .. } => BRLOCK_ERR_ALREADY_HELD,
        Error::NotHeld => BRLOCK_ERR_NOT_HELD,
        Error::InvalidArgument(_) => BRLOCK_ERR_INVALID_ARGUMENT,
        Error::Poisoned(_) => BRLOCK_ERR_POISONED,
        Error::Deadlock { .. } => BRLOCK_ERR_DEADLOCK,
        Error::ShortRead { .. } => BRLOCK_ERR_SHORT_READ,
        Error::Refused(_) => BRLOCK_ERR_REFUSED,
        Error::Launcher(_) => BRLOCK_ERR_WRONG_MPI,
        Error::Io { .. } => BRLOCK_ERR_IO,
        // `local` never returns a collective failure.
        Error::Collective(_) => BRLOCK_ERR_COLLECTIVE,
    }
}

/// The OS error number behind a library error, or 0.
fn errno_of(e: &Error) -> c_int {
    match e.local() {
        Some(Error::Io { source, .. }) => source.raw_os_error().unwrap_or(0),
        _ => 0,
    }
}

/// What the last failing call on this thread left.
struct LastError {
    code: c_int,
    message: CString,
    errno: c_int,
    collective: bool,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        code: BRLOCK_OK,
        message: CString::default(),
        errno: 0,
        collective: false,
    });
}

/// Records `failure` of `function` as this thread's last error and returns its code.
fn record(function: &str, failure: Failure) -> c_int {
    let (code, text, errno, collective) = match &failure {
        Failure::Null(what) => (BRLOCK_ERR_NULL, format!("{what} is NULL"), 0, false),
        Failure::Lib(e) => (code_of(e), e.to_string(), errno_of(e), e.is_collective()),
    };
    set_last(code, &format!("{function}: {text}"), errno, collective);
    code
}

fn set_last(code: c_int, text: &str, errno: c_int, collective: bool) {
    // Interior NULs cannot be represented in a C string: show them as spaces.
    let message = CString::new(text.replace('\0', " ")).unwrap_or_default();
    LAST.with(|last| {
        *last.borrow_mut() = LastError {
            code,
            message,
            errno,
            collective,
        }
    });
}

/// Runs the body of entry point `function`: its outcome becomes the status code, a failure
/// the thread's last error, and a panic [`BRLOCK_ERR_INTERNAL`] instead of unwinding into C.
pub(crate) fn boundary(function: &str, body: impl FnOnce() -> Outcome<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => BRLOCK_OK,
        Ok(Err(failure)) => record(function, failure),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            set_last(
                BRLOCK_ERR_INTERNAL,
                &format!("{function}: internal error: {why}"),
                0,
                false,
            );
            BRLOCK_ERR_INTERNAL
        }
    }
}

/// A short, static description of a status code (`"a byte range is empty or overflows"`);
/// never `NULL`, also for unknown codes. Local, thread-safe, callable without MPI.
#[no_mangle]
pub extern "C" fn brlock_strerror(code: c_int) -> *const c_char {
    let text: &'static CStr = match code {
        BRLOCK_OK => c"success",
        BRLOCK_ERR_NULL => c"a required pointer argument is NULL",
        BRLOCK_ERR_INVALID_ARGUMENT => c"invalid argument",
        BRLOCK_ERR_RANGE => c"the byte range is empty or overflows the largest file offset",
        BRLOCK_ERR_ALREADY_HELD => c"this handle already holds a range",
        BRLOCK_ERR_NOT_HELD => c"this handle holds no range",
        BRLOCK_ERR_MPI => c"an MPI call failed",
        BRLOCK_ERR_IO => c"a file-system operation failed",
        BRLOCK_ERR_SHORT_READ => c"a read reached the end of the file",
        BRLOCK_ERR_POISONED => c"the handle is unusable after an earlier failure",
        BRLOCK_ERR_DEADLOCK => c"waiting would deadlock",
        BRLOCK_ERR_REFUSED => c"refused: the files are not in a state that allows it",
        BRLOCK_ERR_WRONG_MPI => c"running under another MPI library than libbrlock was built for",
        BRLOCK_ERR_COLLECTIVE => c"a collective call failed on other ranks",
        BRLOCK_ERR_INTERNAL => c"internal error in brlock",
        _ => c"unknown brlock status code",
    };
    text.as_ptr()
}

/// The message of the last call on this thread that failed: the function, what went wrong
/// and the detail (MPI's error string, the OS error, the ranks that failed); `""` if no
/// call has failed on this thread. The string stays valid until the next failing call on
/// this thread. Local, callable without MPI.
#[no_mangle]
pub extern "C" fn brlock_last_error() -> *const c_char {
    // The pointer refers to the thread-local CString, which is only replaced by the next
    // failing call on this thread, as documented.
    LAST.with(|last| last.borrow().message.as_ptr())
}

/// The status code of the last call on this thread that failed (`BRLOCK_OK` if none).
#[no_mangle]
pub extern "C" fn brlock_last_error_code() -> c_int {
    LAST.with(|last| last.borrow().code)
}

/// The OS error number (`errno`, e.g. `ENOSPC`) behind the last failure on this thread, or 0
/// when it was not an OS error.
#[no_mangle]
pub extern "C" fn brlock_last_errno() -> c_int {
    LAST.with(|last| last.borrow().errno)
}

/// 1 if the last failure on this thread was returned by every rank of a collective call
/// together (so no rank is left waiting and the handles can still be closed collectively),
/// 0 if it was this rank's alone.
#[no_mangle]
pub extern "C" fn brlock_last_error_collective() -> c_int {
    LAST.with(|last| c_int::from(last.borrow().collective))
}

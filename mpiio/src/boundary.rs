//! The C boundary, the crate's one place with `unsafe` code: the exported `MPI_File_*` and
//! `PMPI_File_*` functions, the MPI library's own definitions found with
//! `dlsym(RTLD_NEXT, "PMPI_File_...")` at first use, and the MPI calls on handles the program
//! passed. Each exported function checks that the file is tracked (else it forwards), asks
//! [`crate::shared`] for the offset, and forwards the access to the MPI library's
//! explicit-offset call.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use mpi::ffi::{MPI_Comm, MPI_Datatype, MPI_File, MPI_Info, MPI_Offset, MPI_Request, MPI_Status};

use brlock::sys::{BorrowedComm, OwnedComm};
use brlock::Error;

use crate::shared::{self, Seek};

/// A value moved between threads although it holds MPI handles (a window, a communicator)
/// that Rust's types mark neither `Send` nor `Sync`.
#[derive(Debug)]
pub struct Sendable<T>(pub T);

// SAFETY: MPI handles are process-wide, not tied to the thread that made them; a program that
// calls MPI_File functions from several threads asked for MPI_THREAD_MULTIPLE (or serialises
// its calls, MPI_THREAD_SERIALIZED), and every use of the value goes through a Mutex
// (`shared::Handle`), so it is never used by two threads at once.
unsafe impl<T> Send for Sendable<T> {}

const SUCCESS: c_int = mpi::ffi::MPI_SUCCESS as c_int;
const ERR_ARG: c_int = mpi::ffi::MPI_ERR_ARG as c_int;
const ERR_OTHER: c_int = mpi::ffi::MPI_ERR_OTHER as c_int;
const ERR_INTERN: c_int = mpi::ffi::MPI_ERR_INTERN as c_int;

/// The address of the next definition of `name` (NUL-terminated) after this library: the MPI
/// library's own. 0 if there is none.
fn next_definition(name: &'static str) -> usize {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `name` is a NUL-terminated static string; RTLD_NEXT is a valid pseudo-handle
    // for a shared object that was loaded normally or by LD_PRELOAD.
    let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if addr.is_null() {
        tracing::error!(
            name = name.trim_end_matches('\0'),
            "the MPI library does not define this function: load libbrlock-mpiio.so before it"
        );
    }
    addr as usize
}

/// The MPI library's own definition of the function `$name`, with the C signature `$ty`,
/// found once; `None` if it has none.
macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static ADDR: OnceLock<usize> = OnceLock::new();
        let addr = *ADDR.get_or_init(|| next_definition(concat!($name, "\0")));
        (addr != 0).then(|| {
            // SAFETY: `addr` is the non-null address dlsym gave for `$name`, a C function
            // of the MPI library whose prototype in mpi.h is `$ty`; function pointers and
            // data pointers have the same size on every platform with dlsym.
            unsafe { std::mem::transmute::<usize, $ty>(addr) }
        })
    }};
}

/// Calls the MPI library's own `$name` of type `$ty` with `$args`, or returns
/// `MPI_ERR_INTERN` if it has none.
macro_rules! forward {
    ($name:literal, $ty:ty, $($arg:expr),*) => {
        match real!($name, $ty) {
            // SAFETY: the arguments are the caller's, passed on unchanged (or, for offsets,
            // replaced by values of the same type) to the function the caller meant to call.
            Some(f) => unsafe { f($($arg),*) },
            None => ERR_INTERN,
        }
    };
}

type OpenFn =
    unsafe extern "C" fn(MPI_Comm, *const c_char, c_int, MPI_Info, *mut MPI_File) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut MPI_File) -> c_int;
type SetViewFn = unsafe extern "C" fn(
    MPI_File,
    MPI_Offset,
    MPI_Datatype,
    MPI_Datatype,
    *const c_char,
    MPI_Info,
) -> c_int;
/// A shared-pointer access (`MPI_File_write_shared`, `_read_ordered`, ...): the file, the
/// buffer (`B`: `*const` to write, `*mut` to read), count, datatype and the last argument
/// (`L`: the status, or the request of a nonblocking call).
type AccessFn<B, L> = unsafe extern "C" fn(MPI_File, B, c_int, MPI_Datatype, L) -> c_int;
/// The explicit-offset form of an access (`MPI_File_write_at`, `_iread_at`, ...).
type AccessAtFn<B, L> =
    unsafe extern "C" fn(MPI_File, MPI_Offset, B, c_int, MPI_Datatype, L) -> c_int;
/// The begin of a split collective access, shared pointer (`MPI_File_write_ordered_begin`).
type BeginFn<B> = unsafe extern "C" fn(MPI_File, B, c_int, MPI_Datatype) -> c_int;
/// The begin of a split collective access, explicit offset (`MPI_File_write_at_all_begin`).
type BeginAtFn<B> = unsafe extern "C" fn(MPI_File, MPI_Offset, B, c_int, MPI_Datatype) -> c_int;
/// The end of a split collective access.
type EndFn<B> = unsafe extern "C" fn(MPI_File, B, *mut MPI_Status) -> c_int;
type SeekFn = unsafe extern "C" fn(MPI_File, MPI_Offset, c_int) -> c_int;
type PositionFn = unsafe extern "C" fn(MPI_File, *mut MPI_Offset) -> c_int;

/// The key of a file handle in the table of tracked files.
fn key(fh: MPI_File) -> usize {
    fh as usize
}

/// Installs the logging subscriber (once) and says whether the library is on.
fn start() -> bool {
    crate::logging::init(|| {
        let mut rank: c_int = -1;
        // SAFETY: a valid out-pointer; this runs inside an MPI_File call, so MPI is
        // initialised and MPI_COMM_WORLD is valid.
        unsafe { mpi::ffi::MPI_Comm_rank(mpi::ffi::RSMPI_COMM_WORLD, &mut rank) };
        rank
    });
    crate::enabled()
}

/// The tracked file behind `fh`, if the library is on and tracks it.
fn tracked(fh: MPI_File) -> Option<shared::Handle> {
    if start() {
        shared::lookup(key(fh))
    } else {
        None
    }
}

/// The size in bytes of `count` elements of `datatype`.
fn data_bytes(count: c_int, datatype: MPI_Datatype) -> Result<i64, Error> {
    let mut size: c_int = 0;
    // SAFETY: `datatype` is the caller's datatype handle for this call; a valid out-pointer.
    let rc = unsafe { mpi::ffi::MPI_Type_size(datatype, &mut size) };
    if rc != SUCCESS {
        return Err(Error::InvalidArgument(format!(
            "MPI_Type_size of the call's datatype failed ({rc})"
        )));
    }
    Ok(i64::from(count) * i64::from(size))
}

/// Reports `err` of `call` on file `fh` the MPI way: logs it and hands the code to the file's
/// error handler (`MPI_ERRORS_RETURN` by default for files), then returns the code.
fn fail(fh: MPI_File, call: &str, err: &Error) -> c_int {
    let code = match err {
        Error::InvalidArgument(_) => ERR_ARG,
        _ => ERR_OTHER,
    };
    tracing::error!(call, error = %err, "brlock-mpiio: the shared file pointer failed");
    // SAFETY: `fh` is the caller's live file handle (the call was made on it).
    unsafe { mpi::ffi::MPI_File_call_errhandler(fh, code) };
    code
}

/// Exports `$imp` as both `MPI_File_$name` and `PMPI_File_$name` (Open MPI's Fortran bindings
/// and tools call the `PMPI_` names).
macro_rules! export {
    ($mpi:ident, $pmpi:ident, $imp:ident, ($($arg:ident: $ty:ty),*)) => {
        /// The MPI function of this name, through brlock's shared file pointer
        /// (`docs/mpiio.md`).
        ///
        /// # Safety
        /// As for the MPI library's own function: live handles, buffers valid for the count
        /// and datatype, MPI initialised.
        #[no_mangle]
        pub unsafe extern "C" fn $mpi($($arg: $ty),*) -> c_int {
            $imp($($arg),*)
        }

        /// The profiling name of the function above (same behaviour).
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $pmpi($($arg: $ty),*) -> c_int {
            $imp($($arg),*)
        }
    };
}

export!(MPI_File_open, PMPI_File_open, file_open,
    (comm: MPI_Comm, filename: *const c_char, amode: c_int, info: MPI_Info, fh: *mut MPI_File));
export!(MPI_File_close, PMPI_File_close, file_close, (fh: *mut MPI_File));
export!(MPI_File_set_view, PMPI_File_set_view, file_set_view,
    (fh: MPI_File, disp: MPI_Offset, etype: MPI_Datatype, filetype: MPI_Datatype,
     datarep: *const c_char, info: MPI_Info));
export!(MPI_File_write_shared, PMPI_File_write_shared, write_shared,
    (fh: MPI_File, buf: *const c_void, count: c_int, datatype: MPI_Datatype, status: *mut MPI_Status));
export!(MPI_File_read_shared, PMPI_File_read_shared, read_shared,
    (fh: MPI_File, buf: *mut c_void, count: c_int, datatype: MPI_Datatype, status: *mut MPI_Status));
export!(MPI_File_iwrite_shared, PMPI_File_iwrite_shared, iwrite_shared,
    (fh: MPI_File, buf: *const c_void, count: c_int, datatype: MPI_Datatype, request: *mut MPI_Request));
export!(MPI_File_iread_shared, PMPI_File_iread_shared, iread_shared,
    (fh: MPI_File, buf: *mut c_void, count: c_int, datatype: MPI_Datatype, request: *mut MPI_Request));
export!(MPI_File_seek_shared, PMPI_File_seek_shared, seek_shared,
    (fh: MPI_File, offset: MPI_Offset, whence: c_int));
export!(MPI_File_get_position_shared, PMPI_File_get_position_shared, get_position_shared,
    (fh: MPI_File, offset: *mut MPI_Offset));
export!(MPI_File_write_ordered, PMPI_File_write_ordered, write_ordered,
    (fh: MPI_File, buf: *const c_void, count: c_int, datatype: MPI_Datatype, status: *mut MPI_Status));
export!(MPI_File_read_ordered, PMPI_File_read_ordered, read_ordered,
    (fh: MPI_File, buf: *mut c_void, count: c_int, datatype: MPI_Datatype, status: *mut MPI_Status));
export!(MPI_File_write_ordered_begin, PMPI_File_write_ordered_begin, write_ordered_begin,
    (fh: MPI_File, buf: *const c_void, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_read_ordered_begin, PMPI_File_read_ordered_begin, read_ordered_begin,
    (fh: MPI_File, buf: *mut c_void, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_write_ordered_end, PMPI_File_write_ordered_end, write_ordered_end,
    (fh: MPI_File, buf: *const c_void, status: *mut MPI_Status));
export!(MPI_File_read_ordered_end, PMPI_File_read_ordered_end, read_ordered_end,
    (fh: MPI_File, buf: *mut c_void, status: *mut MPI_Status));

/// `MPI_File_open` (collective): the MPI library opens the file; then, on a duplicate of
/// `comm`, every rank agrees that it did and the shared pointer's window is made (at the end
/// of file for `MPI_MODE_APPEND`). If that fails on any rank, every rank closes the file again
/// and returns an error, so no rank waits for another.
fn file_open(
    comm: MPI_Comm,
    filename: *const c_char,
    amode: c_int,
    info: MPI_Info,
    fh: *mut MPI_File,
) -> c_int {
    let rc = forward!("PMPI_File_open", OpenFn, comm, filename, amode, info, fh);
    if !start() {
        return rc;
    }
    // SAFETY: `comm` is the communicator the caller opened the file on: live for this call,
    // and the borrow does not outlive it (it is only duplicated).
    let borrowed = match unsafe { BorrowedComm::from_raw(comm) } {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "the file's communicator cannot be used: not tracked");
            return rc;
        }
    };
    let dup = match OwnedComm::duplicate(borrowed.comm()) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "duplicating the file's communicator failed: not tracked");
            return rc;
        }
    };
    let handle = if rc == SUCCESS {
        // SAFETY: on success the MPI library wrote the new handle to `fh`, the caller's valid
        // out-pointer (after a failure it may be unset: not read).
        unsafe { *fh }
    } else {
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        unsafe { mpi::ffi::RSMPI_FILE_NULL }
    };
    let opened = if rc == SUCCESS {
        start_of(handle, amode)
    } else {
        Err(Error::InvalidArgument(format!(
            "the MPI library's MPI_File_open failed ({rc})"
        )))
    };
    let start = *opened.as_ref().unwrap_or(&0);
    match shared::track(key(handle), dup, start, opened.map(|_| ())) {
        Ok(()) => SUCCESS,
        Err(_) if rc != SUCCESS => rc,
        Err(e) => {
            tracing::error!(error = %e, "no shared file pointer for the file: closing it");
            let mut handle = handle;
            let _ = forward!("PMPI_File_close", CloseFn, &mut handle);
            // SAFETY: the caller's valid out-pointer, as above.
            unsafe { *fh = mpi::ffi::RSMPI_FILE_NULL };
            ERR_OTHER
        }
    }
}

/// Where the shared pointer starts on a file just opened: 0, or its size in bytes with
/// `MPI_MODE_APPEND`.
fn start_of(fh: MPI_File, amode: c_int) -> Result<u64, Error> {
    if amode & mpi::ffi::MPI_MODE_APPEND as c_int == 0 {
        return Ok(0);
    }
    let mut size: MPI_Offset = 0;
    // SAFETY: `fh` was just opened by the MPI library; a valid out-pointer.
    let rc = unsafe { mpi::ffi::MPI_File_get_size(fh, &mut size) };
    if rc != SUCCESS {
        return Err(Error::InvalidArgument(format!(
            "MPI_File_get_size failed ({rc})"
        )));
    }
    u64::try_from(size).map_err(|_| Error::InvalidArgument("a negative file size".into()))
}

/// `MPI_File_close` (collective): frees the file's pointer, then the MPI library closes it.
fn file_close(fh: *mut MPI_File) -> c_int {
    if start() && !fh.is_null() {
        // SAFETY: the caller's valid pointer to its file handle.
        let handle = unsafe { *fh };
        if let Err(e) = shared::untrack(key(handle)) {
            tracing::error!(error = %e, "freeing the shared file pointer failed");
        }
    }
    forward!("PMPI_File_close", CloseFn, fh)
}

/// `MPI_File_set_view` (collective): the MPI library sets the view; then the pointer is reset
/// to 0 and counts etypes of the new view.
fn file_set_view(
    fh: MPI_File,
    disp: MPI_Offset,
    etype: MPI_Datatype,
    filetype: MPI_Datatype,
    datarep: *const c_char,
    info: MPI_Info,
) -> c_int {
    let rc = forward!(
        "PMPI_File_set_view",
        SetViewFn,
        fh,
        disp,
        etype,
        filetype,
        datarep,
        info
    );
    let Some(handle) = tracked(fh) else {
        return rc;
    };
    let ok = if rc == SUCCESS {
        data_bytes(1, etype).map(|b| b.unsigned_abs())
    } else {
        Err(Error::InvalidArgument(format!(
            "the MPI library's MPI_File_set_view failed ({rc})"
        )))
    };
    if !datarep.is_null() {
        // SAFETY: the caller's NUL-terminated data representation name.
        let rep = unsafe { CStr::from_ptr(datarep) };
        if rep.to_bytes() != b"native" {
            tracing::warn!(datarep = %rep.to_string_lossy(), "the shared pointer counts etypes of their native size");
        }
    }
    let changed = shared::lock(&handle).0.view_changed(ok);
    match changed {
        Ok(()) => rc,
        Err(_) if rc != SUCCESS => rc,
        Err(e) => fail(fh, "MPI_File_set_view", &e),
    }
}

/// `MPI_File_seek_shared` (collective).
fn seek_shared(fh: MPI_File, offset: MPI_Offset, whence: c_int) -> c_int {
    let Some(handle) = tracked(fh) else {
        return forward!("PMPI_File_seek_shared", SeekFn, fh, offset, whence);
    };
    let target = match u32::try_from(whence) {
        Ok(mpi::ffi::MPI_SEEK_SET) => Seek::Set(offset),
        Ok(mpi::ffi::MPI_SEEK_CUR) => Seek::Cur(offset),
        Ok(mpi::ffi::MPI_SEEK_END) => Seek::End(end_of_file(fh, offset)),
        _ => Seek::End(Err(Error::InvalidArgument(format!(
            "MPI_File_seek_shared: unknown whence {whence}"
        )))),
    };
    let moved = shared::lock(&handle).0.seek(target);
    match moved {
        Ok(()) => SUCCESS,
        Err(e) => fail(fh, "MPI_File_seek_shared", &e),
    }
}

/// The position `offset` etypes past the end of file under the current view, as the MPI
/// library computes it for the individual pointer (which is put back afterwards).
fn end_of_file(fh: MPI_File, offset: MPI_Offset) -> Result<MPI_Offset, Error> {
    let mut saved: MPI_Offset = 0;
    let mut end: MPI_Offset = 0;
    let steps = [
        // SAFETY: `fh` is the caller's live file; valid out-pointers. MPI_File_seek and
        // MPI_File_get_position are not intercepted, so these are the MPI library's own.
        ("MPI_File_get_position", unsafe {
            mpi::ffi::MPI_File_get_position(fh, &mut saved)
        }),
        // SAFETY: as above.
        ("MPI_File_seek", unsafe {
            mpi::ffi::MPI_File_seek(fh, offset, mpi::ffi::MPI_SEEK_END as c_int)
        }),
        // SAFETY: as above.
        ("MPI_File_get_position", unsafe {
            mpi::ffi::MPI_File_get_position(fh, &mut end)
        }),
        // SAFETY: as above.
        ("MPI_File_seek", unsafe {
            mpi::ffi::MPI_File_seek(fh, saved, mpi::ffi::MPI_SEEK_SET as c_int)
        }),
    ];
    match steps.iter().find(|(_, rc)| *rc != SUCCESS) {
        Some((call, rc)) => Err(Error::InvalidArgument(format!(
            "{call} failed ({rc}) while seeking the shared pointer to the end"
        ))),
        None => Ok(end),
    }
}

/// `MPI_File_get_position_shared`: an atomic read of the pointer.
fn get_position_shared(fh: MPI_File, offset: *mut MPI_Offset) -> c_int {
    let Some(handle) = tracked(fh) else {
        return forward!("PMPI_File_get_position_shared", PositionFn, fh, offset);
    };
    let position = shared::lock(&handle).0.position();
    match position {
        Ok(at) => {
            // SAFETY: the caller's valid out-pointer.
            unsafe { *offset = at };
            SUCCESS
        }
        Err(e) => fail(fh, "MPI_File_get_position_shared", &e),
    }
}

/// How an access reaches the shared pointer.
#[derive(Clone, Copy)]
enum Kind {
    /// Independent: one fetch-and-add.
    Independent,
    /// Collective, in rank order: a prefix sum and one fetch-and-add by the last rank.
    Ordered,
}

/// This rank's offset in etypes for an access of `count` `datatype`s on the tracked file, or
/// the error code to return. An ordered access always takes part in the collective
/// reservation (with nothing if its own arguments are wrong), so no rank waits for another.
fn reserve(
    fh: MPI_File,
    handle: &shared::Handle,
    kind: Kind,
    count: c_int,
    datatype: MPI_Datatype,
    call: &str,
) -> Result<MPI_Offset, c_int> {
    let tracked = shared::lock(handle);
    let bytes = data_bytes(count, datatype);
    let reserved = match (kind, bytes) {
        (Kind::Independent, bytes) => bytes.and_then(|b| tracked.0.reserve(b)),
        (Kind::Ordered, Ok(b)) => tracked.0.reserve_ordered(b),
        (Kind::Ordered, Err(e)) => tracked.0.reserve_ordered(0).and(Err(e)),
    };
    reserved.map_err(|e| fail(fh, call, &e))
}

/// A shared-pointer access: forwarded to `own` (the MPI library's own function) for a file
/// that is not tracked, else to the explicit-offset function `at` at the offset the pointer
/// gives (`kind`).
#[allow(clippy::too_many_arguments)]
fn access<B: Copy, L: Copy>(
    call: &str,
    kind: Kind,
    own: Option<AccessFn<B, L>>,
    at: Option<AccessAtFn<B, L>>,
    fh: MPI_File,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
    last: L,
) -> c_int {
    let Some(handle) = tracked(fh) else {
        // SAFETY: the caller's arguments, unchanged, to the function the caller meant.
        return own.map_or(ERR_INTERN, |f| unsafe { f(fh, buf, count, datatype, last) });
    };
    match reserve(fh, &handle, kind, count, datatype, call) {
        // SAFETY: the caller's arguments, with the offset the shared pointer gave, to the
        // explicit-offset form of the caller's call (same buffer, count, datatype).
        Ok(off) => at.map_or(ERR_INTERN, |f| unsafe {
            f(fh, off, buf, count, datatype, last)
        }),
        Err(code) => code,
    }
}

/// The begin of a split collective ordered access: the ordered reservation, then the MPI
/// library's split collective explicit-offset begin `at` at this rank's offset (which
/// enforces one split collective per file at a time; its end is the matching `_all_end`).
fn begin<B: Copy>(
    call: &str,
    own: Option<BeginFn<B>>,
    at: Option<BeginAtFn<B>>,
    fh: MPI_File,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
) -> c_int {
    let Some(handle) = tracked(fh) else {
        // SAFETY: the caller's arguments, unchanged, to the function the caller meant.
        return own.map_or(ERR_INTERN, |f| unsafe { f(fh, buf, count, datatype) });
    };
    let Some(at) = at else {
        return ERR_INTERN;
    };
    match reserve(fh, &handle, Kind::Ordered, count, datatype, call) {
        // SAFETY: as in `access`.
        Ok(off) => unsafe { at(fh, off, buf, count, datatype) },
        Err(code) => {
            // Every rank enters the collective begin (a failed rank with nothing), so none
            // waits for it; the program's `_end` completes it.
            // SAFETY: as in `access`, with nothing to move.
            let _ = unsafe { at(fh, 0, buf, 0, datatype) };
            code
        }
    }
}

/// The end of a split collective ordered access: `own` for a file that is not tracked, else
/// `at`, the end of the explicit-offset split collective `begin` started.
fn end<B: Copy>(
    own: Option<EndFn<B>>,
    at: Option<EndFn<B>>,
    fh: MPI_File,
    buf: B,
    status: *mut MPI_Status,
) -> c_int {
    let f = if tracked(fh).is_some() { at } else { own };
    // SAFETY: the caller's arguments, unchanged, to the function that ends what the begin
    // started.
    f.map_or(ERR_INTERN, |f| unsafe { f(fh, buf, status) })
}

type Wr = *const c_void;
type Rd = *mut c_void;
type St = *mut MPI_Status;
type Rq = *mut MPI_Request;

/// Defines `$imp`, a shared-pointer access of `kind`: the MPI library's own `$own` for a file
/// that is not tracked, else its explicit-offset form `$at` (see [`access`]).
macro_rules! access_fn {
    ($imp:ident, $kind:ident, $own:literal, $at:literal, $b:ty, $l:ty) => {
        fn $imp(fh: MPI_File, buf: $b, count: c_int, datatype: MPI_Datatype, last: $l) -> c_int {
            let own = real!($own, AccessFn<$b, $l>);
            let at = real!($at, AccessAtFn<$b, $l>);
            access($own, Kind::$kind, own, at, fh, buf, count, datatype, last)
        }
    };
}

access_fn!(
    write_shared,
    Independent,
    "PMPI_File_write_shared",
    "PMPI_File_write_at",
    Wr,
    St
);
access_fn!(
    read_shared,
    Independent,
    "PMPI_File_read_shared",
    "PMPI_File_read_at",
    Rd,
    St
);
access_fn!(
    iwrite_shared,
    Independent,
    "PMPI_File_iwrite_shared",
    "PMPI_File_iwrite_at",
    Wr,
    Rq
);
access_fn!(
    iread_shared,
    Independent,
    "PMPI_File_iread_shared",
    "PMPI_File_iread_at",
    Rd,
    Rq
);
access_fn!(
    write_ordered,
    Ordered,
    "PMPI_File_write_ordered",
    "PMPI_File_write_at",
    Wr,
    St
);
access_fn!(
    read_ordered,
    Ordered,
    "PMPI_File_read_ordered",
    "PMPI_File_read_at",
    Rd,
    St
);

/// Defines `$imp`, the begin of a split collective ordered access (see [`begin`]).
macro_rules! begin_fn {
    ($imp:ident, $own:literal, $at:literal, $b:ty) => {
        fn $imp(fh: MPI_File, buf: $b, count: c_int, datatype: MPI_Datatype) -> c_int {
            let (own, at) = (real!($own, BeginFn<$b>), real!($at, BeginAtFn<$b>));
            begin($own, own, at, fh, buf, count, datatype)
        }
    };
}

begin_fn!(
    write_ordered_begin,
    "PMPI_File_write_ordered_begin",
    "PMPI_File_write_at_all_begin",
    Wr
);
begin_fn!(
    read_ordered_begin,
    "PMPI_File_read_ordered_begin",
    "PMPI_File_read_at_all_begin",
    Rd
);

/// Defines `$imp`, the end of a split collective ordered access (see [`end`]).
macro_rules! end_fn {
    ($imp:ident, $own:literal, $at:literal, $b:ty) => {
        fn $imp(fh: MPI_File, buf: $b, status: St) -> c_int {
            end(
                real!($own, EndFn<$b>),
                real!($at, EndFn<$b>),
                fh,
                buf,
                status,
            )
        }
    };
}

end_fn!(
    write_ordered_end,
    "PMPI_File_write_ordered_end",
    "PMPI_File_write_at_all_end",
    Wr
);
end_fn!(
    read_ordered_end,
    "PMPI_File_read_ordered_end",
    "PMPI_File_read_at_all_end",
    Rd
);

//! The C boundary, the crate's one place with `unsafe` code: the exported `MPI_File_*` and
//! `PMPI_File_*` functions, the MPI library's own definitions found with
//! `dlsym(RTLD_NEXT, "PMPI_File_...")` at first use, and the MPI calls on handles the program
//! passed. Each exported function checks that the file is tracked (else it forwards), asks
//! [`crate::shared`] for the offset, and forwards the access to the MPI library's
//! explicit-offset call.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use mpi::ffi::{
    MPI_Comm, MPI_Count, MPI_Datatype, MPI_File, MPI_Info, MPI_Offset, MPI_Request, MPI_Status,
};

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
    tracing::error!(call, error = %err, "brlock-mpiio: the call failed");
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
    let path = if filename.is_null() {
        std::path::PathBuf::new()
    } else {
        // SAFETY: the caller's NUL-terminated file name, live for this call.
        crate::atomic::file_path(&unsafe { CStr::from_ptr(filename) }.to_string_lossy())
    };
    let read_only = amode & mpi::ffi::MPI_MODE_RDONLY as c_int != 0;
    match shared::track(key(handle), dup, start, opened.map(|_| ()), path, read_only) {
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
    let mut native = true;
    if !datarep.is_null() {
        // SAFETY: the caller's NUL-terminated data representation name.
        let rep = unsafe { CStr::from_ptr(datarep) };
        if rep.to_bytes() != b"native" {
            native = false;
            tracing::warn!(datarep = %rep.to_string_lossy(), "the shared pointer counts etypes of their native size");
        }
    }
    let mut tracked = shared::lock(&handle);
    // Mapped now only in atomic mode: a view set outside it costs nothing more (HDF5 sets one
    // per access); turning atomic mode on maps the view then.
    let view = tracked.0.atomic_on().then(|| {
        if rc != SUCCESS {
            Err(Error::InvalidArgument("the view was not set".into()))
        } else if !native {
            Err(Error::InvalidArgument(
                "only the \"native\" data representation".into(),
            ))
        } else {
            view_map(disp, etype, filetype)
        }
    });
    let changed = tracked.0.view_changed(ok);
    tracked.0.atomic().set_view(view);
    drop(tracked);
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
        Ok(mpi::ffi::MPI_SEEK_END) => Seek::End(end_of_file(fh, &handle, offset)),
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

/// The position `offset` etypes past the end of file under the current view: in atomic mode
/// from the size fresh from the server, else as the MPI library computes it for the individual
/// pointer (which is put back afterwards).
fn end_of_file(
    fh: MPI_File,
    handle: &shared::Handle,
    offset: MPI_Offset,
) -> Result<MPI_Offset, Error> {
    if let Some(end) = fresh_end(handle) {
        return end.map(|end| end.saturating_add(offset));
    }
    let mut saved: MPI_Offset = 0;
    let mut end: MPI_Offset = 0;
    let steps = [
        // SAFETY: `fh` is the caller's live file; valid out-pointers. MPI_File_get_position
        // is not intercepted: the MPI library's own (as the seeks, forwarded to it).
        ("MPI_File_get_position", unsafe {
            mpi::ffi::MPI_File_get_position(fh, &mut saved)
        }),
        (
            "MPI_File_seek",
            forward!(
                "PMPI_File_seek",
                SeekFn,
                fh,
                offset,
                mpi::ffi::MPI_SEEK_END as c_int
            ),
        ),
        // SAFETY: as above.
        ("MPI_File_get_position", unsafe {
            mpi::ffi::MPI_File_get_position(fh, &mut end)
        }),
        (
            "MPI_File_seek",
            forward!(
                "PMPI_File_seek",
                SeekFn,
                fh,
                saved,
                mpi::ffi::MPI_SEEK_SET as c_int
            ),
        ),
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
fn access<B: Buffer, L: Last>(
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
        Ok(off) if shared::lock(&handle).0.atomic_on() => {
            // SAFETY: the caller's buffer, count, datatype and status or request, valid as
            // for the call it made.
            unsafe { atomic_at(call, fh, &handle, off, buf, count, datatype, last) }
        }
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
fn begin<B: Buffer>(
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
        Ok(off) if shared::lock(&handle).0.atomic_on() => {
            // SAFETY: as in `access`.
            unsafe { atomic_begin(call, fh, &handle, off, buf, count, datatype) }
        }
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
    let handle = tracked(fh);
    if let Some(code) = handle.as_ref().and_then(|h| atomic_end(h, status)) {
        return code;
    }
    let f = if handle.is_some() { at } else { own };
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

// --- Atomic mode -------------------------------------------------------------------------
//
// With `MPI_File_set_atomicity(fh, 1)` on a tracked file, every data access (explicit offset,
// individual pointer, shared pointer; independent, collective, split collective and
// nonblocking) is done by brlock's atomic file instead of the MPI library (see
// `crate::atomic`); outside atomic mode each is forwarded untouched. Collective accesses run
// as independent ones, as ROMIO runs them in atomic mode; nonblocking ones complete before
// they return, with a generalized request that is already complete.

type SetAtomicityFn = unsafe extern "C" fn(MPI_File, c_int) -> c_int;
type SyncFn = unsafe extern "C" fn(MPI_File) -> c_int;

export!(MPI_File_set_atomicity, PMPI_File_set_atomicity, set_atomicity,
    (fh: MPI_File, flag: c_int));
export!(MPI_File_sync, PMPI_File_sync, file_sync, (fh: MPI_File));
export!(MPI_File_get_size, PMPI_File_get_size, get_size, (fh: MPI_File, size: *mut MPI_Offset));

type GetSizeFn = unsafe extern "C" fn(MPI_File, *mut MPI_Offset) -> c_int;

/// `MPI_File_get_size`: in atomic mode the size the server reports (what atomic writers on
/// other clients left), else the MPI library's.
fn get_size(fh: MPI_File, size: *mut MPI_Offset) -> c_int {
    let Some(handle) = in_atomic_mode(fh) else {
        return forward!("PMPI_File_get_size", GetSizeFn, fh, size);
    };
    let fresh = shared::lock(&handle).0.atomic().size();
    match fresh.and_then(|n| {
        MPI_Offset::try_from(n).map_err(|_| Error::InvalidArgument("a size past MPI_Offset".into()))
    }) {
        Ok(n) if !size.is_null() => {
            // SAFETY: the caller's valid out-pointer.
            unsafe { *size = n };
            SUCCESS
        }
        Ok(_) => ERR_ARG,
        Err(e) => fail(fh, "MPI_File_get_size", &e),
    }
}

/// `MPI_File_set_atomicity` (collective): the MPI library records the mode, then every rank
/// agrees on it and brlock's atomic file takes over the data accesses while it is on.
fn set_atomicity(fh: MPI_File, flag: c_int) -> c_int {
    let rc = forward!("PMPI_File_set_atomicity", SetAtomicityFn, fh, flag);
    let Some(handle) = tracked(fh) else {
        return rc;
    };
    let ok = if rc == SUCCESS {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "the MPI library's MPI_File_set_atomicity failed ({rc})"
        )))
    };
    let mut tracked = shared::lock(&handle);
    let set = tracked.0.set_atomicity(flag != 0, ok);
    if set.is_ok() && tracked.0.atomic_on() && tracked.0.atomic().needs_view() {
        let view = current_view(fh);
        tracked.0.atomic().set_view(Some(view));
    }
    drop(tracked);
    match set {
        Ok(()) => rc,
        Err(_) if rc != SUCCESS => rc,
        Err(e) => fail(fh, "MPI_File_set_atomicity", &e),
    }
}

/// `MPI_File_sync` (collective): the MPI library's, then brlock's atomic file's descriptor.
fn file_sync(fh: MPI_File) -> c_int {
    let rc = forward!("PMPI_File_sync", SyncFn, fh);
    let Some(handle) = tracked(fh) else {
        return rc;
    };
    let synced = shared::lock(&handle).0.atomic().sync();
    match synced {
        Ok(()) => rc,
        Err(e) => fail(fh, "MPI_File_sync", &e),
    }
}

/// The byte map of a view set with `disp`, `etype` and `filetype` (the caller's live handles).
fn view_map(
    disp: MPI_Offset,
    etype: MPI_Datatype,
    filetype: MPI_Datatype,
) -> Result<brlock::view::FileView, Error> {
    use mpi::raw::FromRaw;
    let etype_size = data_bytes(1, etype)?.unsigned_abs();
    let disp = u64::try_from(disp).map_err(|_| {
        Error::InvalidArgument(format!("displacement {disp} (MPI_DISPLACEMENT_CURRENT?)"))
    })?;
    // SAFETY: `filetype` is the committed datatype the caller just set the view with, live
    // for this call; the reference does not outlive it.
    let filetype = unsafe { mpi::datatype::DatatypeRef::from_raw(filetype) };
    let map = brlock::sys::type_map(&filetype)?;
    brlock::view::FileView::new(disp, etype_size, map)
}

/// The byte map of the file's current view, asked of the MPI library (`MPI_File_get_view`),
/// whose derived datatypes it returns are freed here.
fn current_view(fh: MPI_File) -> Result<brlock::view::FileView, Error> {
    let mut disp: MPI_Offset = 0;
    // SAFETY: reading immutable extern statics initialised by rsmpi's C shim.
    let (mut etype, mut filetype) =
        unsafe { (mpi::ffi::RSMPI_DATATYPE_NULL, mpi::ffi::RSMPI_DATATYPE_NULL) };
    let mut rep = [0 as c_char; mpi::ffi::MPI_MAX_DATAREP_STRING as usize + 1];
    // SAFETY: the caller's live file; valid out-pointers, `rep` of the size MPI requires.
    // MPI_File_get_view is not intercepted: the library's.
    let rc = unsafe {
        mpi::ffi::MPI_File_get_view(fh, &mut disp, &mut etype, &mut filetype, rep.as_mut_ptr())
    };
    if rc != SUCCESS {
        return Err(Error::InvalidArgument(format!(
            "MPI_File_get_view failed ({rc})"
        )));
    }
    // SAFETY: MPI wrote a NUL-terminated name into `rep`.
    let native = unsafe { CStr::from_ptr(rep.as_ptr()) }.to_bytes() == b"native";
    let view = if native {
        view_map(disp, etype, filetype)
    } else {
        Err(Error::InvalidArgument(
            "only the \"native\" data representation".into(),
        ))
    };
    for ty in [etype, filetype] {
        free_if_derived(ty);
    }
    view
}

/// The combiner of `ty` (`MPI_Type_get_envelope`).
fn combiner(ty: MPI_Datatype) -> c_int {
    let (mut ints, mut addresses, mut types, mut combiner) = (0, 0, 0, -1);
    // SAFETY: a live datatype; valid out-pointers.
    unsafe {
        mpi::ffi::MPI_Type_get_envelope(ty, &mut ints, &mut addresses, &mut types, &mut combiner)
    };
    combiner
}

/// Frees `ty` unless it is a predefined (named) datatype, as `MPI_File_get_view` asks of its
/// caller. The named combiner's value differs between MPI libraries: it is the one of a
/// predefined type.
fn free_if_derived(mut ty: MPI_Datatype) {
    // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
    let named = combiner(unsafe { mpi::ffi::RSMPI_UINT8_T });
    if combiner(ty) != named {
        // SAFETY: a derived datatype MPI_File_get_view made for us, freed once.
        unsafe { mpi::ffi::MPI_Type_free(&mut ty) };
    }
}

/// The bytes of `count` elements of `datatype`, and whether they lie back to back from the
/// buffer's address (so the buffer is its own packed form).
fn layout(count: c_int, datatype: MPI_Datatype) -> Result<(usize, bool), Error> {
    let (mut size, mut lb, mut extent, mut true_lb, mut true_extent) = (0, 0, 0, 0, 0);
    // SAFETY: the caller's datatype for this call; valid out-pointers.
    let rcs = unsafe {
        [
            mpi::ffi::MPI_Type_size_x(datatype, &mut size),
            mpi::ffi::MPI_Type_get_extent_x(datatype, &mut lb, &mut extent),
            mpi::ffi::MPI_Type_get_true_extent_x(datatype, &mut true_lb, &mut true_extent),
        ]
    };
    if rcs.iter().any(|&rc| rc != SUCCESS) || count < 0 || size < 0 {
        return Err(Error::InvalidArgument(format!(
            "the call's datatype or count ({count}) is not valid"
        )));
    }
    let total = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_mul(count as usize))
        .ok_or_else(|| Error::InvalidArgument("the access is too large".into()))?;
    let contiguous =
        count == 0 || (true_lb == 0 && true_extent == size && (count == 1 || extent == size));
    Ok((total, contiguous))
}

/// The memory side of an access in atomic mode: a write's buffer, packed, or a read's,
/// unpacked.
trait Buffer: Copy {
    /// Moves `count` `datatype`s between this buffer and `offset` etypes of the view through
    /// `atomic`; returns the bytes moved.
    ///
    /// # Safety
    /// The buffer is valid for `count` elements of `datatype`, as for the caller's MPI call.
    unsafe fn atomic_io(
        self,
        atomic: &mut crate::atomic::Atomic,
        offset: u64,
        count: c_int,
        datatype: MPI_Datatype,
    ) -> Result<u64, Error>;
}

impl Buffer for Wr {
    unsafe fn atomic_io(
        self,
        atomic: &mut crate::atomic::Atomic,
        offset: u64,
        count: c_int,
        datatype: MPI_Datatype,
    ) -> Result<u64, Error> {
        let (n, contiguous) = layout(count, datatype)?;
        if n == 0 {
            return Ok(0);
        }
        if contiguous {
            // SAFETY: the caller's buffer holds `count` contiguous elements, `n` bytes.
            let data = unsafe { std::slice::from_raw_parts(self.cast::<u8>(), n) };
            atomic.write(offset, data)?;
            return Ok(n as u64);
        }
        let mut packed = vec![0u8; n];
        let mut position: c_int = 0;
        let room = c_int::try_from(n)
            .map_err(|_| Error::InvalidArgument("a noncontiguous access over 2 GiB".into()))?;
        // SAFETY: the caller's buffer is valid for `count` `datatype`s; `packed` has room for
        // their `n` bytes (the native packed size); MPI_COMM_SELF is predefined.
        let rc = unsafe {
            mpi::ffi::MPI_Pack(
                self,
                count,
                datatype,
                packed.as_mut_ptr().cast(),
                room,
                &mut position,
                mpi::ffi::RSMPI_COMM_SELF,
            )
        };
        if rc != SUCCESS || position != room {
            return Err(Error::InvalidArgument(format!(
                "MPI_Pack of the write's buffer failed ({rc}, {position} of {n} bytes)"
            )));
        }
        atomic.write(offset, &packed)?;
        Ok(n as u64)
    }
}

impl Buffer for Rd {
    unsafe fn atomic_io(
        self,
        atomic: &mut crate::atomic::Atomic,
        offset: u64,
        count: c_int,
        datatype: MPI_Datatype,
    ) -> Result<u64, Error> {
        let (n, contiguous) = layout(count, datatype)?;
        if n == 0 {
            return Ok(0);
        }
        if contiguous {
            // SAFETY: the caller's buffer holds room for `count` contiguous elements, `n`
            // bytes, and nothing else uses it during the call.
            let buf = unsafe { std::slice::from_raw_parts_mut(self.cast::<u8>(), n) };
            return atomic.read(offset, buf);
        }
        let mut packed = vec![0u8; n];
        let got = atomic.read(offset, &mut packed)?;
        // Whole elements only: MPI cannot unpack part of one.
        let element = (n / count as usize) as u64;
        let whole = got / element;
        let (Ok(elements), Ok(bytes)) = (c_int::try_from(whole), c_int::try_from(whole * element))
        else {
            return Err(Error::InvalidArgument(
                "a noncontiguous access over 2 GiB".into(),
            ));
        };
        let mut position: c_int = 0;
        // SAFETY: `packed` holds `bytes` bytes of `elements` packed elements; the caller's
        // buffer is valid for `count` >= `elements` of `datatype`; MPI_COMM_SELF is
        // predefined.
        let rc = unsafe {
            mpi::ffi::MPI_Unpack(
                packed.as_ptr().cast(),
                bytes,
                &mut position,
                self,
                elements,
                datatype,
                mpi::ffi::RSMPI_COMM_SELF,
            )
        };
        if rc != SUCCESS {
            return Err(Error::InvalidArgument(format!(
                "MPI_Unpack into the read's buffer failed ({rc})"
            )));
        }
        Ok(got)
    }
}

/// What the caller gets back from an access: a status, or a request of a nonblocking call.
trait Last: Copy {
    /// Reports `bytes` moved.
    ///
    /// # Safety
    /// The caller's status or request pointer, valid as for its MPI call.
    unsafe fn complete(self, bytes: u64) -> c_int;
}

impl Last for St {
    unsafe fn complete(self, bytes: u64) -> c_int {
        // SAFETY: passed on.
        unsafe { set_status(self, bytes) }
    }
}

impl Last for Rq {
    unsafe fn complete(self, bytes: u64) -> c_int {
        // SAFETY: passed on.
        unsafe { completed_request(self, bytes) }
    }
}

/// Fills `status` (unless it is `MPI_STATUS_IGNORE`) for `bytes` moved.
///
/// # Safety
/// `status` is `MPI_STATUS_IGNORE`, null, or valid for writing.
unsafe fn set_status(status: *mut MPI_Status, bytes: u64) -> c_int {
    // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
    let ignore = unsafe { mpi::ffi::RSMPI_STATUS_IGNORE };
    if status.is_null() || status == ignore {
        return SUCCESS;
    }
    let count = mpi::ffi::MPI_Count::try_from(bytes).unwrap_or(mpi::ffi::MPI_Count::MAX);
    // SAFETY: a valid status; the byte type is predefined.
    unsafe {
        mpi::ffi::MPI_Status_set_cancelled(status, 0);
        mpi::ffi::MPI_Status_set_elements_x(status, mpi::ffi::RSMPI_UINT8_T, count)
    }
}

/// `MPI_Grequest_start`'s query callback: the status of a completed atomic access, whose
/// byte count the extra state holds.
unsafe extern "C" fn query_done(extra: *mut c_void, status: *mut MPI_Status) -> c_int {
    // SAFETY: `extra` is the `Box<u64>` that `completed_request` made, live until
    // `free_done`; `status` is MPI's valid status.
    unsafe { set_status(status, *extra.cast::<u64>()) }
}

/// `MPI_Grequest_start`'s free callback: drops the extra state.
unsafe extern "C" fn free_done(extra: *mut c_void) -> c_int {
    // SAFETY: `extra` came from `Box::into_raw` in `completed_request`; MPI calls this once.
    drop(unsafe { Box::from_raw(extra.cast::<u64>()) });
    SUCCESS
}

/// `MPI_Grequest_start`'s cancel callback: a completed request cannot be cancelled.
unsafe extern "C" fn cancel_done(_extra: *mut c_void, _complete: c_int) -> c_int {
    SUCCESS
}

/// A request, in `*request`, that is already complete with `bytes` moved (a generalized
/// request, MPI 3.1 §12.2), for a nonblocking access done before it returned.
///
/// # Safety
/// `request` is the caller's valid out-pointer.
unsafe fn completed_request(request: *mut MPI_Request, bytes: u64) -> c_int {
    let extra = Box::into_raw(Box::new(bytes));
    // SAFETY: the callbacks match MPI's prototypes; `extra` lives until `free_done`;
    // `request` is the caller's out-pointer.
    let rc = unsafe {
        mpi::ffi::MPI_Grequest_start(
            Some(query_done),
            Some(free_done),
            Some(cancel_done),
            extra.cast(),
            request,
        )
    };
    if rc != SUCCESS {
        // SAFETY: MPI did not take the state; it is ours to free.
        drop(unsafe { Box::from_raw(extra) });
        return rc;
    }
    // SAFETY: the request just started.
    unsafe { mpi::ffi::MPI_Grequest_complete(*request) }
}

/// An access at `offset` etypes through brlock's atomic file, reported through `last`.
///
/// # Safety
/// The caller's buffer, count, datatype and status or request, valid as for its call.
#[allow(clippy::too_many_arguments)]
unsafe fn atomic_at<B: Buffer, L: Last>(
    call: &str,
    fh: MPI_File,
    handle: &shared::Handle,
    offset: MPI_Offset,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
    last: L,
) -> c_int {
    // SAFETY: passed on.
    match unsafe { atomic_bytes(handle, offset, buf, count, datatype) } {
        // SAFETY: passed on.
        Ok(n) => unsafe { last.complete(n) },
        Err(e) => fail(fh, call, &e),
    }
}

/// The begin of a split collective access at `offset` in atomic mode: done now, its result
/// kept for the end.
///
/// # Safety
/// As [`atomic_at`].
unsafe fn atomic_begin<B: Buffer>(
    call: &str,
    fh: MPI_File,
    handle: &shared::Handle,
    offset: MPI_Offset,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
) -> c_int {
    // SAFETY: passed on.
    match unsafe { atomic_bytes(handle, offset, buf, count, datatype) } {
        Ok(n) => {
            shared::lock(handle).0.atomic().begin_split(n);
            SUCCESS
        }
        Err(e) => {
            // The end still completes (with nothing), as after any failed begin.
            shared::lock(handle).0.atomic().begin_split(0);
            fail(fh, call, &e)
        }
    }
}

/// The end of a split collective begun in atomic mode: its status; `None` if the begin was
/// not in atomic mode (the MPI library ends it).
fn atomic_end(handle: &shared::Handle, status: St) -> Option<c_int> {
    let bytes = shared::lock(handle).0.atomic().end_split()?;
    // SAFETY: the caller's status, valid as for its call.
    Some(unsafe { set_status(status, bytes) })
}

/// The bytes an atomic access at `offset` etypes moved.
///
/// # Safety
/// As [`atomic_at`].
unsafe fn atomic_bytes<B: Buffer>(
    handle: &shared::Handle,
    offset: MPI_Offset,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
) -> Result<u64, Error> {
    let offset = u64::try_from(offset)
        .map_err(|_| Error::InvalidArgument(format!("a negative offset ({offset})")))?;
    let mut tracked = shared::lock(handle);
    // SAFETY: passed on.
    unsafe { buf.atomic_io(tracked.0.atomic(), offset, count, datatype) }
}

/// The individual file pointer in etypes (the MPI library's).
fn position(fh: MPI_File) -> Result<MPI_Offset, Error> {
    let mut at: MPI_Offset = 0;
    // SAFETY: the caller's live file; a valid out-pointer. Not intercepted: the library's.
    let rc = unsafe { mpi::ffi::MPI_File_get_position(fh, &mut at) };
    if rc != SUCCESS {
        return Err(Error::InvalidArgument(format!(
            "MPI_File_get_position failed ({rc})"
        )));
    }
    Ok(at)
}

/// Moves the individual file pointer past `bytes` of data from `from` etypes.
fn advance(fh: MPI_File, handle: &shared::Handle, from: MPI_Offset, bytes: u64) -> c_int {
    let etype = shared::lock(handle).0.atomic().etype_size();
    let to = MPI_Offset::try_from(bytes / etype).map_or(MPI_Offset::MAX, |n| from + n);
    forward!(
        "PMPI_File_seek",
        SeekFn,
        fh,
        to,
        mpi::ffi::MPI_SEEK_SET as c_int
    )
}

/// The end of file in etypes of the view if `handle` is in atomic mode (the size fresh from
/// the server: the MPI library's may not know what other clients appended), else `None`.
fn fresh_end(handle: &shared::Handle) -> Option<Result<MPI_Offset, Error>> {
    let mut tracked = shared::lock(handle);
    if !tracked.0.atomic_on() {
        return None;
    }
    Some(tracked.0.atomic().end_of_file().and_then(|end| {
        MPI_Offset::try_from(end)
            .map_err(|_| Error::InvalidArgument("an end past MPI_Offset".into()))
    }))
}

export!(MPI_File_seek, PMPI_File_seek, file_seek, (fh: MPI_File, offset: MPI_Offset, whence: c_int));

/// `MPI_File_seek`: with `MPI_SEEK_END` in atomic mode, to the end of file from the size fresh
/// from the server; else the MPI library's.
fn file_seek(fh: MPI_File, offset: MPI_Offset, whence: c_int) -> c_int {
    // `fresh_end` checks the file's mode itself (under its lock, once).
    let end = (whence == mpi::ffi::MPI_SEEK_END as c_int && crate::atomic::any_in_atomic_mode())
        .then(|| tracked(fh))
        .flatten()
        .and_then(|handle| fresh_end(&handle));
    let Some(end) = end else {
        return forward!("PMPI_File_seek", SeekFn, fh, offset, whence);
    };
    tracing::debug!(?end, offset, "MPI_File_seek to the end in atomic mode");
    let target = end.and_then(|end| {
        let to = end.saturating_add(offset);
        if to < 0 {
            return Err(Error::InvalidArgument(format!(
                "MPI_File_seek: {offset} etypes from the end ({end}) is before the start"
            )));
        }
        Ok(to)
    });
    match target {
        Ok(to) => forward!(
            "PMPI_File_seek",
            SeekFn,
            fh,
            to,
            mpi::ffi::MPI_SEEK_SET as c_int
        ),
        Err(e) => fail(fh, "MPI_File_seek", &e),
    }
}

/// An access at the individual file pointer in atomic mode: at the pointer, which then moves
/// past the data.
///
/// # Safety
/// As [`atomic_at`].
unsafe fn atomic_individual<B: Buffer, L: Last>(
    call: &str,
    fh: MPI_File,
    handle: &shared::Handle,
    buf: B,
    count: c_int,
    datatype: MPI_Datatype,
    last: L,
) -> c_int {
    let moved = position(fh).and_then(|at| {
        // SAFETY: passed on.
        unsafe { atomic_bytes(handle, at, buf, count, datatype) }.map(|n| (at, n))
    });
    match moved {
        Ok((at, n)) => {
            let rc = advance(fh, handle, at, n);
            if rc != SUCCESS {
                return rc;
            }
            // SAFETY: passed on.
            unsafe { last.complete(n) }
        }
        Err(e) => fail(fh, call, &e),
    }
}

/// The tracked file behind `fh` if it is in atomic mode.
fn in_atomic_mode(fh: MPI_File) -> Option<shared::Handle> {
    if !crate::atomic::any_in_atomic_mode() {
        return None;
    }
    tracked(fh).filter(|h| shared::lock(h).0.atomic_on())
}

/// Defines `$imp`, an explicit-offset access (`MPI_File_write_at`, `_iread_at_all`, ...):
/// brlock's atomic file in atomic mode, else the MPI library's own `$own`.
macro_rules! at_fn {
    ($imp:ident, $own:literal, $b:ty, $l:ty) => {
        fn $imp(
            fh: MPI_File,
            offset: MPI_Offset,
            buf: $b,
            count: c_int,
            datatype: MPI_Datatype,
            last: $l,
        ) -> c_int {
            if let Some(h) = in_atomic_mode(fh) {
                // SAFETY: the caller's arguments, valid as for its call.
                return unsafe { atomic_at($own, fh, &h, offset, buf, count, datatype, last) };
            }
            forward!($own, AccessAtFn<$b, $l>, fh, offset, buf, count, datatype, last)
        }
    };
}

/// Defines `$imp`, an individual-pointer access (`MPI_File_write`, `_iread_all`, ...).
macro_rules! individual_fn {
    ($imp:ident, $own:literal, $b:ty, $l:ty) => {
        fn $imp(fh: MPI_File, buf: $b, count: c_int, datatype: MPI_Datatype, last: $l) -> c_int {
            if let Some(h) = in_atomic_mode(fh) {
                // SAFETY: the caller's arguments, valid as for its call.
                return unsafe { atomic_individual($own, fh, &h, buf, count, datatype, last) };
            }
            forward!($own, AccessFn<$b, $l>, fh, buf, count, datatype, last)
        }
    };
}

/// Defines `$imp`, the begin of an explicit-offset split collective access.
macro_rules! begin_at_fn {
    ($imp:ident, $own:literal, $b:ty) => {
        fn $imp(
            fh: MPI_File,
            offset: MPI_Offset,
            buf: $b,
            count: c_int,
            datatype: MPI_Datatype,
        ) -> c_int {
            if let Some(h) = in_atomic_mode(fh) {
                // SAFETY: the caller's arguments, valid as for its call.
                return unsafe { atomic_begin($own, fh, &h, offset, buf, count, datatype) };
            }
            forward!($own, BeginAtFn<$b>, fh, offset, buf, count, datatype)
        }
    };
}

/// Defines `$imp`, the begin of an individual-pointer split collective access.
macro_rules! begin_individual_fn {
    ($imp:ident, $own:literal, $b:ty) => {
        fn $imp(fh: MPI_File, buf: $b, count: c_int, datatype: MPI_Datatype) -> c_int {
            if let Some(h) = in_atomic_mode(fh) {
                let moved = position(fh).and_then(|at| {
                    // SAFETY: the caller's arguments, valid as for its call.
                    unsafe { atomic_bytes(&h, at, buf, count, datatype) }.map(|n| (at, n))
                });
                return match moved {
                    Ok((at, n)) => {
                        shared::lock(&h).0.atomic().begin_split(n);
                        advance(fh, &h, at, n)
                    }
                    Err(e) => {
                        shared::lock(&h).0.atomic().begin_split(0);
                        fail(fh, $own, &e)
                    }
                };
            }
            forward!($own, BeginFn<$b>, fh, buf, count, datatype)
        }
    };
}

/// Defines `$imp`, the end of a split collective access that is not a shared-pointer one.
macro_rules! end_data_fn {
    ($imp:ident, $own:literal, $b:ty) => {
        fn $imp(fh: MPI_File, buf: $b, status: St) -> c_int {
            if let Some(code) = tracked(fh).and_then(|h| atomic_end(&h, status)) {
                return code;
            }
            forward!($own, EndFn<$b>, fh, buf, status)
        }
    };
}

at_fn!(write_at, "PMPI_File_write_at", Wr, St);
at_fn!(read_at, "PMPI_File_read_at", Rd, St);
at_fn!(write_at_all, "PMPI_File_write_at_all", Wr, St);
at_fn!(read_at_all, "PMPI_File_read_at_all", Rd, St);
at_fn!(iwrite_at, "PMPI_File_iwrite_at", Wr, Rq);
at_fn!(iread_at, "PMPI_File_iread_at", Rd, Rq);
at_fn!(iwrite_at_all, "PMPI_File_iwrite_at_all", Wr, Rq);
at_fn!(iread_at_all, "PMPI_File_iread_at_all", Rd, Rq);
individual_fn!(write, "PMPI_File_write", Wr, St);
individual_fn!(read, "PMPI_File_read", Rd, St);
individual_fn!(write_all, "PMPI_File_write_all", Wr, St);
individual_fn!(read_all, "PMPI_File_read_all", Rd, St);
individual_fn!(iwrite, "PMPI_File_iwrite", Wr, Rq);
individual_fn!(iread, "PMPI_File_iread", Rd, Rq);
individual_fn!(iwrite_all, "PMPI_File_iwrite_all", Wr, Rq);
individual_fn!(iread_all, "PMPI_File_iread_all", Rd, Rq);
begin_at_fn!(write_at_all_begin, "PMPI_File_write_at_all_begin", Wr);
begin_at_fn!(read_at_all_begin, "PMPI_File_read_at_all_begin", Rd);
begin_individual_fn!(write_all_begin, "PMPI_File_write_all_begin", Wr);
begin_individual_fn!(read_all_begin, "PMPI_File_read_all_begin", Rd);
end_data_fn!(write_at_all_end, "PMPI_File_write_at_all_end", Wr);
end_data_fn!(read_at_all_end, "PMPI_File_read_at_all_end", Rd);
end_data_fn!(write_all_end, "PMPI_File_write_all_end", Wr);
end_data_fn!(read_all_end, "PMPI_File_read_all_end", Rd);

export!(MPI_File_write_at, PMPI_File_write_at, write_at,
    (fh: MPI_File, offset: MPI_Offset, buf: Wr, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_read_at, PMPI_File_read_at, read_at,
    (fh: MPI_File, offset: MPI_Offset, buf: Rd, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_write_at_all, PMPI_File_write_at_all, write_at_all,
    (fh: MPI_File, offset: MPI_Offset, buf: Wr, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_read_at_all, PMPI_File_read_at_all, read_at_all,
    (fh: MPI_File, offset: MPI_Offset, buf: Rd, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_iwrite_at, PMPI_File_iwrite_at, iwrite_at,
    (fh: MPI_File, offset: MPI_Offset, buf: Wr, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iread_at, PMPI_File_iread_at, iread_at,
    (fh: MPI_File, offset: MPI_Offset, buf: Rd, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iwrite_at_all, PMPI_File_iwrite_at_all, iwrite_at_all,
    (fh: MPI_File, offset: MPI_Offset, buf: Wr, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iread_at_all, PMPI_File_iread_at_all, iread_at_all,
    (fh: MPI_File, offset: MPI_Offset, buf: Rd, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_write, PMPI_File_write, write,
    (fh: MPI_File, buf: Wr, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_read, PMPI_File_read, read,
    (fh: MPI_File, buf: Rd, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_write_all, PMPI_File_write_all, write_all,
    (fh: MPI_File, buf: Wr, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_read_all, PMPI_File_read_all, read_all,
    (fh: MPI_File, buf: Rd, count: c_int, datatype: MPI_Datatype, status: St));
export!(MPI_File_iwrite, PMPI_File_iwrite, iwrite,
    (fh: MPI_File, buf: Wr, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iread, PMPI_File_iread, iread,
    (fh: MPI_File, buf: Rd, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iwrite_all, PMPI_File_iwrite_all, iwrite_all,
    (fh: MPI_File, buf: Wr, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_iread_all, PMPI_File_iread_all, iread_all,
    (fh: MPI_File, buf: Rd, count: c_int, datatype: MPI_Datatype, request: Rq));
export!(MPI_File_write_at_all_begin, PMPI_File_write_at_all_begin, write_at_all_begin,
    (fh: MPI_File, offset: MPI_Offset, buf: Wr, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_read_at_all_begin, PMPI_File_read_at_all_begin, read_at_all_begin,
    (fh: MPI_File, offset: MPI_Offset, buf: Rd, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_write_all_begin, PMPI_File_write_all_begin, write_all_begin,
    (fh: MPI_File, buf: Wr, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_read_all_begin, PMPI_File_read_all_begin, read_all_begin,
    (fh: MPI_File, buf: Rd, count: c_int, datatype: MPI_Datatype));
export!(MPI_File_write_at_all_end, PMPI_File_write_at_all_end, write_at_all_end,
    (fh: MPI_File, buf: Wr, status: St));
export!(MPI_File_read_at_all_end, PMPI_File_read_at_all_end, read_at_all_end,
    (fh: MPI_File, buf: Rd, status: St));
export!(MPI_File_write_all_end, PMPI_File_write_all_end, write_all_end,
    (fh: MPI_File, buf: Wr, status: St));
export!(MPI_File_read_all_end, PMPI_File_read_all_end, read_all_end,
    (fh: MPI_File, buf: Rd, status: St));

// --- Large-count forms (MPI 4.0) ---------------------------------------------------------
//
// `MPI_File_write_at_c` and the other `_c` data accesses take an `MPI_Count`. MPICH 4 has
// them (Open MPI 4.1 does not: there nobody calls these definitions). Left to the MPI library
// they would bypass the shared pointer (its own hidden one, at another offset) and atomic
// mode. A count that fits an `int` runs the `int` form above, with its semantics; a larger one
// is forwarded where the library has nothing to do (outside atomic mode, not a shared-pointer
// access), else refused with an error: brlock moves at most `i32::MAX` elements per call.

/// A shared-pointer access with an `MPI_Count` (`MPI_File_write_shared_c`, ...).
type AccessCFn<B, L> = unsafe extern "C" fn(MPI_File, B, MPI_Count, MPI_Datatype, L) -> c_int;
/// An explicit-offset access with an `MPI_Count` (`MPI_File_write_at_c`, ...).
type AccessAtCFn<B, L> =
    unsafe extern "C" fn(MPI_File, MPI_Offset, B, MPI_Count, MPI_Datatype, L) -> c_int;
/// The begin of a split collective with an `MPI_Count`, without and with an offset.
type BeginCFn<B> = unsafe extern "C" fn(MPI_File, B, MPI_Count, MPI_Datatype) -> c_int;
type BeginAtCFn<B> =
    unsafe extern "C" fn(MPI_File, MPI_Offset, B, MPI_Count, MPI_Datatype) -> c_int;

/// What a large-count call is to the library.
#[derive(Clone, Copy)]
enum Reach {
    /// An independent shared-pointer access: the library's on every tracked file.
    Shared,
    /// A collective shared-pointer access: the library's on every tracked file, and every
    /// rank must take part in the reservation.
    Ordered,
    /// Any other data access: the library's in atomic mode only.
    Data,
}

/// Whether the library does a call of `reach` on `fh` itself (else it forwards it).
fn reached(fh: MPI_File, reach: Reach) -> bool {
    match reach {
        Reach::Shared | Reach::Ordered => tracked(fh).is_some(),
        Reach::Data => in_atomic_mode(fh).is_some(),
    }
}

/// The error of a large-count call whose count does not fit an `int` on a file the library
/// handles.
fn too_large(fh: MPI_File, call: &str, count: MPI_Count) -> c_int {
    let err = Error::InvalidArgument(format!(
        "a count of {count} elements: brlock-mpiio moves at most {} per call",
        c_int::MAX
    ));
    fail(fh, call, &err)
}

/// `count` as an `int`, for the `int` form of a call; `None` if it does not fit.
fn fits(count: MPI_Count) -> Option<c_int> {
    c_int::try_from(count).ok()
}

/// Defines `$mpi` as a call of `$pmpi`, the function the large-count macros below export
/// (same arguments, same behaviour).
macro_rules! profiling_alias {
    ($mpi:ident, $pmpi:ident, ($($arg:ident: $ty:ty),*)) => {
        /// The MPI name of the function above: its profiling name with the same behaviour.
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $mpi($($arg: $ty),*) -> c_int {
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { $pmpi($($arg),*) }
        }
    };
}

/// Exports `MPI_File_$name_c` and `PMPI_File_$name_c`, an access with a status or request:
/// the `int` form `$int` when the count fits, else see [`Reach`].
macro_rules! export_c {
    ($mpi:ident, $pmpi:ident, $own:literal, $reach:ident, $int:ident, $b:ty, $l:ty) => {
        /// The MPI 4.0 large-count form of the call of this name (`docs/mpiio.md`).
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $pmpi(
            fh: MPI_File,
            buf: $b,
            count: MPI_Count,
            datatype: MPI_Datatype,
            last: $l,
        ) -> c_int {
            if let Some(n) = fits(count) {
                return $int(fh, buf, n, datatype, last);
            }
            if !reached(fh, Reach::$reach) {
                return forward!($own, AccessCFn<$b, $l>, fh, buf, count, datatype, last);
            }
            if let Reach::Ordered = Reach::$reach {
                // The other ranks are in the collective reservation: take part with nothing.
                let _ = $int(fh, buf, 0, datatype, last);
            }
            too_large(fh, $own, count)
        }

        profiling_alias!($mpi, $pmpi, (fh: MPI_File, buf: $b, count: MPI_Count, datatype: MPI_Datatype, last: $l));
    };
}

/// As [`export_c`], for an explicit-offset access.
macro_rules! export_at_c {
    ($mpi:ident, $pmpi:ident, $own:literal, $int:ident, $b:ty, $l:ty) => {
        /// The MPI 4.0 large-count form of the call of this name (`docs/mpiio.md`).
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $pmpi(
            fh: MPI_File,
            offset: MPI_Offset,
            buf: $b,
            count: MPI_Count,
            datatype: MPI_Datatype,
            last: $l,
        ) -> c_int {
            if let Some(n) = fits(count) {
                return $int(fh, offset, buf, n, datatype, last);
            }
            if !reached(fh, Reach::Data) {
                return forward!($own, AccessAtCFn<$b, $l>, fh, offset, buf, count, datatype, last);
            }
            too_large(fh, $own, count)
        }

        profiling_alias!($mpi, $pmpi, (fh: MPI_File, offset: MPI_Offset, buf: $b, count: MPI_Count, datatype: MPI_Datatype, last: $l));
    };
}

/// As [`export_c`], for the begin of a split collective without an offset.
macro_rules! export_begin_c {
    ($mpi:ident, $pmpi:ident, $own:literal, $reach:ident, $int:ident, $b:ty) => {
        /// The MPI 4.0 large-count form of the call of this name (`docs/mpiio.md`).
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $pmpi(
            fh: MPI_File,
            buf: $b,
            count: MPI_Count,
            datatype: MPI_Datatype,
        ) -> c_int {
            if let Some(n) = fits(count) {
                return $int(fh, buf, n, datatype);
            }
            if !reached(fh, Reach::$reach) {
                return forward!($own, BeginCFn<$b>, fh, buf, count, datatype);
            }
            if let Reach::Ordered = Reach::$reach {
                // As in `export_c`: the collective goes on, with nothing from this rank.
                let _ = $int(fh, buf, 0, datatype);
            }
            too_large(fh, $own, count)
        }

        profiling_alias!($mpi, $pmpi, (fh: MPI_File, buf: $b, count: MPI_Count, datatype: MPI_Datatype));
    };
}

/// As [`export_c`], for the begin of an explicit-offset split collective.
macro_rules! export_begin_at_c {
    ($mpi:ident, $pmpi:ident, $own:literal, $int:ident, $b:ty) => {
        /// The MPI 4.0 large-count form of the call of this name (`docs/mpiio.md`).
        ///
        /// # Safety
        /// As for the MPI library's own function.
        #[no_mangle]
        pub unsafe extern "C" fn $pmpi(
            fh: MPI_File,
            offset: MPI_Offset,
            buf: $b,
            count: MPI_Count,
            datatype: MPI_Datatype,
        ) -> c_int {
            if let Some(n) = fits(count) {
                return $int(fh, offset, buf, n, datatype);
            }
            if !reached(fh, Reach::Data) {
                return forward!($own, BeginAtCFn<$b>, fh, offset, buf, count, datatype);
            }
            too_large(fh, $own, count)
        }

        profiling_alias!($mpi, $pmpi, (fh: MPI_File, offset: MPI_Offset, buf: $b, count: MPI_Count, datatype: MPI_Datatype));
    };
}

export_c!(
    MPI_File_write_shared_c,
    PMPI_File_write_shared_c,
    "PMPI_File_write_shared_c",
    Shared,
    write_shared,
    Wr,
    St
);
export_c!(
    MPI_File_read_shared_c,
    PMPI_File_read_shared_c,
    "PMPI_File_read_shared_c",
    Shared,
    read_shared,
    Rd,
    St
);
export_c!(
    MPI_File_iwrite_shared_c,
    PMPI_File_iwrite_shared_c,
    "PMPI_File_iwrite_shared_c",
    Shared,
    iwrite_shared,
    Wr,
    Rq
);
export_c!(
    MPI_File_iread_shared_c,
    PMPI_File_iread_shared_c,
    "PMPI_File_iread_shared_c",
    Shared,
    iread_shared,
    Rd,
    Rq
);
export_c!(
    MPI_File_write_ordered_c,
    PMPI_File_write_ordered_c,
    "PMPI_File_write_ordered_c",
    Ordered,
    write_ordered,
    Wr,
    St
);
export_c!(
    MPI_File_read_ordered_c,
    PMPI_File_read_ordered_c,
    "PMPI_File_read_ordered_c",
    Ordered,
    read_ordered,
    Rd,
    St
);
export_begin_c!(
    MPI_File_write_ordered_begin_c,
    PMPI_File_write_ordered_begin_c,
    "PMPI_File_write_ordered_begin_c",
    Ordered,
    write_ordered_begin,
    Wr
);
export_begin_c!(
    MPI_File_read_ordered_begin_c,
    PMPI_File_read_ordered_begin_c,
    "PMPI_File_read_ordered_begin_c",
    Ordered,
    read_ordered_begin,
    Rd
);
export_c!(
    MPI_File_write_c,
    PMPI_File_write_c,
    "PMPI_File_write_c",
    Data,
    write,
    Wr,
    St
);
export_c!(
    MPI_File_read_c,
    PMPI_File_read_c,
    "PMPI_File_read_c",
    Data,
    read,
    Rd,
    St
);
export_c!(
    MPI_File_write_all_c,
    PMPI_File_write_all_c,
    "PMPI_File_write_all_c",
    Data,
    write_all,
    Wr,
    St
);
export_c!(
    MPI_File_read_all_c,
    PMPI_File_read_all_c,
    "PMPI_File_read_all_c",
    Data,
    read_all,
    Rd,
    St
);
export_c!(
    MPI_File_iwrite_c,
    PMPI_File_iwrite_c,
    "PMPI_File_iwrite_c",
    Data,
    iwrite,
    Wr,
    Rq
);
export_c!(
    MPI_File_iread_c,
    PMPI_File_iread_c,
    "PMPI_File_iread_c",
    Data,
    iread,
    Rd,
    Rq
);
export_c!(
    MPI_File_iwrite_all_c,
    PMPI_File_iwrite_all_c,
    "PMPI_File_iwrite_all_c",
    Data,
    iwrite_all,
    Wr,
    Rq
);
export_c!(
    MPI_File_iread_all_c,
    PMPI_File_iread_all_c,
    "PMPI_File_iread_all_c",
    Data,
    iread_all,
    Rd,
    Rq
);
export_begin_c!(
    MPI_File_write_all_begin_c,
    PMPI_File_write_all_begin_c,
    "PMPI_File_write_all_begin_c",
    Data,
    write_all_begin,
    Wr
);
export_begin_c!(
    MPI_File_read_all_begin_c,
    PMPI_File_read_all_begin_c,
    "PMPI_File_read_all_begin_c",
    Data,
    read_all_begin,
    Rd
);
export_at_c!(
    MPI_File_write_at_c,
    PMPI_File_write_at_c,
    "PMPI_File_write_at_c",
    write_at,
    Wr,
    St
);
export_at_c!(
    MPI_File_read_at_c,
    PMPI_File_read_at_c,
    "PMPI_File_read_at_c",
    read_at,
    Rd,
    St
);
export_at_c!(
    MPI_File_write_at_all_c,
    PMPI_File_write_at_all_c,
    "PMPI_File_write_at_all_c",
    write_at_all,
    Wr,
    St
);
export_at_c!(
    MPI_File_read_at_all_c,
    PMPI_File_read_at_all_c,
    "PMPI_File_read_at_all_c",
    read_at_all,
    Rd,
    St
);
export_at_c!(
    MPI_File_iwrite_at_c,
    PMPI_File_iwrite_at_c,
    "PMPI_File_iwrite_at_c",
    iwrite_at,
    Wr,
    Rq
);
export_at_c!(
    MPI_File_iread_at_c,
    PMPI_File_iread_at_c,
    "PMPI_File_iread_at_c",
    iread_at,
    Rd,
    Rq
);
export_at_c!(
    MPI_File_iwrite_at_all_c,
    PMPI_File_iwrite_at_all_c,
    "PMPI_File_iwrite_at_all_c",
    iwrite_at_all,
    Wr,
    Rq
);
export_at_c!(
    MPI_File_iread_at_all_c,
    PMPI_File_iread_at_all_c,
    "PMPI_File_iread_at_all_c",
    iread_at_all,
    Rd,
    Rq
);
export_begin_at_c!(
    MPI_File_write_at_all_begin_c,
    PMPI_File_write_at_all_begin_c,
    "PMPI_File_write_at_all_begin_c",
    write_at_all_begin,
    Wr
);
export_begin_at_c!(
    MPI_File_read_at_all_begin_c,
    PMPI_File_read_at_all_begin_c,
    "PMPI_File_read_at_all_begin_c",
    read_at_all_begin,
    Rd
);

//! MPI-IO files: collective open and close, positional reads and writes, atomic mode, file
//! views of byte pieces.
//!
//! Every buffer is bytes (`MPI_UINT8_T`), every view has bytes as its elementary type, and
//! the data representation is `"native"`. One call moves at most `i32::MAX` bytes (MPI counts
//! are C `int`s): larger buffers are rejected with [`Error::InvalidArgument`], never
//! truncated.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use mpi::ffi;
use mpi::topology::Communicator;

use super::datatype::{byte_type, Datatype};
use super::error::{error_class, error_string};
use super::{check, errors_return, free_on_drop, free_or_abandon};
use crate::error::{Error, Result};
use crate::pieces::Pieces;

/// How [`MpiFile::open`] opens a file (the access mode, MPI 3.1 §13.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist (`MPI_MODE_RDONLY`).
    ReadOnly,
    /// Read and write; the file must exist (`MPI_MODE_RDWR`).
    ReadWrite,
    /// Read and write, created if missing (`MPI_MODE_RDWR | MPI_MODE_CREATE`).
    Create,
    /// Read and write, created; fails if the file exists
    /// (`MPI_MODE_RDWR | MPI_MODE_CREATE | MPI_MODE_EXCL`).
    CreateNew,
}

impl OpenMode {
    fn amode(self) -> c_int {
        let rdwr = ffi::MPI_MODE_RDWR as c_int;
        let create = ffi::MPI_MODE_CREATE as c_int;
        match self {
            OpenMode::ReadOnly => ffi::MPI_MODE_RDONLY as c_int,
            OpenMode::ReadWrite => rdwr,
            OpenMode::Create => rdwr | create,
            OpenMode::CreateNew => rdwr | create | ffi::MPI_MODE_EXCL as c_int,
        }
    }
}

/// A file opened collectively with MPI-IO (`MPI_File`), with `MPI_ERRORS_RETURN`.
///
/// Offsets of [`MpiFile::read_at`] and [`MpiFile::write_at`] are in bytes of the current view:
/// plain file offsets until [`MpiFile::set_view_pieces`] installs a noncontiguous view, and
/// again after [`MpiFile::reset_view`].
///
/// Closing is collective: every rank must call [`MpiFile::close`] at the same point of the
/// program, before the communicator it was opened on is freed and before MPI is finalized.
/// Dropping the file instead does not close it (the other ranks may never reach the call) and
/// records it in [`abandoned`](super::abandoned); see the module's lifetime rules. Neither `Send` nor `Sync`: MPI runs with `MPI_THREAD_FUNNELED`.
pub struct MpiFile {
    raw: ffi::MPI_File,
    path: PathBuf,
    /// Size of the communicator the file was opened on.
    ranks: i32,
    closed: bool,
    _not_send: PhantomData<*const ()>,
}

impl MpiFile {
    /// Opens `path` on every rank of `comm` (collective; every rank passes the same path, mode
    /// and hints), with the `(key, value)` `hints` as its info (e.g. `("romio_ds_write",
    /// "enable")`; implementations ignore keys they do not know), and sets `MPI_ERRORS_RETURN`
    /// on the file.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the path or a hint contains a NUL byte or a hint is longer
    /// than MPI allows; [`Error::Io`] naming the path, with [`std::io::ErrorKind::NotFound`],
    /// [`PermissionDenied`](std::io::ErrorKind::PermissionDenied) or
    /// [`AlreadyExists`](std::io::ErrorKind::AlreadyExists), if MPI reports the error class
    /// `MPI_ERR_NO_SUCH_FILE`, `MPI_ERR_ACCESS`/`MPI_ERR_READ_ONLY` or `MPI_ERR_FILE_EXISTS`;
    /// [`Error::Mpi`] (its message naming the path) for any other failure.
    ///
    /// MPI 3.1 §9.2 `MPI_Info_create`/`MPI_Info_set`/`MPI_Info_free`, §13.2.1
    /// `MPI_File_open`, §13.7 `MPI_File_set_errhandler`, §8.4 `MPI_Error_class`.
    pub fn open(
        comm: &impl Communicator,
        path: &Path,
        mode: OpenMode,
        hints: &[(&str, &str)],
    ) -> Result<MpiFile> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            Error::InvalidArgument(format!("path {} contains a NUL byte", path.display()))
        })?;
        let info = Info::from_hints(hints)?;
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut raw = unsafe { ffi::RSMPI_FILE_NULL };
        // SAFETY: `comm.as_raw()` is a live communicator borrowed for the call; `c_path` is a
        // NUL-terminated string alive for the call; `info` is a live info object (or
        // MPI_INFO_NULL) freed only after the call; `raw` is a valid out-pointer.
        let code = unsafe {
            ffi::MPI_File_open(
                comm.as_raw(),
                c_path.as_ptr(),
                mode.amode(),
                info.raw(),
                &mut raw,
            )
        };
        drop(info);
        if code != ffi::MPI_SUCCESS as c_int {
            return Err(open_error(path, code));
        }
        let mut file = MpiFile {
            raw,
            path: path.to_path_buf(),
            ranks: comm.size(),
            closed: false,
            _not_send: PhantomData,
        };
        // SAFETY: `file.raw` is the live file just opened; the handler is predefined.
        check("MPI_File_set_errhandler", unsafe {
            ffi::MPI_File_set_errhandler(file.raw, errors_return())
        })
        .inspect_err(|_| {
            // Collective, like the open; the error to report is the one above.
            let _ = file.release();
        })?;
        Ok(file)
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Switches atomic mode on or off (collective: every rank must pass the same value, which
    /// this call does not check; see [`crate::io::mpiio::MpiIoFile`] for a checked version).
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.6.1, `MPI_File_set_atomicity`.
    pub fn set_atomicity(&mut self, atomic: bool) -> Result<()> {
        // SAFETY: `raw` is the live file this object owns.
        check("MPI_File_set_atomicity", unsafe {
            ffi::MPI_File_set_atomicity(self.raw, c_int::from(atomic))
        })
    }

    /// Whether atomic mode is on, as MPI reports it.
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.6.1, `MPI_File_get_atomicity`.
    pub fn atomicity(&self) -> Result<bool> {
        let mut flag: c_int = 0;
        // SAFETY: `raw` is the live file this object owns; `flag` is a valid out-pointer.
        check("MPI_File_get_atomicity", unsafe {
            ffi::MPI_File_get_atomicity(self.raw, &mut flag)
        })?;
        Ok(flag != 0)
    }

    /// Reads up to `buf.len()` bytes at `offset` (in bytes of the current view) and returns
    /// how many were read: fewer than asked only at the end of the file.
    ///
    /// An empty `buf` returns 0 without calling MPI.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `buf` is longer than `i32::MAX` bytes or `offset` does not
    /// fit an `MPI_Offset`; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.4.2 `MPI_File_read_at`, §3.2.5 `MPI_Get_count`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let count = byte_count(buf.len())?;
        let offset = file_offset(offset)?;
        if count == 0 {
            return Ok(0);
        }
        let mut status = empty_status();
        // SAFETY: `raw` is the live file this object owns; `buf` has room for `count` bytes
        // and is exclusively borrowed for this blocking call; `status` is a valid out-pointer.
        check("MPI_File_read_at", unsafe {
            ffi::MPI_File_read_at(
                self.raw,
                offset,
                buf.as_mut_ptr().cast::<c_void>(),
                count,
                byte_type(),
                &mut status,
            )
        })?;
        bytes_moved(&status, buf.len())
    }

    /// Writes `data` at `offset` (in bytes of the current view) and returns how many bytes
    /// MPI reports written.
    ///
    /// An empty `data` returns 0 without calling MPI.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `data` is longer than `i32::MAX` bytes or `offset` does
    /// not fit an `MPI_Offset`; [`Error::Mpi`] if MPI fails (a read-only file included).
    ///
    /// MPI 3.1 §13.4.2 `MPI_File_write_at`, §3.2.5 `MPI_Get_count`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<usize> {
        let count = byte_count(data.len())?;
        let offset = file_offset(offset)?;
        if count == 0 {
            return Ok(0);
        }
        let mut status = empty_status();
        // SAFETY: `raw` is the live file this object owns; `data` holds `count` bytes and is
        // borrowed for this blocking call; `status` is a valid out-pointer.
        check("MPI_File_write_at", unsafe {
            ffi::MPI_File_write_at(
                self.raw,
                offset,
                data.as_ptr().cast::<c_void>(),
                count,
                byte_type(),
                &mut status,
            )
        })?;
        bytes_moved(&status, data.len())
    }

    /// Transfers this rank's writes to the storage device and makes them visible to the other
    /// ranks' later reads (collective).
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.6.1, `MPI_File_sync`.
    pub fn sync(&mut self) -> Result<()> {
        // SAFETY: `raw` is the live file this object owns.
        check("MPI_File_sync", unsafe { ffi::MPI_File_sync(self.raw) })
    }

    /// The file's size in bytes.
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.2.6, `MPI_File_get_size`.
    pub fn size(&self) -> Result<u64> {
        let mut size: ffi::MPI_Offset = 0;
        // SAFETY: `raw` is the live file this object owns; `size` is a valid out-pointer.
        check("MPI_File_get_size", unsafe {
            ffi::MPI_File_get_size(self.raw, &mut size)
        })?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    /// Truncates or extends the file to `size` bytes (collective: every rank passes the same
    /// size).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `size` does not fit an `MPI_Offset`; [`Error::Mpi`] if
    /// MPI fails.
    ///
    /// MPI 3.1 §13.2.4, `MPI_File_set_size`.
    pub fn set_size(&mut self, size: u64) -> Result<()> {
        let size = file_offset(size)?;
        // SAFETY: `raw` is the live file this object owns.
        check("MPI_File_set_size", unsafe {
            ffi::MPI_File_set_size(self.raw, size)
        })
    }

    /// Installs a noncontiguous view (collective; each rank passes its own view): the file as
    /// seen by this rank becomes the bytes of `shape`, shifted by `disp`, back to back. An
    /// access at view offset 0 of `shape.total_bytes()` bytes touches exactly the file bytes
    /// `disp + piece.offset ..` of each piece; further view offsets tile the shape at
    /// multiples of its extent (from the first piece's offset to the end of the last).
    ///
    /// The filetype is a byte `hvector` for equal blocks at a constant stride starting at 0,
    /// else an `hindexed` type; it is freed once the view holds it. The call resets this
    /// rank's individual file pointer (not used by this layer).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `shape` is empty or too large for an MPI datatype, or
    /// `disp` does not fit an `MPI_Offset`; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.3 `MPI_File_set_view`, §4.1 (derived datatypes).
    pub fn set_view_pieces(&mut self, disp: u64, shape: &Pieces) -> Result<()> {
        let disp = file_offset(disp)?;
        let filetype = Datatype::byte_pieces(shape)?;
        self.set_view(disp, filetype.raw())
    }

    /// Returns to the default view: the whole file as a stream of bytes from offset 0
    /// (collective).
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.3, `MPI_File_set_view`.
    pub fn reset_view(&mut self) -> Result<()> {
        self.set_view(0, byte_type())
    }

    fn set_view(&mut self, disp: ffi::MPI_Offset, filetype: ffi::MPI_Datatype) -> Result<()> {
        const NATIVE: &[u8] = b"native\0";
        // SAFETY: `raw` is the live file this object owns; the element type is predefined and
        // `filetype` is predefined or a committed type alive for the call; the data
        // representation is a NUL-terminated static string; MPI_INFO_NULL is predefined.
        check("MPI_File_set_view", unsafe {
            ffi::MPI_File_set_view(
                self.raw,
                disp,
                byte_type(),
                filetype,
                NATIVE.as_ptr().cast::<c_char>(),
                ffi::RSMPI_INFO_NULL,
            )
        })
    }

    /// The hints the implementation actually uses, as `(key, value)` pairs in its order
    /// (ROMIO lists its `romio_*` and `cb_*` keys; Open MPI's ompio lists few or none).
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §13.2.8 `MPI_File_get_info`, §9 (`MPI_Info_get_nkeys`, `MPI_Info_get_nthkey`,
    /// `MPI_Info_get_valuelen`, `MPI_Info_get`, `MPI_Info_free`).
    pub fn info(&self) -> Result<Vec<(String, String)>> {
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut raw = unsafe { ffi::RSMPI_INFO_NULL };
        // SAFETY: `self.raw` is the live file this object owns; `raw` is a valid out-pointer
        // for a new info object, which `Info` then owns and frees.
        check("MPI_File_get_info", unsafe {
            ffi::MPI_File_get_info(self.raw, &mut raw)
        })?;
        Info {
            raw,
            owned: true,
            _not_send: PhantomData,
        }
        .entries()
    }

    /// Closes the file (collective), reporting failure.
    ///
    /// # Errors
    /// [`Error::Mpi`] if `MPI_File_close` fails.
    ///
    /// MPI 3.1 §13.2.2, `MPI_File_close`.
    pub fn close(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // SAFETY: `raw` is the live file this object owns, closed at most once thanks to
        // `closed`; no operation is pending (every call here is blocking).
        check("MPI_File_close", unsafe {
            ffi::MPI_File_close(&mut self.raw)
        })
    }
}

impl std::fmt::Debug for MpiFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiFile")
            .field("path", &self.path)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Drop for MpiFile {
    fn drop(&mut self) {
        if !self.closed {
            let what = format!("MPI file {}", self.path.display());
            let ranks = self.ranks;
            free_or_abandon(&what, ranks, || self.release());
        }
    }
}

/// The error of a failed `MPI_File_open`, naming the path.
fn open_error(path: &Path, code: c_int) -> Error {
    use std::io::ErrorKind;
    let message = error_string(code);
    let class = error_class(code);
    let kind = [
        (ffi::MPI_ERR_NO_SUCH_FILE, ErrorKind::NotFound),
        (ffi::MPI_ERR_ACCESS, ErrorKind::PermissionDenied),
        (ffi::MPI_ERR_READ_ONLY, ErrorKind::PermissionDenied),
        (ffi::MPI_ERR_FILE_EXISTS, ErrorKind::AlreadyExists),
    ]
    .into_iter()
    .find(|&(c, _)| c as c_int == class)
    .map(|(_, kind)| kind);
    match kind {
        Some(kind) => Error::Io {
            op: "MPI_File_open",
            path: path.display().to_string(),
            source: std::io::Error::new(kind, format!("{message} (MPI error code {code})")),
        },
        None => Error::Mpi {
            call: "MPI_File_open",
            code,
            message: format!("{message} (file {})", path.display()),
        },
    }
}

/// A buffer length as an MPI count of bytes.
fn byte_count(len: usize) -> Result<c_int> {
    c_int::try_from(len).map_err(|_| {
        Error::InvalidArgument(format!(
            "a buffer of {len} bytes is larger than one MPI-IO call can move ({} bytes)",
            c_int::MAX
        ))
    })
}

/// A file offset as an `MPI_Offset`.
fn file_offset(offset: u64) -> Result<ffi::MPI_Offset> {
    ffi::MPI_Offset::try_from(offset)
        .map_err(|_| Error::InvalidArgument(format!("offset {offset} does not fit an MPI_Offset")))
}

/// A status for MPI to fill in.
fn empty_status() -> ffi::MPI_Status {
    // SAFETY: MPI_Status is a C struct of integers (public fields and hidden counters), for
    // which all-zero bytes are a valid value; MPI overwrites it.
    unsafe { std::mem::zeroed() }
}

/// How many bytes a completed read or write moved, from its status; at most `asked`.
fn bytes_moved(status: &ffi::MPI_Status, asked: usize) -> Result<usize> {
    let mut count: c_int = 0;
    // SAFETY: `status` was filled in by a completed MPI-IO call and is borrowed for the call;
    // the datatype is the predefined one the transfer used; `count` is a valid out-pointer.
    check("MPI_Get_count", unsafe {
        ffi::MPI_Get_count(status, byte_type(), &mut count)
    })?;
    // MPI_UNDEFINED (negative) cannot happen for bytes; treat it as nothing moved.
    Ok(usize::try_from(count).unwrap_or(0).min(asked))
}

/// An info object: created from hints (and freed on drop), or `MPI_INFO_NULL` for none.
struct Info {
    raw: ffi::MPI_Info,
    owned: bool,
    _not_send: PhantomData<*const ()>,
}

impl Info {
    /// `MPI_INFO_NULL` if `hints` is empty, else a new info object holding them.
    fn from_hints(hints: &[(&str, &str)]) -> Result<Info> {
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut info = Info {
            raw: unsafe { ffi::RSMPI_INFO_NULL },
            owned: false,
            _not_send: PhantomData,
        };
        if hints.is_empty() {
            return Ok(info);
        }
        let mut pairs = Vec::with_capacity(hints.len());
        for &(key, value) in hints {
            let key_c = hint_text(key, "key", key, ffi::MPI_MAX_INFO_KEY)?;
            let value_c = hint_text(key, "value", value, ffi::MPI_MAX_INFO_VAL)?;
            pairs.push((key_c, value_c));
        }
        // SAFETY: `info.raw` is a valid out-pointer for a new info object.
        check("MPI_Info_create", unsafe {
            ffi::MPI_Info_create(&mut info.raw)
        })?;
        info.owned = true;
        for (key, value) in &pairs {
            // SAFETY: `info.raw` is the live info object just created; both strings are
            // NUL-terminated and alive for the call (MPI copies them).
            check("MPI_Info_set", unsafe {
                ffi::MPI_Info_set(info.raw, key.as_ptr(), value.as_ptr())
            })?;
        }
        Ok(info)
    }

    fn raw(&self) -> ffi::MPI_Info {
        self.raw
    }

    /// Every `(key, value)` pair, in MPI's order.
    fn entries(&self) -> Result<Vec<(String, String)>> {
        let mut n: c_int = 0;
        // SAFETY: `raw` is a live info object; `n` is a valid out-pointer.
        check("MPI_Info_get_nkeys", unsafe {
            ffi::MPI_Info_get_nkeys(self.raw, &mut n)
        })?;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for i in 0..n {
            let mut key = vec![0u8; ffi::MPI_MAX_INFO_KEY as usize + 1];
            // SAFETY: `raw` is live and `i < nkeys`; `key` has room for MPI_MAX_INFO_KEY
            // characters plus the NUL, the most MPI writes.
            check("MPI_Info_get_nthkey", unsafe {
                ffi::MPI_Info_get_nthkey(self.raw, i, key.as_mut_ptr().cast::<c_char>())
            })?;
            let (mut len, mut flag): (c_int, c_int) = (0, 0);
            // SAFETY: `key` is NUL-terminated (MPI wrote a key shorter than the buffer, which
            // was zeroed); `len` and `flag` are valid out-pointers.
            check("MPI_Info_get_valuelen", unsafe {
                ffi::MPI_Info_get_valuelen(
                    self.raw,
                    key.as_ptr().cast::<c_char>(),
                    &mut len,
                    &mut flag,
                )
            })?;
            let len = usize::try_from(len).unwrap_or(0);
            let mut value = vec![0u8; len + 1];
            if flag != 0 {
                // SAFETY: as above for `key`; `value` has room for `len` characters plus the
                // NUL, and MPI is told it may write `len` characters.
                check("MPI_Info_get", unsafe {
                    ffi::MPI_Info_get(
                        self.raw,
                        key.as_ptr().cast::<c_char>(),
                        c_int::try_from(len).unwrap_or(0),
                        value.as_mut_ptr().cast::<c_char>(),
                        &mut flag,
                    )
                })?;
            }
            out.push((c_text(&key), c_text(&value)));
        }
        Ok(out)
    }
}

impl Drop for Info {
    fn drop(&mut self) {
        if self.owned {
            free_on_drop(&"an info object", || {
                // SAFETY: `raw` is a live info object this value owns and frees exactly once,
                // here.
                check("MPI_Info_free", unsafe {
                    ffi::MPI_Info_free(&mut self.raw)
                })
            });
        }
    }
}

/// A hint's key or value as a C string, checked against MPI's length limit (which counts
/// the characters, not the NUL).
fn hint_text(key: &str, what: &str, text: &str, max: u32) -> Result<CString> {
    if text.len() >= max as usize {
        return Err(Error::InvalidArgument(format!(
            "hint {key:?}: the {what} is {} bytes long, MPI allows fewer than {max}",
            text.len()
        )));
    }
    CString::new(text)
        .map_err(|_| Error::InvalidArgument(format!("hint {key:?}: the {what} has a NUL byte")))
}

/// The text before the first NUL of a buffer MPI wrote.
fn c_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_beyond_an_mpi_count_are_rejected() {
        assert_eq!(byte_count(0).unwrap(), 0);
        assert_eq!(byte_count(i32::MAX as usize).unwrap(), i32::MAX);
        let err = byte_count(i32::MAX as usize + 1).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("2147483648 bytes")),
            "{err}"
        );
    }

    #[test]
    fn offsets_beyond_mpi_offset_are_rejected() {
        assert_eq!(file_offset(i64::MAX as u64).unwrap(), i64::MAX);
        assert!(matches!(
            file_offset(i64::MAX as u64 + 1),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn hints_are_checked_before_mpi_sees_them() {
        assert!(hint_text("k", "key", "romio_ds_write", 36).is_ok());
        assert!(matches!(
            hint_text("k", "key", &"x".repeat(36), 36),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            hint_text("k", "value", "a\0b", 256),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(c_text(b"abc\0\0"), "abc");
        assert_eq!(c_text(b"abc"), "abc");
    }
}

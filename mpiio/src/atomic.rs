//! Atomic mode for intercepted files, in safe Rust: with `MPI_File_set_atomicity(fh, 1)` the
//! library stops forwarding data accesses and does them itself through brlock's
//! [`AtomicFile`] (a shared lock on a read's extent, an exclusive one on a write's, coherence
//! across client caches), over the bytes the current file view maps the access to
//! ([`FileView`]). The boundary ([`crate::boundary`]) packs and unpacks the memory side with
//! the MPI library's datatype calls, finds the offset (explicit, individual pointer, shared
//! pointer) and fills in statuses and requests.
//!
//! Outside atomic mode nothing here runs: every access is forwarded untouched.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use brlock::collective::{agree_on_flag, agree_result};
use brlock::io::{AtomicFile, OpenOptions, ParallelFile};
use brlock::sys::OwnedComm;
use brlock::view::FileView;
use brlock::{Error, Result};

/// How many files are in atomic mode, in the whole process: while none is, a data access
/// is forwarded after one atomic load, without looking the file up.
static IN_ATOMIC_MODE: AtomicUsize = AtomicUsize::new(0);

/// Whether any file of the process is in atomic mode (a data access must look its file up).
pub fn any_in_atomic_mode() -> bool {
    IN_ATOMIC_MODE.load(Ordering::Acquire) > 0
}

/// The atomic-mode state of one file.
#[derive(Debug)]
pub struct Atomic {
    /// brlock's atomic file on the same path: its own descriptor and lock service, opened at
    /// the first `MPI_File_set_atomicity(fh, 1)`.
    file: Option<AtomicFile>,
    /// The path the program opened (a ROMIO file-system prefix such as `ufs:` removed).
    path: PathBuf,
    /// The program opened the file `MPI_MODE_RDONLY`: brlock's descriptor is read-only too
    /// (the file may have no write permission, or sit on a read-only mount).
    read_only: bool,
    /// The current file view as a byte map, or why atomic mode cannot serve it; `None` when
    /// a view was set outside atomic mode (mapped only when atomic mode is turned on, so that
    /// views set outside it cost nothing).
    view: Option<std::result::Result<FileView, String>>,
    /// The result (bytes moved) of a split collective access begun in atomic mode, for its
    /// `_end` (MPI allows one split collective per file at a time).
    split: Option<u64>,
}

/// The file-system prefixes ROMIO accepts before a path (`ufs:/data/f`), which name a driver,
/// not a file.
const ROMIO_PREFIXES: &[&str] = &[
    "ufs",
    "nfs",
    "pvfs2",
    "lustre",
    "gpfs",
    "xfs",
    "testfs",
    "panfs",
    "daos",
    "ime",
    "quobytefs",
    "gridftp",
    "bg",
    "bglockless",
];

/// The file a program's MPI-IO file name refers to.
pub fn file_path(name: &str) -> PathBuf {
    if let Some((prefix, rest)) = name.split_once(':') {
        if ROMIO_PREFIXES.contains(&prefix) && !rest.is_empty() {
            return PathBuf::from(rest);
        }
    }
    PathBuf::from(name)
}

impl Atomic {
    /// The state of a file just opened at `path` (`read_only`: with `MPI_MODE_RDONLY`):
    /// atomic mode off, the default view.
    pub fn new(path: PathBuf, read_only: bool) -> Atomic {
        Atomic {
            file: None,
            path,
            read_only,
            view: Some(Ok(FileView::bytes())),
            split: None,
        }
    }

    /// Whether atomic mode is on (every rank agreed on it).
    pub fn on(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.atomicity())
    }

    /// A new file view took effect: `view` is its byte map, or why it has none; `None` if it
    /// was not mapped (atomic mode is off).
    pub fn set_view(&mut self, view: Option<Result<FileView>>) {
        self.view = view.map(|v| v.map_err(|e| e.to_string()));
    }

    /// Whether the current view still has to be mapped before atomic accesses.
    pub fn needs_view(&self) -> bool {
        self.view.is_none()
    }

    /// `MPI_File_set_atomicity` (collective over `comm`, the file's ranks): `ok` is this rank's
    /// outcome of the MPI library's own call. Every rank must ask for the same mode; the first
    /// time it is turned on, brlock's atomic file is opened on the same path.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank's call failed or the open did;
    /// [`Error::InvalidArgument`] on every rank if the ranks disagree (nothing changes).
    pub fn set_atomicity(&mut self, comm: &OwnedComm, on: bool, ok: Result<()>) -> Result<()> {
        agree_result(comm.comm(), "MPI_File_set_atomicity", ok)?;
        let on = agree_on_flag(comm.comm(), on, "MPI_File_set_atomicity")?;
        if on && self.file.is_none() {
            let options = OpenOptions {
                create: false,
                read_only: self.read_only,
                ..OpenOptions::default()
            };
            let file = AtomicFile::open(comm.comm(), &self.path, &options)?;
            tracing::debug!(path = %self.path.display(), fs_type = file.fs_type(), coherence = %file.coherence(), "atomic mode through brlock");
            self.file = Some(file);
        }
        let was = self.on();
        let set = match self.file.as_mut() {
            Some(file) => file.set_atomicity(on),
            None => Ok(()),
        };
        match (was, self.on()) {
            (false, true) => {
                IN_ATOMIC_MODE.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                IN_ATOMIC_MODE.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        set
    }

    /// The view, or the error that atomic mode cannot serve it.
    fn view(&self) -> Result<&FileView> {
        match &self.view {
            Some(Ok(view)) => Ok(view),
            Some(Err(why)) => Err(Error::InvalidArgument(format!(
                "atomic mode cannot make accesses through this file view atomic: {why}"
            ))),
            None => Err(Error::InvalidArgument(
                "the file view was not mapped for atomic mode".into(),
            )),
        }
    }

    /// The open atomic file (atomic mode was turned on at least once).
    fn file(&mut self) -> Result<&mut AtomicFile> {
        self.file
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("atomic mode is off".into()))
    }

    /// Writes `data` at `offset` etypes of the view, atomically.
    ///
    /// # Errors
    /// A file opened `MPI_MODE_RDONLY`; a view atomic mode cannot serve; I/O, lock or MPI
    /// errors (no lock is left held).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidArgument(
                "a write to a file opened MPI_MODE_RDONLY".into(),
            ));
        }
        let pieces = self.view()?.pieces(offset, data.len() as u64)?;
        self.file()?.write_pieces(&pieces, data)
    }

    /// Reads into `buf` from `offset` etypes of the view, atomically, up to the end of the
    /// file; returns the bytes read (a prefix of `buf`).
    ///
    /// # Errors
    /// As [`Atomic::write`].
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<u64> {
        let pieces = self.view()?.pieces(offset, buf.len() as u64)?;
        self.file()?.read_pieces_available(&pieces, buf)
    }

    /// The etype size of the view (1 for a view atomic mode cannot serve: its accesses fail
    /// before the size matters).
    pub fn etype_size(&self) -> u64 {
        match &self.view {
            Some(Ok(view)) => view.etype_size(),
            _ => 1,
        }
    }

    /// Records the bytes a split collective access moved at its begin.
    pub fn begin_split(&mut self, bytes: u64) {
        self.split = Some(bytes);
    }

    /// The bytes the split collective access begun in atomic mode moved, for its end (`None`
    /// if none was begun in atomic mode).
    pub fn end_split(&mut self) -> Option<u64> {
        self.split.take()
    }

    /// The file's size fresh from the server (not this client's cached idea of it), for
    /// `MPI_File_get_size` in atomic mode.
    ///
    /// # Errors
    /// I/O errors.
    pub fn size(&mut self) -> Result<u64> {
        self.file()?.server_size()
    }

    /// The end of file in etypes of the view, from the size fresh from the server, for
    /// `MPI_File_seek` and `MPI_File_seek_shared` with `MPI_SEEK_END` in atomic mode.
    ///
    /// # Errors
    /// A view atomic mode cannot serve; I/O errors.
    pub fn end_of_file(&mut self) -> Result<u64> {
        let size = self.size()?;
        Ok(self.view()?.end_offset(size))
    }

    /// `fdatasync` of the atomic file's descriptor, for `MPI_File_sync`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&mut self) -> Result<()> {
        match self.file.as_mut() {
            Some(file) => file.sync(),
            None => Ok(()),
        }
    }

    /// Closes the atomic file (collective, from `MPI_File_close`).
    ///
    /// # Errors
    /// As [`AtomicFile::close`].
    pub fn close(self) -> Result<()> {
        if self.on() {
            IN_ATOMIC_MODE.fetch_sub(1, Ordering::AcqRel);
        }
        match self.file {
            Some(file) => file.close(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn romio_prefixes_name_a_driver_not_a_file() {
        assert_eq!(file_path("ufs:/data/f"), PathBuf::from("/data/f"));
        assert_eq!(file_path("nfs:rel/f"), PathBuf::from("rel/f"));
        assert_eq!(file_path("/data/a:b"), PathBuf::from("/data/a:b"));
        assert_eq!(file_path("c:"), PathBuf::from("c:"));
        assert_eq!(file_path("other:/x"), PathBuf::from("other:/x"));
    }
}

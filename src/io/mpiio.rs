//! The MPI library's own MPI-IO behind [`ParallelFile`]: the baseline that the lock-based
//! backends are compared with.
//!
//! Atomic mode is the implementation's: ROMIO (MPICH, or Open MPI with `--mca io romio321`)
//! takes an fcntl lock around each access; Open MPI 4.1's default component, ompio,
//! **accepts and ignores** it (real support came with Open MPI 5.0).
//! [`MpiIoFile::implementation`] says which one runs, and switching atomic mode on under ompio
//! 4.x logs a warning.
//!
//! # Noncontiguous access
//!
//! [`ParallelFile::prepare_pieces`] installs a file view on each rank: displacement = the
//! first piece's offset, filetype = the pieces' [`shape`](Pieces::shape). The following
//! [`read_pieces`](ParallelFile::read_pieces) and [`write_pieces`](ParallelFile::write_pieces)
//! calls must pass exactly those pieces (anything else is an
//! [`Error::InvalidArgument`]: a different start or shape needs another collective
//! `prepare_pieces`). While a view is installed the contiguous
//! [`read_at`](ParallelFile::read_at) and [`write_at`](ParallelFile::write_at) are refused
//! too; `prepare_pieces` with empty pieces returns to plain byte offsets.

use std::path::Path;

use crate::collective::{agree_on_flag, agree_result, free_after};
use crate::error::{Error, Result};
use crate::io::ParallelFile;
use crate::pieces::Pieces;
use crate::sys::{self, MpiFile, OpenMode, OwnedComm};
use mpi::topology::Communicator;

/// Which MPI-IO implementation serves a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpiIoImpl {
    /// ROMIO: MPICH's MPI-IO, or Open MPI's `romio321` component. Honours atomic mode with
    /// fcntl locks; data-sieves independent noncontiguous I/O.
    Romio,
    /// Open MPI's own `ompio` component (its default).
    Ompio,
    /// Neither could be recognised.
    Unknown,
}

impl MpiIoImpl {
    /// A short name for reports: `"ROMIO"`, `"ompio"` or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            MpiIoImpl::Romio => "ROMIO",
            MpiIoImpl::Ompio => "ompio",
            MpiIoImpl::Unknown => "unknown",
        }
    }

    /// Whether this implementation, in the MPI library linked, is known to ignore atomic mode
    /// (ompio before Open MPI 5).
    pub fn ignores_atomicity(self) -> bool {
        let version = sys::library_version();
        self == MpiIoImpl::Ompio
            && [
                "Open MPI v1.",
                "Open MPI v2.",
                "Open MPI v3.",
                "Open MPI v4.",
            ]
            .iter()
            .any(|v| version.starts_with(v))
    }

    /// Tells the implementation from the MPI library and, for Open MPI, the `io` MCA
    /// parameter in the environment (`OMPI_MCA_io`, which `mpirun --mca io X` sets for every
    /// rank; a selection made in an MCA parameter file is not seen). `hints` are the file's
    /// hints in use, where ROMIO lists `romio_*` keys (MPICH does; Open MPI 4.1 reports only
    /// the hints the user passed).
    fn detect(hints: &[(String, String)]) -> MpiIoImpl {
        let version = sys::library_version();
        if version.starts_with("Open MPI") {
            return match std::env::var("OMPI_MCA_io") {
                Ok(v) if v.starts_with('^') && v.contains("ompio") => MpiIoImpl::Romio,
                Ok(v) if !v.starts_with('^') && v.contains("romio") => MpiIoImpl::Romio,
                _ => MpiIoImpl::Ompio,
            };
        }
        if version.contains("MPICH") || hints.iter().any(|(k, _)| k.starts_with("romio_")) {
            return MpiIoImpl::Romio;
        }
        MpiIoImpl::Unknown
    }
}

impl std::fmt::Display for MpiIoImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The file view currently installed on this rank.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    /// The whole file as bytes from offset 0.
    Bytes,
    /// The view of these absolute pieces.
    Pieces(Pieces),
    /// Setting a view failed: nothing is known until the next successful `prepare_pieces`.
    Unknown,
}

/// A file opened collectively with MPI-IO, as a [`ParallelFile`].
///
/// It owns a private duplicate of the communicator it was opened on (for its agreement
/// checks) and closes the file before freeing it. Closing is collective: every rank calls
/// [`MpiIoFile::close`] at the same point, before MPI is finalized; dropping the file instead
/// skips the collective calls (see [`AtomicFile`](super::AtomicFile), "Errors and teardown").
#[derive(Debug)]
pub struct MpiIoFile {
    // Field order is drop order: the file is closed before its communicator is freed.
    file: MpiFile,
    comm: OwnedComm,
    path: String,
    atomic: bool,
    view: View,
    implementation: MpiIoImpl,
}

impl MpiIoFile {
    /// Opens (creating it if needed) `path` for reading and writing on every rank of `comm`
    /// (collective), passing `hints` to the implementation (e.g.
    /// `("romio_ds_write", "enable")`, `("ind_wr_buffer_size", "1048576")`).
    ///
    /// # Errors
    /// As [`MpiIoFile::open_with_mode`].
    pub fn open(comm: &impl Communicator, path: &Path, hints: &[(&str, &str)]) -> Result<Self> {
        Self::open_with_mode(comm, path, OpenMode::Create, hints)
    }

    /// Opens `path` with `mode` on every rank of `comm` (collective).
    ///
    /// # Errors
    /// As [`OwnedComm::duplicate`] and [`MpiFile::open`] (a missing file or a refused
    /// permission is an [`Error::Io`] naming the path).
    pub fn open_with_mode(
        comm: &impl Communicator,
        path: &Path,
        mode: OpenMode,
        hints: &[(&str, &str)],
    ) -> Result<Self> {
        let owned = OwnedComm::duplicate(comm)?;
        let opened = MpiFile::open(owned.comm(), path, mode, hints).and_then(|file| {
            let atomic = file.atomicity()?;
            let implementation = MpiIoImpl::detect(&file.info()?);
            Ok((file, atomic, implementation))
        });
        let (file, atomic, implementation) = match agree_result(owned.comm(), "open", opened) {
            Ok(opened) => opened,
            Err(e) => return Err(free_after(owned, e)),
        };
        tracing::debug!(
            "opened {} with MPI-IO implementation {implementation}",
            path.display()
        );
        Ok(MpiIoFile {
            file,
            comm: owned,
            path: path.display().to_string(),
            atomic,
            view: View::Bytes,
            implementation,
        })
    }

    /// The MPI-IO implementation serving the file.
    pub fn implementation(&self) -> MpiIoImpl {
        self.implementation
    }

    /// The hints the implementation reports in use (see [`MpiFile::info`]).
    ///
    /// # Errors
    /// MPI errors.
    pub fn hints(&self) -> Result<Vec<(String, String)>> {
        self.file.info()
    }

    /// The file's size in bytes.
    ///
    /// # Errors
    /// MPI errors.
    pub fn size(&self) -> Result<u64> {
        self.file.size()
    }

    /// Closes the file and frees the communicator (collective), reporting the first failure.
    ///
    /// # Errors
    /// MPI errors.
    pub fn close(self) -> Result<()> {
        let MpiIoFile { file, comm, .. } = self;
        let closed = file.close();
        let freed = comm.free();
        closed.and(freed)
    }

    /// Refuses a contiguous access unless the view is the plain byte stream.
    fn require_bytes_view(&self) -> Result<()> {
        match &self.view {
            View::Bytes => Ok(()),
            View::Pieces(_) => Err(Error::InvalidArgument(format!(
                "{}: a noncontiguous view is installed; call prepare_pieces with no pieces \
                 (collective) before contiguous reads and writes",
                self.path
            ))),
            View::Unknown => Err(Error::InvalidArgument(format!(
                "{}: the file view is unknown after a failed prepare_pieces; prepare again",
                self.path
            ))),
        }
    }

    /// Refuses a noncontiguous access unless its pieces are the prepared ones and `len`
    /// matches them.
    fn require_view_of(&self, pieces: &Pieces, len: usize) -> Result<()> {
        pieces.check_buffer(len)?;
        match &self.view {
            View::Pieces(p) if p == pieces => Ok(()),
            View::Bytes if pieces.is_empty() => Ok(()),
            _ => Err(Error::InvalidArgument(format!(
                "{}: noncontiguous access to {} pieces that were not prepared; call \
                 prepare_pieces (collective) with exactly these pieces first",
                self.path,
                pieces.len()
            ))),
        }
    }
}

/// Why `pieces` cannot become an MPI file view here, if they cannot: MPI counts are C
/// `int`s and offsets `MPI_Offset`s.
fn view_problem(pieces: &Pieces) -> Option<String> {
    let limit = i32::MAX as u64;
    if pieces.len() as u64 > limit {
        return Some(format!("{} pieces exceed MPI's count limit", pieces.len()));
    }
    if let Some(p) = pieces.iter().find(|p| p.len > limit) {
        return Some(format!(
            "the piece at {} of {} bytes exceeds MPI's count limit",
            p.offset, p.len
        ));
    }
    if pieces.total_bytes() > limit {
        return Some(format!(
            "{} bytes in all exceed what one MPI-IO call can move",
            pieces.total_bytes()
        ));
    }
    None
}

/// Bytes of the view's data stream that lie within the first `size` bytes of the file.
fn bytes_below(pieces: &Pieces, size: u64) -> u64 {
    pieces
        .iter()
        .map(|p| p.len.min(size.saturating_sub(p.offset)))
        .sum()
}

impl ParallelFile for MpiIoFile {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.require_bytes_view()?;
        let got = self.file.read_at(offset, buf)?;
        if got < buf.len() {
            return Err(Error::ShortRead {
                path: self.path.clone(),
                offset,
                wanted: buf.len() as u64,
                got: got as u64,
            });
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.require_bytes_view()?;
        let put = self.file.write_at(offset, data)?;
        short_write(&self.path, put, data.len())
    }

    /// Reads through the view installed by `prepare_pieces`. A read that runs past the end of
    /// the file is detected from the count MPI returns and, because ROMIO reports the full
    /// count for noncontiguous reads, also from the file's size after the read (files only
    /// grow here; a concurrent truncation is not detected).
    fn read_pieces(&mut self, pieces: &Pieces, buf: &mut [u8]) -> Result<()> {
        self.require_view_of(pieces, buf.len())?;
        if pieces.is_empty() {
            return Ok(());
        }
        let got = self.file.read_at(0, buf)? as u64;
        let got = got.min(bytes_below(pieces, self.file.size()?));
        if got < pieces.total_bytes() {
            // The piece where the data ran out, and how much of it there was.
            let mut before = 0u64;
            for p in pieces {
                if before + p.len > got {
                    return Err(Error::ShortRead {
                        path: self.path.clone(),
                        offset: p.offset,
                        wanted: p.len,
                        got: got - before,
                    });
                }
                before += p.len;
            }
        }
        Ok(())
    }

    fn write_pieces(&mut self, pieces: &Pieces, data: &[u8]) -> Result<()> {
        self.require_view_of(pieces, data.len())?;
        if pieces.is_empty() {
            return Ok(());
        }
        let put = self.file.write_at(0, data)?;
        short_write(&self.path, put, data.len())
    }

    /// Collective. Every rank first checks locally that its pieces can be an MPI view and the
    /// ranks agree on the outcome, so an invalid set on one rank fails everywhere instead of
    /// leaving the others in `MPI_File_set_view`.
    fn prepare_pieces(&mut self, pieces: &Pieces) -> Result<()> {
        let problem = view_problem(pieces);
        let all_fine = agree_on_flag(self.comm.comm(), problem.is_none(), "view validity");
        match (problem, all_fine) {
            (Some(p), _) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: cannot make a file view: {p}",
                    self.path
                )))
            }
            (None, Ok(true)) => {}
            (None, _) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: another rank's pieces cannot make a file view",
                    self.path
                )))
            }
        }
        self.view = View::Unknown;
        match pieces.as_slice().first() {
            None => self.file.reset_view()?,
            Some(first) => self.file.set_view_pieces(first.offset, &pieces.shape())?,
        }
        self.view = if pieces.is_empty() {
            View::Bytes
        } else {
            View::Pieces(pieces.clone())
        };
        Ok(())
    }

    fn set_atomicity(&mut self, atomic: bool) -> Result<()> {
        agree_on_flag(self.comm.comm(), atomic, "atomic mode")?;
        self.file.set_atomicity(atomic)?;
        self.atomic = atomic;
        if atomic && self.implementation.ignores_atomicity() {
            tracing::warn!(
                "{}: atomic mode requested, but {} ignores it ({}); use ROMIO \
                 (--mca io romio321) for a real atomic-mode baseline",
                self.path,
                self.implementation,
                sys::library_version().split(',').next().unwrap_or("")
            );
        }
        Ok(())
    }

    fn atomicity(&self) -> bool {
        self.atomic
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }

    fn close(self: Box<Self>) -> Result<()> {
        MpiIoFile::close(*self)
    }
}

/// An error if MPI reports fewer bytes written than asked.
///
/// Open MPI's ompio reports a write that the file system refused for want of space (`ENOSPC`)
/// as a success that wrote fewer bytes: when the file system has no space left, the error says
/// so, as a POSIX write would.
fn short_write(path: &str, put: usize, wanted: usize) -> Result<()> {
    if put < wanted {
        let full = crate::host::available_space(Path::new(path)) == Some(0);
        let why = if full {
            ": No space left on device (ENOSPC)"
        } else {
            ""
        };
        let source = std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("MPI wrote {put} of {wanted} bytes{why}"),
        );
        return Err(Error::Io {
            op: "MPI_File_write_at",
            path: path.to_string(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_below_counts_the_stream_prefix_within_the_file() {
        let p = Pieces::strided(100, 10, 20, 3).unwrap(); // 100..110, 120..130, 140..150
        assert_eq!(bytes_below(&p, 0), 0);
        assert_eq!(bytes_below(&p, 105), 5);
        assert_eq!(bytes_below(&p, 115), 10);
        assert_eq!(bytes_below(&p, 125), 15);
        assert_eq!(bytes_below(&p, 1000), 30);
    }

    #[test]
    fn oversized_views_are_refused_before_mpi() {
        assert!(view_problem(&Pieces::strided(0, 10, 20, 3).unwrap()).is_none());
        let huge = Pieces::contiguous(0, i32::MAX as u64 + 1).unwrap();
        assert!(view_problem(&huge).is_some());
    }

    #[test]
    fn short_writes_are_errors() {
        assert!(short_write("f", 4, 4).is_ok());
        let e = short_write("f", 3, 4).unwrap_err();
        assert!(e.to_string().contains("MPI wrote 3 of 4 bytes"), "{e}");
    }
}

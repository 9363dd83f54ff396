//! File I/O built on the lock service: MPI-IO-style atomic mode, data sieving and shared-file
//! appends.
//!
//! * [`atomic`]: [`AtomicFile`], POSIX I/O with MPI-IO style atomic mode over the lock
//!   service.
//! * [`coherence`]: the one owner of what keeps client caches of distributed file systems
//!   coherent under a lock they never see (chosen at open, two hooks around locked I/O).
//! * [`sieve`]: data sieving: noncontiguous reads and writes through large contiguous
//!   windows (read-modify-write for writes), or piece by piece when that is cheaper.
//!   Noncontiguous accesses are [`Pieces`] (`crate::pieces`).
//! * [`ParallelFile`]: what every parallel file backend offers — positional reads and
//!   writes, noncontiguous ones, and a collective atomic mode — so that checks and benchmarks
//!   can compare backends in one harness.
//! * [`mpiio`]: the MPI library's own MPI-IO ([`mpiio::MpiIoFile`], ROMIO or Open MPI's ompio)
//!   behind [`ParallelFile`], the baseline the lock-based backends are measured against.
//! * [`append`]: appends of many ranks to one shared file through a shared file pointer in an
//!   MPI window (independent and rank-ordered), with durable close; and the engine of
//!   `brlock collect` that writes a job's output through it.

pub mod append;
pub mod atomic;
pub mod coherence;
pub mod mpiio;
pub mod sieve;

pub use crate::pieces::{Piece, Pieces};
#[cfg(feature = "testing")]
pub use atomic::FileFault;
pub use atomic::{AtomicFile, OpenOptions};
pub use coherence::Coherence;

use crate::error::Result;

/// A file opened collectively by the ranks of a communicator, read and written at explicit
/// offsets.
///
/// In atomic mode every call is atomic with respect to overlapping calls of other ranks (MPI
/// 3.1 §13.6.1): a read sees all or none of an overlapping write. Outside atomic mode
/// overlapping accesses of different ranks may interleave.
///
/// Buffers of the noncontiguous calls hold the bytes of all pieces back to back, in piece
/// order.
pub trait ParallelFile {
    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// [`crate::Error::ShortRead`] if the file ends first; I/O, MPI or lock errors. No lock is
    /// left held after an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Writes all of `data` at `offset`.
    ///
    /// # Errors
    /// I/O, MPI or lock errors. No lock is left held after an error.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;

    /// Reads the bytes of `pieces` into `buf` (back to back).
    ///
    /// # Errors
    /// As [`ParallelFile::read_at`]; [`crate::Error::InvalidArgument`] if `buf` does not
    /// hold exactly the pieces' bytes.
    fn read_pieces(&mut self, pieces: &Pieces, buf: &mut [u8]) -> Result<()>;

    /// Writes `data` (back to back) to the bytes of `pieces`.
    ///
    /// # Errors
    /// As [`ParallelFile::write_at`]; [`crate::Error::InvalidArgument`] if `data` does not
    /// hold exactly the pieces' bytes.
    fn write_pieces(&mut self, pieces: &Pieces, data: &[u8]) -> Result<()>;

    /// Declares, collectively, the noncontiguous accesses to come: each rank passes the
    /// pieces (absolute file offsets) that its following [`ParallelFile::read_pieces`] and
    /// [`ParallelFile::write_pieces`] calls will access; ranks may pass different pieces, or
    /// none. Backends that need a file view for noncontiguous I/O (MPI-IO) set it here and may
    /// require later calls to pass exactly these pieces; the others do nothing.
    ///
    /// # Errors
    /// MPI errors; [`crate::Error::InvalidArgument`] if the backend cannot describe the
    /// pieces.
    fn prepare_pieces(&mut self, pieces: &Pieces) -> Result<()> {
        let _ = pieces;
        Ok(())
    }

    /// Switches atomic mode on or off. Collective: every rank must pass the same value.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the ranks disagree; MPI errors.
    fn set_atomicity(&mut self, atomic: bool) -> Result<()>;

    /// Whether atomic mode is on.
    fn atomicity(&self) -> bool;

    /// Makes this rank's writes durable and visible to every rank (`MPI_File_sync`).
    /// Collective.
    ///
    /// # Errors
    /// I/O or MPI errors.
    fn sync(&mut self) -> Result<()>;

    /// Closes the file (collective: every rank calls it at the same point). Dropping it
    /// instead skips the collective teardown; see [`AtomicFile`], "Errors and teardown".
    ///
    /// # Errors
    /// MPI errors.
    fn close(self: Box<Self>) -> Result<()>;

    /// What the last noncontiguous access did (sieved or piece by piece, I/O calls, bytes),
    /// for backends that do their own sieving; `None` for the others.
    fn last_noncontig(&self) -> Option<&sieve::Stats> {
        None
    }
}

//! Appends of many ranks to one shared file, coordinated through a shared file pointer in an
//! MPI window instead of file locks.
//!
//! The pointer is one `u64` word in a window on rank 0 (the *home* rank): the offset of the
//! file's end as far as appends are concerned. An append reserves its bytes with one atomic
//! `MPI_Fetch_and_op(SUM, len)` on that word, in a shared-lock epoch (accumulate operations
//! on one word are atomic whatever the lock kind, so appenders do not serialise on the window
//! lock), and then writes at the offset it got with one positional write. Reservations are
//! disjoint, so records never interleave or overwrite each other, and no file lock is taken:
//! each append costs one round trip to the home rank plus the write. This is how the 2005
//! follow-up of Thakur, Ross and Latham keeps MPI-IO's shared file pointer in a window
//! ("Implementing MPI-IO Shared File Pointers without File System Support"); ROMIO instead
//! keeps it in a hidden file updated under an fcntl lock.
//!
//! * [`AppendFile::append`]: independent; each call's bytes are contiguous in the file, in
//!   the order the reservations happened.
//! * [`AppendFile::append_ordered`]: collective, with MPI `MPI_File_write_ordered` semantics:
//!   the ranks' blocks land back to back in rank order. An exclusive prefix sum of the lengths
//!   (`MPI_Exscan`) gives each rank its place in the block, the last rank reserves the whole
//!   block with one fetch-and-add and broadcasts its start. That is two collectives and one
//!   atomic, instead of passing a token through all P ranks (ROMIO's way).
//! * [`AppendFile::close`]: collective; makes every rank's appends durable (`fdatasync` on
//!   every rank, then `fsync` of the file and its directory on rank 0) before it returns.
//!
//! Progress: under Open MPI's `osc pt2pt` (and `ucx`), appends by other ranks complete only
//! while the home rank is inside MPI. A home rank that computes for long stalls them; call
//! [`AppendFile::progress`] from its loops (see `docs/appends.md`).
//!
//! Coherence on distributed file systems: ranks may reach the file through different client
//! mounts (GlusterFS, NFS). Reservations never overlap, so no rank's write-back cache can
//! overwrite another rank's bytes; after [`AppendFile::close`] every rank's data has reached
//! the servers, and a reader that drops its cached pages (`posix_fadvise(DONTNEED)`) sees
//! them all.
//!
//! [`records`] holds the deterministic test records and the verifier used by `brlock collect`'s
//! tests and `brlock bench append`; [`index`] the format of `collect`'s index; [`collect`] the
//! engine of `brlock collect`.

pub mod collect;
pub mod index;
pub mod pointer;
pub mod records;

pub use pointer::SharedPointer;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mpi::collective::Root;
use mpi::topology::{Communicator, Rank};

use crate::collective::{agree_outcome, agree_result, free_after};
use crate::error::{Error, Result};
use crate::sys::OwnedComm;

/// Rank that holds the shared file pointer.
const HOME: Rank = 0;

/// A deliberately broken append, for negative controls that show a checker can fail (feature
/// `testing`).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFault {
    /// No reservation: read the pointer, write at that offset, then advance the pointer in a
    /// second epoch. Two ranks that read the same value write over each other (the classic
    /// "seek to end, write" race of appends without `O_APPEND` or a lock).
    NoReserve,
    /// The process dies (abort) right after this many reservations, before it writes the
    /// last one: the bytes reserved stay a hole of zeros, as when a rank is killed there.
    DieAfterReserve(u64),
}

/// How [`AppendFile::open`] treats the file.
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// Empty the file first (otherwise appends go after its current content).
    pub truncate: bool,
    /// Inject a fault (negative controls only, feature `testing`).
    #[cfg(feature = "testing")]
    pub fault: Option<AppendFault>,
}

impl AppendOptions {
    /// The options that empty the file first when `truncate`, and inject nothing.
    pub fn truncating(truncate: bool) -> AppendOptions {
        // The struct update fills the fault of `testing` builds.
        #[allow(clippy::needless_update)]
        AppendOptions {
            truncate,
            ..AppendOptions::default()
        }
    }
}

/// One file shared by every rank of a communicator, appended to through a shared file pointer
/// in an MPI window. See the [module documentation](self).
///
/// Collective calls ([`open`](AppendFile::open), [`append_ordered`](AppendFile::append_ordered),
/// [`reserve_ordered`](AppendFile::reserve_ordered), [`close`](AppendFile::close)) must be made
/// by every rank in the same order; each agrees on its outcome, so a failure on one rank is an
/// [`Error::Collective`] on all of them, and `close` can still follow on every rank.
/// Independent appends fail on their rank alone: agree on such an error before the next
/// collective call, or end the job. Dropping the file instead of closing it never enters a
/// collective call; see [`AtomicFile`](crate::io::AtomicFile), "Errors and teardown". Neither
/// `Send` nor `Sync` (it holds an MPI window).
#[derive(Debug)]
pub struct AppendFile {
    pointer: SharedPointer,
    file: File,
    path: PathBuf,
    #[cfg(feature = "testing")]
    fault: Option<AppendFault>,
    /// Reservations made (for [`AppendFault::DieAfterReserve`]).
    #[cfg(feature = "testing")]
    reservations: u64,
    reserved: u64,
}

impl AppendFile {
    /// Opens `path` on every rank of `comm` (collective). Rank 0 creates the file if needed
    /// (and truncates it with [`AppendOptions::truncate`]) and sets the shared pointer to its
    /// length; then the other ranks open it, each with its own `path`, which may name the same
    /// file through another mount. The outcome is the same on every rank.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank cannot create or open the file; MPI
    /// errors.
    pub fn open(comm: &impl Communicator, path: &Path, opts: &AppendOptions) -> Result<Self> {
        let comm = OwnedComm::duplicate(comm)?;
        let (file, start) = match open_on(&comm, path, opts) {
            Ok(opened) => opened,
            Err(e) => return Err(free_after(comm, e)),
        };
        let pointer = SharedPointer::open(comm, start, Ok(()))?;
        tracing::debug!(path = %path.display(), start, "shared append file open");
        Ok(AppendFile {
            pointer,
            file,
            path: path.to_path_buf(),
            #[cfg(feature = "testing")]
            fault: opts.fault,
            #[cfg(feature = "testing")]
            reservations: 0,
            reserved: 0,
        })
    }

    /// The path this rank opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes this rank has reserved (appended) so far.
    pub fn appended(&self) -> u64 {
        self.reserved
    }

    /// Reserves `len` bytes at the end of the file for this rank alone, and returns their
    /// offset: one atomic fetch-and-add on the shared pointer. The caller writes them with
    /// [`AppendFile::write_at`]. Reserved bytes that are never written read back as zeros.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the file would pass 2^64 bytes; MPI errors.
    pub fn reserve(&mut self, len: u64) -> Result<u64> {
        let offset = self.fetch_add(len)?;
        self.account(offset, len)?;
        #[cfg(feature = "testing")]
        if let Some(AppendFault::DieAfterReserve(n)) = self.fault {
            self.reservations += 1;
            if self.reservations >= n {
                tracing::error!(offset, len, "dying after a reservation, on purpose");
                std::process::abort();
            }
        }
        Ok(offset)
    }

    /// One atomic fetch-and-add of `len` on the shared pointer; returns its old value.
    fn fetch_add(&self, len: u64) -> Result<u64> {
        self.pointer.fetch_add(len)
    }

    /// Appends `data` as one contiguous block (independent): [`reserve`](AppendFile::reserve)
    /// then [`write_at`](AppendFile::write_at). Returns the offset of the block. An empty
    /// `data` reserves nothing and returns the current end.
    ///
    /// # Errors
    /// MPI and I/O errors; [`Error::InvalidArgument`] as for `reserve`.
    pub fn append(&mut self, data: &[u8]) -> Result<u64> {
        let len = data.len() as u64;
        if len == 0 {
            return self.position();
        }
        #[cfg(feature = "testing")]
        if self.fault == Some(AppendFault::NoReserve) {
            return self.append_without_reservation(data);
        }
        let offset = self.reserve(len)?;
        self.write_at(offset, data)?;
        Ok(offset)
    }

    /// The [`AppendFault::NoReserve`] negative control: a racy read, write, advance.
    #[cfg(feature = "testing")]
    fn append_without_reservation(&mut self, data: &[u8]) -> Result<u64> {
        let len = data.len() as u64;
        let offset = self.position()?;
        self.write_at(offset, data)?;
        self.fetch_add(len)?;
        self.account(offset, len)?;
        Ok(offset)
    }

    /// Reserves, collectively, a block for every rank's `len` bytes, back to back in rank
    /// order, and returns this rank's offset. Ranks may pass 0. See the module documentation.
    ///
    /// # Errors
    /// MPI errors, and [`Error::Collective`] on every rank if the last rank (which reserves the
    /// block) failed, for instance because the file would pass 2^64 bytes.
    pub fn reserve_ordered(&mut self, len: u64) -> Result<u64> {
        let offset = self.pointer.reserve_ordered(len)?;
        self.account(offset, len)?;
        Ok(offset)
    }

    /// Appends every rank's `data` back to back in rank order (collective; MPI
    /// `MPI_File_write_ordered` semantics): [`reserve_ordered`](AppendFile::reserve_ordered)
    /// then [`write_at`](AppendFile::write_at). Returns this rank's offset.
    ///
    /// # Errors
    /// As `reserve_ordered`; I/O errors of this rank's write (local: other ranks' writes are
    /// not affected).
    pub fn append_ordered(&mut self, data: &[u8]) -> Result<u64> {
        let offset = self.reserve_ordered(data.len() as u64)?;
        self.write_at(offset, data)?;
        Ok(offset)
    }

    /// Writes `data` at `offset` (a positional write, to bytes this rank reserved).
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|source| io_err("write", &self.path, source))
    }

    /// The shared pointer: the offset the next reservation will get (an atomic read; other
    /// ranks may move it at any time).
    ///
    /// # Errors
    /// MPI errors.
    pub fn position(&self) -> Result<u64> {
        self.pointer.get()
    }

    /// Lets MPI make progress on other ranks' reservations (a nonblocking probe). Needed on
    /// the home rank under one-sided components that progress only inside MPI calls, when it
    /// would otherwise stay out of MPI for long; harmless elsewhere.
    pub fn progress(&self) {
        self.pointer.progress();
    }

    /// Makes this rank's writes durable (`fdatasync`; on FUSE file systems this also flushes
    /// the client's write-behind cache to the servers). Local.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|source| io_err("sync", &self.path, source))
    }

    /// Ends appending (collective): every rank syncs its writes, rank 0 also syncs the file's
    /// metadata and its directory, and the window is freed. Returns the file's end as the
    /// shared pointer has it (every byte before it was reserved). When this returns without
    /// error on any rank, all ranks' appends are durable.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank's sync failed; MPI errors.
    pub fn close(self) -> Result<u64> {
        let comm = self.pointer.comm();
        let synced = agree_result(comm.comm(), "sync", self.sync_for_close());
        // Every rank's appends are finished (they synced before the agreement above).
        let end = synced.and_then(|()| {
            let end = (comm.rank() == HOME).then(|| self.position());
            let end = agree_outcome(comm.comm(), "close", end)?;
            let mut end = [end.unwrap_or(0)];
            comm.comm()
                .process_at_rank(HOME)
                .broadcast_into(&mut end[..]);
            Ok(end[0])
        });
        // Every rank is here, whatever happened above (each failure was agreed).
        let freed = self.pointer.free();
        let end = end?;
        freed.map(|()| end)
    }

    /// This rank's syncs of [`AppendFile::close`].
    fn sync_for_close(&self) -> Result<()> {
        self.sync()?;
        if self.pointer.comm().rank() != HOME {
            return Ok(());
        }
        self.file
            .sync_all()
            .map_err(|source| io_err("sync", &self.path, source))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: some file systems refuse to sync directories.
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                tracing::debug!(dir = %dir.display(), error = %e, "directory sync failed");
            }
        }
        Ok(())
    }

    fn account(&mut self, offset: u64, len: u64) -> Result<()> {
        if offset.checked_add(len).is_none() {
            return Err(Error::InvalidArgument(format!(
                "appending {len} bytes at {offset} passes 2^64 bytes"
            )));
        }
        self.reserved += len;
        Ok(())
    }
}

/// The file steps of [`AppendFile::open`]: rank 0 first (it creates the file), then the
/// others, who find it. Returns the file and its length at open; errors are agreed.
fn open_on(comm: &OwnedComm, path: &Path, opts: &AppendOptions) -> Result<(File, u64)> {
    let rank = comm.rank();
    let home = (rank == HOME).then(|| open_home(path, opts.truncate));
    let home = agree_outcome(comm.comm(), "open", home)?;
    let mut start = [home.as_ref().map_or(0, |(_, len)| *len)];
    comm.comm()
        .process_at_rank(HOME)
        .broadcast_into(&mut start[..]);
    let file = match home {
        Some((file, _)) => Ok(file),
        None => OpenOptions::new()
            .write(true)
            .read(true)
            .open(path)
            .map_err(|source| io_err("open", path, source)),
    };
    let file = agree_result(comm.comm(), "open", file)?;
    Ok((file, start[0]))
}

/// Rank 0's part of opening: create (and truncate), learn the length.
fn open_home(path: &Path, truncate: bool) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(truncate)
        .open(path)
        .map_err(|source| io_err("create", path, source))?;
    let len = file
        .metadata()
        .map_err(|source| io_err("stat", path, source))?
        .len();
    Ok((file, len))
}

/// Collective: fails on every rank if `ok` is false on some rank, naming the lowest such rank
/// on the others (the failing rank returns its own error).
fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

//! A file opened collectively, read and written with POSIX positional I/O, with an MPI-IO
//! style atomic mode built on the byte-range lock service instead of fcntl locks.
//!
//! In atomic mode (off by default, as in MPI-IO):
//!
//! * a write takes an **exclusive** lock on exactly the bytes it writes (a noncontiguous write:
//!   on its extent, once), writes, pushes the data to the server if the file system caches on
//!   the client ([`ClientCaches::publish`]) and releases;
//! * a read takes a **shared** lock (ROMIO takes an exclusive one: concurrent readers then
//!   serialize for nothing), reads past the client's cached copy of the range
//!   ([`ClientCaches::fresh_reader`]) and releases.
//!
//! Outside atomic mode reads take no lock and do no coherence work, as in MPI-IO: data
//! written by one rank is visible to another after `sync`, a barrier, and `sync`. Writes
//! outside atomic mode lock only to protect data sieving: each window's read-modify-write
//! locks its window, and, while any rank may sieve writes, plain writes lock their range too
//! (a sieved write-back would otherwise erase a plain write that landed in its window); with
//! write sieving off on every rank ([`SievePolicy::Never`]) they take no lock at all.
//!
//! Every access releases its lock before returning, also when the I/O fails: a failed read or
//! write never leaves a lock held.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::{Communicator, Rank};

use super::coherence::{read_full, ClientCaches, Coherence, ReadAt};
use super::sieve::{self, Access, Method, SieveConfig, SievePolicy, Stats};
use super::ParallelFile;
use crate::collective::{agree_on_flag, agree_outcome, free_after};
use crate::error::{Error, Result};
use crate::lock::{NoLock, RangeLock, RmaLock};
use crate::pieces::Pieces;
use crate::range::{ByteRange, LockMode};
use crate::sys::OwnedComm;

/// How to open an [`AtomicFile`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the file (rank 0 creates it, mode 0644 before the umask) if it does not exist.
    pub create: bool,
    /// Open the file for reading only (a file without write permission, or on a read-only
    /// mount): reads and atomic mode work, and every write fails with the operating system's
    /// error. Cannot be combined with `create`.
    pub read_only: bool,
    /// The rank holding the lock table (rank 0 by default).
    pub home: Rank,
    /// Coherence strategy; `None` chooses it at open (see [`ClientCaches::choose`], which
    /// also honours `BRLOCK_COHERENCE`).
    pub coherence: Option<Coherence>,
    /// Data sieving of noncontiguous accesses: buffer sizes and when to sieve.
    pub sieve: SieveConfig,
    /// A deliberate fault, for negative controls only (feature `testing`).
    #[cfg(feature = "testing")]
    pub fault: Option<FileFault>,
}

/// Faults [`AtomicFile`] can be told to inject, so that a check can show it detects them
/// (feature `testing`).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFault {
    /// Outside atomic mode, write without locking even when a peer may be sieving: a plain
    /// write that lands in a peer's window between its read and write-back is erased.
    UnlockedPlainWrites,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            read_only: false,
            home: 0,
            coherence: None,
            sieve: SieveConfig::default(),
            #[cfg(feature = "testing")]
            fault: None,
        }
    }
}

/// A file shared by the ranks of a communicator, with MPI-IO style atomic mode over a
/// byte-range lock `L` (the one-sided lock service by default).
///
/// Each rank may open the file under its own path (the same file through different mounts,
/// like two compute nodes): the lock is keyed by byte ranges, not by path.
///
/// # Errors and teardown
///
/// Opening and [`close`](AtomicFile::close) are collective; reads and writes are not (each
/// takes and releases its lock before it returns, also when the I/O fails). An error of one
/// rank is that rank's alone, and the others do not learn of it by themselves. So a program
/// that gets an error from a read or write must either bring every rank to agree on it (for
/// example [`agree_result`](crate::collective::agree_result) at the next point where all ranks
/// meet) and then `close` on every rank, or end the job (`MPI_Abort`). Dropping the file on an
/// early return never enters a collective call: it releases what this rank holds and leaves
/// the lock service's window and communicator to MPI, and the
/// [`Runtime`](crate::runtime::Runtime) then ends the job rather than finalize
/// (`docs/failures.md`).
#[derive(Debug)]
pub struct AtomicFile<L: RangeLock = RmaLock> {
    // Field order is drop order: the lock service (its window) before the communicator.
    lock: L,
    comm: OwnedComm,
    file: File,
    path: String,
    /// What this rank does about client caches, decided at open.
    caches: ClientCaches,
    atomic: bool,
    sieve: SieveConfig,
    /// Outside atomic mode, whether plain writes lock their range (because some rank may
    /// sieve writes, see [`AtomicFile::write_at`]).
    lock_plain_writes: bool,
    last: Option<Stats>,
}

impl AtomicFile<RmaLock> {
    /// Opens `path` on every rank of `comm` with the lock service's table on
    /// `options.home`. Collective: every rank calls it (each with its own path to the same
    /// file, usually the same path).
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank, naming the rank whose open failed and why
    /// (missing file without `create`, no permission, ...), so no rank is left waiting;
    /// [`Error::InvalidArgument`] for a home rank outside the communicator; MPI errors.
    pub fn open(
        comm: &impl Communicator,
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<Self> {
        let home = options.home;
        Self::open_with_lock(comm, path, options, |c| RmaLock::open(c, home))
    }
}

impl AtomicFile<NoLock> {
    /// Opens the file with a lock that lets everything through: atomic mode then does its
    /// coherence work but excludes nothing. The negative control of `brlock check
    /// atomicity --backend none`. Collective.
    ///
    /// # Errors
    /// As [`AtomicFile::open`].
    pub fn open_unlocked(
        comm: &impl Communicator,
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<Self> {
        Self::open_with_lock(comm, path, options, |_| Ok(NoLock::default()))
    }
}

impl<L: RangeLock> AtomicFile<L> {
    /// Opens `path` with the lock `make_lock` builds over a private duplicate of `comm`.
    /// Collective; see [`AtomicFile::open`].
    ///
    /// # Errors
    /// As [`AtomicFile::open`], and whatever `make_lock` returns.
    pub fn open_with_lock(
        comm: &impl Communicator,
        path: impl AsRef<Path>,
        options: &OpenOptions,
        make_lock: impl FnOnce(&mpi::topology::SimpleCommunicator) -> Result<L>,
    ) -> Result<Self> {
        options.sieve.validate()?;
        if !(0..comm.size()).contains(&options.home) {
            return Err(Error::InvalidArgument(format!(
                "home rank {} is not a rank of the communicator (0..{})",
                options.home,
                comm.size()
            )));
        }
        let comm = OwnedComm::duplicate(comm)?;
        match Self::open_on(&comm, path.as_ref(), options) {
            Ok((file, caches, lock_plain_writes)) => {
                // Built last: nothing after it can fail, so no error path drops a live service.
                let lock = match make_lock(comm.comm()) {
                    Ok(lock) => lock,
                    Err(e) => return Err(free_after(comm, e)),
                };
                tracing::debug!(path = %path.as_ref().display(), fs_type = %caches.fs_type(), clients = caches.clients(), coherence = %caches.strategy(), lock_plain_writes, direct_reads = caches.direct_reads(), "opened");
                Ok(AtomicFile {
                    lock,
                    comm,
                    file,
                    path: path.as_ref().display().to_string(),
                    caches,
                    atomic: false,
                    sieve: options.sieve,
                    lock_plain_writes,
                    last: None,
                })
            }
            Err(e) => Err(free_after(comm, e)),
        }
    }

    /// The steps of [`AtomicFile::open_with_lock`] before the lock, on the private
    /// communicator; every error is agreed by every rank.
    fn open_on(
        comm: &OwnedComm,
        path: &Path,
        options: &OpenOptions,
    ) -> Result<(File, ClientCaches, bool)> {
        let read_only = options.read_only;
        // Rank 0 creates the file before anyone else opens it: concurrent creates through
        // different clients of a distributed file system race.
        let first = (comm.rank() == 0).then(|| open_file(path, options.create, read_only));
        let first = agree_outcome(comm.comm(), "open", first)?;
        let rest = first.is_none().then(|| open_file(path, false, read_only));
        let rest = agree_outcome(comm.comm(), "open", rest)?;
        let file = first
            .or(rest)
            .ok_or_else(|| Error::InvalidArgument("open produced no file".into()))?;
        let caches = ClientCaches::choose(comm.comm(), path, &file, options.coherence)?;
        // Plain writes must lock if any rank may sieve writes: each rank has its own options.
        let may_sieve = u8::from(options.sieve.write != SievePolicy::Never);
        let mut any_sieves = 0u8;
        comm.comm()
            .all_reduce_into(&may_sieve, &mut any_sieves, SystemOperation::max());
        #[cfg(feature = "testing")]
        let any_sieves = if options.fault == Some(FileFault::UnlockedPlainWrites) {
            0
        } else {
            any_sieves
        };
        Ok((file, caches, any_sieves == 1))
    }

    /// The path this rank opened.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file system type the coherence strategy was chosen for (`ext4`,
    /// `fuse.glusterfs`, ...).
    pub fn fs_type(&self) -> &str {
        self.caches.fs_type()
    }

    /// How many distinct clients (host and mount) the ranks reach the file through. With one,
    /// and no strategy forced, no coherence work is needed and none is done.
    pub fn clients(&self) -> usize {
        self.caches.clients()
    }

    /// The coherence strategy in use.
    pub fn coherence(&self) -> Coherence {
        self.caches.strategy()
    }

    /// The file's size as the server has it: what every writer that returned wrote, through
    /// client caches too (their daemons' metadata caches included). Costs a round trip to the
    /// server where there are client caches (`fdatasync` and `statx`), an `fstat` otherwise.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses.
    pub fn server_size(&self) -> Result<u64> {
        self.caches.server_size(&self.file)
    }

    /// The underlying file, for I/O the caller coordinates itself.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The lock, e.g. for its statistics.
    pub fn lock(&self) -> &L {
        &self.lock
    }

    /// The communicator the file was opened on (a private duplicate).
    pub fn comm(&self) -> &mpi::topology::SimpleCommunicator {
        self.comm.comm()
    }

    /// Closes the file: shuts the lock service down and frees the communicator (collective:
    /// every rank calls it at the same point), and closes the descriptor.
    ///
    /// Dropping the file instead, as an early return on an error does, releases any range
    /// this rank holds and closes the descriptor, but skips the collective teardown, since
    /// the other ranks may never reach it: see the type's documentation.
    ///
    /// # Errors
    /// MPI errors from the lock service's shutdown.
    pub fn close(self) -> Result<()> {
        let AtomicFile { lock, comm, .. } = self;
        let closed = lock.close();
        let freed = comm.free();
        closed.and(freed)
    }
}

impl<L: RangeLock> AtomicFile<L> {
    /// Reads what the file holds of `pieces`, the way an MPI read stops at the end of the
    /// file: the bytes of the access that lie before the file's size, in piece order up to
    /// the first byte past the end (a prefix of `buf`); returns their number. In atomic mode
    /// under a shared lock on the extent, with the size fresh from the server through client
    /// caches, so the count includes every byte that writers which released before wrote,
    /// also past the size this client saw at open. The rest of `buf` is left as it was.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `buf` does not match `pieces`; I/O, MPI or lock errors.
    /// No lock is left held.
    pub fn read_pieces_available(&mut self, pieces: &Pieces, buf: &mut [u8]) -> Result<u64> {
        pieces.check_buffer(buf.len())?;
        let Some(extent) = pieces.extent() else {
            return Ok(0);
        };
        let cfg = self.sieve;
        let (file, path, caches) = (&self.file, self.path.as_str(), &self.caches);
        let mut read = |reader: &dyn ReadAt, size: u64| {
            let present = pieces.before(size);
            let n = present.total_bytes();
            // At most `buf.len()`: a prefix of the access.
            let stats = sieve::read_via(reader, path, &present, &mut buf[..n as usize], &cfg)?;
            Ok((n, stats))
        };
        let (n, stats) = if self.atomic {
            with_lock(&mut self.lock, extent, LockMode::Shared, || {
                let reader = caches.fresh_reader(file, extent)?;
                let size = reader.size()?;
                read(&reader, size)
            })?
        } else {
            let size = file.metadata().map_err(|source| Error::Io {
                op: "fstat",
                path: path.to_string(),
                source,
            })?;
            read(file, size.len())?
        };
        self.last = Some(stats);
        Ok(n)
    }
}

impl<L: RangeLock> ParallelFile for AtomicFile<L> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let Some(range) = range_of(offset, buf.len())? else {
            return Ok(());
        };
        if !self.atomic {
            return read_exact_at(&self.file, &self.path, offset, buf);
        }
        let (file, path, caches) = (&self.file, self.path.as_str(), &self.caches);
        with_lock(&mut self.lock, range, LockMode::Shared, || {
            let reader = caches.fresh_reader(file, range)?;
            read_exact_at(&reader, path, offset, buf)
        })
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let Some(range) = range_of(offset, data.len())? else {
            return Ok(());
        };
        if !self.atomic && !self.lock_plain_writes {
            return write_all_at(&self.file, &self.path, offset, data);
        }
        // Outside atomic mode too while a peer may be sieving: a sieved write rewrites the
        // gaps between its pieces, and would erase this write if it landed between the
        // peer's read and write-back (the hazard ROMIO closed in 2021 by locking contiguous
        // writes when data sieving is enabled).
        let (file, path, caches) = (&self.file, self.path.as_str(), &self.caches);
        with_lock(&mut self.lock, range, LockMode::Exclusive, || {
            write_all_at(file, path, offset, data)?;
            caches.publish(file)
        })
    }

    fn read_pieces(&mut self, pieces: &Pieces, buf: &mut [u8]) -> Result<()> {
        pieces.check_buffer(buf.len())?;
        let Some(extent) = pieces.extent() else {
            return Ok(());
        };
        let cfg = self.sieve;
        let stats = if self.atomic {
            let (file, path, caches) = (&self.file, self.path.as_str(), &self.caches);
            with_lock(&mut self.lock, extent, LockMode::Shared, || {
                let reader = caches.fresh_reader(file, extent)?;
                sieve::read_via(&reader, path, pieces, buf, &cfg)
            })?
        } else {
            sieve::read(&self.file, &self.path, pieces, buf, &cfg)?
        };
        self.last = Some(stats);
        Ok(())
    }

    fn write_pieces(&mut self, pieces: &Pieces, data: &[u8]) -> Result<()> {
        pieces.check_buffer(data.len())?;
        let Some(extent) = pieces.extent() else {
            return Ok(());
        };
        let cfg = self.sieve;
        let plan = sieve::plan(pieces, cfg.write_buffer, cfg.write, Access::Write);
        // A sieved write rewrites the gaps it read, so each read-modify-write needs its window
        // exclusively (atomic mode or not: an unlocked one erases a peer's concurrent write)
        // and a fresh copy of the gaps from the server. Atomic mode holds the whole extent
        // for the whole access. So does a sieved write through a client cache: windows of
        // different ranks share boundary pages, and a page a peer of the same client is still
        // reading in (or reading ahead) for a neighbouring window cannot be dropped, so a
        // window-sized lock would let a stale page through (measured: 70-140 of 120,000 ints
        // lost across two GlusterFS clients). Holding the extent orders every window of it.
        let extent_lock = self.atomic || (plan.method == Method::Sieve && !self.caches.one_copy());
        let stats = if extent_lock {
            let (file, path, caches) = (&self.file, self.path.as_str(), &self.caches);
            let sieves = plan.method == Method::Sieve;
            with_lock(&mut self.lock, extent, LockMode::Exclusive, || {
                // Only a sieved write reads (its gaps): a write of the pieces alone needs no
                // fresh copy, and asking for one costs a size refresh from the server.
                let fresh = if sieves {
                    Some(caches.fresh_reader(file, extent)?)
                } else {
                    None
                };
                let io = sieve::Io {
                    read: fresh.as_ref().map_or(file as &dyn ReadAt, |f| f),
                    write: file,
                };
                let stats = sieve::write_planned(
                    io,
                    path,
                    pieces,
                    data,
                    &cfg,
                    &plan,
                    &mut sieve::ExtentHeld,
                )?;
                caches.publish(file)?;
                Ok(stats)
            })?
        } else {
            // Outside atomic mode, with one coherent cache, only each window's
            // read-modify-write needs protecting, so each window is locked on its own, as
            // ROMIO does: ranks sieving the same extent then pipeline, one rank's window
            // behind another's, instead of queueing for the whole extent. Runs written
            // directly lock only while a peer may sieve.
            let mut guard = WindowLock {
                lock: &mut self.lock,
                file: &self.file,
                caches: &self.caches,
                plain_writes: self.lock_plain_writes,
            };
            sieve::write_planned(
                sieve::Io::file(&self.file),
                &self.path,
                pieces,
                data,
                &cfg,
                &plan,
                &mut guard,
            )?
        };
        self.last = Some(stats);
        Ok(())
    }

    fn set_atomicity(&mut self, atomic: bool) -> Result<()> {
        self.atomic = agree_on_flag(self.comm.comm(), atomic, "atomic mode")?;
        Ok(())
    }

    fn atomicity(&self) -> bool {
        self.atomic
    }

    fn last_noncontig(&self) -> Option<&Stats> {
        self.last.as_ref()
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|source| Error::Io {
            op: "fdatasync",
            path: self.path.clone(),
            source,
        })?;
        self.caches.after_sync(&self.file)
    }

    fn close(self: Box<Self>) -> Result<()> {
        AtomicFile::close(*self)
    }
}

/// Runs `f` holding `range` of `lock` in `mode`, and releases whatever happens in `f`: a
/// failed access never leaves the lock held.
fn with_lock<L: RangeLock, R>(
    lock: &mut L,
    range: ByteRange,
    mode: LockMode,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    lock.lock(range, mode)?;
    let result = f();
    let released = lock.unlock();
    match (result, released) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(release)) => {
            tracing::error!(error = %release, "releasing the lock after a failed access also failed");
            Err(e)
        }
    }
}

/// A noncontiguous write's protection outside atomic mode, one write at a time: an exclusive
/// lock on each window's read-modify-write (used with one coherent copy only: through client
/// caches a sieved write holds its whole extent and reads it fresh, see `write_pieces`, so a
/// window's read here needs no coherence work); and, when `plain_writes`, the same lock
/// around each plain write of a run, which could otherwise land in a peer's window between its
/// read and write-back, with the written bytes pushed to the server before the release.
struct WindowLock<'a, L> {
    lock: &'a mut L,
    file: &'a File,
    caches: &'a ClientCaches,
    plain_writes: bool,
}

impl<L: RangeLock> sieve::WindowGuard for WindowLock<'_, L> {
    fn around(
        &mut self,
        start: u64,
        end: u64,
        rmw: bool,
        io: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        if !rmw && !self.plain_writes {
            return io();
        }
        let Some(range) = range_of(start, (end - start) as usize)? else {
            return io();
        };
        debug_assert!(
            !rmw || self.caches.one_copy(),
            "windows lock alone only with one copy"
        );
        let (file, caches) = (self.file, self.caches);
        with_lock(self.lock, range, LockMode::Exclusive, || {
            io()?;
            caches.publish(file)
        })
    }
}

/// The range of an access of `len` bytes at `offset`; `None` for an empty access (which takes
/// no lock, as in ROMIO).
fn range_of(offset: u64, len: usize) -> Result<Option<ByteRange>> {
    if len == 0 {
        return Ok(None);
    }
    Ok(Some(ByteRange::at(offset, len as u64)?))
}

/// Opens `path` for reading and writing, or for reading only; creates it if `create` (only
/// rank 0 creates, so only rank 0's options can ask for both, and the refusal is agreed).
fn open_file(path: &Path, create: bool, read_only: bool) -> Result<File> {
    if create && read_only {
        return Err(Error::InvalidArgument(format!(
            "{}: a file opened read-only cannot be created",
            path.display()
        )));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .create(create)
        .open(path)
        .map_err(|source| Error::Io {
            op: "open",
            path: path.display().to_string(),
            source,
        })
}

fn read_exact_at(file: &dyn ReadAt, path: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
    let (got, _) = read_full(file, buf, offset).map_err(|source| Error::Io {
        op: "read",
        path: path.to_string(),
        source,
    })?;
    if got < buf.len() {
        return Err(Error::ShortRead {
            path: path.to_string(),
            offset,
            wanted: buf.len() as u64,
            got: got as u64,
        });
    }
    Ok(())
}

fn write_all_at(file: &File, path: &str, offset: u64, data: &[u8]) -> Result<()> {
    file.write_all_at(data, offset).map_err(|source| Error::Io {
        op: "write",
        path: path.to_string(),
        source,
    })
}

//! Keeping client caches honest when the lock is one the file system never sees. This module
//! is the one owner of that work: the strategy is chosen once, when a file is opened
//! ([`ClientCaches::choose`]), and the I/O layers call only its hooks —
//! [`ClientCaches::fresh_reader`] before a locked read (what to read through) and
//! [`ClientCaches::publish`] after a locked write (what to push) — plus
//! [`ClientCaches::after_sync`] for MPI-IO's "sync, barrier, sync".
//!
//! An fcntl lock tells a distributed file system's client that another node may have changed
//! the bytes, and the client drops or revalidates its cache. The lock service does not; without
//! extra work a reader that holds the lock can still be served the bytes its own client cached
//! before the writer released. Measured on GlusterFS 10.3 here (4 KiB written through one FUSE
//! client, read through a second one, `docs/atomic.md`):
//!
//! | writer does, before releasing | reader does, after acquiring | stale reads |
//! |---|---|---|
//! | `pwrite` only | `pread` | 11-15 of 20 |
//! | `pwrite` only | `posix_fadvise(DONTNEED)` + `pread` | 42 of 300 (write-behind) |
//! | `pwrite` + close of a duplicate descriptor (FUSE FLUSH) | `DONTNEED` + `pread` | 0 of 300 |
//! | `pwrite` + `fdatasync` | `DONTNEED` + `pread` | 0 of 300 |
//!
//! So coherence needs both halves: the writer pushes its data to the server before it
//! releases an exclusive lock, the reader reads past its cached copy after it acquires. The
//! lock orders the two. Dropping cached pages is not quite enough for the reader (a page that
//! another process of the client holds at that moment survives, see [`DirectReader`]), so
//! locked reads go through `O_DIRECT` where the file system allows it.
//!
//! The strategy: `BRLOCK_COHERENCE=none|flush|sync` or the caller's choice if given; else none
//! when every rank reaches the file through one client (one cache, coherent by itself); else
//! by the file system type ([`Coherence::for_fs_type`]). `docs/atomic.md` has the design and
//! the measurements.

mod direct;

pub use direct::{read_full, DirectReader, ReadAt};

use std::fs::File;
use std::path::Path;

use mpi::topology::Communicator;
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

use crate::choice::choice;
use crate::collective::agree_result;
use crate::error::{Error, Result};
use crate::range::ByteRange;

/// Invalidation ranges are widened to multiples of this (a multiple of every page size Linux
/// uses: 4, 16 and 64 KiB).
const INVALIDATE_ALIGN: u64 = 64 * 1024;

/// Environment variable that overrides the strategy chosen from the file system type.
pub const COHERENCE_VAR: &str = "BRLOCK_COHERENCE";

choice! {
    /// What the I/O layer does around each locked access to keep client caches coherent.
    pub enum Coherence {
        /// Nothing: every process sees one coherent copy.
        ///
        /// A local file system, whose page cache is shared by all processes of the node; one
        /// client of a distributed one; or a file system that keeps its clients coherent
        /// itself (Lustre, GPFS/Spectrum Scale and CephFS revoke cached data through their own
        /// distributed lock managers).
        None = "none",
        /// Push written data by closing a duplicate descriptor; read fresh after acquiring.
        ///
        /// Before releasing an exclusive lock, push written data to the server by closing a
        /// duplicate of the descriptor (a FUSE `FLUSH`; NFS writes dirty pages back on every
        /// close); after acquiring, read with `O_DIRECT` (where that is refused, drop the
        /// range's cached pages first) and refresh the file size. The default for file
        /// systems with client caches (FUSE, including GlusterFS; NFS; unknown types).
        Flush = "flush",
        /// Like flush, with `fdatasync` instead of the close.
        ///
        /// The data is then durable on the server, not only sent. Slower (0.9 ms instead of
        /// 0.4 ms per 4 KiB write on GlusterFS here); for file systems whose close does not
        /// push data.
        Sync = "sync",
    }
}

impl Coherence {
    /// The strategy [`COHERENCE_VAR`] asks for; `None` if it is unset, empty or `auto`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if it is not one of `none`, `flush`, `sync`, `auto`.
    pub fn from_env() -> Result<Option<Coherence>> {
        match std::env::var(COHERENCE_VAR) {
            Ok(value) if !value.trim().is_empty() && value.trim() != "auto" => {
                crate::choice::parse(COHERENCE_VAR, &value).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The default strategy for a file system type as the mount table names it (`ext4`,
    /// `fuse.glusterfs`, `nfs4`, `lustre`, ...).
    pub fn for_fs_type(fs_type: &str) -> Coherence {
        const COHERENT: &[&str] = &[
            // One page cache per node.
            "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "tmpfs",
            "ramfs", "overlay", // Cluster file systems that keep clients coherent themselves.
            "lustre", "gpfs", "ceph",
        ];
        if COHERENT.contains(&fs_type) {
            Coherence::None
        } else {
            Coherence::Flush
        }
    }
}

/// What one rank does about client caches for one open file, decided once at open.
#[derive(Debug)]
pub struct ClientCaches {
    strategy: Coherence,
    fs_type: String,
    clients: usize,
    /// With client caches: a descriptor that reads past the page cache (`O_DIRECT`), for the
    /// reads under a lock; `None` where the file system refuses direct reads (those reads then
    /// drop the range's cached pages first) and without client caches.
    direct: Option<DirectReader>,
    /// The path, for error messages.
    path: String,
}

impl ClientCaches {
    /// Decides, collectively over `comm`, what this rank does about client caches for `file`
    /// (opened by every rank, each at its own `path`): `requested` if given, else the
    /// [`COHERENCE_VAR`] override, else none when every rank reaches the file through one
    /// client (one host and one mount device), else [`Coherence::for_fs_type`].
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank's `stat` of the file failed (every rank
    /// takes part in the exchange first, so none is left waiting);
    /// [`Error::InvalidArgument`] for a bad override.
    pub fn choose(
        comm: &impl Communicator,
        path: &Path,
        file: &File,
        requested: Option<Coherence>,
    ) -> Result<ClientCaches> {
        let shown = path.display().to_string();
        // A first metadata call through this client completes the open on the server (FUSE
        // open-behind); a read right after a lazily completed open was seen served stale.
        let meta = file.metadata().map_err(|source| Error::Io {
            op: "stat",
            path: shown.clone(),
            source,
        });
        // Collective, so it runs on every rank before a failed stat is reported.
        let clients = count_clients(comm, meta.as_ref().map_or(0, client_id));
        agree_result(comm, "stat", meta)?;
        let fs_type = crate::host::fs_type(path).unwrap_or_else(|_| "unknown".into());
        let strategy = match requested {
            Some(c) => c,
            None => match Coherence::from_env()? {
                Some(c) => c,
                // Every rank reaches the file through the same mount of the same host: one
                // client cache, coherent by itself (same page cache; write-behind orders a
                // client's reads after its own pending writes).
                None if clients == 1 => Coherence::None,
                None => Coherence::for_fs_type(&fs_type),
            },
        };
        let direct = match strategy {
            Coherence::None => None,
            _ => DirectReader::open(path)
                .map_err(|e| {
                    tracing::info!(path = %shown, error = %e, "no direct reads: locked reads drop cached pages instead");
                })
                .ok(),
        };
        Ok(ClientCaches {
            strategy,
            fs_type,
            clients,
            direct,
            path: shown,
        })
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Coherence {
        self.strategy
    }

    /// The type of the file system holding the file (`unknown` if it cannot be told).
    pub fn fs_type(&self) -> &str {
        &self.fs_type
    }

    /// How many distinct clients (host and mount) the ranks reach the file through.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// Whether every rank sees one coherent copy, so that nothing is done around accesses
    /// (strategy [`Coherence::None`]).
    pub fn one_copy(&self) -> bool {
        self.strategy == Coherence::None
    }

    /// Whether locked reads bypass the page cache.
    pub fn direct_reads(&self) -> bool {
        self.direct.is_some()
    }

    /// Hook before a read under a lock on `range`: what to read through so that the read sees
    /// every byte written by writers that released before. The direct reader if there is one
    /// (after refreshing the file size, which the kernel caches apart from the data), else
    /// `file` after dropping the range's cached pages; just `file` without client caches.
    ///
    /// # Errors
    /// [`Error::Io`] if the size refresh or the page dropping fails.
    pub fn fresh_reader<'a>(&'a self, file: &'a File, range: ByteRange) -> Result<FreshReader<'a>> {
        if self.one_copy() {
            return Ok(FreshReader::plain(self, file, file));
        }
        let (inner, known): (&dyn ReadAt, u64) = match &self.direct {
            Some(direct) => (direct, self.refresh_size(file, range.end())?),
            None => {
                // The kernel drops only pages that lie wholly inside the range: a partial page
                // at either end would keep its stale copy (seen here: the file's last, partial
                // page served old bytes after DONTNEED of exactly the accessed range). Round
                // outwards.
                let start = range.start() & !(INVALIDATE_ALIGN - 1);
                let end =
                    range.end().saturating_add(INVALIDATE_ALIGN - 1) & !(INVALIDATE_ALIGN - 1);
                (
                    file,
                    self.drop_cached(file, start, end - start, range.end())?,
                )
            }
        };
        Ok(FreshReader {
            caches: self,
            file,
            inner,
            known: std::cell::Cell::new(known),
        })
    }

    /// Hook after a write under an exclusive lock, before releasing it: makes the written bytes
    /// visible to other clients (close of a duplicate descriptor, or `fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] if the flush or the sync fails — the data may not have reached the server
    /// (a full disk or a lost connection shows up here on write-behind file systems).
    pub fn publish(&self, file: &File) -> Result<()> {
        let io = |op, source| Error::Io {
            op,
            path: self.path.clone(),
            source,
        };
        match self.strategy {
            Coherence::None => Ok(()),
            // Closing a duplicate descriptor makes the kernel send FLUSH (FUSE) or write back
            // dirty pages (NFS) without a server-side sync; the close reports what failed.
            Coherence::Flush => nix::unistd::dup(file)
                .and_then(nix::unistd::close)
                .map_err(|e| io("close (to flush written data)", e.into())),
            Coherence::Sync => file.sync_data().map_err(|e| io("fdatasync", e)),
        }
    }

    /// Hook after this rank's writes were synced (`MPI_File_sync` semantics): drops the whole
    /// file's cached pages and refreshes its size, so that reads after the matching barrier
    /// and sync see every rank's synced writes.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses.
    pub fn after_sync(&self, file: &File) -> Result<()> {
        if self.one_copy() {
            return Ok(());
        }
        // Offset 0, length 0: the whole file; no read in view.
        self.drop_cached(file, 0, 0, 0).map(drop)
    }

    /// Drops the client's cached pages of `[off, off + len)` (`len` 0: to the end of the
    /// file) and refreshes the file's size for a read up to `end`; returns the size.
    fn drop_cached(&self, file: &File, off: u64, len: u64, end: u64) -> Result<u64> {
        // Offsets come from validated ranges (at most `i64::MAX`).
        let to_off = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        posix_fadvise(
            file,
            to_off(off),
            to_off(len),
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .map_err(|e| Error::Io {
            op: "posix_fadvise(DONTNEED)",
            path: self.path.clone(),
            source: e.into(),
        })?;
        self.refresh_size(file, end)
    }

    /// Asks the server for the file's size (the kernel caches it apart from the data), for a
    /// read up to `end`, and returns it: a client that still believes an older, shorter size
    /// ends reads there — and a data-sieving write would then take existing bytes for a hole.
    ///
    /// `statx(AT_STATX_FORCE_SYNC)` makes the kernel ask the client daemon, but a daemon may
    /// answer from a metadata cache of its own: GlusterFS's `md-cache` returned the size from
    /// before another client extended the file (measured: 288 of 470 reads of freshly appended
    /// blocks came back short, through a second client at 4 ranks). So when the answer ends
    /// before `end`, the reader syncs its descriptor (`fdatasync`), whose reply carries the
    /// server's attributes into the daemon's cache, and asks again ([`Self::refresh_hard`]).
    /// Reads inside the size already known pay nothing more.
    fn refresh_size(&self, file: &File, end: u64) -> Result<u64> {
        let size = crate::sys::refresh_size(file)
            .map_err(|e| self.io_error("statx (refresh the file size)", e))?;
        if size >= end {
            return Ok(size);
        }
        self.refresh_hard(file)
    }

    /// The file's size as the server has it, for a caller outside any locked access (an
    /// `MPI_File_get_size`): the one coherent copy's size, or through client caches
    /// `fdatasync` and then a forced `statx` (a forced `statx` alone can be answered from the
    /// client daemon's metadata cache: GlusterFS's `md-cache`).
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses.
    pub fn server_size(&self, file: &File) -> Result<u64> {
        if self.one_copy() {
            return file
                .metadata()
                .map(|m| m.len())
                .map_err(|e| self.io_error("fstat", e));
        }
        self.refresh_hard(file)
    }

    /// `fdatasync`, then `statx(AT_STATX_FORCE_SYNC)`: the size from the server itself.
    fn refresh_hard(&self, file: &File) -> Result<u64> {
        file.sync_data()
            .map_err(|e| self.io_error("fdatasync (refresh the file size)", e))?;
        crate::sys::refresh_size(file)
            .map_err(|e| self.io_error("statx (refresh the file size)", e))
    }

    fn io_error(&self, op: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }
}

/// Reads under a lock past the client's caches ([`ClientCaches::fresh_reader`]).
///
/// It knows the size the server reported when the read began, and a locked range cannot
/// shrink meanwhile; so a read that finds the end of the file before that size met the
/// client's stale idea of it (another reader's short read through the same client can set the
/// kernel's size back after our refresh: measured 3 short reads in 564 with the refresh alone,
/// 4 ranks, two GlusterFS clients, a loaded machine). It then refreshes hard and reads again,
/// up to [`STALE_RETRIES`] times.
pub struct FreshReader<'a> {
    caches: &'a ClientCaches,
    file: &'a File,
    inner: &'a dyn ReadAt,
    /// The file's size as the server reported it (0: nothing known, never retry).
    known: std::cell::Cell<u64>,
}

/// How many times [`FreshReader`] refreshes the size and reads again after an end of file
/// that the server's size contradicts.
pub const STALE_RETRIES: u32 = 8;

impl<'a> FreshReader<'a> {
    /// Reads through `inner` with no size knowledge (one coherent cache).
    fn plain(caches: &'a ClientCaches, file: &'a File, inner: &'a dyn ReadAt) -> Self {
        FreshReader {
            caches,
            file,
            inner,
            known: std::cell::Cell::new(0),
        }
    }
}

impl FreshReader<'_> {
    /// The file's size for this read: the server's when the read began (through client
    /// caches; a locked range cannot shrink meanwhile), or the one coherent copy's.
    ///
    /// # Errors
    /// [`Error::Io`] if the file's metadata cannot be read.
    pub fn size(&self) -> Result<u64> {
        if self.caches.one_copy() {
            return self.caches.server_size(self.file);
        }
        Ok(self.known.get())
    }
}

impl ReadAt for FreshReader<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let mut n = self.inner.read_at(buf, offset)?;
        let mut tries = 0;
        while n == 0 && !buf.is_empty() && offset < self.known.get() && tries < STALE_RETRIES {
            tries += 1;
            let size = self
                .caches
                .refresh_hard(self.file)
                .map_err(std::io::Error::other)?;
            self.known.set(self.known.get().max(size));
            tracing::debug!(
                offset,
                known = self.known.get(),
                tries,
                "end of file before the server's size: read again"
            );
            n = self.inner.read_at(buf, offset)?;
        }
        Ok(n)
    }
}

/// Identifies the client cache a rank reaches the file through: the host and the device
/// number of the mount (two mounts of one volume are two clients, with two caches).
fn client_id(meta: &std::fs::Metadata) -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let host = crate::host::hostname().unwrap_or_default();
    // Deterministic (fixed keys): every rank runs the same binary.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    host.hash(&mut h);
    meta.dev().hash(&mut h);
    h.finish()
}

/// Collective: the number of distinct client ids over all ranks.
fn count_clients(comm: &impl Communicator, mine: u64) -> usize {
    use mpi::collective::CommunicatorCollectives;
    let mut all = vec![0u64; usize::try_from(comm.size()).unwrap_or(0)];
    comm.all_gather_into(&mine, &mut all[..]);
    all.sort_unstable();
    all.dedup();
    all.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::Choice;

    #[test]
    fn defaults_by_type() {
        assert_eq!(Coherence::for_fs_type("ext4"), Coherence::None);
        assert_eq!(Coherence::for_fs_type("lustre"), Coherence::None);
        assert_eq!(Coherence::for_fs_type("fuse.glusterfs"), Coherence::Flush);
        assert_eq!(Coherence::for_fs_type("nfs4"), Coherence::Flush);
        assert_eq!(Coherence::for_fs_type("something-new"), Coherence::Flush);
    }

    #[test]
    fn parses_overrides() {
        assert_eq!("sync".parse::<Coherence>().unwrap(), Coherence::Sync);
        assert!("fast".parse::<Coherence>().is_err());
        assert_eq!(Coherence::from_name("flush"), Some(Coherence::Flush));
    }
}

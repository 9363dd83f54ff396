//! Keeping client caches honest when the lock is one the file system never sees.
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
//! releases an exclusive lock ([`Coherence::flush`]), the reader drops its cached copy of the
//! range after it acquires ([`Coherence::invalidate`]). The lock orders the two.
//!
//! The strategy is chosen from the file system type ([`Coherence::for_path`]), can be forced
//! with `BRLOCK_COHERENCE=none|flush|sync`, and is documented in `docs/atomic.md`.

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

use crate::error::{Error, Result};

/// Invalidation ranges are widened to multiples of this (a multiple of every page size Linux
/// uses: 4, 16 and 64 KiB).
const INVALIDATE_ALIGN: u64 = 64 * 1024;

/// Environment variable that overrides the strategy chosen from the file system type.
pub const COHERENCE_VAR: &str = "BRLOCK_COHERENCE";

/// What the I/O layer does around each locked access to keep client caches coherent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Coherence {
    /// Nothing: every process sees one coherent copy (a local file system, whose page cache is
    /// shared by all processes of the node), or the file system keeps its clients coherent
    /// itself (Lustre, GPFS/Spectrum Scale and CephFS revoke cached data through their own
    /// distributed lock managers).
    None,
    /// Before releasing an exclusive lock, push written data to the server by closing a
    /// duplicate of the descriptor (a FUSE `FLUSH`; NFS writes dirty pages back on every
    /// close); after acquiring, drop the range's cached pages (`POSIX_FADV_DONTNEED`). The
    /// default for file systems with client caches (FUSE, including GlusterFS; NFS; unknown
    /// types).
    Flush,
    /// Like [`Coherence::Flush`], but `fdatasync` instead of the close: the data is durable
    /// on the server, not only sent. Slower (0.9 ms instead of 0.4 ms per 4 KiB write on
    /// GlusterFS here); for file systems whose close does not push data.
    Sync,
}

impl Coherence {
    /// The strategy for the file system holding `path`: the [`COHERENCE_VAR`] override if
    /// set, else [`Coherence::for_fs_type`] of the mount's type.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the override is not one of `none`, `flush`, `sync`.
    pub fn for_path(path: &Path) -> Result<(Coherence, String)> {
        let fs_type = fs_type(path).unwrap_or_else(|| "unknown".to_string());
        let chosen = Coherence::from_env()?.unwrap_or_else(|| Coherence::for_fs_type(&fs_type));
        Ok((chosen, fs_type))
    }

    /// The strategy [`COHERENCE_VAR`] asks for; `None` if it is unset, empty or `auto`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if it is not one of `none`, `flush`, `sync`, `auto`.
    pub fn from_env() -> Result<Option<Coherence>> {
        match std::env::var(COHERENCE_VAR) {
            Ok(value) if !value.trim().is_empty() && value.trim() != "auto" => {
                value.parse().map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The default strategy for a file system type as `/proc/self/mounts` names it (`ext4`,
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

    /// Called after acquiring a lock on `[offset, offset + len)` and before reading it: drops
    /// this client's cached pages of the range so the read goes to the server, and refreshes
    /// the cached file size (a client that still believes an older, shorter size ends reads
    /// there — and a data-sieving write would then take existing bytes for a hole).
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses the advice.
    pub fn invalidate(self, file: &File, path: &str, offset: u64, len: u64) -> Result<()> {
        if self == Coherence::None || len == 0 {
            return Ok(());
        }
        // The kernel drops only pages that lie wholly inside the range: a partial page at
        // either end would keep its stale copy (seen here: the file's last, partial page
        // served old bytes after DONTNEED of exactly the accessed range). Round outwards.
        let start = offset & !(INVALIDATE_ALIGN - 1);
        let end = offset
            .saturating_add(len)
            .saturating_add(INVALIDATE_ALIGN - 1)
            & !(INVALIDATE_ALIGN - 1);
        drop_cached(file, path, to_off(start), to_off(end - start))
    }

    /// Like [`Coherence::invalidate`], for the whole file (`sync`'s second half).
    ///
    /// # Errors
    /// As [`Coherence::invalidate`].
    pub fn invalidate_file(self, file: &File, path: &str) -> Result<()> {
        if self == Coherence::None {
            return Ok(());
        }
        // Offset 0, length 0: the whole file.
        drop_cached(file, path, 0, 0)
    }

    /// Called after acquiring a lock, before reading through a reader that bypasses the page
    /// cache ([`crate::io::direct::DirectReader`]): refreshes only the file size, which the
    /// kernel caches apart from the data. Nothing for [`Coherence::None`].
    ///
    /// # Errors
    /// [`Error::Io`] if the `statx` fails.
    pub fn refresh_size(self, file: &File, path: &str) -> Result<()> {
        if self == Coherence::None {
            return Ok(());
        }
        refresh_size(file, path)
    }

    /// Called after writing and before releasing an exclusive lock: makes the written bytes
    /// visible to other clients (see the variants).
    ///
    /// # Errors
    /// [`Error::Io`] if the flush or the sync fails — the data may not have reached the
    /// server (a full disk or a lost connection shows up here on write-behind file systems).
    pub fn flush(self, file: &File, path: &str) -> Result<()> {
        let io = |op, source| Error::Io {
            op,
            path: path.to_string(),
            source,
        };
        match self {
            Coherence::None => Ok(()),
            // Closing a duplicate descriptor makes the kernel send FLUSH (FUSE) or write back
            // dirty pages (NFS) without a server-side sync; the close reports what failed.
            Coherence::Flush => nix::unistd::dup(file)
                .and_then(nix::unistd::close)
                .map_err(|e| io("close (to flush written data)", e.into())),
            Coherence::Sync => file.sync_data().map_err(|e| io("fdatasync", e)),
        }
    }
}

impl fmt::Display for Coherence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coherence::None => "none",
            Coherence::Flush => "flush",
            Coherence::Sync => "sync",
        })
    }
}

impl FromStr for Coherence {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "none" => Ok(Coherence::None),
            "flush" => Ok(Coherence::Flush),
            "sync" => Ok(Coherence::Sync),
            other => Err(Error::InvalidArgument(format!(
                "{COHERENCE_VAR}={other:?}: expected none, flush, sync or auto"
            ))),
        }
    }
}

/// Drops the client's cached pages of `[off, off + len)` (`len` 0: to the end of the file)
/// and asks the server for the file's size.
fn drop_cached(file: &File, path: &str, off: i64, len: i64) -> Result<()> {
    posix_fadvise(file, off, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED).map_err(|e| {
        Error::Io {
            op: "posix_fadvise(DONTNEED)",
            path: path.to_string(),
            source: e.into(),
        }
    })?;
    refresh_size(file, path)
}

/// Asks the server for the file's size (the kernel caches it apart from the data).
fn refresh_size(file: &File, path: &str) -> Result<()> {
    crate::sys::refresh_size(file)
        .map(drop)
        .map_err(|source| Error::Io {
            op: "statx (refresh the file size)",
            path: path.to_string(),
            source,
        })
}

/// Offsets and lengths come from validated ranges (at most `i64::MAX`).
fn to_off(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// The type of the file system holding `path` (`ext4`, `fuse.glusterfs`, ...), from the
/// longest mount point in `/proc/self/mounts` that contains the path. `None` where that file
/// does not exist.
pub fn fs_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path)
        .ok()
        .or_else(|| path.parent().and_then(|p| std::fs::canonicalize(p).ok()))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = unescape_mount(fields.next()?);
            let fs_type = fields.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), fs_type.to_string()))
        })
        // Later lines win ties: a mount stacked on the same point hides the earlier one.
        .fold(None, |best: Option<(usize, String)>, cand| match best {
            Some(b) if b.0 > cand.0 => Some(b),
            _ => Some(cand),
        })
        .map(|(_, t)| t)
}

/// `/proc/self/mounts` escapes space, tab, newline and backslash as octal `\\ooo`.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\"), "/end\\");
    }

    #[test]
    fn finds_the_root_file_system() {
        assert!(fs_type(Path::new("/")).is_some());
    }
}

//! Reads that bypass the client's page cache (`O_DIRECT`), for coherent reads through client
//! caches.
//!
//! Dropping a range's cached pages before reading it (what [`super::ClientCaches`] falls back to) is not
//! enough on its own: the kernel skips pages that someone else holds at that moment (locked,
//! or referenced by another process copying them), and two ranks of one client dropping the
//! same page at once can each keep the other from evicting it. Such a page survives, stale,
//! and the read that follows returns it: `brlock check atomicity` across two GlusterFS clients
//! saw one stale 4 KiB page inside otherwise fresh reads 3-5 times in 27,000 reads. A read
//! with `O_DIRECT` never looks at the page cache, so it cannot meet a stale page.
//!
//! `O_DIRECT` wants the buffer, the offset and the length aligned (GlusterFS passes the flag on
//! to the brick's own file system, which accepted unaligned offsets through one client mount
//! and refused them with `EINVAL` through the other), so every read covers whole aligned
//! 4 KiB blocks, through an aligned bounce buffer, and copies out the wanted bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Positional reads: a plain [`File`] (through the page cache) or a [`DirectReader`].
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at end of file), as
    /// [`FileExt::read_at`].
    ///
    /// # Errors
    /// The operating system's.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

/// Reads into all of `buf` from `offset`, retrying interrupted and partial reads. Returns the
/// bytes read (fewer than `buf.len()` only at end of file) and the read calls made.
///
/// # Errors
/// The first read error other than `EINTR`.
pub fn read_full(reader: &dyn ReadAt, buf: &mut [u8], offset: u64) -> io::Result<(usize, u64)> {
    let (mut got, mut calls) = (0, 0);
    while got < buf.len() {
        calls += 1;
        match reader.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((got, calls))
}

/// Alignment of the bounce buffer: a page.
const ALIGN: usize = 4096;

/// Largest single read (and bounce buffer).
const CHUNK: usize = 1 << 20;

/// A read-only descriptor of a file opened with `O_DIRECT`.
#[derive(Debug)]
pub struct DirectReader {
    file: File,
}

impl DirectReader {
    /// Opens `path` read-only with `O_DIRECT` and reads one byte to check that the file system
    /// accepts direct reads (some accept the flag at open and refuse the read).
    ///
    /// # Errors
    /// The open's or the probe read's error (`EINVAL` where direct I/O is not supported).
    pub fn open(path: &Path) -> io::Result<DirectReader> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(path)?;
        let reader = DirectReader { file };
        let mut probe = [0u8; 1];
        reader.read_at(&mut probe, 0)?;
        Ok(reader)
    }
}

impl ReadAt for DirectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let want = buf.len().min(CHUNK);
        if want == 0 {
            return Ok(0);
        }
        // Whole aligned blocks around the wanted bytes, into an aligned buffer.
        let align = ALIGN as u64;
        let start = offset - offset % align;
        let lead = (offset - start) as usize;
        let len = (lead + want).div_ceil(ALIGN) * ALIGN;
        let mut bounce = vec![0u8; len + ALIGN];
        let skip = bounce.as_ptr().align_offset(ALIGN);
        if skip >= ALIGN {
            return Err(io::Error::other("cannot align a buffer for O_DIRECT"));
        }
        let aligned = &mut bounce[skip..skip + len];
        let n = FileExt::read_at(&self.file, aligned, start)?;
        let got = n.saturating_sub(lead).min(want);
        buf[..got].copy_from_slice(&aligned[lead..lead + got]);
        Ok(got)
    }
}

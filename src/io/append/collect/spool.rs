//! `ordered` (one task per rank): each rank spools its output to an unlinked local file while
//! its command runs, and the spools are placed back to back in rank order at the end with one
//! ordered reservation; the index records follow, in rank order too.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::super::index::{Extent, Record, Stream};
use super::writer::{Files, Stats, Unit};
use crate::error::{Error, Result};

/// Bytes copied at a time from a spool to the output.
const COPY_CHUNK: usize = 1 << 20;

/// One rank's spool.
#[derive(Debug)]
pub(super) struct Spool {
    file: File,
    len: u64,
    lines: u64,
    /// `(task, attempt, offset in the spool, length)` of every piece, in order.
    pieces: Vec<(u64, u32, u64, u64)>,
    done: String,
}

impl Spool {
    /// A new spool in `dir` (default: the temporary directory), unlinked at once (it lives as
    /// long as the handle).
    pub fn create(dir: Option<&Path>, rank: i32) -> Result<Spool> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = dir.join(format!(
            "brlock-collect-spool.{}.{rank}",
            std::process::id()
        ));
        let io = |op, source| Error::Io {
            op,
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("create spool", e))?;
        std::fs::remove_file(&path).map_err(|e| io("unlink spool", e))?;
        Ok(Spool {
            file,
            len: 0,
            lines: 0,
            pieces: Vec::new(),
            done: String::new(),
        })
    }

    /// Spools a unit's output (its error bytes are not spooled: `ordered` passes stderr
    /// through).
    pub fn add(&mut self, unit: &Unit) -> Result<()> {
        self.file
            .write_all_at(&unit.out, self.len)
            .map_err(|source| Error::Io {
                op: "write",
                path: "the spool".into(),
                source,
            })?;
        for p in &unit.out_pieces {
            self.pieces
                .push((p.task, p.attempt, self.len + p.start, p.len));
        }
        self.len += unit.out.len() as u64;
        self.lines += unit.lines;
        self.done.push_str(&unit.done);
        Ok(())
    }
}

/// Collective: reserves every rank's spool back to back in rank order, copies this rank's
/// into its place, then appends the index records the same way. A rank without a spool (it
/// could not make one) takes part with nothing.
pub(super) fn place(
    spool: Option<Spool>,
    files: &mut Files,
    rank: i32,
    stats: &mut Stats,
) -> Result<()> {
    let len = spool.as_ref().map_or(0, |s| s.len);
    let base = files.out.reserve_ordered(len)?;
    let copied = match &spool {
        Some(s) => copy(s, base, &files.out, stats),
        None => Ok(()),
    };
    let mut text = String::new();
    if let (Some(s), true) = (&spool, copied.is_ok()) {
        for &(task, attempt, at, len) in &s.pieces {
            Record::Extent(Extent {
                task,
                attempt,
                rank: u32::try_from(rank).unwrap_or(0),
                stream: Stream::Out,
                offset: base + at,
                len,
            })
            .push_to(&mut text);
        }
        text.push_str(&s.done);
        stats.bytes += s.len;
        stats.lines += s.lines;
        stats.batches += 1;
    }
    // Collective: taken part in even after a failed copy.
    let indexed = match files.index.as_mut() {
        Some(index) => index.append_ordered(text.as_bytes()).map(drop),
        None => Ok(()),
    };
    copied.and(indexed)
}

fn copy(spool: &Spool, base: u64, out: &super::super::AppendFile, stats: &mut Stats) -> Result<()> {
    let mut buf = vec![
        0u8;
        COPY_CHUNK
            .min(usize::try_from(spool.len).unwrap_or(COPY_CHUNK))
            .max(1)
    ];
    let mut done = 0u64;
    while done < spool.len {
        let n = (spool.len - done).min(buf.len() as u64) as usize;
        spool
            .file
            .read_exact_at(&mut buf[..n], done)
            .map_err(|source| Error::Io {
                op: "read",
                path: "the spool".into(),
                source,
            })?;
        out.write_at(base + done, &buf[..n])?;
        stats.write_calls += 1;
        done += n as u64;
    }
    Ok(())
}

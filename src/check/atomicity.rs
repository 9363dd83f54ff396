//! `check atomicity`: in the spirit of ROMIO's atomicity test, rank 0 rewrites a region
//! of ints again and again while every other rank reads it, and every read is judged.
//!
//! * **mixed**: the ints of one read do not all hold the same value (the read saw part of a
//!   write), or hold a value nobody wrote;
//! * **stale**: all ints hold one value, but an older one than the writer had already
//!   released before the read began. The writer announces each released version in a
//!   one-sided counter on rank 0 (a window of its own, not the lock's); a reader fetches the
//!   counter before it reads, so "released before" is exact, not a guess from timing.
//!
//! Write `k` (k = 1, 2, ...) sets every int to `k`. With `--noncontig` the region interleaves
//! accessed ints with gap ints that hold a sentinel: the accesses are every other int (many
//! small pieces), and at the end the gaps must still hold the sentinel ("clobbered" counts
//! those that do not).
//!
//! With `--alt-file`, odd ranks open the file under that path: the same file through a second
//! client mount, which is where stale reads come from.
//!
//! [`FileBackend::None`] does plain I/O: no lock, no coherence work. It is the negative control
//! and is expected to report mixed or stale reads.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::files::{closing, lay_out, open_backend, settle, FileBackend, Opened};
use super::{mpi_library, requested_osc, Check, Outcome, Run};
use crate::collective::{agree_outcome, agree_result, split_path};
use crate::error::{Error, Result};
use crate::io::{Coherence, OpenOptions, ParallelFile};
use crate::pieces::Pieces;
use crate::sys::{LockKind, Op, Window};

/// What `check atomicity` does.
#[derive(Debug, Clone)]
pub struct AtomicityCheck {
    /// The file (created if missing; its first bytes are overwritten).
    pub file: PathBuf,
    /// The same file through another mount (another client): odd ranks use this path.
    pub alt_file: Option<PathBuf>,
    /// How the file is accessed.
    pub backend: FileBackend,
    /// Access every other int of the region (noncontiguous reads and writes).
    pub noncontig: bool,
    /// Grow the file instead: write `k` goes to a block of its own after the previous one, and
    /// each read reads the newest released block, past the end the file had when the reader
    /// last looked (the hazard of clients that cache the file's size).
    pub grow: bool,
    /// Writes of rank 0, and reads of every other rank.
    pub iters: u64,
    /// Ints in one access.
    pub ints: u64,
    /// Coherence strategy of the lock-based backend (default: chosen at open).
    pub coherence: Option<Coherence>,
    /// Data-sieving buffer (read and write) of the lock-based backends, in bytes. Small
    /// buffers (ROMIO's test uses about 1.1 KiB) make one noncontiguous access many windows.
    pub sieve_buffer: Option<usize>,
}

/// The report of `check atomicity` (rank 0).
#[derive(Debug, Serialize)]
pub struct AtomicityReport {
    /// Always "atomicity".
    pub check: &'static str,
    /// How the file was accessed.
    pub backend: FileBackend,
    /// Ranks.
    pub ranks: i32,
    /// Ints in one access.
    pub ints: u64,
    /// Whether the accesses were noncontiguous.
    pub noncontig: bool,
    /// Whether the file grew with every write ([`AtomicityCheck::grow`]).
    pub grow: bool,
    /// Writes of rank 0.
    pub iters: u64,
    /// See [`AtomicityCheck::sieve_buffer`].
    pub sieve_buffer: Option<usize>,
    /// The file.
    pub file: String,
    /// The second client's path.
    pub alt_file: Option<String>,
    /// Its file system type.
    pub fs_type: String,
    /// The coherence strategy (lock-based backend).
    pub coherence: Option<Coherence>,
    /// Writes made.
    pub writes: u64,
    /// Reads made.
    pub reads: u64,
    /// Reads that saw part of a write, or a value nobody wrote: must be 0.
    pub mixed_reads: u64,
    /// Reads older than a write released before they began: must be 0.
    pub stale_reads: u64,
    /// Gap ints (noncontiguous) that no longer hold their sentinel: must be 0.
    pub clobbered_ints: u64,
    /// Reads ([`AtomicityCheck::grow`]) that found the file ending before the block a writer
    /// had released: must be 0.
    pub short_reads: u64,
    /// Wall time of the reads and writes.
    pub seconds: f64,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// The MPI-IO implementation (MPI-IO).
    pub io_component: Option<String>,
    /// No mixed, stale or clobbered result.
    pub ok: bool,
}

/// The value gap ints hold with --noncontig.
const SENTINEL: i32 = -7;

/// The largest file `--grow` writes (16 GiB).
const MAX_GROWN_BYTES: u64 = 16 << 30;

impl Check for AtomicityCheck {
    type Report = AtomicityReport;
    type Prepared = AtomicityCheck;

    /// The access buffers and the region (twice: laid out and read back), and the sieve
    /// buffers.
    fn memory(&self, _ranks: i32) -> (u128, &'static str) {
        let bytes = {
            let access = u128::from(self.ints) * 4;
            let region = access * if self.noncontig { 2 } else { 1 };
            let sieve = self.sieve_buffer.map_or(
                (crate::io::sieve::DEFAULT_READ_BUFFER + crate::io::sieve::DEFAULT_WRITE_BUFFER)
                    as u128,
                |b| 2 * b as u128,
            );
            2 * region + 2 * access + sieve
        };
        (bytes, "--ints")
    }

    /// Refuses fewer than 2 ranks, a region beyond 1 GiB, and `--grow` with `--noncontig` or
    /// beyond its file size bound.
    fn validate(&self, ranks: i32) -> Result<()> {
        if ranks < 2 {
            return Err(Error::InvalidArgument(
                "check atomicity needs at least 2 ranks (one writer, readers); run it under \
                 mpirun -n 4"
                    .into(),
            ));
        }
        if self.grow && self.noncontig {
            return Err(Error::InvalidArgument(
                "--grow writes contiguous blocks: it does not combine with --noncontig".into(),
            ));
        }
        let grown = (u128::from(self.iters) * u128::from(self.ints)).saturating_mul(4);
        if self.grow && grown > u128::from(MAX_GROWN_BYTES) {
            return Err(Error::InvalidArgument(format!(
                "--grow with --iters {} x --ints {} would write {} bytes; at most {MAX_GROWN_BYTES}",
                self.iters, self.ints, grown
            )));
        }
        Layout::region(self.ints, self.noncontig).map(drop)
    }

    /// Opens nothing yet: the file is opened by every backend collectively, in the run.
    fn prepare<C: Communicator>(self, comm: &C) -> Result<AtomicityCheck> {
        self.validate(comm.size())?;
        Ok(self)
    }
}

impl Run for AtomicityCheck {
    type Report = AtomicityReport;

    /// Runs the check on every rank of `comm`. Rank 0 gets the report and passes
    /// if the backend is atomic or is the negative control; the others pass.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if an access, the layout or the file's teardown
    /// failed on some rank (the file is closed on every rank first).
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<AtomicityReport>> {
        let rank = comm.rank();
        let path = split_path(rank, &self.file, self.alt_file.as_deref());
        let layout = Layout::new(self.ints, self.noncontig)?;
        let mut options = OpenOptions {
            coherence: self.coherence,
            ..OpenOptions::default()
        };
        if let Some(bytes) = self.sieve_buffer {
            options.sieve.write_buffer = bytes;
            options.sieve.read_buffer = bytes;
        }
        if self.grow {
            // The file starts empty: rank 0 empties it before anyone opens it.
            let emptied = (rank == 0).then(|| empty_file(&self.file));
            agree_outcome(comm, "empty the file", emptied)?;
        }
        let Opened {
            file,
            fs_type,
            coherence,
            io_component,
        } = open_backend(comm, path, self.backend, &options, &[])?;
        let atomic = self.backend != FileBackend::None;
        let (tally, seconds) = closing(comm, file, |file| {
            // Rank 0 lays the region out (value 0, gaps SENTINEL); a growing file starts empty.
            let initial = if self.grow {
                Vec::new()
            } else {
                layout.initial()
            };
            lay_out(comm, file, &initial)?;
            if atomic {
                agree_result(comm, "set atomic mode", file.set_atomicity(true))?;
            }
            if self.noncontig {
                agree_result(
                    comm,
                    "set the file view",
                    file.prepare_pieces(&layout.access),
                )?;
            }
            // Word 0: versions released; word 1: the writer is done (whatever happened).
            let released = Window::allocate(comm, if rank == 0 { 2 } else { 0 })?;
            comm.barrier();
            let started = Instant::now();
            let accessed = self.access(comm, file, &layout, &released);
            // Every rank's accesses are over (the agreement waits for all): the window goes.
            let accessed = agree_result(comm, "access the file", accessed);
            let seconds = started.elapsed().as_secs_f64();
            let freed = agree_result(comm, "free the window", released.free());
            let mut tally = accessed?;
            freed?;
            if atomic {
                agree_result(comm, "leave atomic mode", file.set_atomicity(false))?;
            }
            settle(comm, file)?;
            if self.noncontig {
                agree_result(
                    comm,
                    "reset the file view",
                    file.prepare_pieces(&Pieces::default()),
                )?;
            }
            let region = if rank == 0 && self.noncontig {
                let mut region = vec![0u8; layout.region_bytes()];
                file.read_at(0, &mut region).map(|()| Some(region))
            } else {
                Ok(None)
            };
            if let Some(region) = agree_result(comm, "read the file back", region)? {
                tally.clobbered = layout.clobbered(&region);
            }
            Ok((tally, seconds))
        })?;

        let mut sums = [0u64; 6];
        comm.all_reduce_into(&tally.words()[..], &mut sums[..], SystemOperation::sum());
        let [writes, reads, mixed, stale, clobbered, short] = sums;
        if rank != 0 {
            return Ok(Outcome::quiet(true));
        }
        let ok = mixed == 0 && stale == 0 && clobbered == 0 && short == 0;
        // The negative control is expected to fail the check; only real backends fail.
        Ok(Outcome::reported(
            ok || !atomic,
            AtomicityReport {
                check: "atomicity",
                backend: self.backend,
                ranks: comm.size(),
                ints: self.ints,
                noncontig: self.noncontig,
                grow: self.grow,
                iters: self.iters,
                sieve_buffer: self.sieve_buffer,
                file: self.file.display().to_string(),
                alt_file: self.alt_file.as_ref().map(|p| p.display().to_string()),
                fs_type,
                coherence,
                writes,
                reads,
                mixed_reads: mixed,
                stale_reads: stale,
                clobbered_ints: clobbered,
                short_reads: short,
                seconds,
                mpi_library: mpi_library(),
                osc: requested_osc(),
                io_component,
                ok,
            },
        ))
    }
}

impl AtomicityCheck {
    /// The timed part on this rank: rank 0 writes version after version and announces each in
    /// `released`; the others read and judge. Local: an error ends this rank's part only.
    fn access(
        &self,
        comm: &impl Communicator,
        file: &mut dyn ParallelFile,
        layout: &Layout,
        released: &Window,
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        let block = layout.access_bytes() as u64;
        if comm.rank() == 0 {
            let written = (1..=self.iters).try_for_each(|k| {
                let value = i32::try_from(k).unwrap_or(i32::MAX);
                let data = layout.fill(value);
                if self.grow {
                    // Block k - 1, just past the end: the file grows.
                    file.write_at((k - 1) * block, &data)?;
                } else {
                    layout.write(file, &data)?;
                }
                // Announce version k only after the write (and its lock) is done.
                released.with_lock(0, LockKind::Exclusive, |e| e.accumulate(&[1], 0, Op::Sum))?;
                tally.writes += 1;
                Ok(())
            });
            // Readers of a growing file wait for versions: tell them there are no more.
            let done =
                released.with_lock(0, LockKind::Exclusive, |e| e.accumulate(&[1], 1, Op::Sum));
            written.and(done)?;
        } else if !self.grow {
            let mut buf = vec![0u8; layout.access_bytes()];
            for _ in 0..self.iters {
                let mut floor = 0u64;
                released.with_lock(0, LockKind::Shared, |e| e.atomic_read(&mut floor, 0))?;
                layout.read(file, &mut buf)?;
                tally.judge(&buf, floor, self.iters);
            }
        } else {
            // Each newly released block, read at once: it lies just past the end this
            // reader's client saw before.
            let mut buf = vec![0u8; layout.access_bytes()];
            let mut seen = 0u64;
            loop {
                let (mut floor, mut done) = (0u64, 0u64);
                released.with_lock(0, LockKind::Shared, |e| {
                    e.atomic_read(&mut floor, 0)?;
                    e.atomic_read(&mut done, 1)
                })?;
                if floor == seen {
                    if done != 0 {
                        break;
                    }
                    std::thread::yield_now();
                    continue;
                }
                seen = floor;
                match file.read_at((floor - 1) * block, &mut buf) {
                    Ok(()) => tally.judge_grown(&buf, floor),
                    Err(Error::ShortRead { .. }) => {
                        tally.reads += 1;
                        tally.short += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(tally)
    }
}

impl fmt::Display for AtomicityReport {
    /// One line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = if self.noncontig {
            " (noncontiguous)"
        } else if self.grow {
            " (growing file)"
        } else {
            ""
        };
        let short = if self.grow {
            format!(", {} short", self.short_reads)
        } else {
            String::new()
        };
        write!(
            f,
            "check atomicity: backend {:?}, {} ranks, {} ints{shape}, {} on {}: {} writes, {} \
             reads, {} mixed, {} stale{short}, {} clobbered, {:.2} s: {}",
            self.backend,
            self.ranks,
            self.ints,
            self.file,
            self.fs_type,
            self.writes,
            self.reads,
            self.mixed_reads,
            self.stale_reads,
            self.clobbered_ints,
            self.seconds,
            if self.ok { "OK" } else { "FAILED" }
        )
    }
}

/// Where the accessed ints are.
struct Layout {
    ints: u64,
    noncontig: bool,
    /// The pieces of one access (the whole region when contiguous).
    access: Pieces,
}

/// The largest region the check accesses (1 GiB): rank 0 lays it out and reads it back in
/// memory, and a noncontiguous access holds one piece per int.
const MAX_REGION_BYTES: u64 = 1 << 30;

impl Layout {
    /// The region's bytes, if the check allows them; nothing is built.
    fn region(ints: u64, noncontig: bool) -> Result<u64> {
        ints.checked_mul(if noncontig { 8 } else { 4 })
            .filter(|&bytes| bytes <= MAX_REGION_BYTES)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{ints} ints need more than the {MAX_REGION_BYTES} bytes the check allows"
                ))
            })
    }

    fn new(ints: u64, noncontig: bool) -> Result<Layout> {
        let region = Layout::region(ints, noncontig)?;
        let access = if noncontig {
            Pieces::strided(0, 4, 8, ints)?
        } else {
            Pieces::contiguous(0, region)?
        };
        Ok(Layout {
            ints,
            noncontig,
            access,
        })
    }

    fn access_bytes(&self) -> usize {
        usize::try_from(self.access.total_bytes()).unwrap_or(usize::MAX)
    }

    fn region_bytes(&self) -> usize {
        self.access_bytes() * if self.noncontig { 2 } else { 1 }
    }

    /// The region before the first write: accessed ints 0, gap ints the sentinel.
    fn initial(&self) -> Vec<u8> {
        let n = if self.noncontig {
            2 * self.ints
        } else {
            self.ints
        };
        (0..n)
            .flat_map(|i| {
                let gap = self.noncontig && i % 2 == 1;
                (if gap { SENTINEL } else { 0 }).to_le_bytes()
            })
            .collect()
    }

    /// The buffer of one access with every int `value`.
    fn fill(&self, value: i32) -> Vec<u8> {
        (0..self.ints).flat_map(|_| value.to_le_bytes()).collect()
    }

    fn write(&self, file: &mut dyn ParallelFile, data: &[u8]) -> Result<()> {
        if self.noncontig {
            file.write_pieces(&self.access, data)
        } else {
            file.write_at(0, data)
        }
    }

    fn read(&self, file: &mut dyn ParallelFile, buf: &mut [u8]) -> Result<()> {
        if self.noncontig {
            file.read_pieces(&self.access, buf)
        } else {
            file.read_at(0, buf)
        }
    }

    /// Gap ints of the whole region that no longer hold the sentinel.
    fn clobbered(&self, region: &[u8]) -> u64 {
        ints(region)
            .enumerate()
            .filter(|&(i, v)| i % 2 == 1 && v != SENTINEL)
            .count() as u64
    }
}

/// Rank 0's emptying of the file for `--grow` (created if missing).
fn empty_file(path: &std::path::Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map(drop)
        .map_err(|source| Error::Io {
            op: "empty",
            path: path.display().to_string(),
            source,
        })
}

fn ints(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

#[derive(Debug, Default)]
struct Tally {
    writes: u64,
    reads: u64,
    mixed: u64,
    stale: u64,
    clobbered: u64,
    short: u64,
}

impl Tally {
    /// Judges a read of the block that write `floor` appended (it holds `floor` in every int,
    /// and nothing else ever): anything else is stale (never-written zeros, or a cached hole)
    /// or mixed.
    fn judge_grown(&mut self, buf: &[u8], floor: u64) {
        self.reads += 1;
        let mut values = ints(buf);
        let Some(first) = values.next() else {
            return;
        };
        if !values.all(|v| v == first) {
            self.mixed += 1;
        } else if u64::try_from(first).ok() != Some(floor) {
            self.stale += 1;
        }
    }

    /// Judges one read: `floor` is the version released before the read began, `last` the
    /// last version the writer will write.
    fn judge(&mut self, buf: &[u8], floor: u64, last: u64) {
        self.reads += 1;
        let mut values = ints(buf);
        let Some(first) = values.next() else {
            return;
        };
        let uniform = values.all(|v| v == first);
        let known = u64::try_from(first).is_ok_and(|v| v <= last);
        if !uniform || !known {
            self.mixed += 1;
            if tracing::enabled!(tracing::Level::DEBUG) {
                let mut runs: Vec<(usize, i32)> = Vec::new();
                for (i, v) in ints(buf).enumerate() {
                    if runs.last().map_or(true, |&(_, last)| last != v) {
                        runs.push((i, v));
                    }
                }
                tracing::debug!(
                    floor,
                    ?runs,
                    "mixed read: (first int index, value) of each run"
                );
            }
        } else if (first as u64) < floor {
            self.stale += 1;
        }
    }

    fn words(&self) -> [u64; 6] {
        [
            self.writes,
            self.reads,
            self.mixed,
            self.stale,
            self.clobbered,
            self.short,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_reads() {
        let layout = Layout::new(4, false).unwrap();
        let mut t = Tally::default();
        t.judge(&layout.fill(3), 3, 10);
        assert_eq!((t.mixed, t.stale), (0, 0));
        t.judge(&layout.fill(2), 3, 10);
        assert_eq!((t.mixed, t.stale), (0, 1));
        let mut mixed = layout.fill(3);
        mixed[..4].copy_from_slice(&4i32.to_le_bytes());
        t.judge(&mixed, 0, 10);
        assert_eq!(t.mixed, 1);
        t.judge(&layout.fill(11), 0, 10);
        assert_eq!(t.mixed, 2);
        assert_eq!(t.reads, 4);
    }

    #[test]
    fn noncontig_layout_has_gaps() {
        let layout = Layout::new(3, true).unwrap();
        let region = layout.initial();
        assert_eq!(region.len(), 24);
        assert_eq!(layout.clobbered(&region), 0);
        let mut bad = region.clone();
        bad[4..8].copy_from_slice(&0i32.to_le_bytes());
        assert_eq!(layout.clobbered(&bad), 1);
    }
}

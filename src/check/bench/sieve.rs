//! `bench sieve`: strided noncontiguous writes, sieved or piece by piece.
//!
//! Pattern: ranks interleave. Rank `r` writes `--count` blocks of `--block` bytes, block `i`
//! at offset `r * block + i * stride`, so every stride holds one block of each rank (stride
//! must be at least `block * ranks`) and every sieve window of one rank covers blocks of all
//! the others: a sieved write must lock its extent to not erase them. One noncontiguous write
//! per repetition (`--reps`), all of it in the timed phase between barriers.
//!
//! * `sieve`: [`AtomicFile`](crate::io::AtomicFile) with write sieving always on ([`SievePolicy::Always`]): read a
//!   window, patch it, write it back, under an exclusive lock of the whole extent;
//! * `pieces`: [`AtomicFile`](crate::io::AtomicFile) with sieving off ([`SievePolicy::Never`]): one positional write
//!   per block, no lock (atomic mode is off);
//! * `mpiio`: the MPI library's MPI-IO with a file view of the blocks (`prepare_pieces`) and
//!   `romio_ds_write=enable`: ROMIO (`--mca io romio321`) then sieves under fcntl locks.
//!
//! After the timed phase every rank reads its blocks back (after sync, barrier, sync) and
//! compares them with what its last repetition wrote; a mismatch makes `verified` false and
//! the exit status non-zero.
//!
//! Without `--file`, rank 0 creates a file in the temporary directory (single node only),
//! removed afterwards.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use crate::check::files::{
    closing, lay_out, open_backend, settle, FileBackend, Setting, SharedFile,
};
use crate::check::{Check, Outcome, Run};
use crate::choice::choice;
use crate::collective::agree_result;
use crate::error::{Error, Result};
use crate::io::sieve::{SievePolicy, Stats};
use crate::io::{Coherence, OpenOptions};
use crate::pieces::Pieces;

choice! {
    /// How `bench sieve` writes.
    pub enum SieveMethod {
        /// AtomicFile, sieving always.
        Sieve = "sieve",
        /// AtomicFile, one write per block.
        Pieces = "pieces",
        /// MPI-IO with a file view (ROMIO sieves with `--mca io romio321`).
        Mpiio = "mpiio",
    }
}

/// What `bench sieve` does.
#[derive(Debug, Clone)]
pub struct SieveBench {
    /// How to write.
    pub method: SieveMethod,
    /// The file (created if missing; overwritten). Default: a file rank 0 creates in the
    /// temporary directory (single node only), removed afterwards.
    pub file: Option<PathBuf>,
    /// The same file through another mount (another client): odd ranks use this path.
    pub alt_file: Option<PathBuf>,
    /// Bytes of one block.
    pub block: u64,
    /// Distance between the blocks of one rank (at least block x ranks).
    pub stride: u64,
    /// Blocks per rank.
    pub count: u64,
    /// Repetitions (one noncontiguous write per rank each).
    pub reps: u64,
    /// Coherence strategy of sieve and pieces (default: chosen at open).
    pub coherence: Option<Coherence>,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
pub struct SieveBenchReport {
    /// Always "sieve".
    pub bench: &'static str,
    /// How the blocks were written.
    pub method: SieveMethod,
    /// Ranks.
    pub ranks: i32,
    /// Bytes of one block.
    pub block: u64,
    /// Distance between the blocks of one rank.
    pub stride: u64,
    /// Blocks per rank.
    pub count: u64,
    /// Repetitions.
    pub reps: u64,
    /// Payload written by all ranks in all repetitions.
    pub bytes: u64,
    /// Wall time of the timed phase, barrier to barrier.
    pub seconds: f64,
    /// `bytes` per second, in 10^6 bytes.
    pub mb_per_s: f64,
    /// Sieve (`sieve`, `pieces`): positional I/O calls of all ranks and repetitions.
    pub io_calls: Option<u64>,
    /// Sieve (`sieve`, `pieces`): sieve windows of all ranks and repetitions.
    pub windows: Option<u64>,
    /// Sieve (`sieve`, `pieces`): bytes read (sieve windows) by all ranks and repetitions.
    pub bytes_read: Option<u64>,
    /// Sieve (`sieve`, `pieces`): bytes written by all ranks and repetitions.
    pub bytes_written: Option<u64>,
    /// Blocks whose bytes read back differ from the last repetition's.
    pub mismatched_blocks: u64,
    /// No block mismatched.
    pub verified: bool,
    /// What it ran on.
    #[serde(flatten)]
    pub setting: Setting,
}

impl SieveBench {
    /// The file's extent and one rank's payload in bytes, checked against `ranks`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for overlapping blocks or sizes beyond memory.
    fn sizes(&self, ranks: i32) -> Result<(usize, usize)> {
        let ranks = u64::try_from(ranks).unwrap_or(1);
        let needed = self.block.checked_mul(ranks);
        if needed.map_or(true, |n| self.stride < n) {
            return Err(Error::InvalidArgument(format!(
                "--stride {} is less than --block {} x {} ranks: the ranks' blocks would overlap",
                self.stride, self.block, ranks
            )));
        }
        let extent = self
            .stride
            .checked_mul(self.count)
            .and_then(|e| usize::try_from(e).ok())
            .ok_or_else(|| Error::InvalidArgument("--stride x --count is too large".into()))?;
        let payload = self
            .block
            .checked_mul(self.count)
            .and_then(|p| usize::try_from(p).ok())
            .ok_or_else(|| Error::InvalidArgument("--block x --count is too large".into()))?;
        Ok((extent, payload))
    }
}

impl Check for SieveBench {
    type Report = SieveBenchReport;
    type Prepared = SieveBench;

    /// The extent (laid out by rank 0), the written and read-back pieces, the sieve buffers.
    fn memory(&self, _ranks: i32) -> (u128, &'static str) {
        let bytes = {
            // Saturating: u64 x u64 fills u128, and the sum can pass it.
            let extent = u128::from(self.stride) * u128::from(self.count);
            let payload = u128::from(self.block) * u128::from(self.count);
            extent
                .saturating_add(payload.saturating_mul(2))
                .saturating_add(
                    (crate::io::sieve::DEFAULT_READ_BUFFER + crate::io::sieve::DEFAULT_WRITE_BUFFER)
                        as u128,
                )
        };
        (bytes, "--stride x --count")
    }

    /// Refuses overlapping blocks and sizes beyond memory.
    fn validate(&self, ranks: i32) -> Result<()> {
        self.sizes(ranks).map(drop)
    }

    /// Opens nothing yet: the file is opened by every backend collectively, in the run.
    fn prepare<C: Communicator>(self, comm: &C) -> Result<SieveBench> {
        self.validate(comm.size())?;
        Ok(self)
    }
}

impl Run for SieveBench {
    type Report = SieveBenchReport;

    /// Runs the benchmark on every rank of `comm`. Every rank passes if every block read back
    /// as written; rank 0 gets the report.
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<SieveBenchReport>> {
        let (extent, payload) = self.sizes(comm.size())?;
        let ranks = u64::try_from(comm.size()).unwrap_or(1);
        let rank = u64::try_from(comm.rank()).unwrap_or(0);
        let pieces = Pieces::strided(rank * self.block, self.block, self.stride, self.count)?;

        let shared = SharedFile::resolve(comm, self.file.as_deref(), "sieve")?;
        let measured = self.measure(comm, &shared, &pieces, extent, payload);
        // Every rank is here: the errors of `measure` are agreed.
        shared.remove(comm);
        let Measured {
            setting,
            sum,
            seconds,
            mismatched,
        } = measured?;

        let mut sums = [0u64; 5];
        let mine = sum.map_or([0; 4], |s| {
            [s.io_calls, s.windows, s.bytes_read, s.bytes_written]
        });
        let words = [mismatched, mine[0], mine[1], mine[2], mine[3]];
        comm.all_reduce_into(&words[..], &mut sums[..], SystemOperation::sum());
        let verified = sums[0] == 0;
        if comm.rank() != 0 {
            return Ok(Outcome::quiet(verified));
        }
        let [mismatched, io_calls, windows, bytes_read, bytes_written] = sums;
        let tracked = sum.is_some();
        let bytes = ranks * self.count * self.block * self.reps;
        Ok(Outcome::reported(
            verified,
            SieveBenchReport {
                bench: "sieve",
                method: self.method,
                ranks: comm.size(),
                block: self.block,
                stride: self.stride,
                count: self.count,
                reps: self.reps,
                bytes,
                seconds,
                mb_per_s: if seconds > 0.0 {
                    bytes as f64 / seconds / 1e6
                } else {
                    0.0
                },
                io_calls: tracked.then_some(io_calls),
                windows: tracked.then_some(windows),
                bytes_read: tracked.then_some(bytes_read),
                bytes_written: tracked.then_some(bytes_written),
                mismatched_blocks: mismatched,
                verified,
                setting,
            },
        ))
    }
}

/// The sum of two writes' statistics (the method and reason of the last).
fn add(sum: Option<Stats>, s: &Stats) -> Stats {
    match sum {
        None => *s,
        Some(t) => Stats {
            windows: t.windows + s.windows,
            io_calls: t.io_calls + s.io_calls,
            bytes_read: t.bytes_read + s.bytes_read,
            bytes_written: t.bytes_written + s.bytes_written,
            ..*s
        },
    }
}

/// What one rank measured.
struct Measured {
    setting: Setting,
    sum: Option<Stats>,
    seconds: f64,
    mismatched: u64,
}

impl SieveBench {
    /// Opens `shared`, writes `pieces` `reps` times (timed), reads them back and closes the
    /// file (collective; every error is agreed by every rank).
    fn measure(
        &self,
        comm: &impl Communicator,
        shared: &SharedFile,
        pieces: &Pieces,
        extent: usize,
        payload: usize,
    ) -> Result<Measured> {
        let rank = u64::try_from(comm.rank()).unwrap_or(0);
        let path = shared.path_for(comm.rank(), self.alt_file.as_deref());
        let mut options = OpenOptions {
            coherence: self.coherence,
            ..OpenOptions::default()
        };
        // Reads (the read-back) stay automatic; only the writes are measured.
        options.sieve.write = match self.method {
            SieveMethod::Pieces => SievePolicy::Never,
            _ => SievePolicy::Always,
        };
        let backend = match self.method {
            SieveMethod::Sieve | SieveMethod::Pieces => FileBackend::Rma,
            SieveMethod::Mpiio => FileBackend::Mpiio,
        };
        let hints = [("romio_ds_write", "enable")];
        let opened = open_backend(comm, &path, backend, &options, &hints)?;
        let setting = Setting::new(shared, self.alt_file.as_deref(), &opened);
        closing(comm, opened.file, |file| {
            // Rank 0 zeroes the whole extent first, so that sieve windows never read past the
            // end.
            lay_out(comm, file, &vec![0u8; extent])?;
            agree_result(comm, "set the file view", file.prepare_pieces(pieces))?;
            let mut data = vec![0u8; payload];
            let mut sum: Option<Stats> = None;
            comm.barrier();
            let started = Instant::now();
            let written = (0..self.reps).try_for_each(|rep| {
                fill(&mut data, rank, rep, self.block);
                file.write_pieces(pieces, &data)?;
                if let Some(s) = file.last_noncontig() {
                    sum = Some(add(sum, s));
                }
                Ok(())
            });
            let written = agree_result(comm, "write", written);
            let seconds = started.elapsed().as_secs_f64();
            written?;

            // Read back what this rank wrote last.
            settle(comm, file)?;
            let mut back = vec![0u8; payload];
            agree_result(comm, "read back", file.read_pieces(pieces, &mut back))?;
            let block = usize::try_from(self.block).unwrap_or(usize::MAX);
            let mismatched = data
                .chunks(block)
                .zip(back.chunks(block))
                .filter(|(a, b)| a != b)
                .count() as u64;
            agree_result(
                comm,
                "reset the file view",
                file.prepare_pieces(&Pieces::default()),
            )?;
            Ok(Measured {
                setting,
                sum,
                seconds,
                mismatched,
            })
        })
    }
}

impl fmt::Display for SieveBenchReport {
    /// One line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        write!(
            f,
            "bench sieve: method {:?}, {} ranks x {} blocks of {} B at stride {} x {} reps on {} \
             ({}): {:.3} s, {:.2} MB/s, {} I/O calls, {} windows; {} mismatched blocks: {}",
            self.method,
            self.ranks,
            self.count,
            self.block,
            self.stride,
            self.reps,
            self.setting.file,
            self.setting.fs_type,
            self.seconds,
            self.mb_per_s,
            opt(self.io_calls),
            opt(self.windows),
            self.mismatched_blocks,
            if self.verified { "OK" } else { "FAILED" }
        )
    }
}

/// The bytes of one repetition: block `i` of rank `r` in repetition `rep` differs from its
/// neighbours and from the same block in the previous repetition.
fn fill(data: &mut [u8], rank: u64, rep: u64, block: u64) {
    let block = usize::try_from(block).unwrap_or(usize::MAX).max(1);
    for (i, chunk) in data.chunks_mut(block).enumerate() {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = ((rank + 1) * 37 + (i as u64) * 13 + (j as u64) + rep * 5) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_and_neighbours_differ() {
        let mut a = vec![0u8; 8];
        let mut b = vec![0u8; 8];
        fill(&mut a, 0, 0, 4);
        fill(&mut b, 0, 1, 4);
        assert_ne!(a, b);
        assert_ne!(a[..4], a[4..]);
        fill(&mut b, 1, 0, 4);
        assert_ne!(a, b);
    }
}

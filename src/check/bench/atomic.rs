//! `bench atomic`: overlapping 4 KiB writes and reads from every rank, through one of
//! the backends `check atomicity` compares.
//!
//! Workload: every rank does `--ops` accesses of 4 KiB at offsets `k * 2048` (k chosen at
//! random, seeded per rank) within a 64 KiB region, so accesses of different ranks overlap.
//! `--mix mixed` (the default) makes each access a write or a read with equal probability,
//! `writes` only writes, `reads` only reads. Each write fills its 4 KiB with one byte value.
//!
//! * `rma`: [`AtomicFile`](crate::io::AtomicFile) in atomic mode (the one-sided lock service, coherence work on
//!   distributed file systems);
//! * `mpiio`: the MPI library's MPI-IO in atomic mode (ROMIO under `--mca io romio321`,
//!   which takes fcntl locks; Open MPI 4's default ompio ignores atomic mode);
//! * `nonatomic` (alias `none`): [`AtomicFile`](crate::io::AtomicFile) with atomic mode and write sieving off: plain
//!   positional I/O, no lock, no coherence work. The floor the atomic backends are measured against.
//!
//! The timed phase runs between barriers. Per-rank latency (`us_per_op`) is the phase's wall
//! time divided by the accesses of one rank; `write_us` and `read_us` are the means of the
//! individually timed accesses of each kind over all ranks. Reads are checked as they go:
//! in atomic mode every 2 KiB-aligned half of a read must hold one byte value (each write
//! covers whole halves); reads that do not are counted as `torn_reads` (reported, not failed:
//! this is a benchmark; `brlock check atomicity` is the check).
//!
//! Without `--file`, rank 0 creates a file in the temporary directory and tells the others its
//! path (so all ranks must share that directory: one node); it is removed afterwards.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use crate::check::files::{closing, lay_out, open_backend, FileBackend, Setting, SharedFile};
use crate::check::workload::Rng;
use crate::check::{Check, Outcome, Run};
use crate::choice::choice;
use crate::collective::agree_result;
use crate::error::Result;
use crate::io::sieve::SievePolicy;
use crate::io::{Coherence, OpenOptions, ParallelFile};

/// Bytes of one access.
const ACCESS: usize = 4096;
/// Offsets are multiples of this.
const ALIGN: u64 = 2048;
/// Bytes of the region all accesses fall in.
const REGION: u64 = 64 * 1024;
choice! {
    /// Which accesses `bench atomic` makes.
    pub enum Mix {
        /// Writes and reads with equal probability.
        Mixed = "mixed",
        /// Writes only ("atomic writes").
        Writes = "writes",
        /// Reads only.
        Reads = "reads",
    }
}

/// What `bench atomic` does.
#[derive(Debug, Clone)]
pub struct AtomicBench {
    /// How the file is accessed ([`FileBackend::None`]: plain I/O, no lock, no atomic mode).
    pub backend: FileBackend,
    /// The file (created if missing; its first 64 KiB are overwritten). Default: a file rank
    /// 0 creates in the temporary directory (single node only), removed afterwards.
    pub file: Option<PathBuf>,
    /// The same file through another mount (another client): odd ranks use this path.
    pub alt_file: Option<PathBuf>,
    /// Accesses per rank.
    pub ops: u64,
    /// Which accesses to make.
    pub mix: Mix,
    /// Seed of the offsets and of the write/read choice.
    pub seed: u64,
    /// Coherence strategy of the lock-based backend (default: chosen at open).
    pub coherence: Option<Coherence>,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
pub struct AtomicBenchReport {
    /// Always "atomic".
    pub bench: &'static str,
    /// `rma`, `mpiio` or `nonatomic`.
    pub backend: &'static str,
    /// Which accesses were made.
    pub mix: Mix,
    /// Ranks.
    pub ranks: i32,
    /// Accesses of all ranks.
    pub ops: u64,
    /// Accesses per rank.
    pub ops_per_rank: u64,
    /// Writes of all ranks.
    pub writes: u64,
    /// Reads of all ranks.
    pub reads: u64,
    /// Wall time of the timed phase, barrier to barrier.
    pub seconds: f64,
    /// `seconds` per access of one rank, in microseconds.
    pub us_per_op: f64,
    /// Accesses of all ranks per second.
    pub ops_per_s: f64,
    /// Mean time of one write (all ranks), microseconds; `None` without writes.
    pub write_us: Option<f64>,
    /// Mean time of one read (all ranks), microseconds; `None` without reads.
    pub read_us: Option<f64>,
    /// Reads with a 2 KiB half holding more than one byte value.
    pub torn_reads: u64,
    /// Whether atomic mode was on.
    pub atomic: bool,
    /// What it ran on.
    #[serde(flatten)]
    pub setting: Setting,
    /// Seed of the offsets.
    pub seed: u64,
}

impl Check for AtomicBench {
    type Report = AtomicBenchReport;
    type Prepared = AtomicBench;

    /// Opens nothing yet: the file is opened by every backend collectively, in the run.
    fn prepare<C: Communicator>(self, _comm: &C) -> Result<AtomicBench> {
        Ok(self)
    }
}

impl Run for AtomicBench {
    type Report = AtomicBenchReport;

    /// Runs the benchmark on every rank of `comm`; rank 0 gets the report. Every rank passes
    /// (torn reads are reported, not failed: `check atomicity` is the check).
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<AtomicBenchReport>> {
        let shared = SharedFile::resolve(comm, self.file.as_deref(), "atomic")?;
        let measured = self.measure(comm, &shared);
        // Every rank is here: the errors of `measure` are agreed.
        shared.remove(comm);
        let (setting, tally, seconds) = measured?;
        let atomic = self.backend != FileBackend::None;

        let mut sums = [0u64; 5];
        comm.all_reduce_into(&tally.words()[..], &mut sums[..], SystemOperation::sum());
        if comm.rank() != 0 {
            return Ok(Outcome::quiet(true));
        }
        let [writes, reads, write_ns, read_ns, torn] = sums;
        let ops = writes + reads;
        let mean_us = |ns: u64, n: u64| (n > 0).then(|| ns as f64 / n as f64 / 1e3);
        Ok(Outcome::reported(
            true,
            AtomicBenchReport {
                bench: "atomic",
                backend: backend_name(self.backend),
                mix: self.mix,
                ranks: comm.size(),
                ops,
                ops_per_rank: self.ops,
                writes,
                reads,
                seconds,
                us_per_op: seconds * 1e6 / self.ops as f64,
                ops_per_s: if seconds > 0.0 {
                    ops as f64 / seconds
                } else {
                    0.0
                },
                write_us: mean_us(write_ns, writes),
                read_us: mean_us(read_ns, reads),
                torn_reads: torn,
                atomic,
                setting,
                seed: self.seed,
            },
        ))
    }
}

impl AtomicBench {
    /// Opens `shared`, runs the timed accesses and closes the file (collective; every error is
    /// agreed by every rank).
    fn measure(
        &self,
        comm: &impl Communicator,
        shared: &SharedFile,
    ) -> Result<(Setting, Tally, f64)> {
        let path = shared.path_for(comm.rank(), self.alt_file.as_deref());
        let mut options = OpenOptions {
            coherence: self.coherence,
            ..OpenOptions::default()
        };
        let atomic = self.backend != FileBackend::None;
        if !atomic {
            // The floor: plain positional writes. Without write sieving no rank rewrites gaps,
            // so plain writes need no lock (see `AtomicFile::write_at`).
            options.sieve.write = SievePolicy::Never;
        }
        let opened = open_backend(comm, &path, self.backend, &options, &[])?;
        let setting = Setting::new(shared, self.alt_file.as_deref(), &opened);
        let (tally, seconds) = closing(comm, opened.file, |file| {
            lay_out(comm, file, &vec![0u8; REGION as usize])?;
            if atomic {
                agree_result(comm, "set atomic mode", file.set_atomicity(true))?;
            }
            comm.barrier();
            let started = Instant::now();
            let accessed = self.access(comm.rank(), file);
            let accessed = agree_result(comm, "access the file", accessed);
            let seconds = started.elapsed().as_secs_f64();
            let tally = accessed?;
            if atomic {
                agree_result(comm, "leave atomic mode", file.set_atomicity(false))?;
            }
            Ok((tally, seconds))
        })?;
        Ok((setting, tally, seconds))
    }

    /// This rank's timed accesses (local: an error ends this rank's part only).
    fn access(&self, rank: i32, file: &mut dyn ParallelFile) -> Result<Tally> {
        let rank = usize::try_from(rank).unwrap_or(0);
        let mut rng = Rng::new(self.seed, rank);
        let slots = (REGION - ACCESS as u64) / ALIGN + 1;
        let mut buf = vec![0u8; ACCESS];
        let mut tally = Tally::default();
        for i in 0..self.ops {
            let offset = rng.below(slots) * ALIGN;
            let write = match self.mix {
                Mix::Writes => true,
                Mix::Reads => false,
                Mix::Mixed => rng.next_u64() & 1 == 0,
            };
            let t = Instant::now();
            if write {
                // Values 1..=255 by rank and sequence, so that overlapping writes differ.
                let value = (((rank as u64) * 97 + i) % 255 + 1) as u8;
                buf.fill(value);
                file.write_at(offset, &buf)?;
                tally.writes += 1;
                tally.write_ns += t.elapsed().as_nanos() as u64;
            } else {
                file.read_at(offset, &mut buf)?;
                tally.reads += 1;
                tally.read_ns += t.elapsed().as_nanos() as u64;
                if buf.chunks(ALIGN as usize).any(|half| !uniform(half)) {
                    tally.torn += 1;
                }
            }
        }
        Ok(tally)
    }
}

impl fmt::Display for AtomicBenchReport {
    /// One line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        write!(
            f,
            "bench atomic: backend {}, {:?}, {} ranks x {} ops on {} ({}): {:.3} s, {:.1} us/op \
             per rank, {:.0} ops/s; write {} us, read {} us; {} torn reads",
            self.backend,
            self.mix,
            self.ranks,
            self.ops_per_rank,
            self.setting.file,
            self.setting.fs_type,
            self.seconds,
            self.us_per_op,
            self.ops_per_s,
            opt(self.write_us),
            opt(self.read_us),
            self.torn_reads,
        )
    }
}

/// The name reports use: `none` is `nonatomic` here.
fn backend_name(b: FileBackend) -> &'static str {
    match b {
        FileBackend::Rma => "rma",
        FileBackend::Mpiio => "mpiio",
        FileBackend::None => "nonatomic",
    }
}

fn uniform(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == bytes[0])
}

#[derive(Debug, Default)]
struct Tally {
    writes: u64,
    reads: u64,
    write_ns: u64,
    read_ns: u64,
    torn: u64,
}

impl Tally {
    fn words(&self) -> [u64; 5] {
        [
            self.writes,
            self.reads,
            self.write_ns,
            self.read_ns,
            self.torn,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_stay_in_the_region_and_overlap() {
        let slots = (REGION - ACCESS as u64) / ALIGN + 1;
        assert_eq!((slots - 1) * ALIGN + ACCESS as u64, REGION);
        assert!(ALIGN < ACCESS as u64);
    }

    #[test]
    fn uniform_halves() {
        assert!(uniform(&[3, 3, 3]));
        assert!(!uniform(&[3, 4, 3]));
    }
}

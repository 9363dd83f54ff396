//! `brlock bench sieve`: strided noncontiguous writes, sieved or piece by piece.
//!
//! Pattern: ranks interleave. Rank `r` writes `--count` blocks of `--block` bytes, block `i`
//! at offset `r * block + i * stride`, so every stride holds one block of each rank (stride
//! must be at least `block * ranks`) and every sieve window of one rank covers blocks of all
//! the others: a sieved write must lock its extent to not erase them. One noncontiguous write
//! per repetition (`--reps`), all of it in the timed phase between barriers.
//!
//! * `sieve`: [`AtomicFile`] with write sieving always on ([`SievePolicy::Always`]): read a
//!   window, patch it, write it back, under an exclusive lock of the whole extent;
//! * `pieces`: [`AtomicFile`] with sieving off ([`SievePolicy::Never`]): one positional write
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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use serde::Serialize;

use super::bench_atomic::{Setting, SharedFile};
use super::check_atomicity::{lay_out, open_mpiio, open_rma, settle, Opened};
use super::{emit, emit_json};
use brlock::io::mpiio::MpiIoFile;
use brlock::io::sieve::{SievePolicy, Stats};
use brlock::io::{AtomicFile, Coherence, OpenOptions, ParallelFile, Pieces};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// How `bench sieve` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SieveMethod {
    /// AtomicFile, sieving always.
    Sieve,
    /// AtomicFile, one write per block.
    Pieces,
    /// MPI-IO with a file view (ROMIO sieves with `--mca io romio321`).
    Mpiio,
}

/// Options of `brlock bench sieve`.
#[derive(Debug, Args)]
pub struct SieveBenchArgs {
    /// How to write.
    #[arg(long, value_enum, default_value_t = SieveMethod::Sieve)]
    pub method: SieveMethod,
    /// The file to use (created if missing; overwritten). Default: a file rank 0 creates in
    /// the temporary directory (single node only), removed afterwards.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH", requires = "file")]
    pub alt_file: Option<PathBuf>,
    /// Bytes of one block.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    pub block: u64,
    /// Distance between the blocks of one rank (at least block x ranks).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub stride: u64,
    /// Blocks per rank.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    pub count: u64,
    /// Repetitions (one noncontiguous write per rank each).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub reps: u64,
    /// Coherence strategy of sieve and pieces (default: chosen from the file system type).
    #[arg(long, value_enum)]
    pub coherence: Option<Coherence>,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
struct Report {
    /// Always "sieve".
    bench: &'static str,
    method: SieveMethod,
    ranks: i32,
    block: u64,
    stride: u64,
    count: u64,
    reps: u64,
    /// Payload written by all ranks in all repetitions.
    bytes: u64,
    /// Wall time of the timed phase, barrier to barrier.
    seconds: f64,
    /// `bytes` per second, in 10^6 bytes.
    mb_per_s: f64,
    /// Sieve (`sieve`, `pieces`): positional I/O calls of all ranks and repetitions.
    io_calls: Option<u64>,
    /// Sieve (`sieve`, `pieces`): sieve windows of all ranks and repetitions.
    windows: Option<u64>,
    /// Sieve (`sieve`, `pieces`): bytes read (sieve windows) by all ranks and repetitions.
    bytes_read: Option<u64>,
    /// Sieve (`sieve`, `pieces`): bytes written by all ranks and repetitions.
    bytes_written: Option<u64>,
    /// Blocks whose bytes read back differ from the last repetition's.
    mismatched_blocks: u64,
    verified: bool,
    /// What it ran on.
    #[serde(flatten)]
    setting: Setting,
}

/// Runs `brlock bench sieve` on every rank.
///
/// # Errors
/// I/O, MPI and lock errors; bad arguments.
pub fn run(rt: &Runtime, args: &SieveBenchArgs) -> Result<ExitCode> {
    let world = rt.world();
    let ranks = u64::try_from(rt.size()).unwrap_or(1);
    let rank = u64::try_from(rt.rank()).unwrap_or(0);
    let needed = args.block.checked_mul(ranks);
    if needed.map_or(true, |n| args.stride < n) {
        return Err(Error::InvalidArgument(format!(
            "--stride {} is less than --block {} x {} ranks: the ranks' blocks would overlap",
            args.stride, args.block, ranks
        )));
    }
    let pieces = Pieces::strided(rank * args.block, args.block, args.stride, args.count)?;
    let extent = args
        .stride
        .checked_mul(args.count)
        .filter(|&e| usize::try_from(e).is_ok())
        .ok_or_else(|| Error::InvalidArgument("--stride x --count is too large".into()))?;
    let payload = usize::try_from(pieces.total_bytes())
        .map_err(|_| Error::InvalidArgument("--block x --count is too large".into()))?;

    let shared = SharedFile::resolve(rt, args.file.as_deref(), "sieve")?;
    let path = shared.path_for(rt.rank(), args.alt_file.as_deref());
    let mut options = OpenOptions {
        coherence: args.coherence,
        ..OpenOptions::default()
    };
    // Reads (the read-back) stay automatic; only the writes are measured.
    options.sieve.write = match args.method {
        SieveMethod::Pieces => SievePolicy::Never,
        _ => SievePolicy::Always,
    };
    let Opened {
        mut file,
        fs_type,
        coherence,
        io_component,
    } = match args.method {
        SieveMethod::Sieve | SieveMethod::Pieces => open_rma(world, &path, &options)?
            .map(|file| Box::new(Tracked { file, sum: None }) as Box<dyn BenchFile>),
        SieveMethod::Mpiio => open_mpiio(world, &path, &[("romio_ds_write", "enable")])?
            .map(|f| Box::new(f) as Box<dyn BenchFile>),
    };
    // Rank 0 zeroes the whole extent first, so that sieve windows never read past the end.
    lay_out(world, file.as_mut(), &vec![0u8; extent as usize])?;
    file.prepare_pieces(&pieces)?;

    let mut data = vec![0u8; payload];
    world.barrier();
    let started = Instant::now();
    for rep in 0..args.reps {
        fill(&mut data, rank, rep, args.block);
        file.write_pieces(&pieces, &data)?;
    }
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();
    let stats = file.sieve_totals();

    // Read back what this rank wrote last.
    settle(world, file.as_mut())?;
    let mut back = vec![0u8; payload];
    file.read_pieces(&pieces, &mut back)?;
    let block = usize::try_from(args.block).unwrap_or(usize::MAX);
    let mismatched = data
        .chunks(block)
        .zip(back.chunks(block))
        .filter(|(a, b)| a != b)
        .count() as u64;
    file.prepare_pieces(&Pieces::default())?;
    drop(file);
    shared.remove(rt);

    let mut sums = [0u64; 5];
    let mine = stats.map_or([0; 4], |s| {
        [s.io_calls, s.windows, s.bytes_read, s.bytes_written]
    });
    let words = [mismatched, mine[0], mine[1], mine[2], mine[3]];
    world.all_reduce_into(&words[..], &mut sums[..], SystemOperation::sum());
    if rt.rank() != 0 {
        return Ok(if sums[0] == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let [mismatched, io_calls, windows, bytes_read, bytes_written] = sums;
    let tracked = stats.is_some();
    let bytes = ranks * args.count * args.block * args.reps;
    let report = Report {
        bench: "sieve",
        method: args.method,
        ranks: rt.size(),
        block: args.block,
        stride: args.stride,
        count: args.count,
        reps: args.reps,
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
        verified: mismatched == 0,
        setting: Setting::new(
            rt,
            &shared,
            args.alt_file.as_deref(),
            fs_type,
            coherence,
            io_component,
        ),
    };
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&format!(
            "bench sieve: method {:?}, {} ranks x {} blocks of {} B at stride {} x {} reps on {} \
             ({}): {:.3} s, {:.2} MB/s, {} I/O calls, {} windows; {} mismatched blocks: {}",
            args.method,
            report.ranks,
            args.count,
            args.block,
            args.stride,
            args.reps,
            report.setting.file,
            report.setting.fs_type,
            seconds,
            report.mb_per_s,
            report
                .io_calls
                .map_or_else(|| "-".into(), |v| v.to_string()),
            report.windows.map_or_else(|| "-".into(), |v| v.to_string()),
            mismatched,
            if report.verified { "OK" } else { "FAILED" }
        ))?;
    }
    Ok(if report.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

/// Sieve statistics of a backend's noncontiguous writes, summed.
trait SieveTotals {
    /// The sum of every write's [`Stats`] so far; `None` if the backend keeps none.
    fn sieve_totals(&self) -> Option<Stats> {
        None
    }
}

/// An [`AtomicFile`] that adds up the [`Stats`] of its noncontiguous writes.
struct Tracked {
    file: AtomicFile,
    sum: Option<Stats>,
}

impl SieveTotals for Tracked {
    fn sieve_totals(&self) -> Option<Stats> {
        self.sum
    }
}

impl SieveTotals for MpiIoFile {}

/// A [`ParallelFile`] that may report sieve statistics.
trait BenchFile: ParallelFile + SieveTotals {}
impl<T: ParallelFile + SieveTotals> BenchFile for T {}

impl ParallelFile for Tracked {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file.write_at(offset, data)
    }
    fn read_pieces(&mut self, pieces: &Pieces, buf: &mut [u8]) -> Result<()> {
        self.file.read_pieces(pieces, buf)
    }
    fn write_pieces(&mut self, pieces: &Pieces, data: &[u8]) -> Result<()> {
        self.file.write_pieces(pieces, data)?;
        if let Some(s) = self.file.last_noncontig() {
            self.sum = Some(match self.sum {
                None => *s,
                Some(t) => Stats {
                    windows: t.windows + s.windows,
                    io_calls: t.io_calls + s.io_calls,
                    bytes_read: t.bytes_read + s.bytes_read,
                    bytes_written: t.bytes_written + s.bytes_written,
                    ..*s
                },
            });
        }
        Ok(())
    }
    fn set_atomicity(&mut self, atomic: bool) -> Result<()> {
        self.file.set_atomicity(atomic)
    }
    fn atomicity(&self) -> bool {
        self.file.atomicity()
    }
    fn sync(&mut self) -> Result<()> {
        self.file.sync()
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

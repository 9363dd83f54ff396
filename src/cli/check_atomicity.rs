//! `brlock check atomicity`: in the spirit of ROMIO's atomicity test, rank 0 rewrites a region
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
//! `--backend none` does plain I/O: no lock, no coherence work. It is the negative control and
//! is expected to report mixed or stale reads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::{emit, emit_json, library_summary, or_abort, report_error, requested_osc};
use brlock::io::mpiio::MpiIoFile;
use brlock::io::{AtomicFile, Coherence, OpenOptions, ParallelFile, Pieces};
use brlock::runtime::Runtime;
use brlock::sys::{LockKind, Op, Window};
use brlock::{Error, Result};

/// The file backends `check atomicity` and `bench atomic` compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AtomicBackend {
    /// POSIX I/O with atomic mode over the one-sided lock service.
    Rma,
    /// MPI-IO (`MPI_File_set_atomicity`); pick ROMIO with `mpirun --mca io romio321`.
    Mpiio,
    /// Plain POSIX I/O: no lock, no coherence work (the negative control; `bench atomic`
    /// calls it `nonatomic`).
    #[value(alias = "nonatomic")]
    None,
}

/// A file opened through one of the backends, with what reports say about it.
pub(super) struct Opened<F> {
    /// The file.
    pub(super) file: F,
    /// Its file system type (`unknown` if it cannot be told).
    pub(super) fs_type: String,
    /// The coherence strategy, for the lock-based backend.
    pub(super) coherence: Option<Coherence>,
    /// The MPI-IO implementation, for MPI-IO.
    pub(super) io_component: Option<String>,
}

/// Opens `path` as an [`AtomicFile`] over the one-sided lock service (collective).
///
/// # Errors
/// As [`AtomicFile::open`].
pub(super) fn open_rma(
    world: &impl Communicator,
    path: &Path,
    options: &OpenOptions,
) -> Result<Opened<AtomicFile>> {
    let f = AtomicFile::open(world, path, options)?;
    Ok(Opened {
        fs_type: f.fs_type().to_string(),
        coherence: Some(f.coherence()),
        io_component: None,
        file: f,
    })
}

/// Opens `path` with MPI-IO, passing `hints` (collective).
///
/// # Errors
/// As [`MpiIoFile::open`].
pub(super) fn open_mpiio(
    world: &impl Communicator,
    path: &Path,
    hints: &[(&str, &str)],
) -> Result<Opened<MpiIoFile>> {
    let f = MpiIoFile::open(world, path, hints)?;
    Ok(Opened {
        fs_type: brlock::io::coherence::fs_type(path).unwrap_or_else(|| "unknown".into()),
        coherence: None,
        io_component: Some(f.implementation().to_string()),
        file: f,
    })
}

/// Opens `path` through `backend` (collective); MPI-IO gets no hints.
///
/// # Errors
/// As [`AtomicFile::open`] and [`MpiIoFile::open`].
pub(super) fn open_backend(
    world: &impl Communicator,
    path: &Path,
    backend: AtomicBackend,
    options: &OpenOptions,
) -> Result<Opened<Box<dyn ParallelFile>>> {
    Ok(match backend {
        AtomicBackend::Rma => open_rma(world, path, options)?.boxed(),
        AtomicBackend::Mpiio => open_mpiio(world, path, &[])?.boxed(),
        AtomicBackend::None => {
            let f = AtomicFile::open_unlocked(world, path, options)?;
            Opened {
                fs_type: f.fs_type().to_string(),
                coherence: None,
                io_component: None,
                file: Box::new(f),
            }
        }
    })
}

impl<F: ParallelFile + 'static> Opened<F> {
    /// The same, with the file boxed.
    pub(super) fn boxed(self) -> Opened<Box<dyn ParallelFile>> {
        self.map(|f| Box::new(f) as Box<dyn ParallelFile>)
    }
}

impl<F> Opened<F> {
    /// The same, with the file replaced by `f(file)`.
    pub(super) fn map<G>(self, f: impl FnOnce(F) -> G) -> Opened<G> {
        Opened {
            file: f(self.file),
            fs_type: self.fs_type,
            coherence: self.coherence,
            io_component: self.io_component,
        }
    }
}

/// Collective: rank 0 writes `initial` at offset 0, then every rank [`settle`]s.
///
/// # Errors
/// I/O and MPI errors.
pub(super) fn lay_out(
    world: &impl Communicator,
    file: &mut (impl ParallelFile + ?Sized),
    initial: &[u8],
) -> Result<()> {
    if world.rank() == 0 {
        file.write_at(0, initial)?;
    }
    settle(world, file)
}

/// Collective: sync, barrier, sync: makes every rank's writes visible to every rank (the
/// MPI-IO recipe outside atomic mode).
///
/// # Errors
/// I/O and MPI errors.
pub(super) fn settle(
    world: &impl Communicator,
    file: &mut (impl ParallelFile + ?Sized),
) -> Result<()> {
    file.sync()?;
    world.barrier();
    file.sync()
}

/// Options of `brlock check atomicity`.
#[derive(Debug, Args)]
pub struct AtomicityCheckArgs {
    /// The file to use (created if missing; its first bytes are overwritten).
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH")]
    pub alt_file: Option<PathBuf>,
    /// How the file is accessed.
    #[arg(long, value_enum, default_value_t = AtomicBackend::Rma)]
    pub backend: AtomicBackend,
    /// Access every other int of the region (noncontiguous reads and writes).
    #[arg(long)]
    pub noncontig: bool,
    /// Writes of rank 0, and reads of every other rank.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iters: u64,
    /// Ints in one access.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ints: u64,
    /// Coherence strategy of --backend rma (default: chosen from the file system type).
    #[arg(long, value_enum)]
    pub coherence: Option<Coherence>,
    /// Data-sieving buffer (read and write) of --backend rma and none, in bytes. Small
    /// buffers (ROMIO's test uses about 1.1 KiB) make one noncontiguous access many windows.
    #[arg(long, value_name = "BYTES")]
    pub sieve_buffer: Option<usize>,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    check: &'static str,
    backend: AtomicBackend,
    ranks: i32,
    ints: u64,
    noncontig: bool,
    iters: u64,
    sieve_buffer: Option<usize>,
    file: String,
    alt_file: Option<String>,
    fs_type: String,
    coherence: Option<Coherence>,
    writes: u64,
    reads: u64,
    mixed_reads: u64,
    stale_reads: u64,
    clobbered_ints: u64,
    seconds: f64,
    mpi_library: String,
    osc: Option<String>,
    io_component: Option<String>,
    ok: bool,
}

/// The value gap ints hold with --noncontig.
const SENTINEL: i32 = -7;

/// Runs the check on every rank.
///
/// # Errors
/// I/O, MPI and lock errors; bad arguments.
pub fn run(rt: &Runtime, args: &AtomicityCheckArgs) -> Result<ExitCode> {
    if rt.size() < 2 {
        if rt.rank() == 0 {
            report_error(
                rt,
                &Error::InvalidArgument(
                    "check atomicity needs at least 2 ranks (one writer, readers); run it under mpirun -n 4".into(),
                ),
            );
        }
        return Ok(ExitCode::from(2));
    }
    let world = rt.world();
    let path = match &args.alt_file {
        Some(alt) if rt.rank() % 2 == 1 => alt.clone(),
        _ => args.file.clone(),
    };
    let layout = Layout::new(args.ints, args.noncontig)?;
    let mut options = OpenOptions {
        coherence: args.coherence,
        ..OpenOptions::default()
    };
    if let Some(bytes) = args.sieve_buffer {
        options.sieve.write_buffer = bytes;
        options.sieve.read_buffer = bytes;
    }
    let Opened {
        mut file,
        fs_type,
        coherence,
        io_component,
    } = open_backend(world, &path, args.backend, &options)?;

    // Rank 0 lays the region out (value 0, gaps SENTINEL).
    lay_out(world, file.as_mut(), &layout.initial())?;
    if args.backend != AtomicBackend::None {
        file.set_atomicity(true)?;
    }
    if args.noncontig {
        file.prepare_pieces(&layout.access)?;
    }

    let released = Window::allocate(world, if rt.rank() == 0 { 1 } else { 0 })?;
    world.barrier();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut buf = vec![0u8; layout.access_bytes()];
    // A rank whose access fails cannot tell the others, who are waiting for it in the lock or
    // in the barrier below: it reports and ends the job (returning would first free the
    // window, a collective call the others never join).
    if rt.rank() == 0 {
        for k in 1..=args.iters {
            let value = i32::try_from(k).unwrap_or(i32::MAX);
            let data = layout.fill(value);
            or_abort(rt, layout.write(file.as_mut(), &data))?;
            // Announce version k only after the write (and its lock) is done.
            released.with_lock(0, LockKind::Exclusive, |e| e.accumulate(&[1], 0, Op::Sum))?;
            tally.writes += 1;
        }
    } else {
        for _ in 0..args.iters {
            let mut floor = 0u64;
            released.with_lock(0, LockKind::Shared, |e| e.atomic_read(&mut floor, 0))?;
            or_abort(rt, layout.read(file.as_mut(), &mut buf))?;
            tally.judge(&buf, floor, args.iters);
        }
    }
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();
    if args.backend != AtomicBackend::None {
        file.set_atomicity(false)?;
    }
    settle(world, file.as_mut())?;
    if args.noncontig {
        file.prepare_pieces(&Pieces::default())?;
    }
    if rt.rank() == 0 && args.noncontig {
        let mut region = vec![0u8; layout.region_bytes()];
        file.read_at(0, &mut region)?;
        tally.clobbered = layout.clobbered(&region);
    }
    drop(file);
    released.free()?;

    let mut sums = [0u64; 5];
    world.all_reduce_into(&tally.words()[..], &mut sums[..], SystemOperation::sum());
    let [writes, reads, mixed, stale, clobbered] = sums;
    if rt.rank() != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = mixed == 0 && stale == 0 && clobbered == 0;
    let report = Report {
        check: "atomicity",
        backend: args.backend,
        ranks: rt.size(),
        ints: args.ints,
        noncontig: args.noncontig,
        iters: args.iters,
        sieve_buffer: args.sieve_buffer,
        file: args.file.display().to_string(),
        alt_file: args.alt_file.as_ref().map(|p| p.display().to_string()),
        fs_type,
        coherence,
        writes,
        reads,
        mixed_reads: mixed,
        stale_reads: stale,
        clobbered_ints: clobbered,
        seconds,
        mpi_library: library_summary(rt),
        osc: requested_osc(),
        io_component,
        ok,
    };
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&format!(
            "check atomicity: backend {:?}, {} ranks, {} ints{}, {} on {}: {} writes, {} reads, \
             {} mixed, {} stale, {} clobbered, {:.2} s: {}",
            args.backend,
            report.ranks,
            args.ints,
            if args.noncontig {
                " (noncontiguous)"
            } else {
                ""
            },
            report.file,
            report.fs_type,
            writes,
            reads,
            mixed,
            stale,
            clobbered,
            seconds,
            if ok { "OK" } else { "FAILED" }
        ))?;
    }
    // The negative control is expected to fail the check; only real backends fail the run.
    Ok(if ok || args.backend == AtomicBackend::None {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where the accessed ints are.
struct Layout {
    ints: u64,
    noncontig: bool,
    /// The pieces of one access (the whole region when contiguous).
    access: Pieces,
}

impl Layout {
    fn new(ints: u64, noncontig: bool) -> Result<Layout> {
        let access = if noncontig {
            Pieces::strided(0, 4, 8, ints)?
        } else {
            Pieces::contiguous(0, ints * 4)?
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
}

impl Tally {
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

    fn words(&self) -> [u64; 5] {
        [
            self.writes,
            self.reads,
            self.mixed,
            self.stale,
            self.clobbered,
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

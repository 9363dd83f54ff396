//! `brlock check noncontig`: in the spirit of ROMIO's noncontig test, every rank writes
//! interleaved ints of one region at the same time, through data sieving; afterwards every int
//! must hold the value its owner wrote.
//!
//! The file holds `--iters` regions of `ints * P` ints each (P ranks). Rank `r` owns the ints
//! `i` of each region with `i % P == r`, so one write of a rank is `ints` pieces of 4 bytes at
//! a stride of `4 * P` bytes, and every window a sieved write reads, patches and writes back
//! holds ints of every other rank. In iteration `k` all ranks leave a barrier together and
//! write their ints of region `k` (value `r * 1_000_000 + k`) with one noncontiguous write,
//! sieved always (read-modify-write per window), atomic mode off: a sieved write locks its
//! extent exclusively by itself. Each iteration has a region of its own, so a write-back that
//! erased a peer's ints is never repaired by a later iteration: every lost update of every
//! iteration is counted.
//!
//! Afterwards (sync, barrier, sync) every rank reads the whole file: rank 0 counts every int
//! that does not hold its owner's value (`lost_updates`), and every rank counts its own ints
//! that do not (summed as `lost_seen_by_owners`; with `--alt-file` odd ranks read through the
//! second client, so the two counts also cross-check what each client sees).
//!
//! `--backend none` opens the file without the lock (the sieved writes still "lock", but the
//! lock excludes nothing): the negative control, expected to lose updates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use serde::Serialize;

use super::{emit, emit_json, library_summary, report_error, requested_osc};
use brlock::io::coherence::fs_type;
use brlock::io::mpiio::MpiIoFile;
use brlock::io::sieve::SievePolicy;
use brlock::io::{AtomicFile, Coherence, FileFault, OpenOptions, ParallelFile, Pieces};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// The backends `check noncontig` runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoncontigBackend {
    /// Sieved writes under the one-sided lock service.
    Rma,
    /// Sieved writes without a lock (the negative control).
    None,
    /// MPI-IO: a strided file view and `MPI_File_write_at`; with `mpirun --mca io romio321`,
    /// ROMIO's data sieving (hint `romio_ds_write=enable`) under its fcntl lock.
    Mpiio,
}

/// Options of `brlock check noncontig`.
#[derive(Debug, Args)]
pub struct NoncontigCheckArgs {
    /// The file to use (created if missing; overwritten from offset 0, `iters * ints * P * 4`
    /// bytes). There is no default: a distributed file system is the interesting case, and
    /// every rank must reach the file.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH")]
    pub alt_file: Option<PathBuf>,
    /// Whether the sieved writes take the lock.
    #[arg(long, value_enum, default_value_t = NoncontigBackend::Rma)]
    pub backend: NoncontigBackend,
    /// Ints each rank writes per iteration (one noncontiguous write).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub ints: u64,
    /// Iterations; each writes a region of its own.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=999_999))]
    pub iters: u64,
    /// Data-sieving write buffer in bytes. Small buffers make one write many windows, and so
    /// many read-modify-write cycles that can interleave with a peer's.
    #[arg(long, value_name = "BYTES", default_value_t = 1126)]
    pub sieve_buffer: usize,
    /// Coherence strategy (default: chosen from the file system type).
    #[arg(long, value_enum)]
    pub coherence: Option<Coherence>,
    /// Odd ranks write their ints one by one (plain contiguous writes, no sieving) while even
    /// ranks sieve: a plain write that lands in a peer's window between its read and
    /// write-back must not be erased.
    #[arg(long)]
    pub plain_odd: bool,
    /// Negative control of --plain-odd (backend rma): plain writes take no lock, so sieved
    /// write-backs erase some of them and the check must fail.
    #[arg(long, hide = true)]
    pub unsafe_unlocked_plain_writes: bool,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    check: &'static str,
    backend: NoncontigBackend,
    ranks: i32,
    ints: u64,
    iters: u64,
    sieve_buffer: usize,
    plain_odd: bool,
    unsafe_unlocked_plain_writes: bool,
    file: String,
    alt_file: Option<String>,
    fs_type: String,
    coherence: Option<Coherence>,
    io_component: Option<String>,
    /// Sieve windows of one write (rank 0's last).
    windows_per_write: u64,
    checked: u64,
    lost_updates: u64,
    lost_seen_by_owners: u64,
    iterations_with_losses: u64,
    seconds: f64,
    mpi_library: String,
    osc: Option<String>,
    ok: bool,
}

/// What the gap-free region holds before anyone writes it; no rank ever writes this value.
const UNWRITTEN: i32 = -1;

/// The largest file the check writes (1 GiB): the whole file is also read into memory.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What every rank learns from the run.
struct Outcome {
    fs_type: String,
    coherence: Option<Coherence>,
    /// The MPI-IO implementation (mpiio backend).
    io_component: Option<String>,
    windows_per_write: u64,
    /// Rank 0: ints of the whole file not holding their owner's value, and iterations with
    /// such ints; other ranks: zero.
    lost_all: u64,
    iterations_with_losses: u64,
    /// This rank's own ints not holding its value.
    lost_own: u64,
    seconds: f64,
}

/// Runs the check on every rank.
///
/// # Errors
/// I/O, MPI and lock errors; bad arguments.
pub fn run(rt: &Runtime, args: &NoncontigCheckArgs) -> Result<ExitCode> {
    if rt.size() < 2 || rt.size() > 2000 {
        if rt.rank() == 0 {
            report_error(
                rt,
                &Error::InvalidArgument(format!(
                    "check noncontig needs 2 to 2000 ranks (it has {}); run it under mpirun -n 4",
                    rt.size()
                )),
            );
        }
        return Ok(ExitCode::from(2));
    }
    let layout = Layout::new(rt.size(), args.ints, args.iters)?;
    let path = match &args.alt_file {
        Some(alt) if rt.rank() % 2 == 1 => alt.clone(),
        _ => args.file.clone(),
    };
    let mut options = OpenOptions {
        coherence: args.coherence,
        ..OpenOptions::default()
    };
    options.sieve.write_buffer = args.sieve_buffer;
    options.sieve.write = SievePolicy::Always;
    if args.unsafe_unlocked_plain_writes {
        if !args.plain_odd || args.backend != NoncontigBackend::Rma {
            return Err(Error::InvalidArgument(
                "--unsafe-unlocked-plain-writes needs --plain-odd and --backend rma".into(),
            ));
        }
        options.fault = Some(FileFault::UnlockedPlainWrites);
    }
    let plain = args.plain_odd && rt.rank() % 2 == 1;
    let world = rt.world();
    let outcome = match args.backend {
        NoncontigBackend::Rma => {
            let mut file = AtomicFile::open(world, &path, &options)?;
            let mut outcome = exercise(rt, &mut file, &layout, plain)?;
            outcome.fs_type = file.fs_type().to_string();
            outcome.coherence = Some(file.coherence());
            outcome.windows_per_write = file.last_noncontig().map_or(0, |s| s.windows);
            file.close()?;
            outcome
        }
        NoncontigBackend::None => {
            let mut file = AtomicFile::open_unlocked(world, &path, &options)?;
            let mut outcome = exercise(rt, &mut file, &layout, plain)?;
            outcome.fs_type = file.fs_type().to_string();
            outcome.windows_per_write = file.last_noncontig().map_or(0, |s| s.windows);
            file.close()?;
            outcome
        }
        NoncontigBackend::Mpiio => {
            let buffer = args.sieve_buffer.to_string();
            let hints = [
                ("romio_ds_write", "enable"),
                ("ind_wr_buffer_size", buffer.as_str()),
            ];
            let mut file = MpiIoFile::open(world, &path, &hints)?;
            let mut outcome = exercise(rt, &mut file, &layout, plain)?;
            outcome.fs_type = fs_type(&path).unwrap_or_else(|| "unknown".into());
            outcome.io_component = Some(file.implementation().to_string());
            file.close()?;
            outcome
        }
    };

    let mut lost_own = 0u64;
    world.all_reduce_into(&outcome.lost_own, &mut lost_own, SystemOperation::sum());
    if rt.rank() != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = outcome.lost_all == 0 && lost_own == 0;
    let report = Report {
        check: "noncontig",
        backend: args.backend,
        ranks: rt.size(),
        ints: args.ints,
        iters: args.iters,
        sieve_buffer: args.sieve_buffer,
        plain_odd: args.plain_odd,
        unsafe_unlocked_plain_writes: args.unsafe_unlocked_plain_writes,
        file: args.file.display().to_string(),
        alt_file: args.alt_file.as_ref().map(|p| p.display().to_string()),
        fs_type: outcome.fs_type,
        coherence: outcome.coherence,
        io_component: outcome.io_component.clone(),
        windows_per_write: outcome.windows_per_write,
        checked: layout.total_ints(),
        lost_updates: outcome.lost_all,
        lost_seen_by_owners: lost_own,
        iterations_with_losses: outcome.iterations_with_losses,
        seconds: outcome.seconds,
        mpi_library: library_summary(rt),
        osc: requested_osc(),
        ok,
    };
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&format!(
            "check noncontig: backend {:?}, {} ranks, {} ints x {} iterations, {} windows per \
             write, {} on {}: {} ints checked, {} lost updates ({} seen by their owners) in {} \
             iterations, {:.2} s: {}",
            args.backend,
            report.ranks,
            args.ints,
            args.iters,
            report.windows_per_write,
            report.file,
            report.fs_type,
            report.checked,
            report.lost_updates,
            report.lost_seen_by_owners,
            report.iterations_with_losses,
            report.seconds,
            if ok { "OK" } else { "FAILED" }
        ))?;
    }
    // The negative control is expected to lose updates, and MPI-IO is a baseline under
    // observation: only brlock's own backend fails the run.
    Ok(if ok || args.backend != NoncontigBackend::Rma {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Lays the file out, runs the iterations and reads everything back; `plain`: this rank
/// writes its ints one by one instead of in one noncontiguous write. The caller fills in
/// what it knows about the backend (file system, coherence, windows).
fn exercise(
    rt: &Runtime,
    file: &mut dyn ParallelFile,
    layout: &Layout,
    plain: bool,
) -> Result<Outcome> {
    let world = rt.world();
    let rank = rt.rank();
    if rank == 0 {
        file.write_at(0, &layout.initial())?;
    }
    file.sync()?;
    world.barrier();
    file.sync()?;

    let started = Instant::now();
    for k in 0..layout.iters {
        let pieces = layout.pieces(rank, k)?;
        let data: Vec<u8> = (0..layout.ints)
            .flat_map(|_| Layout::value(rank, k).to_le_bytes())
            .collect();
        // Collective (a file view for MPI-IO, nothing for the others); then every iteration
        // starts together: the windows of different ranks must overlap in time.
        if plain {
            file.prepare_pieces(&Pieces::default())?;
            world.barrier();
            for (piece, int) in pieces.iter().zip(data.chunks_exact(4)) {
                file.write_at(piece.offset, int)?;
            }
        } else {
            file.prepare_pieces(&pieces)?;
            world.barrier();
            file.write_pieces(&pieces, &data)?;
        }
    }
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();

    file.prepare_pieces(&Pieces::default())?;
    file.sync()?;
    world.barrier();
    file.sync()?;
    let mut all = vec![0u8; layout.file_bytes()];
    file.read_at(0, &mut all)?;

    let (mut lost_all, mut lost_own, mut iterations_with_losses) = (0u64, 0u64, 0u64);
    let mut last_lossy = None;
    for (at, chunk) in all.chunks_exact(4).enumerate() {
        let at = at as u64;
        let got = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let (owner, k) = layout.owner(at);
        if got == Layout::value(owner, k) {
            continue;
        }
        if owner == rank {
            lost_own += 1;
        }
        if rank == 0 {
            lost_all += 1;
            if last_lossy != Some(k) {
                last_lossy = Some(k);
                iterations_with_losses += 1;
            }
            if lost_all <= 8 {
                tracing::debug!(int = at, iteration = k, owner, got, "lost update");
            }
        }
    }
    Ok(Outcome {
        fs_type: String::new(),
        coherence: None,
        io_component: None,
        windows_per_write: 0,
        lost_all,
        iterations_with_losses,
        lost_own,
        seconds,
    })
}

/// Where each rank's ints are.
struct Layout {
    ranks: u64,
    ints: u64,
    iters: u64,
}

impl Layout {
    fn new(ranks: i32, ints: u64, iters: u64) -> Result<Layout> {
        let ranks =
            u64::try_from(ranks).map_err(|_| Error::InvalidArgument(format!("{ranks} ranks")))?;
        let layout = Layout { ranks, ints, iters };
        let bytes = ranks
            .checked_mul(ints)
            .and_then(|n| n.checked_mul(iters))
            .and_then(|n| n.checked_mul(4));
        match bytes {
            Some(b) if b <= MAX_FILE_BYTES => Ok(layout),
            _ => Err(Error::InvalidArgument(format!(
                "{iters} iterations of {ints} ints on {ranks} ranks need more than the \
                 {MAX_FILE_BYTES} bytes the check allows"
            ))),
        }
    }

    fn region_ints(&self) -> u64 {
        self.ranks * self.ints
    }

    fn total_ints(&self) -> u64 {
        self.region_ints() * self.iters
    }

    fn file_bytes(&self) -> usize {
        usize::try_from(self.total_ints() * 4).unwrap_or(usize::MAX)
    }

    /// The value `rank` writes in iteration `k`.
    fn value(rank: i32, k: u64) -> i32 {
        // Fits: at most 2000 ranks and 999_999 iterations (checked by the caller and clap).
        rank * 1_000_000 + i32::try_from(k).unwrap_or(i32::MAX - 1_000_000 * 2000)
    }

    /// The pieces `rank` writes in iteration `k`.
    fn pieces(&self, rank: i32, k: u64) -> Result<Pieces> {
        let start = (k * self.region_ints() + rank as u64) * 4;
        Pieces::strided(start, 4, 4 * self.ranks, self.ints)
    }

    /// The owner and iteration of int number `at` of the file.
    fn owner(&self, at: u64) -> (i32, u64) {
        let owner = i32::try_from(at % self.ranks).unwrap_or(i32::MAX);
        (owner, at / self.region_ints())
    }

    /// The file before the first write: every int [`UNWRITTEN`].
    fn initial(&self) -> Vec<u8> {
        (0..self.total_ints())
            .flat_map(|_| UNWRITTEN.to_le_bytes())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_own_interleaved_ints_of_their_iteration() {
        let layout = Layout::new(3, 2, 2).unwrap();
        assert_eq!(layout.total_ints(), 12);
        let p = layout.pieces(1, 1).unwrap();
        let offsets: Vec<u64> = p.iter().map(|piece| piece.offset).collect();
        assert_eq!(offsets, vec![(6 + 1) * 4, (6 + 4) * 4]);
        for piece in p.iter() {
            assert_eq!(layout.owner(piece.offset / 4), (1, 1));
        }
        assert_eq!(layout.owner(5), (2, 0));
        assert_ne!(Layout::value(0, 1), Layout::value(1, 0));
        assert_ne!(Layout::value(1, 0), UNWRITTEN);
    }

    #[test]
    fn refuses_huge_files() {
        assert!(Layout::new(8, 10_000_000, 999_999).is_err());
    }
}

//! `check noncontig`: in the spirit of ROMIO's noncontig test, every rank writes
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
//! [`FileBackend::None`] opens the file without the lock (the sieved writes still "lock", but
//! the lock excludes nothing): the negative control, expected to lose updates.
//! [`FileBackend::Mpiio`] writes through a strided file view with `MPI_File_write_at`; with
//! `mpirun --mca io romio321`, that is ROMIO's data sieving (hint `romio_ds_write=enable`)
//! under its fcntl lock.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::files::{closing, lay_out, open_backend, settle, FileBackend, Opened};
use super::{mpi_library, requested_osc, Check, Outcome, Run};
use crate::collective::{agree_result, split_path};
use crate::error::{Error, Result};
#[cfg(feature = "testing")]
use crate::io::FileFault;
use crate::io::{sieve::SievePolicy, Coherence, OpenOptions, ParallelFile};
use crate::pieces::Pieces;

/// What `check noncontig` does.
#[derive(Debug, Clone)]
pub struct NoncontigCheck {
    /// The file (created if missing; overwritten from offset 0, `iters * ints * P * 4`
    /// bytes). Every rank must reach it.
    pub file: PathBuf,
    /// The same file through another mount (another client): odd ranks use this path.
    pub alt_file: Option<PathBuf>,
    /// How the sieved writes reach the file.
    pub backend: FileBackend,
    /// Ints each rank writes per iteration (one noncontiguous write).
    pub ints: u64,
    /// Iterations; each writes a region of its own (at most 999,999).
    pub iters: u64,
    /// Data-sieving write buffer in bytes. Small buffers make one write many windows, and so
    /// many read-modify-write cycles that can interleave with a peer's.
    pub sieve_buffer: usize,
    /// Coherence strategy (default: chosen at open).
    pub coherence: Option<Coherence>,
    /// Odd ranks write their ints one by one (plain contiguous writes, no sieving) while even
    /// ranks sieve: a plain write that lands in a peer's window between its read and
    /// write-back must not be erased.
    pub plain_odd: bool,
    /// Negative control of `plain_odd` (backend rma, feature `testing`): plain writes take no
    /// lock, so sieved write-backs erase some of them and the check must fail.
    pub unsafe_unlocked_plain_writes: bool,
}

/// The report of `check noncontig` (rank 0).
#[derive(Debug, Serialize)]
pub struct NoncontigReport {
    /// Always "noncontig".
    pub check: &'static str,
    /// How the file was written.
    pub backend: FileBackend,
    /// Ranks.
    pub ranks: i32,
    /// Ints per rank and iteration.
    pub ints: u64,
    /// Iterations.
    pub iters: u64,
    /// The sieve buffer.
    pub sieve_buffer: usize,
    /// See [`NoncontigCheck::plain_odd`].
    pub plain_odd: bool,
    /// See [`NoncontigCheck::unsafe_unlocked_plain_writes`].
    pub unsafe_unlocked_plain_writes: bool,
    /// The file.
    pub file: String,
    /// The second client's path.
    pub alt_file: Option<String>,
    /// Its file system type.
    pub fs_type: String,
    /// The coherence strategy (lock-based backends).
    pub coherence: Option<Coherence>,
    /// The MPI-IO implementation (MPI-IO).
    pub io_component: Option<String>,
    /// Sieve windows of one write (rank 0's last).
    pub windows_per_write: u64,
    /// Ints checked.
    pub checked: u64,
    /// Ints of the file not holding their owner's value, seen by rank 0: must be 0.
    pub lost_updates: u64,
    /// The same, each rank counting its own ints, summed.
    pub lost_seen_by_owners: u64,
    /// Iterations with a lost update.
    pub iterations_with_losses: u64,
    /// Wall time of the writes.
    pub seconds: f64,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// No update lost.
    pub ok: bool,
}

/// What the gap-free region holds before anyone writes it; no rank ever writes this value.
const UNWRITTEN: i32 = -1;

/// The largest file the check writes (1 GiB): the whole file is also read into memory.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What every rank learns from the writes and the read-back.
struct Exercised {
    /// Rank 0: ints of the whole file not holding their owner's value, and iterations with
    /// such ints; other ranks: zero.
    lost_all: u64,
    iterations_with_losses: u64,
    /// This rank's own ints not holding its value.
    lost_own: u64,
    seconds: f64,
}

impl Check for NoncontigCheck {
    type Report = NoncontigReport;
    type Prepared = NoncontigCheck;

    /// The whole file twice (laid out, read back), one write's data and the sieve buffers.
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let bytes = {
            // Saturating: u32 x u64 x u64 x 4 can pass u128.
            let file = u128::from(ranks.max(0) as u32)
                .saturating_mul(u128::from(self.ints))
                .saturating_mul(u128::from(self.iters))
                .saturating_mul(4);
            file.saturating_mul(2)
                .saturating_add(u128::from(self.ints) * 4)
                .saturating_add(self.sieve_buffer as u128)
                .saturating_add(crate::io::sieve::DEFAULT_READ_BUFFER as u128)
        };
        (bytes, "--ints x --iters x ranks")
    }

    /// Refuses fewer than 2 or more than 2000 ranks, a file too large, or the
    /// unlocked-plain-writes control without `plain_odd` and the lock-based backend.
    fn validate(&self, ranks: i32) -> Result<()> {
        if !(2..=2000).contains(&ranks) {
            return Err(Error::InvalidArgument(format!(
                "check noncontig needs 2 to 2000 ranks (it has {ranks}); run it under mpirun -n 4"
            )));
        }
        if self.unsafe_unlocked_plain_writes
            && (!self.plain_odd || self.backend != FileBackend::Rma)
        {
            return Err(Error::InvalidArgument(
                "--unsafe-unlocked-plain-writes needs --plain-odd and --backend rma".into(),
            ));
        }
        #[cfg(not(feature = "testing"))]
        crate::error::needs_testing(
            self.unsafe_unlocked_plain_writes,
            "the unlocked-plain-writes negative control",
        )?;
        Layout::new(ranks, self.ints, self.iters).map(drop)
    }

    /// Opens nothing yet: the file is opened by every backend collectively, in the run.
    fn prepare<C: Communicator>(self, comm: &C) -> Result<NoncontigCheck> {
        self.validate(comm.size())?;
        Ok(self)
    }
}

impl Run for NoncontigCheck {
    type Report = NoncontigReport;

    /// Runs the check on every rank of `comm`. Rank 0 gets the report and passes
    /// unless the lock-based backend lost updates (the negative control and MPI-IO, a
    /// baseline under observation, always pass); the others pass.
    ///
    /// # Errors
    /// I/O, MPI and lock errors; [`Error::InvalidArgument`] as for
    /// [`NoncontigCheck::validate`].
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<NoncontigReport>> {
        let rank = comm.rank();
        let layout = Layout::new(comm.size(), self.ints, self.iters)?;
        let path = split_path(rank, &self.file, self.alt_file.as_deref());
        let mut options = OpenOptions {
            coherence: self.coherence,
            ..OpenOptions::default()
        };
        options.sieve.write_buffer = self.sieve_buffer;
        options.sieve.write = SievePolicy::Always;
        #[cfg(feature = "testing")]
        if self.unsafe_unlocked_plain_writes {
            options.fault = Some(FileFault::UnlockedPlainWrites);
        }
        let buffer = self.sieve_buffer.to_string();
        let hints = [
            ("romio_ds_write", "enable"),
            ("ind_wr_buffer_size", buffer.as_str()),
        ];
        let plain = self.plain_odd && rank % 2 == 1;
        let opened = open_backend(comm, path, self.backend, &options, &hints)?;
        let Opened {
            file,
            fs_type,
            coherence,
            io_component,
        } = opened;
        let (outcome, windows_per_write) = closing(comm, file, |file| {
            let outcome = exercise(comm, file, &layout, plain)?;
            Ok((outcome, file.last_noncontig().map_or(0, |s| s.windows)))
        })?;

        let mut lost_own = 0u64;
        comm.all_reduce_into(&outcome.lost_own, &mut lost_own, SystemOperation::sum());
        if rank != 0 {
            return Ok(Outcome::quiet(true));
        }
        let ok = outcome.lost_all == 0 && lost_own == 0;
        Ok(Outcome::reported(
            ok || self.backend != FileBackend::Rma,
            NoncontigReport {
                check: "noncontig",
                backend: self.backend,
                ranks: comm.size(),
                ints: self.ints,
                iters: self.iters,
                sieve_buffer: self.sieve_buffer,
                plain_odd: self.plain_odd,
                unsafe_unlocked_plain_writes: self.unsafe_unlocked_plain_writes,
                file: self.file.display().to_string(),
                alt_file: self.alt_file.as_ref().map(|p| p.display().to_string()),
                fs_type,
                coherence,
                io_component,
                windows_per_write,
                checked: layout.total_ints(),
                lost_updates: outcome.lost_all,
                lost_seen_by_owners: lost_own,
                iterations_with_losses: outcome.iterations_with_losses,
                seconds: outcome.seconds,
                mpi_library: mpi_library(),
                osc: requested_osc(),
                ok,
            },
        ))
    }
}

impl fmt::Display for NoncontigReport {
    /// One line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "check noncontig: backend {:?}, {} ranks, {} ints x {} iterations, {} windows per \
             write, {} on {}: {} ints checked, {} lost updates ({} seen by their owners) in {} \
             iterations, {:.2} s: {}",
            self.backend,
            self.ranks,
            self.ints,
            self.iters,
            self.windows_per_write,
            self.file,
            self.fs_type,
            self.checked,
            self.lost_updates,
            self.lost_seen_by_owners,
            self.iterations_with_losses,
            self.seconds,
            if self.ok { "OK" } else { "FAILED" }
        )
    }
}

/// Lays the file out, runs the iterations and reads everything back; `plain`: this rank
/// writes its ints one by one instead of in one noncontiguous write.
fn exercise(
    world: &impl Communicator,
    file: &mut dyn ParallelFile,
    layout: &Layout,
    plain: bool,
) -> Result<Exercised> {
    let rank = world.rank();
    lay_out(world, file, &layout.initial())?;

    let started = Instant::now();
    // The previous iteration's writes of this rank; agreed on at the start of the next, so
    // that a rank whose write failed does not leave the others in a collective call.
    let mut written = Ok(());
    for k in 0..layout.iters {
        let pieces = layout.pieces(rank, k)?;
        let data: Vec<u8> = (0..layout.ints)
            .flat_map(|_| Layout::value(rank, k).to_le_bytes())
            .collect();
        // Collective (a file view for MPI-IO, nothing for the others); then every iteration
        // starts together (the agreement synchronises): the windows of different ranks must
        // overlap in time.
        let none = Pieces::default();
        let view = file.prepare_pieces(if plain { &none } else { &pieces });
        agree_result(world, "write", written.and(view))?;
        written = if plain {
            pieces
                .iter()
                .zip(data.chunks_exact(4))
                .try_for_each(|(piece, int)| file.write_at(piece.offset, int))
        } else {
            file.write_pieces(&pieces, &data)
        };
    }
    agree_result(world, "write", written)?;
    let seconds = started.elapsed().as_secs_f64();

    agree_result(
        world,
        "reset the file view",
        file.prepare_pieces(&Pieces::default()),
    )?;
    settle(world, file)?;
    let mut all = vec![0u8; layout.file_bytes()];
    agree_result(world, "read the file back", file.read_at(0, &mut all))?;

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
    Ok(Exercised {
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

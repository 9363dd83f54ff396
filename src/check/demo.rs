//! `brlock demo`: ranks update overlapping byte ranges of one file under byte-range locks,
//! then check that no update was lost.
//!
//! The file holds 64-bit counters. Each update locks a 2 KiB range exclusively, reads the
//! counters in it, adds one to each and writes them back: a read-modify-write that loses
//! increments unless the lock keeps overlapping updates apart. Every rank knows which
//! counters it incremented; a sum reduction gives the expected value of every counter, and
//! rank 0 compares it with the file. `--no-lock` runs the same updates without the lock: the
//! negative control, which loses increments.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;

use super::{mpi_library, requested_osc, Check, Outcome, Run, TempDir};
use crate::collective::{agree_outcome, agree_result, path_from};
use crate::error::{Error, Result};
use crate::lock::{NoLock, RangeLock, RmaLock};
use crate::range::{ByteRange, LockMode};

/// What `brlock demo` does.
#[derive(Debug, Clone)]
pub struct Demo {
    /// Directory for the shared file (must be visible to every rank). Default: a new
    /// temporary directory, removed afterwards.
    pub dir: Option<PathBuf>,
    /// Updates per rank.
    pub rounds: u64,
    /// Take no lock (negative control: updates get lost).
    pub no_lock: bool,
}

/// What the demo reports (rank 0).
#[derive(Debug, serde::Serialize)]
pub struct DemoReport {
    /// Ranks.
    pub ranks: i32,
    /// Updates per rank.
    pub rounds: u64,
    /// The counter file.
    pub path: PathBuf,
    /// Whether the lock was skipped (the negative control).
    pub no_lock: bool,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// Wall time of the updates.
    pub seconds: f64,
    /// Increments made.
    pub expected: u64,
    /// Increments found in the file.
    pub found: u64,
    /// Counters that do not hold their expected value.
    pub wrong: usize,
}

impl DemoReport {
    /// No increment lost.
    pub fn ok(&self) -> bool {
        self.wrong == 0 && self.found == self.expected
    }
}

/// Counters in the file.
const COUNTERS: u64 = 1024;
/// Counters per update (2 KiB).
const SPAN: u64 = 256;

impl Check for Demo {
    type Report = DemoReport;
    type Prepared = PreparedDemo;

    /// Rank 0 chooses the directory (a new temporary one unless given) and creates the
    /// zeroed counter file; every rank learns its path.
    fn prepare<C: Communicator>(self, comm: &C) -> Result<PreparedDemo> {
        let mut temp_dir = None;
        let dir = path_from(comm, 0, "prepare the demo file", || {
            let (dir, temp) = prepare(self.dir.as_deref())?;
            temp_dir = temp;
            Ok(dir)
        })?;
        Ok(PreparedDemo {
            demo: self,
            path: dir.join("counters.bin"),
            temp_dir,
        })
    }
}

/// A [`Demo`] with its counter file made.
#[derive(Debug)]
pub struct PreparedDemo {
    demo: Demo,
    path: PathBuf,
    /// On rank 0, the temporary directory it made (removed on drop).
    temp_dir: Option<TempDir>,
}

impl Run for PreparedDemo {
    type Report = DemoReport;

    /// Every rank updates the counters; every rank passes if no increment was lost; rank 0
    /// gets the report.
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<DemoReport>> {
        let rank = comm.rank();
        let PreparedDemo {
            demo,
            path,
            temp_dir,
        } = self;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| io_err("open", &path, source));
        let file = agree_result(comm, "open", file)?;

        // The updates.
        let mut expected = vec![0u64; COUNTERS as usize];
        let mut lock = if demo.no_lock {
            None
        } else {
            Some(RmaLock::open(comm, 0)?)
        };
        comm.barrier();
        let started = Instant::now();
        let updated = match lock.as_mut() {
            None => demo.update(rank, &file, &path, &mut NoLock::default(), &mut expected),
            Some(lock) => demo.update(rank, &file, &path, lock, &mut expected),
        };
        // Every rank's updates are over (the agreement waits for all): the lock goes.
        let updated = agree_result(comm, "update the counters", updated);
        let seconds = started.elapsed().as_secs_f64();
        let closed = agree_result(
            comm,
            "shut the lock service down",
            lock.map_or(Ok(()), RangeLock::close),
        );
        updated?;
        closed?;

        // The integrity check.
        let mut total_expected = vec![0u64; COUNTERS as usize];
        comm.all_reduce_into(
            &expected[..],
            &mut total_expected[..],
            SystemOperation::sum(),
        );
        let mut report = None;
        let mut ok = 1u8;
        let found = (rank == 0).then(|| read_counters(&file, &path, 0, COUNTERS));
        if let Some(found) = agree_outcome(comm, "read the counters", found)? {
            let r = DemoReport {
                ranks: comm.size(),
                rounds: demo.rounds,
                path: path.clone(),
                no_lock: demo.no_lock,
                mpi_library: mpi_library(),
                osc: requested_osc(),
                seconds,
                expected: total_expected.iter().sum(),
                found: found.iter().sum(),
                wrong: found
                    .iter()
                    .zip(&total_expected)
                    .filter(|(f, e)| f != e)
                    .count(),
            };
            ok = u8::from(r.ok());
            report = Some(r);
            // The temporary directory (if any) is removed now.
            drop(temp_dir);
        }
        comm.process_at_rank(0).broadcast_into(&mut ok);
        Ok(Outcome {
            passed: ok == 1,
            report,
            errors: Vec::new(),
        })
    }
}

impl Demo {
    fn update<L: RangeLock>(
        &self,
        rank: i32,
        file: &File,
        path: &Path,
        lock: &mut L,
        expected: &mut [u64],
    ) -> Result<()> {
        let rank = rank as u64;
        for round in 0..self.rounds {
            // Neighbouring ranks' ranges overlap, and they move every round.
            let first = (rank * (SPAN / 2) + round * 37) % (COUNTERS - SPAN);
            let range = ByteRange::at(first * 8, SPAN * 8)?;
            let guard = lock.acquire(range, LockMode::Exclusive)?;
            let mut counters = read_counters(file, path, first, SPAN)?;
            for c in &mut counters {
                *c += 1;
            }
            let bytes: Vec<u8> = counters.iter().flat_map(|c| c.to_le_bytes()).collect();
            file.write_all_at(&bytes, first * 8)
                .map_err(|source| io_err("write", path, source))?;
            guard.unlock()?;
            for e in &mut expected[first as usize..(first + SPAN) as usize] {
                *e += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Display for DemoReport {
    /// Four lines: the setting, the lock, the time, the integrity check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let updates = self.rounds * self.ranks as u64;
        writeln!(
            f,
            "brlock demo: {} ranks, {} updates each, on {}",
            self.ranks,
            self.rounds,
            self.path.display()
        )?;
        writeln!(
            f,
            "  lock: {} ({}, one-sided component: {})",
            if self.no_lock {
                "none (negative control)"
            } else {
                "MPI one-sided byte-range locks, table on rank 0"
            },
            self.mpi_library,
            self.osc.as_deref().unwrap_or("default")
        )?;
        writeln!(
            f,
            "  {updates} read-modify-write updates of overlapping {} KiB ranges in {:.3} s \
             ({:.1} us per update)",
            SPAN * 8 / 1024,
            self.seconds,
            self.seconds * 1e6 / updates as f64
        )?;
        if self.ok() {
            write!(
                f,
                "  integrity check: {COUNTERS} counters, {} increments expected, {} found: OK",
                self.expected, self.found
            )
        } else {
            write!(
                f,
                "  integrity check: {COUNTERS} counters, {} increments expected, {} found: \
                 FAILED ({} increments lost, {} counters wrong)",
                self.expected,
                self.found,
                self.expected.saturating_sub(self.found),
                self.wrong
            )
        }
    }
}

/// Creates the directory (a fresh temporary one unless given) and the zeroed counter file.
/// Returns the directory and, if it was created here, its guard.
fn prepare(dir: Option<&Path>) -> Result<(PathBuf, Option<TempDir>)> {
    let (dir, created) = match dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "--dir {} is not a directory",
                    d.display()
                )));
            }
            (d.to_path_buf(), None)
        }
        None => {
            let d = TempDir::create("brlock-demo")?;
            (d.path().to_path_buf(), Some(d))
        }
    };
    let path = dir.join("counters.bin");
    let file = File::create(&path).map_err(|source| io_err("create", &path, source))?;
    file.set_len(COUNTERS * 8)
        .map_err(|source| io_err("resize", &path, source))?;
    file.sync_all()
        .map_err(|source| io_err("sync", &path, source))?;
    Ok((dir, created))
}

fn read_counters(file: &File, path: &Path, first: u64, count: u64) -> Result<Vec<u64>> {
    let mut bytes = vec![0u8; (count * 8) as usize];
    file.read_exact_at(&mut bytes, first * 8)
        .map_err(|source| io_err("read", path, source))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .collect())
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

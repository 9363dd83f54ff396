//! `brlock demo`: ranks update overlapping byte ranges of one file under byte-range locks,
//! then check that no update was lost.
//!
//! The file holds 64-bit counters. Each update locks a 2 KiB range exclusively, reads the
//! counters in it, adds one to each and writes them back: a read-modify-write that loses
//! increments unless the lock keeps overlapping updates apart. Every rank knows which
//! counters it incremented; a sum reduction gives the expected value of every counter, and
//! rank 0 compares it with the file. `--no-lock` runs the same updates without the lock: the
//! negative control, which loses increments.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;

use super::{emit, library_summary, requested_osc};
use brlock::lock::NoLock;
use brlock::runtime::Runtime;
use brlock::transport::rma::RmaLock;
use brlock::{ByteRange, Error, LockMode, RangeLock, Result};

/// Options of `brlock demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the shared file (must be visible to every rank). Default: a new
    /// temporary directory, removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Updates per rank.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rounds: u64,
    /// Take no lock (negative control: updates get lost).
    #[arg(long)]
    pub no_lock: bool,
}

/// Counters in the file.
const COUNTERS: u64 = 1024;
/// Counters per update (2 KiB).
const SPAN: u64 = 256;
/// Longest path rank 0 can hand to the others.
const PATH_MAX: usize = 4096;

/// Runs the demo on every rank.
///
/// # Errors
/// I/O and MPI errors.
pub fn run(rt: &Runtime, args: &DemoArgs) -> Result<ExitCode> {
    let world = rt.world();
    let rank = rt.rank();
    let root = world.process_at_rank(0);

    // Rank 0 chooses the directory and creates the file; everyone learns the path.
    let mut dir_buf = [0u8; PATH_MAX];
    let mut setup_ok = 1u8;
    let mut temp_dir = None;
    if rank == 0 {
        match prepare(args.dir.as_deref()) {
            Ok((dir, created)) => {
                let bytes = dir.as_os_str().as_encoded_bytes();
                if bytes.len() >= PATH_MAX {
                    setup_ok = 0;
                    tracing::error!(dir = %dir.display(), "directory path too long");
                } else {
                    dir_buf[..bytes.len()].copy_from_slice(bytes);
                }
                if created {
                    temp_dir = Some(dir);
                }
            }
            Err(e) => {
                crate::cli::report_error(rt, &e);
                setup_ok = 0;
            }
        }
    }
    root.broadcast_into(&mut setup_ok);
    if setup_ok == 0 {
        return Err(Error::InvalidArgument(
            "rank 0 could not prepare the demo file (see its message)".into(),
        ));
    }
    root.broadcast_into(&mut dir_buf[..]);
    let len = dir_buf.iter().position(|&b| b == 0).unwrap_or(PATH_MAX);
    let dir = PathBuf::from(String::from_utf8_lossy(&dir_buf[..len]).into_owned());
    let path = dir.join("counters.bin");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| io_err("open", &path, source))?;

    // The updates.
    let mut expected = vec![0u64; COUNTERS as usize];
    world.barrier();
    let started = Instant::now();
    if args.no_lock {
        update(
            rt,
            args,
            &file,
            &path,
            &mut NoLock::default(),
            &mut expected,
        )?;
    } else {
        let mut lock = RmaLock::open(world, 0)?;
        update(rt, args, &file, &path, &mut lock, &mut expected)?;
        lock.shutdown()?;
    }
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();

    // The integrity check.
    let mut total_expected = vec![0u64; COUNTERS as usize];
    world.all_reduce_into(
        &expected[..],
        &mut total_expected[..],
        SystemOperation::sum(),
    );
    let mut ok = 1u8;
    if rank == 0 {
        let found = read_counters(&file, &path, 0, COUNTERS)?;
        let want: u64 = total_expected.iter().sum();
        let got: u64 = found.iter().sum();
        let wrong = found
            .iter()
            .zip(&total_expected)
            .filter(|(f, e)| f != e)
            .count();
        let updates = args.rounds * rt.size() as u64;
        emit(&format!(
            "brlock demo: {} ranks, {} updates each, on {}",
            rt.size(),
            args.rounds,
            path.display()
        ))?;
        emit(&format!(
            "  lock: {} ({}, one-sided component: {})",
            if args.no_lock {
                "none (negative control)"
            } else {
                "MPI one-sided byte-range locks, table on rank 0"
            },
            library_summary(rt),
            requested_osc().unwrap_or_else(|| "default".into())
        ))?;
        emit(&format!(
            "  {updates} read-modify-write updates of overlapping {} KiB ranges in {seconds:.3} s \
             ({:.1} us per update)",
            SPAN * 8 / 1024,
            seconds * 1e6 / updates as f64
        ))?;
        if wrong == 0 && got == want {
            emit(&format!(
                "  integrity check: {COUNTERS} counters, {want} increments expected, {got} found: OK"
            ))?;
        } else {
            ok = 0;
            emit(&format!(
                "  integrity check: {COUNTERS} counters, {want} increments expected, {got} found: \
                 FAILED ({} increments lost, {wrong} counters wrong)",
                want.saturating_sub(got)
            ))?;
        }
        if let Some(dir) = temp_dir {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove the demo directory");
            }
        }
    }
    root.broadcast_into(&mut ok);
    Ok(if ok == 1 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Creates the directory (a fresh temporary one unless given) and the zeroed counter file.
/// Returns the directory and whether it was created here.
fn prepare(dir: Option<&Path>) -> Result<(PathBuf, bool)> {
    let (dir, created) = match dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "--dir {} is not a directory",
                    d.display()
                )));
            }
            (d.to_path_buf(), false)
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let d =
                std::env::temp_dir().join(format!("brlock-demo-{}-{nanos}", std::process::id()));
            std::fs::create_dir(&d).map_err(|source| io_err("create directory", &d, source))?;
            (d, true)
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

fn update<L: RangeLock>(
    rt: &Runtime,
    args: &DemoArgs,
    file: &File,
    path: &Path,
    lock: &mut L,
    expected: &mut [u64],
) -> Result<()> {
    let rank = rt.rank() as u64;
    for round in 0..args.rounds {
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

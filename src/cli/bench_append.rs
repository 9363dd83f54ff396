//! `brlock bench append`: many ranks write small records into shared storage, three ways.
//!
//! Workload: every rank writes `--records` records of pseudo-random length (1 to 4096 bytes
//! plus a newline; `brlock::io::append::records`), gathered into batches that are written
//! once they reach `--batch-bytes` (default 1 KiB, like the flock scripts used on clusters).
//!
//! * `rma`: one shared file, appended to through the shared file pointer in an MPI window
//!   (`brlock::io::append`): per batch one fetch-and-add and one positional write; the file
//!   is synced (`fdatasync` on every rank) at the end, inside the timed phase.
//! * `flock`: the cluster recipe, implemented here as the baseline: per batch, open the
//!   shared file with `O_APPEND`, take an exclusive `flock` (non-blocking attempts with a
//!   random back-off of up to 1 ms between them, as the scripts do), write, close (which
//!   drops the lock); each rank syncs the file once at the end, inside the timed phase.
//! * `files`: one file per record, as a job array whose every task writes its own output
//!   file ("zillions of tiny files"); nothing is synced.
//!
//! The timed phase runs between barriers. Afterwards rank 0 reads everything back (dropping
//! cached pages first, so that on a distributed file system it sees what the servers hold) and
//! checks that every record is present exactly once and intact, with a checker that
//! regenerates the records rather than trusting the writers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;
use nix::errno::Errno;
use nix::fcntl::{posix_fadvise, Flock, FlockArg, PosixFadviseAdvice};
use serde::Serialize;

use super::{emit, emit_json, library_summary, report_error, requested_osc, sysinfo};
use brlock::io::append::records::{push_line, verify, Expected, Verdict};
use brlock::io::append::{AppendFault, AppendFile, AppendOptions};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// How `bench append` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendMethod {
    /// One shared file, shared file pointer in an MPI window.
    Rma,
    /// One shared file, open + exclusive flock + append + close per batch.
    Flock,
    /// One file per record.
    Files,
}

/// Options of `brlock bench append`.
#[derive(Debug, Args)]
pub struct AppendBenchArgs {
    /// How to write.
    #[arg(long, value_enum, default_value_t = AppendMethod::Rma)]
    pub method: AppendMethod,
    /// Directory in which rank 0 creates the run's own subdirectory (removed afterwards unless
    /// --keep); every rank must reach it. Default: the temporary directory (single node only).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Odd ranks reach --dir through this path instead: the same directory through a second
    /// mount of a distributed file system (a second client).
    #[arg(long, value_name = "DIR", requires = "dir")]
    pub alt_dir: Option<PathBuf>,
    /// Records per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub records: u64,
    /// Write a batch once it holds this many bytes (whole records only).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub batch_bytes: u64,
    /// Seed of the records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the run's directory.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Negative control (method rma): append without reserving, so records overwrite each
    /// other and the check must fail.
    #[arg(long, hide = true)]
    pub unsafe_no_reserve: bool,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
struct Report {
    /// Always "append".
    bench: &'static str,
    method: AppendMethod,
    ranks: i32,
    /// Records of all ranks.
    records: u64,
    records_per_rank: u64,
    batch_bytes: u64,
    /// Batches written by all ranks.
    batches: u64,
    /// Bytes read back.
    bytes: u64,
    /// Wall time of the timed phase, barrier to barrier.
    seconds: f64,
    records_per_s: f64,
    mib_per_s: f64,
    /// Files the method created.
    files_created: u64,
    /// Every record present exactly once and intact.
    verified: bool,
    check: Verdict,
    /// With method flock: failed non-blocking lock attempts (each followed by a back-off).
    lock_retries: u64,
    dir: String,
    fs_type: Option<String>,
    mpi: String,
    osc: Option<String>,
    seed: u64,
    unsafe_no_reserve: bool,
}

/// Name of the shared file in the run directory.
const SHARED: &str = "append.out";
/// Subdirectory of the `files` method.
const FILES: &str = "files";
/// Longest run-directory name rank 0 can hand to the others.
const NAME_MAX: usize = 256;

/// Runs `brlock bench append` on every rank.
///
/// # Errors
/// I/O and MPI errors (a rank's write error is reported after the timed phase, by every rank
/// together).
pub fn run(rt: &Runtime, args: &AppendBenchArgs) -> Result<ExitCode> {
    let world = rt.world();
    let (rank, size) = (rt.rank(), rt.size());
    let root = world.process_at_rank(0);
    if args.unsafe_no_reserve && args.method != AppendMethod::Rma {
        return Err(Error::InvalidArgument(
            "--unsafe-no-reserve applies to --method rma only".into(),
        ));
    }

    // Rank 0 makes the run directory; everyone learns its name.
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut name = [0u8; NAME_MAX];
    let mut ok = 1u8;
    if rank == 0 {
        match make_run_dir(&parent) {
            Ok(n) => name[..n.len()].copy_from_slice(n.as_bytes()),
            Err(e) => {
                report_error(rt, &e);
                ok = 0;
            }
        }
    }
    root.broadcast_into(&mut ok);
    if ok == 0 {
        return Ok(ExitCode::FAILURE);
    }
    root.broadcast_into(&mut name[..]);
    let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
    let name = String::from_utf8_lossy(&name[..len]).into_owned();
    let mine = match &args.alt_dir {
        Some(alt) if rank % 2 == 1 => alt.join(&name),
        _ => parent.join(&name),
    };

    // The records, generated before the clock starts.
    let batches = make_batches(args, rank as u32);
    let mut appender = match args.method {
        AppendMethod::Rma => Some(AppendFile::open(
            world,
            &mine.join(SHARED),
            &AppendOptions {
                truncate: true,
                fault: args.unsafe_no_reserve.then_some(AppendFault::NoReserve),
            },
        )?),
        _ => None,
    };

    world.barrier();
    let started = Instant::now();
    let mut retries = 0u64;
    let written = match args.method {
        AppendMethod::Rma => {
            let f = appender
                .as_mut()
                .ok_or_else(|| Error::InvalidArgument("the shared file is not open".into()))?;
            batches.iter().try_for_each(|b| f.append(&b.data).map(drop))
        }
        AppendMethod::Flock => {
            let path = mine.join(SHARED);
            let mut rng = Rng(args.seed ^ (u64::from(rank as u32) << 32) ^ 0x5eed);
            batches
                .iter()
                .try_for_each(|b| flock_append(&path, &b.data, &mut rng, &mut retries))
                .and_then(|()| sync_file(&path))
        }
        AppendMethod::Files => {
            let dir = mine.join(FILES);
            batches.iter().try_for_each(|b| {
                b.records().try_for_each(|(seq, record)| {
                    write_new(&dir.join(format!("r{rank}.{seq}")), record)
                })
            })
        }
    };
    // Collective in every case (rma's close syncs and frees the window).
    let closed = match appender.take() {
        Some(f) => f.close().map(drop),
        None => Ok(()),
    };
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();

    let failed = written.as_ref().err().or(closed.as_ref().err());
    if let Some(e) = failed {
        report_error(rt, e);
    }
    let mut all_ok = 0u8;
    world.all_reduce_into(
        &u8::from(failed.is_none()),
        &mut all_ok,
        SystemOperation::min(),
    );
    let counts = [batches.len() as u64, retries];
    let mut sums = [0u64; 2];
    world.all_reduce_into(&counts[..], &mut sums[..], SystemOperation::sum());
    if all_ok == 0 {
        return Ok(ExitCode::FAILURE);
    }

    // The check, on rank 0.
    let mut verified = 1u8;
    if rank == 0 {
        let run_dir = parent.join(&name);
        let expected = Expected::uniform(args.seed, size as u32, args.records);
        let (data, files_created) = read_back(args.method, &run_dir, &expected)?;
        let check = verify(&data, &expected, false);
        verified = u8::from(check.ok());
        let report = Report {
            bench: "append",
            method: args.method,
            ranks: size,
            records: expected.records(),
            records_per_rank: args.records,
            batch_bytes: args.batch_bytes,
            batches: sums[0],
            bytes: data.len() as u64,
            seconds,
            records_per_s: expected.records() as f64 / seconds,
            mib_per_s: data.len() as f64 / seconds / (1024.0 * 1024.0),
            files_created,
            verified: check.ok(),
            check,
            lock_retries: sums[1],
            dir: parent.display().to_string(),
            fs_type: sysinfo::fs_type(&parent).ok(),
            mpi: library_summary(rt),
            osc: requested_osc(),
            seed: args.seed,
            unsafe_no_reserve: args.unsafe_no_reserve,
        };
        if args.json {
            emit_json(&report)?;
        } else {
            print_text(&report)?;
        }
        if !args.keep {
            if let Err(e) = std::fs::remove_dir_all(&run_dir) {
                tracing::warn!(dir = %run_dir.display(), error = %e, "could not remove the run directory");
            }
        }
    }
    root.broadcast_into(&mut verified);
    Ok(if verified == 1 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Creates `parent/brlock-bench-append.<pid>.<nanos>` with its `files` subdirectory and the
/// (empty) shared file; returns the name.
fn make_run_dir(parent: &Path) -> Result<String> {
    if !parent.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--dir {} is not a directory",
            parent.display()
        )));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("brlock-bench-append.{}.{nanos}", std::process::id());
    let dir = parent.join(&name);
    std::fs::create_dir_all(dir.join(FILES))
        .map_err(|source| io_err("create directory", &dir, source))?;
    let shared = dir.join(SHARED);
    File::create(&shared).map_err(|source| io_err("create", &shared, source))?;
    Ok(name)
}

/// A batch: whole records back to back, and where each starts.
struct Batch {
    data: Vec<u8>,
    /// `(seq, start)` of each record in `data`.
    starts: Vec<(u64, usize)>,
}

impl Batch {
    /// `(seq, record with its newline)` of every record in the batch.
    fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.starts.iter().enumerate().map(|(i, &(seq, start))| {
            let end = self.starts.get(i + 1).map_or(self.data.len(), |s| s.1);
            (seq, &self.data[start..end])
        })
    }
}

fn make_batches(args: &AppendBenchArgs, rank: u32) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur = Batch {
        data: Vec::new(),
        starts: Vec::new(),
    };
    for seq in 0..args.records {
        cur.starts.push((seq, cur.data.len()));
        push_line(&mut cur.data, args.seed, rank, seq);
        if cur.data.len() as u64 >= args.batch_bytes {
            out.push(std::mem::replace(
                &mut cur,
                Batch {
                    data: Vec::new(),
                    starts: Vec::new(),
                },
            ));
        }
    }
    if !cur.data.is_empty() {
        out.push(cur);
    }
    out
}

/// A small xorshift generator for the back-off.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The baseline's append: open with `O_APPEND`, exclusive `flock` with random back-off,
/// write, close.
fn flock_append(path: &Path, data: &[u8], rng: &mut Rng, retries: &mut u64) -> Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| io_err("open", path, source))?;
    let mut locked = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                file = f;
                *retries += 1;
                std::thread::sleep(Duration::from_micros(1 + rng.next() % 1000));
            }
            Err((_, errno)) => {
                return Err(io_err("flock", path, std::io::Error::from(errno)));
            }
        }
    };
    locked
        .write_all(data)
        .map_err(|source| io_err("write", path, source))?;
    // Closing the file drops the lock.
    drop(locked);
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_data())
        .map_err(|source| io_err("sync", path, source))
}

fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|source| io_err("write", path, source))
}

/// Reads `path` after dropping its cached pages, so that a client of a distributed file system
/// sees what the servers hold rather than a stale cache.
fn read_fresh(path: &Path) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|source| io_err("open", path, source))?;
    if let Err(e) = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
        tracing::debug!(path = %path.display(), error = %e, "posix_fadvise failed");
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|source| io_err("read", path, source))?;
    Ok(data)
}

/// Everything the method wrote, as one byte string (the files of `files` in rank and record
/// order), and the number of files it created.
fn read_back(method: AppendMethod, dir: &Path, expected: &Expected) -> Result<(Vec<u8>, u64)> {
    match method {
        AppendMethod::Rma | AppendMethod::Flock => Ok((read_fresh(&dir.join(SHARED))?, 1)),
        AppendMethod::Files => {
            let files = dir.join(FILES);
            let created = std::fs::read_dir(&files)
                .map_err(|source| io_err("list", &files, source))?
                .count() as u64;
            let mut data = Vec::new();
            for (rank, &n) in expected.per_rank.iter().enumerate() {
                for seq in 0..n {
                    let path = files.join(format!("r{rank}.{seq}"));
                    match read_fresh(&path) {
                        Ok(d) => data.extend_from_slice(&d),
                        // A missing file is a missing record, which the check reports.
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok((data, created))
        }
    }
}

fn print_text(r: &Report) -> Result<()> {
    emit(&format!(
        "brlock bench append: method {:?}, {} ranks x {} records ({} bytes in {} batches of >= \
         {} bytes) in {}",
        r.method, r.ranks, r.records_per_rank, r.bytes, r.batches, r.batch_bytes, r.dir
    ))?;
    emit(&format!(
        "  {:.3} s, {:.0} records/s, {:.1} MiB/s, {} file(s) created",
        r.seconds, r.records_per_s, r.mib_per_s, r.files_created
    ))?;
    emit(&format!(
        "  check: {} of {} records, {} missing, {} duplicated, {} torn or unexpected lines: {}",
        r.check.lines,
        r.check.expected,
        r.check.missing,
        r.check.duplicated,
        r.check.unexpected,
        if r.verified { "OK" } else { "FAILED" }
    ))
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

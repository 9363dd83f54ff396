//! `bench append`: many ranks write small records into shared storage, three ways.
//!
//! Workload: every rank writes `--records` records of pseudo-random length (1 to 4096 bytes
//! plus a newline; [`crate::io::append::records`]), gathered into batches that are written
//! once they reach `--batch-bytes` (default 1 KiB, like the flock scripts used on clusters).
//!
//! * `rma`: one shared file, appended to through the shared file pointer in an MPI window
//!   ([`crate::io::append`]): per batch one fetch-and-add and one positional write; the file
//!   is synced (`fdatasync` on every rank) at the end, inside the timed phase.
//! * `rma-node`: the same file and pointer, but the ranks of a node send their batches to one
//!   writer per node (a point-to-point message each), which appends many batches with one
//!   reservation and one write: `collect`'s write aggregation. The file system then sees few
//!   large writes.
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

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;
use nix::errno::Errno;
use nix::fcntl::{posix_fadvise, Flock, FlockArg, PosixFadviseAdvice};
use serde::Serialize;

use crate::check::{mpi_library, requested_osc, Check, Outcome, Run};
use crate::choice::choice;
use crate::collective::{agree_outcome, agree_result, path_from, split_path};
use crate::error::{Error, Result};
use crate::io::append::collect::writer::{Files, Unit, Writer};
use crate::io::append::index::Stream;
use crate::io::append::records::{push_line, verify, Expected, Verdict};
#[cfg(feature = "testing")]
use crate::io::append::AppendFault;
use crate::io::append::{AppendFile, AppendOptions};
use crate::sys::OwnedComm;

choice! {
    /// How `bench append` writes.
    pub enum AppendMethod {
        /// One shared file, shared file pointer in an MPI window.
        Rma = "rma",
        /// The same, with the batches of a node's ranks written by one writer per node.
        RmaNode = "rma-node",
        /// One shared file, open + exclusive flock + append + close per batch.
        Flock = "flock",
        /// One file per record.
        Files = "files",
    }
}

/// What `bench append` does.
#[derive(Debug, Clone)]
pub struct AppendBench {
    /// How to write.
    pub method: AppendMethod,
    /// Directory in which rank 0 creates the run's own subdirectory (removed afterwards unless
    /// `keep`); every rank must reach it. Default: the temporary directory (single node only).
    pub dir: Option<PathBuf>,
    /// Odd ranks reach `dir` through this path instead: the same directory through a second
    /// mount of a distributed file system (a second client).
    pub alt_dir: Option<PathBuf>,
    /// Records per rank.
    pub records: u64,
    /// Write a batch once it holds this many bytes (whole records only).
    pub batch_bytes: u64,
    /// Seed of the records.
    pub seed: u64,
    /// Keep the run's directory.
    pub keep: bool,
    /// Negative control (method rma, feature `testing`): append without reserving, so records
    /// overwrite each other and the check must fail.
    pub unsafe_no_reserve: bool,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
pub struct AppendBenchReport {
    /// Always "append".
    pub bench: &'static str,
    /// How the records were written.
    pub method: AppendMethod,
    /// Ranks.
    pub ranks: i32,
    /// Records of all ranks.
    pub records: u64,
    /// Records per rank.
    pub records_per_rank: u64,
    /// The batch size.
    pub batch_bytes: u64,
    /// Batches written by all ranks.
    pub batches: u64,
    /// Write calls on shared storage by all ranks (one per batch, except `rma-node`, whose
    /// node writers write many batches at once; `files`: one per record).
    pub write_calls: u64,
    /// Bytes read back.
    pub bytes: u64,
    /// Wall time of the timed phase, barrier to barrier.
    pub seconds: f64,
    /// Records of all ranks per second.
    pub records_per_s: f64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Files the method created.
    pub files_created: u64,
    /// Every record present exactly once and intact.
    pub verified: bool,
    /// The verifier's counts.
    pub check: Verdict,
    /// With method flock: failed non-blocking lock attempts (each followed by a back-off).
    pub lock_retries: u64,
    /// The parent directory.
    pub dir: String,
    /// Its file system type.
    pub fs_type: Option<String>,
    /// The MPI library.
    pub mpi: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
    /// Seed of the records.
    pub seed: u64,
    /// See [`AppendBench::unsafe_no_reserve`].
    pub unsafe_no_reserve: bool,
}

/// Name of the shared file in the run directory.
const SHARED: &str = "append.out";
/// Subdirectory of the `files` method.
const FILES: &str = "files";

impl Check for AppendBench {
    type Report = AppendBenchReport;
    type Prepared = PreparedAppendBench;

    /// Rank 0's share: its own records, generated before the clock starts, and every rank's,
    /// read back (records average half of [`MAX_LINE`](crate::io::append::records::MAX_LINE)).
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let bytes = {
            let mean = (crate::io::append::records::MAX_LINE / 2 + 2) as u128;
            u128::from(self.records) * mean * (u128::from(ranks.max(0) as u32) + 1)
        };
        (bytes, "--records x ranks")
    }

    /// Refuses the negative control with another method than rma.
    fn validate(&self, _ranks: i32) -> Result<()> {
        if self.unsafe_no_reserve && self.method != AppendMethod::Rma {
            return Err(Error::InvalidArgument(
                "--unsafe-no-reserve applies to --method rma only".into(),
            ));
        }
        #[cfg(not(feature = "testing"))]
        crate::error::needs_testing(self.unsafe_no_reserve, "the no-reserve negative control")?;
        Ok(())
    }

    /// Rank 0 makes the run's directory (with its `files` subdirectory and the empty shared
    /// file) and every rank learns its name.
    fn prepare<C: Communicator>(self, comm: &C) -> Result<PreparedAppendBench> {
        self.validate(comm.size())?;
        let parent = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let run_dir = path_from(comm, 0, "create the run directory", || {
            make_run_dir(&parent)
        })?;
        Ok(PreparedAppendBench {
            bench: self,
            parent,
            run_dir,
        })
    }
}

/// An [`AppendBench`] ready to run.
#[derive(Debug)]
pub struct PreparedAppendBench {
    bench: AppendBench,
    parent: PathBuf,
    /// The run's directory as rank 0 made it (under `parent`).
    run_dir: PathBuf,
}

impl Run for PreparedAppendBench {
    type Report = AppendBenchReport;

    /// Writes every rank's records by the method, then checks them on rank 0. Every rank
    /// passes if every record is there once and intact; rank 0 gets the report. A write error
    /// is agreed after the timed phase: every rank then fails, the failing rank with its error
    /// in the outcome (and the run's directory is removed unless kept).
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<AppendBenchReport>> {
        let cleanup = (comm.rank() == 0 && !self.bench.keep).then(|| self.run_dir.clone());
        let outcome = self.write(comm).and_then(|written| written.check(comm));
        // The errors are agreed: every rank is done with the directory.
        if outcome.is_err() {
            remove_run(cleanup.as_ref());
        }
        outcome
    }
}

impl PreparedAppendBench {
    /// Collective: writes every rank's records by the method, timed between barriers.
    ///
    /// # Errors
    /// Agreed after the timed phase: a rank's write error on it (the run's directory is then
    /// removed unless kept), [`Error::Collective`] on every rank; MPI errors before.
    fn write(self, comm: &impl Communicator) -> Result<WrittenAppendBench> {
        let args = &self.bench;
        let rank = comm.rank();
        let name = self
            .run_dir
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let mine = split_path(rank, &self.parent, args.alt_dir.as_deref()).join(&name);

        // The records, generated before the clock starts.
        let batches = make_batches(args, rank as u32);
        let mut appender = match args.method {
            AppendMethod::Rma | AppendMethod::RmaNode => {
                #[allow(unused_mut)]
                let mut opts = AppendOptions::truncating(true);
                #[cfg(feature = "testing")]
                if args.unsafe_no_reserve {
                    opts.fault = Some(AppendFault::NoReserve);
                }
                Some(AppendFile::open(comm, &mine.join(SHARED), &opts)?)
            }
            _ => None,
        };
        let mut node = None;
        if args.method == AppendMethod::RmaNode {
            match OwnedComm::split_shared(comm) {
                Ok(n) => node = Some(n),
                Err(e) => {
                    if let Some(f) = appender.take() {
                        let _ = f.close();
                    }
                    return Err(e);
                }
            }
        }

        comm.barrier();
        let started = Instant::now();
        let mut retries = 0u64;
        let mut write_calls = batches.len() as u64;
        let written = match args.method {
            AppendMethod::RmaNode => {
                let (Some(out), Some(node)) = (appender.take(), node.take()) else {
                    return Err(Error::InvalidArgument("the shared file is not open".into()));
                };
                let files = Files {
                    out,
                    err: None,
                    index: None,
                };
                let mut writer =
                    Writer::aggregating(files, node, args.batch_bytes, Duration::from_millis(50));
                let submitted = batches.iter().try_for_each(|b| {
                    let mut unit = Unit::new(rank as u32);
                    unit.add(Stream::Out, 0, 1, &b.data);
                    writer.submit(unit)?;
                    writer.poll()
                });
                let finished = writer.finish();
                let (files, node, stats) = writer.into_parts();
                write_calls = stats.write_calls;
                appender = Some(files.out);
                let freed = node.map_or(Ok(()), OwnedComm::free);
                submitted.and(finished).and(freed)
            }
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
        comm.barrier();
        let seconds = started.elapsed().as_secs_f64();

        if args.method == AppendMethod::Files {
            write_calls = batches.iter().map(|b| b.starts.len() as u64).sum();
        }
        let counts = [batches.len() as u64, retries, write_calls];
        let mut sums = [0u64; 3];
        comm.all_reduce_into(&counts[..], &mut sums[..], SystemOperation::sum());
        agree_result(comm, "append", written.and(closed))?;
        Ok(WrittenAppendBench {
            prepared: self,
            seconds,
            batches: sums[0],
            retries: sums[1],
            write_calls: sums[2],
        })
    }
}

/// A [`PreparedAppendBench`] whose records are written.
#[derive(Debug)]
struct WrittenAppendBench {
    prepared: PreparedAppendBench,
    seconds: f64,
    batches: u64,
    retries: u64,
    write_calls: u64,
}

impl WrittenAppendBench {
    /// Collective: rank 0 reads everything back and checks it (then removes the run's
    /// directory unless kept). Every rank passes if every record is there once and intact;
    /// rank 0 gets the report.
    ///
    /// # Errors
    /// I/O errors of the read-back on rank 0; MPI errors.
    fn check(self, comm: &impl Communicator) -> Result<Outcome<AppendBenchReport>> {
        let this = &self.prepared;
        let args = &this.bench;
        let (rank, size) = (comm.rank(), comm.size());
        let seconds = self.seconds;
        let cleanup = (rank == 0 && !args.keep).then_some(&this.run_dir);
        let mut verified = 1u8;
        let mut report = None;
        let expected = Expected::uniform(args.seed, size as u32, args.records);
        let back = (rank == 0).then(|| read_back(args.method, &this.run_dir, &expected));
        if let Some((data, files_created)) = agree_outcome(comm, "read back", back)? {
            let check = verify(&data, &expected, false);
            verified = u8::from(check.ok());
            report = Some(AppendBenchReport {
                bench: "append",
                method: args.method,
                ranks: size,
                records: expected.records(),
                records_per_rank: args.records,
                batch_bytes: args.batch_bytes,
                batches: self.batches,
                write_calls: self.write_calls,
                bytes: data.len() as u64,
                seconds,
                records_per_s: expected.records() as f64 / seconds,
                mib_per_s: data.len() as f64 / seconds / (1024.0 * 1024.0),
                files_created,
                verified: check.ok(),
                check,
                lock_retries: self.retries,
                dir: this.parent.display().to_string(),
                fs_type: crate::host::fs_type(&this.parent).ok(),
                mpi: mpi_library(),
                osc: requested_osc(),
                seed: args.seed,
                unsafe_no_reserve: args.unsafe_no_reserve,
            });
            remove_run(cleanup);
        }
        comm.process_at_rank(0).broadcast_into(&mut verified);
        Ok(Outcome {
            passed: verified == 1,
            report,
            errors: Vec::new(),
        })
    }
}

/// Removes the run's directory (rank 0, unless kept); a failure is only logged.
fn remove_run(dir: Option<&PathBuf>) {
    if let Some(dir) = dir {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove the run directory");
        }
    }
}

/// Creates `parent/brlock-bench-append.<pid>.<nanos>` with its `files` subdirectory and the
/// (empty) shared file; returns its path.
fn make_run_dir(parent: &Path) -> Result<PathBuf> {
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
    let shared = dir.join(SHARED);
    let made = std::fs::create_dir_all(dir.join(FILES))
        .map_err(|source| io_err("create directory", &dir, source))
        .and_then(|()| File::create(&shared).map_err(|source| io_err("create", &shared, source)));
    if let Err(e) = made {
        remove_run(Some(&dir));
        return Err(e);
    }
    Ok(dir)
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

fn make_batches(args: &AppendBench, rank: u32) -> Vec<Batch> {
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
        AppendMethod::Rma | AppendMethod::RmaNode | AppendMethod::Flock => {
            Ok((read_fresh(&dir.join(SHARED))?, 1))
        }
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

impl fmt::Display for AppendBenchReport {
    /// Three lines: the setting, the speed, the check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        writeln!(
            f,
            "brlock bench append: method {:?}, {} ranks x {} records ({} bytes in {} batches of \
             >= {} bytes) in {}",
            r.method, r.ranks, r.records_per_rank, r.bytes, r.batches, r.batch_bytes, r.dir
        )?;
        writeln!(
            f,
            "  {:.3} s, {:.0} records/s, {:.1} MiB/s, {} write calls, {} file(s) created",
            r.seconds, r.records_per_s, r.mib_per_s, r.write_calls, r.files_created
        )?;
        write!(
            f,
            "  check: {} of {} records, {} missing, {} duplicated, {} torn or unexpected lines: {}",
            r.check.lines,
            r.check.expected,
            r.check.missing,
            r.check.duplicated,
            r.check.unexpected,
            if r.verified { "OK" } else { "FAILED" }
        )
    }
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

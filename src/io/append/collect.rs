//! The engine of `brlock collect`: every rank runs a command and its standard output goes, line
//! by line and in batches, into one shared file through one-sided appends ([`super::AppendFile`]),
//! instead of one file per task.
//!
//! Per rank: the command runs with stdout and stderr piped. A reader thread cuts stdout into
//! chunks of whole lines and hands them over a bounded channel to the main thread, the only
//! one that calls MPI (MPI runs `FUNNELED`; windows are not `Send`). The main thread gathers
//! them into a batch and appends the batch when it reaches `--batch-bytes` or when its oldest
//! line is `--batch-ms` old: one fetch-and-add on the shared file pointer plus one positional
//! write. A line is never split: a batch holds whole lines only, and a line longer than the
//! batch size goes out as a batch of its own. A last line without newline gets one. stderr is
//! passed to the caller's [`Collect::stderr`] sink, each line prefixed with `[rank R] `.
//!
//! With `--ordered` the output is the whole output of rank 0, then of rank 1, and so on: each
//! rank spools its lines to an unlinked temporary file (in `--spool-dir`) and, once every
//! command has ended, one collective ordered append (`MPI_Exscan` of the lengths, one
//! fetch-and-add for the total) places the spools back to back. This costs a rank's whole
//! output once in local temporary space and a second copy at the end, and nothing is in the
//! shared file before every command has finished.
//!
//! An index ([`super::index`]) records one text line per line of output, appended through its
//! own shared pointer; the entries of one batch are contiguous, and with `--ordered` the index
//! is in rank order too.
//!
//! The end is collective and every rank reaches it, whatever happened to its command: final
//! appends, `fdatasync` on every rank (so the output is durable when `collect` returns), then
//! the ranks' outcomes are gathered on rank 0, whose report names every failed rank, and every
//! rank learns whether any failed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::index::{line_spans, Entry};
#[cfg(feature = "testing")]
use super::AppendFault;
use super::{AppendFile, AppendOptions};
use crate::collective::{gather_messages, split_path, Outcome};
use crate::error::{Error, Result};

/// Where the commands' standard error goes: each call gets one whole line, with its newline,
/// prefixed with `[rank R] `. Called from a thread of its own.
pub type LineSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What `brlock collect` does.
#[derive(Clone)]
pub struct Collect {
    /// The shared output file (created if missing; appended to, unless `truncate`). Every rank
    /// must reach the same file.
    pub out: PathBuf,
    /// Odd ranks use this path for the output file instead: the same file through a second
    /// mount of a distributed file system.
    pub alt_out: Option<PathBuf>,
    /// Also record an index ([`super::index`]), one line per output line.
    pub index: Option<PathBuf>,
    /// Odd ranks use this path for the index file instead (see `alt_out`).
    pub alt_index: Option<PathBuf>,
    /// Write the whole output of rank 0 first, then rank 1's, and so on (each rank's output is
    /// spooled locally until every command has ended).
    pub ordered: bool,
    /// Append a batch once it holds this many bytes.
    pub batch_bytes: u64,
    /// Append a batch once its oldest line is this old.
    pub batch_age: Duration,
    /// Directory of the spool files of `ordered` (default: the temporary directory).
    pub spool_dir: Option<PathBuf>,
    /// Empty the output (and index) file first instead of appending after its content.
    pub truncate: bool,
    /// Negative control for tests (feature `testing`): append without reserving (a racy
    /// read-write-advance of the shared pointer), so that records overwrite each other.
    pub unsafe_no_reserve: bool,
    /// The command every rank runs, and its arguments; `{rank}` in them is replaced by the
    /// rank. The environment has `BRLOCK_RANK` and `BRLOCK_SIZE`.
    pub command: Vec<String>,
    /// Where the commands' standard error goes.
    pub stderr: LineSink,
}

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collect")
            .field("out", &self.out)
            .field("index", &self.index)
            .field("ordered", &self.ordered)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// How often the home rank of the shared pointers enters MPI while it waits for output, so
/// that other ranks' reservations progress under one-sided components without asynchronous
/// progress (Open MPI's `osc pt2pt`).
const PROGRESS_TICK: Duration = Duration::from_millis(1);
/// Chunks in flight between the reader thread and the main thread (each up to about
/// `READ_CHUNK` bytes plus one partial line).
const CHANNEL_DEPTH: usize = 64;
/// Bytes read from the command's stdout at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes copied at a time from a spool to the output.
const COPY_CHUNK: usize = 1 << 20;

/// What happened to a rank's command, as gathered on rank 0: `[kind, value]`.
const OK: i64 = 0;
const EXITED: i64 = 1;
const SIGNALED: i64 = 2;
const NOT_STARTED: i64 = 3;
const NO_STATUS: i64 = 4;

/// What rank 0 learns of a run.
#[derive(Debug, Serialize)]
pub struct CollectSummary {
    /// Always "collect".
    pub command: &'static str,
    /// Ranks.
    pub ranks: i32,
    /// The output file as rank 0 opened it.
    pub out: String,
    /// Whether the output is in rank order.
    pub ordered: bool,
    /// Lines of all ranks.
    pub lines: u64,
    /// Bytes of all ranks.
    pub bytes: u64,
    /// Batches of all ranks.
    pub batches: u64,
    /// End of the output file after the run (its size, if nothing else wrote to it).
    pub file_end: u64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// The ranks whose command or output failed.
    pub failed_ranks: Vec<i32>,
    /// Why each of them failed, in rank order.
    #[serde(skip)]
    pub failures: Vec<(i32, String)>,
}

impl CollectSummary {
    /// One line naming every failed rank and why, or `None` if none failed.
    pub fn failure_line(&self, out: &Path) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        // Ranks that failed alike are listed together.
        let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
        for (rank, why) in &self.failures {
            match groups.iter_mut().find(|(w, _)| w == why) {
                Some((_, ranks)) => ranks.push(rank.to_string()),
                None => groups.push((why, vec![rank.to_string()])),
            }
        }
        let list: Vec<String> = groups
            .iter()
            .map(|(why, ranks)| {
                let noun = if ranks.len() == 1 { "rank" } else { "ranks" };
                format!("{noun} {}: {why}", ranks.join(", "))
            })
            .collect();
        let rest = if self.failures.len() < usize::try_from(self.ranks).unwrap_or(0) {
            format!("the other ranks' output is complete in {}", out.display())
        } else {
            format!("no rank's output is complete in {}", out.display())
        };
        Some(format!(
            "collect: {} of {} ranks failed ({}); {rest}",
            self.failures.len(),
            self.ranks,
            list.join("; "),
        ))
    }
}

/// Where a rank's lines go until the end.
enum Sink {
    /// Unordered: straight into the shared file, batch by batch.
    Shared,
    /// Ordered: a local spool (`None` if it could not be made), and the index entries
    /// `(offset in spool, length)`.
    Spool {
        file: Option<File>,
        len: u64,
        entries: Vec<(u64, u64)>,
    },
}

/// One rank's streaming state.
struct Stream<'a> {
    rank: i32,
    out: &'a mut AppendFile,
    index: Option<&'a mut AppendFile>,
    batch_bytes: u64,
    batch_age: Duration,
    sink: Sink,
    batch: Vec<u8>,
    batch_since: Option<Instant>,
    lines: u64,
    batches: u64,
    /// The first I/O or MPI error of this rank; after it, output is drained and dropped.
    error: Option<Error>,
}

impl Collect {
    /// Collective: opens the shared output file (and the index) on every rank.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank cannot open a file;
    /// [`Error::InvalidArgument`] for an empty command or the negative control without the
    /// `testing` feature.
    pub fn open(&self, comm: &impl Communicator) -> Result<OpenedCollect> {
        if self.command.is_empty() {
            return Err(Error::InvalidArgument("no command to run".into()));
        }
        let rank = comm.rank();
        #[allow(unused_mut)]
        let mut opts = AppendOptions::truncating(self.truncate);
        #[cfg(feature = "testing")]
        if self.unsafe_no_reserve {
            opts.fault = Some(AppendFault::NoReserve);
        }
        #[cfg(not(feature = "testing"))]
        crate::error::needs_testing(self.unsafe_no_reserve, "the no-reserve negative control")?;
        let out = AppendFile::open(
            comm,
            split_path(rank, &self.out, self.alt_out.as_deref()),
            &opts,
        )?;
        let index = match &self.index {
            Some(p) => match AppendFile::open(
                comm,
                split_path(rank, p, self.alt_index.as_deref()),
                &AppendOptions::truncating(self.truncate),
            ) {
                Ok(index) => Some(index),
                Err(e) => {
                    // Agreed by every rank: close the output file together.
                    let _ = out.close();
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(OpenedCollect {
            collect: self.clone(),
            out,
            index,
            started: Instant::now(),
        })
    }
}

/// A [`Collect`] with its files open.
#[derive(Debug)]
pub struct OpenedCollect {
    collect: Collect,
    out: AppendFile,
    index: Option<AppendFile>,
    started: Instant,
}

impl OpenedCollect {
    /// Collective: runs the command on every rank and collects its output, then ends
    /// together: final appends, `fdatasync` on every rank, the ranks' outcomes gathered on
    /// rank 0.
    ///
    /// The outcome passes on every rank if no rank failed; rank 0 gets the summary, which
    /// names every failed rank and why (its command's status, its output or sync error).
    ///
    /// # Errors
    /// Errors that leave the ranks out of step (MPI failures in the end phase); everything
    /// else is in the outcome.
    pub fn run(mut self, comm: &impl Communicator) -> Result<Outcome<CollectSummary>> {
        let args = &self.collect;
        let (rank, size) = (comm.rank(), comm.size());
        let mut spool_error = None;
        let sink = if args.ordered {
            let file = spool(args.spool_dir.as_deref(), rank)
                .map_err(|e| spool_error = Some(e))
                .ok();
            Sink::Spool {
                file,
                len: 0,
                entries: Vec::new(),
            }
        } else {
            Sink::Shared
        };
        let mut stream = Stream {
            rank,
            out: &mut self.out,
            index: self.index.as_mut(),
            batch_bytes: args.batch_bytes,
            batch_age: args.batch_age,
            sink,
            batch: Vec::new(),
            batch_since: None,
            lines: 0,
            batches: 0,
            error: None,
        };

        // The command.
        let argv: Vec<String> = args
            .command
            .iter()
            .map(|a| a.replace("{rank}", &rank.to_string()))
            .collect();
        // Without a spool this rank only takes part in the collective steps.
        let spawned = if spool_error.is_some() {
            Err(std::io::Error::other("no spool"))
        } else {
            spawn(&argv, rank, size)
        };
        let status = match spawned {
            Ok(mut child) => {
                let (tx, rx) = mpsc::sync_channel(CHANNEL_DEPTH);
                let stdout = child.stdout.take().map(|p| read_stdout(p, tx));
                let stderr = child
                    .stderr
                    .take()
                    .map(|p| pass_stderr(p, rank, args.stderr.clone()));
                stream.pump(&rx, rank == 0 && !args.ordered);
                if let Some(Err(e)) = stdout.map(JoinHandle::join).transpose().ok().flatten() {
                    stream.fail(io_err("read the output of", &argv[0], e));
                }
                let status = wait(&mut child);
                if let Some(h) = stderr {
                    let _ = h.join();
                }
                status
            }
            // Rank 0's report names the reason.
            Err(e) => {
                tracing::debug!("cannot start the command: {e}");
                stream.error = spool_error.take();
                [NOT_STARTED, i64::from(e.raw_os_error().unwrap_or(0))]
            }
        };
        stream.flush();

        // Collective end phase: every rank gets here.
        let (lines, batches) = (stream.lines, stream.batches);
        let mut local_error = stream.error.take();
        let sink = std::mem::replace(&mut stream.sink, Sink::Shared);
        drop(stream);
        if let Sink::Spool { file, len, entries } = sink {
            let len = if local_error.is_some() { 0 } else { len };
            if let Err(e) = place_spool(
                rank,
                file.as_ref(),
                len,
                &entries,
                &mut self.out,
                self.index.as_mut(),
            ) {
                local_error.get_or_insert(e);
            }
        }
        let OpenedCollect {
            collect,
            out,
            index,
            started,
        } = self;
        end_phase(
            comm,
            &collect,
            EndState {
                out,
                index,
                status,
                local_error,
                lines,
                batches,
                started,
            },
        )
    }
}

/// Creates this rank's spool: a new file, unlinked at once (it lives as long as the handle).
fn spool(dir: Option<&Path>, rank: i32) -> Result<File> {
    let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let path = dir.join(format!(
        "brlock-collect-spool.{}.{rank}",
        std::process::id()
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| io_err("create spool", &path.display().to_string(), source))?;
    std::fs::remove_file(&path)
        .map_err(|source| io_err("unlink spool", &path.display().to_string(), source))?;
    Ok(file)
}

fn spawn(argv: &[String], rank: i32, size: i32) -> std::io::Result<Child> {
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command given"))?;
    Command::new(program)
        .args(rest)
        .env("BRLOCK_RANK", rank.to_string())
        .env("BRLOCK_SIZE", size.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Waits for the command and encodes how it ended.
fn wait(child: &mut Child) -> [i64; 2] {
    match child.wait() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => [OK, 0],
            (Some(c), _) => [EXITED, i64::from(c)],
            (None, Some(sig)) => [SIGNALED, i64::from(sig)],
            (None, None) => [NO_STATUS, 0],
        },
        Err(e) => {
            tracing::error!("waiting for the command: {e}");
            [NO_STATUS, 0]
        }
    }
}

/// The reader thread: cuts the command's stdout into chunks of whole lines. A last line
/// without newline gets one. Stops early (and lets the command get SIGPIPE) only if the main
/// thread is gone.
fn read_stdout(mut pipe: ChildStdout, tx: SyncSender<Vec<u8>>) -> JoinHandle<std::io::Result<()>> {
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let fresh = &buf[..n];
            match fresh.iter().rposition(|&b| b == b'\n') {
                Some(last) => {
                    pending.extend_from_slice(&fresh[..=last]);
                    let chunk = std::mem::replace(&mut pending, fresh[last + 1..].to_vec());
                    if tx.send(chunk).is_err() {
                        return Ok(());
                    }
                }
                None => pending.extend_from_slice(fresh),
            }
        }
        if !pending.is_empty() {
            pending.push(b'\n');
            let _ = tx.send(pending);
        }
        Ok(())
    })
}

/// The stderr thread: each line of the command's stderr, prefixed with the rank, to `sink`.
fn pass_stderr(pipe: ChildStderr, rank: i32, sink: LineSink) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    let mut text = format!("[rank {rank}] ").into_bytes();
                    text.extend_from_slice(&line);
                    sink(&text);
                }
            }
        }
    })
}

impl Stream<'_> {
    /// Receives chunks until the reader thread ends, appending batches by size and age.
    fn pump(&mut self, rx: &Receiver<Vec<u8>>, home: bool) {
        let max_age = self.batch_age;
        loop {
            let wait = match self.batch_since {
                Some(t) => max_age.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            let wait = if home { wait.min(PROGRESS_TICK) } else { wait };
            match rx.recv_timeout(wait) {
                Ok(chunk) => {
                    self.batch_since.get_or_insert_with(Instant::now);
                    self.batch.extend_from_slice(&chunk);
                    if self.batch.len() as u64 >= self.batch_bytes {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.batch_since.is_some_and(|t| t.elapsed() >= max_age) {
                self.flush();
            }
            if home {
                self.out.progress();
            }
        }
    }

    /// Appends the batch (to the shared file or the spool) with its index entries.
    fn flush(&mut self) {
        self.batch_since = None;
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if self.error.is_none() {
            if let Err(e) = self.write_batch(&batch) {
                self.fail(e);
            }
        }
        self.lines += batch.iter().filter(|&&b| b == b'\n').count() as u64;
        self.batches += 1;
        self.batch = batch;
        self.batch.clear();
    }

    fn write_batch(&mut self, batch: &[u8]) -> Result<()> {
        match &mut self.sink {
            Sink::Shared => {
                let offset = self.out.append(batch)?;
                if let Some(index) = self.index.as_deref_mut() {
                    let mut text = String::new();
                    for (seq, (start, len)) in (self.lines..).zip(line_spans(batch)) {
                        entry(self.rank, seq, offset + start, len).push_to(&mut text);
                    }
                    index.append(text.as_bytes())?;
                }
                Ok(())
            }
            Sink::Spool {
                file: Some(file),
                len,
                entries,
            } => {
                file.write_all_at(batch, *len)
                    .map_err(|source| io_err("write", "the spool", source))?;
                if self.index.is_some() {
                    entries.extend(line_spans(batch).map(|(s, l)| (*len + s, l)));
                }
                *len += batch.len() as u64;
                Ok(())
            }
            Sink::Spool { file: None, .. } => Err(Error::InvalidArgument("no spool file".into())),
        }
    }

    /// Records the first error; later output is drained and dropped.
    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            // Reported once, in rank 0's summary line.
            tracing::debug!("{e}; this rank's further output is dropped");
            self.error = Some(e);
        }
    }
}

/// The index entry of one line.
fn entry(rank: i32, seq: u64, offset: u64, len: u64) -> Entry {
    Entry {
        // Ranks are never negative.
        rank: u32::try_from(rank).unwrap_or(0),
        seq,
        offset,
        len,
    }
}

/// `--ordered`, collectively: reserve every rank's spool back to back in rank order, copy this
/// rank's spool into its place, then the index the same way.
fn place_spool(
    rank: i32,
    spool: Option<&File>,
    len: u64,
    entries: &[(u64, u64)],
    out: &mut AppendFile,
    index: Option<&mut AppendFile>,
) -> Result<()> {
    let base = out.reserve_ordered(len)?;
    let mut copied = copy_spool(spool, len, base, out);
    if let Some(index) = index {
        let mut text = String::new();
        if copied.is_ok() {
            for (seq, &(start, l)) in (0u64..).zip(entries) {
                entry(rank, seq, base + start, l).push_to(&mut text);
            }
        }
        // Collective: taken part in even after a failed copy.
        if let Err(e) = index.append_ordered(text.as_bytes()) {
            copied = copied.and(Err(e));
        }
    }
    copied
}

fn copy_spool(spool: Option<&File>, len: u64, base: u64, out: &AppendFile) -> Result<()> {
    let Some(spool) = spool else {
        return Ok(());
    };
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(COPY_CHUNK as u64) as usize;
        spool
            .read_exact_at(&mut buf[..n], done)
            .map_err(|source| io_err("read", "the spool", source))?;
        out.write_at(base + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// What a rank brings to the end phase.
struct EndState {
    out: AppendFile,
    index: Option<AppendFile>,
    status: [i64; 2],
    local_error: Option<Error>,
    lines: u64,
    batches: u64,
    started: Instant,
}

/// The collective end: close (sync) the files, gather outcomes on rank 0.
fn end_phase(
    comm: &impl Communicator,
    args: &Collect,
    st: EndState,
) -> Result<Outcome<CollectSummary>> {
    let rank = comm.rank();
    let out_bytes = st.out.appended();
    let out_path = st.out.path().display().to_string();
    // Every rank closes (the closes agree on their outcome, so an error is on every rank);
    // what this rank reports of them is its own part.
    let mut errors: Vec<String> = st.local_error.iter().map(Error::to_string).collect();
    let mut file_end = 0;
    let mut closed = |result: Result<()>| {
        if let Err(e) = result {
            if let Some(own) = e.local() {
                errors.push(own.to_string());
            }
        }
    };
    closed(st.out.close().map(|end| file_end = end));
    if let Some(index) = st.index {
        closed(index.close().map(drop));
    }
    let why = describe(&st.status, &args.command[0], &errors);
    let failures = gather_messages(comm, why);

    let totals = [st.lines, out_bytes, st.batches];
    let mut sums = [0u64; 3];
    comm.all_reduce_into(&totals[..], &mut sums[..], SystemOperation::sum());
    let passed = failures.is_empty();
    let summary = (rank == 0).then(|| CollectSummary {
        command: "collect",
        ranks: comm.size(),
        out: out_path,
        ordered: args.ordered,
        lines: sums[0],
        bytes: sums[1],
        batches: sums[2],
        file_end,
        seconds: st.started.elapsed().as_secs_f64(),
        failed_ranks: failures.iter().map(|(r, _)| *r).collect(),
        failures,
    });
    Ok(Outcome {
        passed,
        report: summary,
        errors: Vec::new(),
    })
}
/// Why a rank failed, from how its command ended (`[kind, value]`) and its output errors, or
/// `None`.
fn describe(status: &[i64; 2], program: &str, errors: &[String]) -> Option<String> {
    let [kind, value] = *status;
    let command = match kind {
        OK => None,
        EXITED => Some(format!("`{program}` exited with status {value}")),
        SIGNALED => Some(format!("`{program}` killed by signal {value}")),
        NOT_STARTED if value != 0 => Some(format!(
            "`{program}` could not start: {}",
            crate::error::describe_os_error(&std::io::Error::from_raw_os_error(value as i32))
        )),
        NOT_STARTED => Some(format!("`{program}` was not started")),
        _ => Some(format!("`{program}`: no exit status")),
    };
    let all: Vec<&str> = command
        .iter()
        .map(String::as_str)
        .chain(errors.iter().map(String::as_str))
        .collect();
    (!all.is_empty()).then(|| all.join("; "))
}

fn io_err(op: &'static str, what: &str, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: what.to_string(),
        source,
    }
}

//! Opening a `collect` run (claims, the index's verdict, the files) and running it: the task
//! loop of each rank and the collective end.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;

use super::super::index::{
    command_hash, Done, Fnv, Header, Hole, Index, Record, Status, Stream, TaskState, FORMAT,
};
#[cfg(feature = "testing")]
use super::super::AppendFault;
use super::super::{AppendFile, AppendOptions};
use super::tasks::{command_for, TaskSet};
use super::writer::{Files, Unit, Writer};
use super::{Aggregate, Collect, CollectSummary, Progress, Resume, Schedule};
use crate::collective::{agree_outcome, agree_result, gather_messages, split_path, Outcome};
use crate::error::{Error, Result};
use crate::lock::{FcntlKind, FcntlLock, RangeLock};
use crate::range::{ByteRange, LockMode};
use crate::sys::{self, LockKind, Op, OwnedComm, Window};

/// Where a job's claim on a file is: one byte far past any data, locked with an OFD lock by
/// rank 0 for the whole run.
const CLAIM_AT: u64 = 1 << 62;
/// Words of the control window on rank 0.
const NEXT: usize = 0;
const STOP: usize = 1;
const STARTED: usize = 2;
const SUCCEEDED: usize = 3;
const FAILED: usize = 4;
const CONTROL_WORDS: usize = 5;
/// How often rank 0 (which holds the windows) enters MPI while it waits, so that other
/// ranks' one-sided operations progress under components without asynchronous progress.
const HOME_TICK: Duration = Duration::from_millis(1);
/// How long other ranks wait for output before they look around.
const TICK: Duration = Duration::from_millis(20);
/// How soon a rank looks again for a task that closed its output and is exiting.
const EXIT_TICK: Duration = Duration::from_micros(200);
/// How often a rank reads the job-wide stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long killed tasks get between `SIGTERM` and `SIGKILL`.
const GRACE: Duration = Duration::from_millis(300);
/// Bytes read from a task's pipe at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Failed tasks each rank describes in the summary.
const DESCRIBED: usize = 10;

/// Which tasks this run runs: all of them, or a list (resume) with each one's first attempt.
#[derive(Debug, Clone)]
enum Pending {
    All(u64),
    List(Vec<(u64, u32)>),
}

impl Pending {
    fn len(&self) -> u64 {
        match self {
            Pending::All(n) => *n,
            Pending::List(l) => l.len() as u64,
        }
    }

    fn get(&self, at: u64) -> Option<(u64, u32)> {
        match self {
            Pending::All(n) => (at < *n).then_some((at, 1)),
            Pending::List(l) => usize::try_from(at).ok().and_then(|i| l.get(i)).copied(),
        }
    }
}

/// What rank 0 decided before the files are opened.
#[derive(Debug)]
struct Home {
    claims: Vec<FcntlLock>,
    /// Inode numbers of the output, index and error files, for the other paths' checks.
    inodes: [u64; 3],
    pending: Pending,
    /// Records rank 0 appends to the index before the run (a header, or holes).
    preface: String,
}

/// A [`Collect`] with its files open.
#[derive(Debug)]
pub struct OpenedCollect {
    collect: Collect,
    set: TaskSet,
    pending: Pending,
    writer: Writer,
    control: Window,
    claims: Vec<FcntlLock>,
    host: String,
    started: Instant,
}

impl Collect {
    /// Collective: checks the settings, claims the files (rank 0), reads the index for
    /// `--resume`, opens the output, error and index files on every rank, and decides the
    /// aggregation.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (the same on every rank) for settings that do not fit
    /// together; [`Error::Collective`] on every rank if a file cannot be claimed (another job
    /// writes it), checked (`--alt-out` names another file, the index holds another run) or
    /// opened.
    pub fn open(&self, comm: &impl Communicator) -> Result<OpenedCollect> {
        self.validate()?;
        let (rank, size) = (comm.rank(), comm.size());
        let set = self
            .tasks
            .clone()
            .unwrap_or(TaskSet::Ranks(u64::try_from(size).unwrap_or(1)));
        let index_path = self.index_path();
        let home = (rank == 0).then(|| self.prepare_home(&set, index_path.as_deref()));
        let home = agree_outcome(comm, "open", home)?;
        let mut inodes = home.as_ref().map_or([0; 3], |h| h.inodes);
        comm.process_at_rank(0).broadcast_into(&mut inodes[..]);
        agree_result(comm, "open", self.check_alternates(rank, inodes))?;

        // The files; each open agrees, so a failure is every rank's.
        #[allow(unused_mut)]
        let mut opts = AppendOptions::truncating(self.truncate);
        #[cfg(feature = "testing")]
        if self.unsafe_no_reserve {
            opts.fault = Some(AppendFault::NoReserve);
        }
        #[cfg(feature = "testing")]
        if let (Some(n), 1) = (self.unsafe_die_after_reserve, rank) {
            opts.fault = Some(AppendFault::DieAfterReserve(n));
        }
        let plain = AppendOptions::truncating(self.truncate);
        let path = |p: &Path, alt: Option<&Path>| split_path(rank, p, alt).to_path_buf();
        let out = AppendFile::open(comm, &path(&self.out, self.alt_out.as_deref()), &opts)?;
        let err = match &self.errors {
            Some(p) => match AppendFile::open(comm, &path(p, self.alt_errors.as_deref()), &plain) {
                Ok(f) => Some(f),
                Err(e) => return Err(close_after(e, [Some(out), None])),
            },
            None => None,
        };
        let index = match &index_path {
            Some(p) => match AppendFile::open(comm, &path(p, self.alt_index.as_deref()), &plain) {
                Ok(f) => Some(f),
                Err(e) => return Err(close_after(e, [Some(out), err])),
            },
            None => None,
        };
        let mut files = Files { out, err, index };
        let opened = self.finish_open(comm, &mut files, home);
        match opened {
            Ok((pending, control, claims)) => {
                let writer = self.writer(comm, files)?;
                Ok(OpenedCollect {
                    collect: self.clone(),
                    set,
                    pending,
                    writer,
                    control,
                    claims,
                    host: crate::host::hostname().unwrap_or_else(|| "unknown".into()),
                    started: Instant::now(),
                })
            }
            Err(e) => Err(close_after(e, [Some(files.out), files.err]).and_close(files.index)),
        }
    }

    /// Rank 0's part of opening, before any file is opened or emptied: claims every file, checks
    /// that they are distinct, and decides from the index what this run runs.
    fn prepare_home(&self, set: &TaskSet, index: Option<&Path>) -> Result<Home> {
        let mut claims = Vec::new();
        let mut inodes = [0u64; 3];
        let paths = [Some(self.out.as_path()), index, self.errors.as_deref()];
        for (i, p) in paths.iter().enumerate() {
            let Some(p) = p else { continue };
            let claim = claim(p)?;
            inodes[i] = claim
                .file()
                .metadata()
                .map_err(|source| io_err("stat", p, source))?
                .ino();
            claims.push(claim);
        }
        for (i, j, a, b) in [
            (0, 1, "--out", "--index"),
            (0, 2, "--out", "--errors"),
            (1, 2, "--index", "--errors"),
        ] {
            if inodes[i] != 0 && inodes[i] == inodes[j] {
                return Err(Error::Refused(format!(
                    "{a} and {b} are the same file: each needs a file of its own"
                )));
            }
        }
        let header = Header {
            version: FORMAT,
            tasks: set.spec(),
            count: set.len(),
            command: command_hash(&self.command),
        };
        let Some(index_path) = index else {
            return Ok(Home {
                claims,
                inodes,
                pending: Pending::All(set.len()),
                preface: String::new(),
            });
        };
        // The index through the claim's descriptor: the same file, read before anyone writes.
        let bytes = read_all(claims[1].file(), index_path)?;
        let existing = Index::parse(&bytes);
        let fresh = existing.records == 0 && existing.damaged == 0;
        if self.resume == Resume::No || fresh {
            if !fresh && !self.truncate {
                return Err(Error::Refused(format!(
                    "the index {} holds a run already ({} records): --resume continues it, \
                     --resume-failed also runs its failed tasks again, --truncate starts over",
                    index_path.display(),
                    existing.records
                )));
            }
            return Ok(Home {
                claims,
                inodes,
                pending: Pending::All(set.len()),
                preface: Record::Header(header).line(),
            });
        }
        let Some(old) = &existing.header else {
            return Err(Error::Refused(format!(
                "{} is not the index of a brlock collect run (no header): nothing to resume",
                index_path.display()
            )));
        };
        if !self.force && (old.tasks != header.tasks || old.command != header.command) {
            return Err(Error::Refused(format!(
                "the index {} is of another run (tasks {}, command {:016x}; this one: tasks {}, \
                 command {:016x}): --force resumes it anyway",
                index_path.display(),
                old.tasks,
                old.command,
                header.tasks,
                header.command
            )));
        }
        let again = |state| match state {
            TaskState::Succeeded => false,
            TaskState::Failed => self.resume == Resume::Failed,
            TaskState::Unfinished | TaskState::Pending => true,
        };
        let list: Vec<(u64, u32)> = (0..set.len())
            .filter(|&t| again(existing.state(t)))
            .map(|t| (t, existing.last_attempt(t) + 1))
            .collect();
        // Space reserved by ranks that died before they wrote: marked, never shown as data.
        let mut preface = String::new();
        for (i, stream) in [(0, Stream::Out), (2, Stream::Err)] {
            let Some(claim) = claims.get(if i == 0 { 0 } else { 2 }) else {
                continue;
            };
            if i == 2 && self.errors.is_none() {
                continue;
            }
            let end = claim.file().metadata().map_or(0, |m| m.len());
            for (offset, len) in existing.uncovered(stream, end) {
                Record::Hole(Hole {
                    offset,
                    len,
                    stream,
                })
                .push_to(&mut preface);
            }
        }
        tracing::info!(tasks = list.len(), "resuming");
        Ok(Home {
            claims,
            inodes,
            pending: Pending::List(list),
            preface,
        })
    }

    /// Odd ranks' alternative paths must be the files rank 0 claimed (same inode numbers:
    /// two mounts of one distributed file system show one inode).
    fn check_alternates(&self, rank: i32, inodes: [u64; 3]) -> Result<()> {
        if rank % 2 == 0 {
            return Ok(());
        }
        let index = self.index_path();
        let alts = [
            (
                "--alt-out",
                self.alt_out.as_deref(),
                Some(self.out.as_path()),
            ),
            ("--alt-index", self.alt_index.as_deref(), index.as_deref()),
            (
                "--alt-errors",
                self.alt_errors.as_deref(),
                self.errors.as_deref(),
            ),
        ];
        for (i, (name, alt, main)) in alts.into_iter().enumerate() {
            let (Some(alt), Some(main)) = (alt, main) else {
                continue;
            };
            let ino = std::fs::metadata(alt)
                .map_err(|source| {
                    Error::Refused(format!(
                        "{name} {}: {} (it must name the file {} through another mount)",
                        alt.display(),
                        crate::error::describe_os_error(&source),
                        main.display()
                    ))
                })?
                .ino();
            if ino != inodes[i] {
                return Err(Error::Refused(format!(
                    "{name} {} is another file than {}: it must name the same file through \
                     another mount",
                    alt.display(),
                    main.display()
                )));
            }
        }
        Ok(())
    }

    /// The rest of opening, with the files open: the preface, the pending list, the control
    /// window. Every error is agreed.
    fn finish_open(
        &self,
        comm: &impl Communicator,
        files: &mut Files,
        home: Option<Home>,
    ) -> Result<(Pending, Window, Vec<FcntlLock>)> {
        let rank = comm.rank();
        let (claims, pending, preface) = match home {
            Some(h) => (h.claims, Some(h.pending), h.preface),
            None => (Vec::new(), None, String::new()),
        };
        let written = match (&mut files.index, preface.is_empty()) {
            (Some(index), false) => index.append(preface.as_bytes()).map(drop),
            _ => Ok(()),
        };
        agree_result(comm, "open", written)?;
        let pending = share_pending(comm, pending)?;
        let control = Window::allocate(comm, if rank == 0 { CONTROL_WORDS } else { 0 })?;
        Ok((pending, control, claims))
    }

    /// The writer: direct, or aggregating on the node (collective).
    fn writer(&self, comm: &impl Communicator, files: Files) -> Result<Writer> {
        let direct = self.aggregate == Aggregate::Off || self.ordered || comm.size() == 1;
        if direct {
            return Ok(Writer::direct(files, self.batch_age));
        }
        let node = OwnedComm::split_shared(comm)?;
        let network = crate::host::fs_type(&self.out).map_or(true, |t| {
            crate::io::Coherence::for_fs_type(&t) != crate::io::Coherence::None
        });
        let mut any = 0u8;
        node.comm()
            .all_reduce_into(&u8::from(network), &mut any, SystemOperation::max());
        let wanted = match self.aggregate {
            Aggregate::On => true,
            Aggregate::Auto => any == 1,
            Aggregate::Off => false,
        };
        if !wanted || node.size() == 1 {
            // Decided alike on every rank of the node (the reduction), so they free together.
            node.free()?;
            return Ok(Writer::direct(files, self.batch_age));
        }
        Ok(Writer::aggregating(
            files,
            node,
            self.batch_bytes,
            self.batch_age,
        ))
    }
}

/// Rank 0 tells every rank which tasks run.
fn share_pending(comm: &impl Communicator, pending: Option<Pending>) -> Result<Pending> {
    let root = comm.process_at_rank(0);
    // [kind, length]: kind 0 all, 1 list.
    let mut head = match &pending {
        Some(Pending::All(n)) => [0u64, *n],
        Some(Pending::List(l)) => [1, l.len() as u64],
        None => [0, 0],
    };
    root.broadcast_into(&mut head[..]);
    if head[0] == 0 {
        return Ok(Pending::All(head[1]));
    }
    let n = usize::try_from(head[1])
        .map_err(|_| Error::InvalidArgument("too many tasks to resume".into()))?;
    let mut tasks = vec![0u64; n];
    let mut attempts = vec![0u32; n];
    if let Some(Pending::List(l)) = &pending {
        for (i, &(t, a)) in l.iter().enumerate() {
            tasks[i] = t;
            attempts[i] = a;
        }
    }
    root.broadcast_into(&mut tasks[..]);
    root.broadcast_into(&mut attempts[..]);
    Ok(Pending::List(tasks.into_iter().zip(attempts).collect()))
}

/// Rank 0's claim on `path`: an OFD lock on one byte far past any data, held for the run, that
/// a second job cannot take while the first lives (the kernel drops it when the job dies). A
/// file system without record locks cannot refuse a second job: then only a warning.
fn claim(path: &Path) -> Result<FcntlLock> {
    let mut lock = FcntlLock::open(path, FcntlKind::Ofd)?;
    let range = ByteRange::at(CLAIM_AT, 1)?;
    match lock.try_lock(range, LockMode::Exclusive) {
        Ok(true) => Ok(lock),
        Ok(false) => Err(Error::Refused(format!(
            "{} is being written by another collect job that is still running (it holds the \
             file's claim): wait for it to end, or write elsewhere",
            path.display()
        ))),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot claim the file (no record locks here?): a second job writing it at the same time would not be refused");
            Ok(lock)
        }
    }
}

fn read_all(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut f = file;
    f.read_to_end(&mut bytes)
        .map_err(|source| io_err("read", path, source))?;
    Ok(bytes)
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// After an agreed failure to open, the files opened so far are closed on every rank.
fn close_after<const N: usize>(err: Error, files: [Option<AppendFile>; N]) -> Error {
    for f in files.into_iter().flatten() {
        if let Err(e) = f.close() {
            tracing::error!("closing after a failed open: {e}");
        }
    }
    err
}

trait AndClose {
    fn and_close(self, f: Option<AppendFile>) -> Error;
}

impl AndClose for Error {
    fn and_close(self, f: Option<AppendFile>) -> Error {
        close_after(self, [f])
    }
}

/// A message of a task's reader threads.
enum Msg {
    /// Whole lines (a last line without newline gets one).
    Data(usize, u64, Stream, Vec<u8>),
    /// The pipe is closed (with the read error, if one ended it).
    Eof(usize, u64, Option<std::io::Error>),
}

/// One running attempt.
struct Slot {
    /// Distinguishes this attempt's messages from a previous one's in the same slot.
    gen: u64,
    task: u64,
    attempt: u32,
    label: String,
    program: String,
    child: Child,
    start_ms: u64,
    started: Instant,
    open_pipes: u8,
    killed: bool,
    read_error: Option<std::io::Error>,
    fnv: Fnv,
    bytes: u64,
    lines: u64,
}

/// How one rank hands out its tasks.
enum Source {
    Dynamic {
        chunk: u64,
        queue: std::collections::VecDeque<u64>,
        done: bool,
    },
    Static(std::vec::IntoIter<u64>),
}

/// Counters of this rank's run.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    succeeded: u64,
    failed: u64,
    interrupted: u64,
    retried: u64,
}

impl OpenedCollect {
    /// Collective: runs the tasks on every rank and collects their output, then ends
    /// together: final commits, `fdatasync` on every rank, every rank's outcome gathered on
    /// rank 0.
    ///
    /// The outcome passes if every task succeeded and nothing failed or stopped the run;
    /// rank 0 gets the summary, which names the failed tasks and ranks.
    ///
    /// # Errors
    /// [`Error::Collective`] if the collective end failed (closing the files); everything else
    /// is in the outcome.
    pub fn run(self, comm: &impl Communicator) -> Result<Outcome<CollectSummary>> {
        let OpenedCollect {
            collect,
            set,
            pending,
            mut writer,
            control,
            claims,
            host,
            started,
        } = self;
        let (rank, size) = (comm.rank(), comm.size());
        let mut farm = Farm {
            c: &collect,
            set: &set,
            pending: &pending,
            rank,
            size,
            host: &host,
            control,
            slots: (0..collect.jobs).map(|_| None).collect(),
            retry: Vec::new(),
            unit: Unit::new(u32::try_from(rank).unwrap_or(0)),
            unit_since: None,
            spool: None,
            gen: 0,
            counts: Counts::default(),
            failed_tasks: Vec::new(),
            errors: Vec::new(),
            stopping: false,
            stop_signal: 0,
            kill_at: None,
            started,
            aggregated: writer.aggregated(),
        };
        let (tx, rx) = mpsc::channel();
        let mut source = farm.source();
        if collect.ordered {
            farm.spool = Some(super::spool::Spool::create(
                collect.spool_dir.as_deref(),
                rank,
            ));
        }
        farm.main_loop(&mut source, &mut writer, &tx, &rx);
        drop(tx);
        farm.end(comm, writer, claims)
    }
}

/// One rank's task loop.
struct Farm<'a> {
    c: &'a Collect,
    set: &'a TaskSet,
    pending: &'a Pending,
    rank: i32,
    size: i32,
    host: &'a str,
    control: Window,
    slots: Vec<Option<Slot>>,
    /// Failed attempts to run again: `(task, next attempt)`.
    retry: Vec<(u64, u32)>,
    unit: Unit,
    unit_since: Option<Instant>,
    spool: Option<Result<super::spool::Spool>>,
    gen: u64,
    counts: Counts,
    failed_tasks: Vec<String>,
    /// This rank's errors (writes, spool, control): reported, and they stop the job.
    errors: Vec<Error>,
    stopping: bool,
    stop_signal: i32,
    kill_at: Option<Instant>,
    started: Instant,
    /// Whether this rank's batches went through a node writer.
    aggregated: bool,
}

impl Farm<'_> {
    fn source(&self) -> Source {
        let n = self.pending.len();
        let (rank, size) = (self.rank as u64, self.size as u64);
        // One task per rank: rank r runs task r.
        let schedule = if self.c.tasks.is_none() {
            Schedule::Block
        } else {
            self.c.schedule
        };
        match schedule {
            Schedule::Dynamic => Source::Dynamic {
                chunk: self.c.chunk,
                queue: std::collections::VecDeque::new(),
                done: false,
            },
            Schedule::Cyclic => Source::Static(
                (rank..n)
                    .step_by(size as usize)
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Schedule::Block => {
                let lo = n * rank / size;
                let hi = n * (rank + 1) / size;
                Source::Static((lo..hi).collect::<Vec<_>>().into_iter())
            }
        }
    }

    /// The next task to start, `(task, attempt)`.
    fn next_task(&mut self, source: &mut Source) -> Option<(u64, u32)> {
        if let Some(t) = self.retry.pop() {
            return Some(t);
        }
        let at = match source {
            Source::Static(it) => it.next()?,
            Source::Dynamic { chunk, queue, done } => {
                if queue.is_empty() && !*done {
                    let mut start = 0u64;
                    let took = self.control.with_lock(0, LockKind::Shared, |e| {
                        e.fetch_and_op(chunk, &mut start, NEXT, Op::Sum)
                    });
                    match took {
                        Ok(()) if start < self.pending.len() => {
                            let end = start.saturating_add(*chunk).min(self.pending.len());
                            queue.extend(start..end);
                        }
                        Ok(()) => *done = true,
                        Err(e) => {
                            *done = true;
                            self.fail(e);
                        }
                    }
                }
                queue.pop_front()?
            }
        };
        self.pending.get(at)
    }

    fn main_loop(
        &mut self,
        source: &mut Source,
        writer: &mut Writer,
        tx: &Sender<Msg>,
        rx: &Receiver<Msg>,
    ) {
        let mut exhausted = false;
        let mut last_stop_poll = Instant::now();
        let mut last_progress = Instant::now();
        loop {
            self.watch_stop(&mut last_stop_poll);
            // Start tasks while there is room.
            while !self.stopping && !exhausted {
                let Some(free) = self.slots.iter().position(Option::is_none) else {
                    break;
                };
                match self.next_task(source) {
                    Some((task, attempt)) => self.start(free, task, attempt, tx),
                    None => exhausted = true,
                }
            }
            let running = self.slots.iter().any(Option::is_some);
            if !running && (exhausted || self.stopping) && self.retry.is_empty() {
                break;
            }
            if self.stopping {
                self.kill_all();
            }
            // Wait for output, then take what is there without waiting.
            let wait = self.wait_time();
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.take(msg, writer);
                    while let Ok(msg) = rx.try_recv() {
                        self.take(msg, writer);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            self.reap();
            if self
                .unit_since
                .is_some_and(|t| t.elapsed() >= self.c.batch_age)
            {
                self.flush(writer);
            }
            if let Err(e) = writer.poll() {
                self.fail(e);
            }
            if self.rank == 0 {
                let _ = self.control.with_lock(0, LockKind::Shared, |_| Ok(()));
                if last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    self.report_progress();
                }
            }
        }
        self.flush(writer);
        if let Err(e) = writer.finish() {
            self.fail(e);
        }
    }

    fn wait_time(&self) -> Duration {
        // A task whose pipes are closed is about to exit: look again soon, since no message
        // will wake this rank for it.
        let exiting = self.slots.iter().flatten().any(|s| s.open_pipes == 0);
        let tick = if exiting {
            EXIT_TICK
        } else if self.rank == 0 || self.stopping {
            HOME_TICK
        } else {
            TICK
        };
        match self.unit_since {
            Some(t) => self.c.batch_age.saturating_sub(t.elapsed()).min(tick),
            None => tick,
        }
    }

    /// Notices a stop signal (this rank's) or the job-wide stop flag.
    fn watch_stop(&mut self, last_poll: &mut Instant) {
        if self.stopping {
            return;
        }
        let signal = self.c.stop.map_or(0, |s| s.load(Ordering::SeqCst));
        if signal != 0 {
            self.stop_signal = signal;
            tracing::info!(signal, "stop signal: stopping the job");
            self.stop_job();
            return;
        }
        if last_poll.elapsed() < STOP_POLL {
            return;
        }
        *last_poll = Instant::now();
        let mut flag = 0u64;
        if self
            .control
            .with_lock(0, LockKind::Shared, |e| e.atomic_read(&mut flag, STOP))
            .is_ok()
            && flag != 0
        {
            self.stopping = true;
        }
    }

    /// Stops this rank and tells the others.
    fn stop_job(&mut self) {
        if !self.stopping {
            self.stopping = true;
            let _ = self
                .control
                .with_lock(0, LockKind::Shared, |e| e.accumulate(&[1], STOP, Op::Sum));
        }
    }

    /// Records an error of this rank; it stops the job. The error reaches the user once, in
    /// the job's agreed failure (one line from rank 0), so it is only traced here.
    fn fail(&mut self, e: Error) {
        tracing::debug!("stopping the job: {e}");
        self.errors.push(e);
        self.stop_job();
    }

    fn start(&mut self, slot: usize, task: u64, attempt: u32, tx: &Sender<Msg>) {
        let cmd = command_for(self.set, &self.c.command, task, attempt, self.rank);
        let label = self.set.label(task);
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let start_ms = now_ms();
        self.gen += 1;
        let gen = self.gen;
        let _ = self.control.with_lock(0, LockKind::Shared, |e| {
            e.accumulate(&[1], STARTED, Op::Sum)
        });
        let spawned = (|| {
            let (program, rest) = cmd
                .argv
                .split_first()
                .ok_or_else(|| std::io::Error::other("no command"))?;
            let mut command = Command::new(program);
            command
                .args(rest)
                .envs(cmd.env.iter().map(|(k, v)| (k, v)))
                .env("BRLOCK_RANK", self.rank.to_string())
                .env("BRLOCK_SIZE", self.size.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            sys::supervise(&mut command);
            command.spawn()
        })();
        match spawned {
            Ok(mut child) => {
                let pipes = [
                    child
                        .stdout
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                    child
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                ];
                let mut open = 0;
                for (pipe, stream) in pipes.into_iter().zip([Stream::Out, Stream::Err]) {
                    if let Some(pipe) = pipe {
                        open += 1;
                        read_lines(pipe, slot, gen, stream, tx.clone());
                    }
                }
                self.slots[slot] = Some(Slot {
                    gen,
                    task,
                    attempt,
                    label,
                    program,
                    child,
                    start_ms,
                    started: Instant::now(),
                    open_pipes: open,
                    killed: false,
                    read_error: None,
                    fnv: Fnv::default(),
                    bytes: 0,
                    lines: 0,
                });
            }
            Err(e) => {
                tracing::debug!(task = %label, "cannot start the command: {e}");
                let status = Status::NotStarted(e.raw_os_error().unwrap_or(0));
                self.finished(
                    task,
                    attempt,
                    &label,
                    &program,
                    status,
                    start_ms,
                    0,
                    (Fnv::default(), 0, 0),
                );
            }
        }
    }

    /// Takes one message of the reader threads.
    fn take(&mut self, msg: Msg, writer: &mut Writer) {
        match msg {
            Msg::Data(slot, gen, stream, mut bytes) => {
                let Some(s) = self
                    .slots
                    .get_mut(slot)
                    .and_then(Option::as_mut)
                    .filter(|s| s.gen == gen)
                else {
                    return;
                };
                if stream == Stream::Out {
                    if self.c.tag {
                        bytes = tag_lines(&s.label, &bytes);
                    }
                    s.fnv.update(&bytes);
                    s.bytes += bytes.len() as u64;
                    s.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                } else if self.c.errors.is_none() {
                    let prefix = if self.c.tasks.is_some() {
                        format!("[task {} rank {}] ", s.label, self.rank)
                    } else {
                        format!("[rank {}] ", self.rank)
                    };
                    for line in bytes.split_inclusive(|&b| b == b'\n') {
                        let mut text = prefix.clone().into_bytes();
                        text.extend_from_slice(line);
                        (self.c.stderr)(&text);
                    }
                    return;
                }
                let (task, attempt) = (s.task, s.attempt);
                self.unit.add(stream, task, attempt, &bytes);
                self.unit_since.get_or_insert_with(Instant::now);
                if self.unit.bytes() >= self.c.batch_bytes {
                    self.flush(writer);
                }
            }
            Msg::Eof(slot, gen, error) => {
                if let Some(s) = self
                    .slots
                    .get_mut(slot)
                    .and_then(Option::as_mut)
                    .filter(|s| s.gen == gen)
                {
                    s.open_pipes = s.open_pipes.saturating_sub(1);
                    if let Some(e) = error {
                        s.read_error.get_or_insert(e);
                    }
                }
            }
        }
    }

    /// Finishes the attempts whose pipes are closed and whose process has exited.
    fn reap(&mut self) {
        for i in 0..self.slots.len() {
            let exited = match self.slots[i].as_mut() {
                Some(s) if s.open_pipes == 0 => match s.child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!("waiting for task {}: {e}", s.label);
                        let _ = s.child.kill();
                        None
                    }
                },
                _ => None,
            };
            let Some(exit) = exited else { continue };
            let Some(s) = self.slots[i].take() else {
                continue;
            };
            let status = if s.killed {
                Status::Interrupted
            } else {
                match (exit.code(), exit.signal()) {
                    (Some(0), _) => Status::Ok,
                    (Some(c), _) => Status::Exit(c),
                    (None, Some(sig)) => Status::Signal(sig),
                    (None, None) => Status::Exit(-1),
                }
            };
            if let Some(e) = &s.read_error {
                tracing::warn!("reading the output of task {}: {e}", s.label);
            }
            let elapsed = s.started.elapsed().as_millis() as u64;
            self.finished(
                s.task,
                s.attempt,
                &s.label,
                &s.program,
                status,
                s.start_ms,
                elapsed,
                (s.fnv, s.bytes, s.lines),
            );
        }
    }

    /// Records a finished attempt: its done record goes into the current batch (after every
    /// extent of it), and a failed attempt is queued to run again if retries are left.
    #[allow(clippy::too_many_arguments)]
    fn finished(
        &mut self,
        task: u64,
        attempt: u32,
        label: &str,
        program: &str,
        status: Status,
        start_ms: u64,
        elapsed_ms: u64,
        (fnv, bytes, lines): (Fnv, u64, u64),
    ) {
        Record::Done(Done {
            task,
            attempt,
            rank: u32::try_from(self.rank).unwrap_or(0),
            host: self.host.to_string(),
            status,
            start_ms,
            elapsed_ms,
            lines,
            bytes,
            checksum: fnv.value(),
        })
        .push_to(&mut self.unit.done);
        self.unit_since.get_or_insert_with(Instant::now);
        let word = match status {
            Status::Ok => {
                self.counts.succeeded += 1;
                Some(SUCCEEDED)
            }
            Status::Interrupted => {
                self.counts.interrupted += 1;
                None
            }
            _ => {
                let used = attempt.saturating_sub(self.first_attempt(task));
                if !self.stopping && used < self.c.retries {
                    self.counts.retried += 1;
                    self.retry.push((task, attempt + 1));
                } else {
                    self.counts.failed += 1;
                    if self.failed_tasks.len() < DESCRIBED {
                        let what = describe(status, program);
                        self.failed_tasks.push(if self.c.tasks.is_some() {
                            format!("task {label}: {what}")
                        } else {
                            what
                        });
                    }
                }
                Some(FAILED)
            }
        };
        if let Some(word) = word {
            let _ = self
                .control
                .with_lock(0, LockKind::Shared, |e| e.accumulate(&[1], word, Op::Sum));
        }
    }

    /// The attempt this run started `task` with.
    fn first_attempt(&self, task: u64) -> u32 {
        match self.pending {
            Pending::All(_) => 1,
            Pending::List(l) => l.iter().find(|(t, _)| *t == task).map_or(1, |&(_, a)| a),
        }
    }

    /// Stopping: `SIGTERM` to every running task, `SIGKILL` after a grace period.
    fn kill_all(&mut self) {
        let now = Instant::now();
        let hard = self.kill_at.is_some_and(|t| now >= t);
        for s in self.slots.iter_mut().flatten() {
            if !s.killed || hard {
                let signal = if hard {
                    nix::libc::SIGKILL
                } else {
                    nix::libc::SIGTERM
                };
                let _ = sys::signal_group(s.child.id(), signal);
                s.killed = true;
            }
        }
        self.kill_at.get_or_insert(now + GRACE);
    }

    /// Commits the current batch (or spools it).
    fn flush(&mut self, writer: &mut Writer) {
        self.unit_since = None;
        if self.unit.is_empty() {
            return;
        }
        let unit = std::mem::replace(
            &mut self.unit,
            Unit::new(u32::try_from(self.rank).unwrap_or(0)),
        );
        if let Some(spool) = self.spool.as_mut() {
            if let Ok(s) = spool {
                if let Err(e) = s.add(&unit) {
                    self.fail(e);
                }
            }
            return;
        }
        if !self.errors.is_empty() {
            // After a write error nothing more is written: the index claims only what is on
            // disk.
            return;
        }
        if let Err(e) = writer.submit(unit) {
            self.fail(e);
        }
    }

    fn report_progress(&self) {
        let Some(sink) = &self.c.progress else { return };
        let mut words = [0u64; CONTROL_WORDS];
        let read = self.control.with_lock(0, LockKind::Shared, |e| {
            for (i, w) in words.iter_mut().enumerate() {
                e.atomic_read(w, i)?;
            }
            Ok(())
        });
        if read.is_err() {
            return;
        }
        let done = words[SUCCEEDED] + words[FAILED];
        sink(&Progress {
            total: self.pending.len(),
            succeeded: words[SUCCEEDED],
            failed: words[FAILED],
            running: words[STARTED].saturating_sub(done),
            seconds: self.started.elapsed().as_secs_f64(),
        });
    }

    /// The collective end: ordered placement, closes, the outcome gathered on rank 0.
    fn end(
        mut self,
        comm: &impl Communicator,
        writer: Writer,
        claims: Vec<FcntlLock>,
    ) -> Result<Outcome<CollectSummary>> {
        let rank = comm.rank();
        let (mut files, node, stats) = writer.into_parts();
        let mut stats = stats;
        if let Some(spool) = self.spool.take() {
            let spool = match spool {
                Ok(s) => Some(s),
                Err(e) => {
                    self.errors.push(e);
                    None
                }
            };
            let placed = super::spool::place(spool, &mut files, rank, &mut stats);
            if let Err(e) = placed {
                self.errors.push(e);
            }
        }
        // Every rank closes (each close agrees on its outcome).
        let out_path = files.out.path().display().to_string();
        let mut file_end = 0;
        let mut closed = |r: Result<()>| {
            if let Err(e) = r {
                if let Some(own) = e.local() {
                    self.errors.push(Error::InvalidArgument(own.to_string()));
                }
            }
        };
        closed(files.out.close().map(|end| file_end = end));
        if let Some(f) = files.err {
            closed(f.close().map(drop));
        }
        if let Some(f) = files.index {
            closed(f.close().map(drop));
        }
        let node_freed = node.map_or(Ok(()), OwnedComm::free);
        drop(claims);

        // What this rank reports: its errors, and its failed tasks.
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|e| e.local().map_or_else(|| e.to_string(), Error::to_string))
            .collect();
        let mut mine: Vec<String> = Vec::new();
        if self.c.tasks.is_none() {
            mine.extend(self.failed_tasks.iter().cloned());
        }
        mine.extend(errors.iter().cloned());
        let failures = gather_messages(comm, (!mine.is_empty()).then(|| mine.join("; ")));
        let failed = gather_messages(
            comm,
            (self.c.tasks.is_some() && !self.failed_tasks.is_empty())
                .then(|| self.failed_tasks.join("; ")),
        );
        let c = self.counts;
        let mine = [
            stats.lines,
            stats.bytes,
            stats.batches,
            stats.write_calls,
            c.succeeded,
            c.failed,
            c.interrupted,
            c.retried,
        ];
        let mut sums = [0u64; 8];
        comm.all_reduce_into(&mine[..], &mut sums[..], SystemOperation::sum());
        let mut signal = 0i32;
        comm.all_reduce_into(&self.stop_signal, &mut signal, SystemOperation::max());
        let aggregated = u8::from(self.aggregated);
        let mut any_aggregated = 0u8;
        comm.all_reduce_into(&aggregated, &mut any_aggregated, SystemOperation::max());
        let Farm {
            c,
            set,
            pending,
            control,
            started,
            ..
        } = self;
        agree_result(comm, "close", node_freed.and(control.free()))?;
        let [lines, bytes, batches, write_calls, succeeded, failed_n, interrupted, retried] = sums;
        let tasks = pending.len();
        let not_run = tasks.saturating_sub(succeeded + failed_n + interrupted);
        let passed = failures.is_empty() && failed.is_empty() && signal == 0 && not_run == 0;
        let summary = (rank == 0).then(|| CollectSummary {
            command: "collect",
            ranks: comm.size(),
            out: out_path,
            index: c.index_path().map(|p| p.display().to_string()),
            ordered: c.ordered,
            task_set: set.spec(),
            tasks,
            succeeded,
            failed: failed_n,
            interrupted,
            not_started: not_run,
            retried,
            lines,
            bytes,
            batches,
            write_calls,
            aggregated: any_aggregated == 1,
            file_end,
            seconds: started.elapsed().as_secs_f64(),
            stopped_by: (signal != 0).then_some(signal),
            failed_ranks: failures
                .iter()
                .chain(&failed)
                .map(|(r, _)| *r)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            failed_tasks: failed
                .iter()
                .flat_map(|(_, s)| s.split("; ").map(str::to_string))
                .take(DESCRIBED)
                .collect(),
            failures,
            with_tasks: c.tasks.is_some(),
        });
        Ok(Outcome {
            passed,
            report: summary,
            errors: Vec::new(),
        })
    }
}

/// Why an attempt failed, for the summary.
fn describe(status: Status, program: &str) -> String {
    match status {
        Status::Ok => "succeeded".into(),
        Status::Exit(c) => format!("`{program}` exited with status {c}"),
        Status::Signal(s) => format!("`{program}` killed by signal {s}"),
        Status::NotStarted(0) => format!("`{program}` was not started"),
        Status::NotStarted(e) => format!(
            "`{program}` could not start: {}",
            crate::error::describe_os_error(&std::io::Error::from_raw_os_error(e))
        ),
        Status::Interrupted => "interrupted".into(),
    }
}

/// Every line of `bytes` prefixed with `label` and a tab.
fn tag_lines(label: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(label.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(line);
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A reader thread: cuts the pipe's bytes into chunks of whole lines (a last line without
/// newline gets one) and sends them, then an end. Stops early only if the main thread is gone.
fn read_lines(
    mut pipe: Box<dyn Read + Send>,
    slot: usize,
    gen: u64,
    stream: Stream,
    tx: Sender<Msg>,
) {
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut pending: Vec<u8> = Vec::new();
        let error = loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e),
            };
            let fresh = &buf[..n];
            match fresh.iter().rposition(|&b| b == b'\n') {
                Some(last) => {
                    pending.extend_from_slice(&fresh[..=last]);
                    let chunk = std::mem::replace(&mut pending, fresh[last + 1..].to_vec());
                    if tx.send(Msg::Data(slot, gen, stream, chunk)).is_err() {
                        return;
                    }
                }
                None => pending.extend_from_slice(fresh),
            }
        };
        if !pending.is_empty() {
            pending.push(b'\n');
            let _ = tx.send(Msg::Data(slot, gen, stream, pending));
        }
        let _ = tx.send(Msg::Eof(slot, gen, error));
    });
}

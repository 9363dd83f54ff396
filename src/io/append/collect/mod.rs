//! The engine of `brlock collect`: a task farm without a master. Every rank runs tasks — many
//! per rank, `--jobs` at a time — and their standard output goes, in batches of whole lines,
//! into one shared file through one-sided appends ([`AppendFile`](super::AppendFile)) instead of one file per
//! task. An index ([`super::index`]) records where each attempt's output is and how the attempt
//! ended; it is the job's status file and its checkpoint: `--resume` runs exactly what it does
//! not show as done, and `collect-cat` ([`cat`]) prints each task's output once.
//!
//! * **Tasks** ([`tasks`]): number ranges, the lines of a file, or one per rank (no task
//!   option: the command runs once on every rank). Scheduled dynamically by a fetch-and-add on
//!   a task counter in a window on rank 0 (chunks of `chunk`), or statically (cyclic, block).
//! * **Per rank**: each running task has two reader threads (stdout, stderr) that cut its
//!   output into whole lines and pass them over one channel to the main thread, the only one
//!   that calls MPI. The main thread gathers the lines of all its tasks into a batch and
//!   commits it when it holds `batch_bytes` or its oldest line is `batch_age` old: the bytes
//!   first (one reservation, one write), then, in one append to the index, one extent record
//!   per task's piece and a done record for every attempt whose output is all written.
//! * **Aggregation** (module `writer`): ranks that share a node may funnel their batches to one
//!   writer per node, which commits many batches with one write (the idea of ROMIO's collective
//!   buffering, for appends): a distributed file system then sees few large writes.
//! * **Failures**: an attempt that fails is recorded with its status (and re-run `retries`
//!   times); a write error or a stop signal stops the whole job: every rank kills its tasks,
//!   records them as interrupted, commits what they printed and ends together. Children are
//!   killed with their rank if it dies (`PR_SET_PDEATHSIG`). A second job on the same output
//!   file is refused while the first holds its claim (an OFD lock).
//!
//! The end is collective: final commits, `fdatasync` on every rank, and every rank's outcome
//! gathered on rank 0, whose summary names the failed tasks and ranks.

pub mod cat;
mod run;
mod spool;
pub mod tasks;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use tasks::{TaskCommand, TaskSet};

use crate::choice::choice;
use crate::error::{Error, Result};

/// Where the commands' standard error goes without an error file: each call gets one whole
/// line, with its newline, prefixed with `[rank R] ` (one task per rank) or `[task T rank R] `.
/// Called from a thread of its own.
pub type LineSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What rank 0 is told about the run while it goes on ([`Collect::progress`]).
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

choice! {
    /// How tasks are handed to ranks.
    #[derive(Default)]
    pub enum Schedule {
        /// Each rank takes the next `chunk` tasks from a shared counter when it has room: fast
        /// ranks run more.
        Dynamic = "dynamic" (default),
        /// Task `i` runs on rank `i mod P`.
        Cyclic = "cyclic",
        /// Rank `r` runs the `r`-th contiguous block of tasks.
        Block = "block",
    }
}

choice! {
    /// Whether ranks that share a node funnel their batches to one writer per node.
    #[derive(Default)]
    pub enum Aggregate {
        /// Where it helps: on distributed and FUSE file systems, with several ranks per node.
        Auto = "auto" (default),
        /// Always (with several ranks per node).
        On = "on",
        /// Never: every rank writes its own batches.
        Off = "off",
    }
}

choice! {
    /// Which tasks a run with an existing index runs.
    #[derive(Default)]
    pub enum Resume {
        /// A new run: the index must be empty (or emptied with `truncate`).
        No = "no" (default),
        /// The tasks without a finished attempt (never started, unfinished, interrupted).
        Unfinished = "unfinished",
        /// Those and the tasks whose finished attempts all failed.
        Failed = "failed",
    }
}

/// What `brlock collect` does.
#[derive(Clone)]
pub struct Collect {
    /// The shared output file (created if missing; appended to, unless `truncate`). Every rank
    /// must reach the same file.
    pub out: PathBuf,
    /// Odd ranks use this path for the output file instead: the same file through a second
    /// mount of a distributed file system (refused if it is another file).
    pub alt_out: Option<PathBuf>,
    /// The index ([`super::index`]): required for tasks (default `OUT.idx`), optional with one
    /// task per rank.
    pub index: Option<PathBuf>,
    /// Odd ranks' path of the index (see `alt_out`).
    pub alt_index: Option<PathBuf>,
    /// The tasks' standard error goes to this file (with extents in the index) instead of to
    /// [`Collect::stderr`].
    pub errors: Option<PathBuf>,
    /// Odd ranks' path of the error file (see `alt_out`).
    pub alt_errors: Option<PathBuf>,
    /// The tasks; `None` runs the command once on every rank.
    pub tasks: Option<TaskSet>,
    /// How tasks are handed to ranks.
    pub schedule: Schedule,
    /// Tasks a dynamic rank takes at a time.
    pub chunk: u64,
    /// Tasks a rank runs at the same time.
    pub jobs: usize,
    /// Which tasks to run when the index has a run already.
    pub resume: Resume,
    /// Resume even if the index's task set or command differs.
    pub force: bool,
    /// Runs of a failed attempt again, at most this many times.
    pub retries: u32,
    /// Prefix every output line with the task's label and a tab.
    pub tag: bool,
    /// One task per rank only: write all of rank 0's output first, then rank 1's, and so on
    /// (each rank's output is spooled locally until every command has ended).
    pub ordered: bool,
    /// Write aggregation per node.
    pub aggregate: Aggregate,
    /// Commit a batch once it holds this many bytes.
    pub batch_bytes: u64,
    /// Commit a batch once its oldest line is this old.
    pub batch_age: Duration,
    /// Directory of the spool files of `ordered` (default: the temporary directory).
    pub spool_dir: Option<PathBuf>,
    /// Empty the output, index and error files first (a new run).
    pub truncate: bool,
    /// Negative control for tests (feature `testing`): append without reserving (a racy
    /// read-write-advance of the shared pointer), so that records overwrite each other.
    pub unsafe_no_reserve: bool,
    /// Negative control for tests (feature `testing`): rank 1 dies right after this many
    /// reservations on the output file, leaving a reserved hole.
    pub unsafe_die_after_reserve: Option<u64>,
    /// The command and its arguments; `{task}`, `{attempt}`, `{rank}` (and `{line}` for a
    /// task file) are replaced. The environment has `BRLOCK_RANK`, `BRLOCK_SIZE`,
    /// `BRLOCK_TASK` and `BRLOCK_ATTEMPT`.
    pub command: Vec<String>,
    /// Where the commands' standard error goes without an error file.
    pub stderr: LineSink,
    /// Set to a signal number to stop the run (see [`crate::sys::catch_stop_signals`]).
    pub stop: Option<&'static AtomicI32>,
    /// Called on rank 0 about once a second with the job's progress.
    pub progress: Option<ProgressSink>,
}

impl Collect {
    /// A run of `command` once on every rank, appending its output to `out`: the defaults of
    /// everything else.
    pub fn new(out: impl Into<PathBuf>, command: Vec<String>) -> Collect {
        Collect {
            out: out.into(),
            alt_out: None,
            index: None,
            alt_index: None,
            errors: None,
            alt_errors: None,
            tasks: None,
            schedule: Schedule::Dynamic,
            chunk: 1,
            jobs: 1,
            resume: Resume::No,
            force: false,
            retries: 0,
            tag: false,
            ordered: false,
            aggregate: Aggregate::Auto,
            batch_bytes: 64 * 1024,
            batch_age: Duration::from_millis(2000),
            spool_dir: None,
            truncate: false,
            unsafe_no_reserve: false,
            unsafe_die_after_reserve: None,
            command,
            stderr: Arc::new(|_| {}),
            stop: None,
            progress: None,
        }
    }

    /// The index path: the given one, or `OUT.idx` with tasks.
    pub fn index_path(&self) -> Option<PathBuf> {
        self.index.clone().or_else(|| {
            self.tasks.as_ref().map(|_| {
                let mut p = self.out.clone().into_os_string();
                p.push(".idx");
                PathBuf::from(p)
            })
        })
    }

    /// Checks the settings against each other, before anything collective: the same answer
    /// on every rank.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::InvalidArgument(why.into()));
        let from_file = matches!(self.tasks, Some(TaskSet::Lines { .. }));
        if self.command.is_empty() && !from_file {
            return bad(
                "no command to run (give it after `--`, or a --task-file of command lines)",
            );
        }
        if self.tasks.as_ref().is_some_and(TaskSet::is_empty) {
            return bad("no task to run");
        }
        if self.ordered && self.tasks.is_some() {
            return bad(
                "--ordered applies to one task per rank; with tasks, `brlock collect-cat --by-task` \
                 prints the output in task order",
            );
        }
        if self.ordered && self.errors.is_some() {
            return bad(
                "--ordered passes the commands' stderr through: it does not combine with --errors",
            );
        }
        if self.ordered && self.resume != Resume::No {
            return bad("--ordered does not combine with --resume");
        }
        if self.resume != Resume::No && self.truncate {
            return bad("--resume continues the index: it does not combine with --truncate");
        }
        if self.resume != Resume::No && self.index_path().is_none() {
            return bad("--resume needs the index of the run to continue (--index)");
        }
        if self.jobs == 0 || self.jobs > 1024 {
            return bad("--jobs must be 1 to 1024");
        }
        if self.chunk == 0 {
            return bad("--chunk must be at least 1");
        }
        if self.batch_bytes == 0 {
            return bad("--batch-bytes must be at least 1");
        }
        let index = self.index_path();
        let files = [
            ("--out", Some(self.out.as_path())),
            ("--index", index.as_deref()),
            ("--errors", self.errors.as_deref()),
        ];
        for (i, (a, pa)) in files.iter().enumerate() {
            for (b, pb) in &files[i + 1..] {
                if let (Some(pa), Some(pb)) = (pa, pb) {
                    if same_path(pa, pb) {
                        return Err(Error::InvalidArgument(format!(
                            "{a} and {b} name the same file {}: each needs a file of its own",
                            pa.display()
                        )));
                    }
                }
            }
        }
        if self.alt_index.is_some() && index.is_none() {
            return bad("--alt-index without an index");
        }
        if self.alt_errors.is_some() && self.errors.is_none() {
            return bad("--alt-errors without --errors");
        }
        #[cfg(not(feature = "testing"))]
        crate::error::needs_testing(self.unsafe_no_reserve, "the no-reserve negative control")?;
        #[cfg(not(feature = "testing"))]
        crate::error::needs_testing(
            self.unsafe_die_after_reserve.is_some(),
            "the die-after-reserve negative control",
        )?;
        Ok(())
    }
}

/// Whether two paths name one file: equal, or equal once resolved.
fn same_path(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collect")
            .field("out", &self.out)
            .field("index", &self.index)
            .field("tasks", &self.tasks.as_ref().map(TaskSet::spec))
            .field("schedule", &self.schedule)
            .field("jobs", &self.jobs)
            .field("resume", &self.resume)
            .field("ordered", &self.ordered)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// The job's progress, as rank 0 sees it ([`Collect::progress`]).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Tasks this run will run.
    pub total: u64,
    /// Attempts finished successfully.
    pub succeeded: u64,
    /// Attempts finished and failed (including ones run again).
    pub failed: u64,
    /// Attempts running now.
    pub running: u64,
    /// Seconds since the start.
    pub seconds: f64,
}

impl Progress {
    /// Tasks finished per second so far.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            (self.succeeded + self.failed) as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Seconds left at the rate so far, if there is one.
    pub fn eta(&self) -> Option<f64> {
        let rate = self.rate();
        let left = self.total.saturating_sub(self.succeeded + self.failed);
        (rate > 0.0).then(|| left as f64 / rate)
    }
}

impl std::fmt::Display for Progress {
    /// One line: `collect: 1234/5000 done, 3 failed, 8 running, 250.0 tasks/s, ~15 s left`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collect: {}/{} done, {} failed, {} running, {:.1} tasks/s",
            self.succeeded + self.failed,
            self.total,
            self.failed,
            self.running,
            self.rate()
        )?;
        if let Some(eta) = self.eta() {
            write!(f, ", ~{eta:.0} s left")?;
        }
        Ok(())
    }
}

/// What rank 0 learns of a run.
#[derive(Debug, Serialize)]
pub struct CollectSummary {
    /// Always "collect".
    pub command: &'static str,
    /// Ranks.
    pub ranks: i32,
    /// The output file as rank 0 opened it.
    pub out: String,
    /// The index, if any.
    pub index: Option<String>,
    /// Whether the output is in rank order (`ordered`).
    pub ordered: bool,
    /// The task set as the index header records it.
    pub task_set: String,
    /// Tasks this run ran (after `--resume`'s selection).
    pub tasks: u64,
    /// Tasks whose attempt in this run succeeded.
    pub succeeded: u64,
    /// Tasks whose last attempt in this run failed.
    pub failed: u64,
    /// Attempts interrupted (a stop signal, or a failure elsewhere in the job).
    pub interrupted: u64,
    /// Tasks of this run never started because the run stopped early.
    pub not_started: u64,
    /// Attempts run again after a failure (`retries`).
    pub retried: u64,
    /// Lines of all ranks that reached the output file.
    pub lines: u64,
    /// Bytes of all ranks that reached the output file (only what was written: a failed
    /// write counts nothing).
    pub bytes: u64,
    /// Batches committed.
    pub batches: u64,
    /// Write calls on the shared output file, over all ranks.
    pub write_calls: u64,
    /// Whether batches went through one writer per node.
    pub aggregated: bool,
    /// End of the output file after the run (its size, if nothing else wrote to it).
    pub file_end: u64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// The signal that stopped the run, if one did.
    pub stopped_by: Option<i32>,
    /// The ranks that failed (a task failed on them, or an error).
    pub failed_ranks: Vec<i32>,
    /// Why each of them failed, in rank order.
    #[serde(skip)]
    pub failures: Vec<(i32, String)>,
    /// With tasks: the failed tasks' labels and why (the first ones).
    #[serde(skip)]
    pub failed_tasks: Vec<String>,
    /// Whether tasks were given (not one per rank).
    #[serde(skip)]
    pub with_tasks: bool,
}

impl CollectSummary {
    /// One line naming what failed, or `None` if nothing did.
    pub fn failure_line(&self, out: &Path) -> Option<String> {
        if self.failures.is_empty() && self.stopped_by.is_none() && self.failed == 0 {
            return None;
        }
        if self.with_tasks {
            let mut parts = Vec::new();
            if let Some(s) = self.stopped_by {
                parts.push(format!(
                    "stopped by signal {s}: {} task(s) interrupted and {} not started, for \
                     --resume to run",
                    self.interrupted, self.not_started
                ));
            }
            if self.failed > 0 {
                let shown = self.failed_tasks.join("; ");
                let more = (self.failed as usize)
                    .checked_sub(self.failed_tasks.len())
                    .filter(|&n| n > 0)
                    .map(|n| format!("; and {n} more"))
                    .unwrap_or_default();
                parts.push(format!(
                    "{} of {} tasks failed ({shown}{more})",
                    self.failed, self.tasks
                ));
            }
            let errors: Vec<String> = self
                .failures
                .iter()
                .filter(|(_, why)| !why.starts_with("task"))
                .map(|(r, why)| format!("rank {r}: {why}"))
                .collect();
            if !errors.is_empty() {
                parts.push(errors.join("; "));
            }
            if parts.is_empty() {
                return None;
            }
            return Some(format!(
                "collect: {}; the index {} tells every task's state",
                parts.join("; "),
                self.index.as_deref().unwrap_or("-")
            ));
        }
        // One task per rank: ranks that failed alike are listed together.
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
        let stopped = self
            .stopped_by
            .map(|s| format!("stopped by signal {s}; "))
            .unwrap_or_default();
        Some(format!(
            "collect: {stopped}{} of {} ranks failed ({}); {rest}",
            self.failures.len(),
            self.ranks,
            list.join("; "),
        ))
    }
}

pub use run::OpenedCollect;

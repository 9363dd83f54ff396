//! `brlock collect-cat`: a `collect` job's output as its index vouches for it — each task's
//! chosen attempt once (its first successful one), checked against the attempt's done record
//! (bytes and checksum), in file order or task order; or the failed tasks' output; or a status
//! summary. Output of unfinished or superseded attempts, holes and torn records never appear.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use serde::Serialize;

use super::super::index::{Attempt, Fnv, Index, Stream, TaskState};
use crate::error::{Error, Result};

/// Bytes read at a time.
const CHUNK: u64 = 1 << 20;

/// What `collect-cat` prints.
#[derive(Debug, Clone)]
pub struct Cat {
    /// The output file.
    pub out: PathBuf,
    /// Its index.
    pub index: PathBuf,
    /// The error file, to print the tasks' stderr instead (`stderr`).
    pub errors: Option<PathBuf>,
    /// Print the error file's extents instead of the output's.
    pub stderr: bool,
    /// In task order instead of the order the output was written in.
    pub by_task: bool,
    /// Only this task (its label, as in `{task}`).
    pub task: Option<String>,
    /// The failed tasks' output (of their last finished attempt) instead of the succeeded.
    pub failed: bool,
}

/// How task labels follow from the index header's task set.
#[derive(Debug, Clone)]
enum Labels {
    /// `ranks:N` and no header: the label is the number.
    Plain,
    /// Number ranges.
    Ranges(Vec<(u64, u64)>),
    /// A task file: line numbers from 1.
    Lines,
}

impl Labels {
    fn of(spec: Option<&str>) -> Labels {
        match spec {
            Some(s) if s.starts_with("file:") => Labels::Lines,
            Some(s) if s.starts_with("ranks:") => Labels::Plain,
            Some(s) => match super::TaskSet::ranges(s) {
                Ok(super::TaskSet::Ranges(r)) => Labels::Ranges(r),
                _ => Labels::Plain,
            },
            None => Labels::Plain,
        }
    }

    fn label(&self, i: u64) -> String {
        match self {
            Labels::Plain => i.to_string(),
            Labels::Lines => (i + 1).to_string(),
            Labels::Ranges(r) => super::TaskSet::Ranges(r.clone()).label(i),
        }
    }

    /// The task whose label is `label`.
    fn find(&self, label: &str, count: u64) -> Option<u64> {
        let n: u64 = label.parse().ok()?;
        match self {
            Labels::Plain => (n < count).then_some(n),
            Labels::Lines => n.checked_sub(1).filter(|&i| i < count),
            Labels::Ranges(r) => {
                let mut before = 0u64;
                for &(a, b) in r {
                    if (a..=b).contains(&n) {
                        return Some(before + (n - a));
                    }
                    before += b - a + 1;
                }
                None
            }
        }
    }
}

/// A task that did not succeed, for the status summary.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLine {
    /// Its label.
    pub task: String,
    /// Its state.
    pub state: TaskState,
    /// How its last finished attempt ended, if one did.
    pub status: Option<String>,
    /// Attempts recorded.
    pub attempts: u32,
}

/// What the index tells about a job ([`Cat::status`]).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The index.
    pub index: String,
    /// The task set as the header records it.
    pub task_set: Option<String>,
    /// Tasks in the set (or seen in the index, without a header).
    pub tasks: u64,
    /// Tasks with a successful attempt.
    pub succeeded: u64,
    /// Tasks whose finished attempts all failed.
    pub failed: u64,
    /// Tasks started but not finished (killed, interrupted).
    pub unfinished: u64,
    /// Tasks never started.
    pub pending: u64,
    /// Attempts recorded.
    pub attempts: u64,
    /// Holes marked (space reserved and never written).
    pub holes: u64,
    /// Records that did not check out (torn or damaged), skipped.
    pub damaged_records: u64,
    /// The tasks that did not succeed (the first 1000).
    pub not_succeeded: Vec<TaskLine>,
}

impl std::fmt::Display for StatusReport {
    /// A summary line, then one line per task that did not succeed (at most 20).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} tasks: {} succeeded, {} failed, {} unfinished, {} never started ({} attempts, \
             {} holes, {} damaged records)",
            self.index,
            self.tasks,
            self.succeeded,
            self.failed,
            self.unfinished,
            self.pending,
            self.attempts,
            self.holes,
            self.damaged_records
        )?;
        for t in self
            .not_succeeded
            .iter()
            .filter(|t| t.state != TaskState::Pending)
            .take(20)
        {
            write!(
                f,
                "\ntask {}: {:?}, {} attempt(s){}",
                t.task,
                t.state,
                t.attempts,
                t.status
                    .as_deref()
                    .map(|s| format!(", last {s}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// What [`Cat::print`] printed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Printed {
    /// Attempts printed.
    pub attempts: u64,
    /// Bytes printed.
    pub bytes: u64,
}

impl Cat {
    fn load(&self) -> Result<(Index, Labels, u64)> {
        let bytes = read_fresh(&self.index, "read the index")?;
        let index = Index::parse(&bytes);
        let labels = Labels::of(index.header.as_ref().map(|h| h.tasks.as_str()));
        let count = index
            .header
            .as_ref()
            .map_or_else(|| index.tasks().last().map_or(0, |t| t + 1), |h| h.count);
        Ok((index, labels, count))
    }

    /// The job's state as the index tells it.
    ///
    /// # Errors
    /// [`Error::Io`] if the index cannot be read.
    pub fn status(&self) -> Result<StatusReport> {
        let (index, labels, count) = self.load()?;
        let mut r = StatusReport {
            index: self.index.display().to_string(),
            task_set: index.header.as_ref().map(|h| h.tasks.clone()),
            tasks: count,
            succeeded: 0,
            failed: 0,
            unfinished: 0,
            pending: 0,
            attempts: index.attempts.len() as u64,
            holes: index.holes.len() as u64,
            damaged_records: index.damaged,
            not_succeeded: Vec::new(),
        };
        for t in 0..count {
            let state = index.state(t);
            match state {
                TaskState::Succeeded => r.succeeded += 1,
                TaskState::Failed => r.failed += 1,
                TaskState::Unfinished => r.unfinished += 1,
                TaskState::Pending => r.pending += 1,
            }
            if state != TaskState::Succeeded && r.not_succeeded.len() < 1000 {
                let last = index
                    .attempts_of(t)
                    .filter_map(|(_, a)| a.done.as_ref())
                    .last()
                    .map(|d| d.status.to_string());
                r.not_succeeded.push(TaskLine {
                    task: labels.label(t),
                    state,
                    status: last,
                    attempts: index.attempts_of(t).count() as u32,
                });
            }
        }
        Ok(r)
    }

    /// Prints the chosen attempts' output to `sink`, each checked against its done record.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read or `sink` written; [`Error::InvalidArgument`]
    /// for an unknown `--task`, or naming the tasks whose output does not match its record
    /// (after printing the others).
    pub fn print(&self, sink: &mut dyn Write) -> Result<Printed> {
        let (index, labels, count) = self.load()?;
        let stream = if self.stderr {
            Stream::Err
        } else {
            Stream::Out
        };
        let path = if self.stderr {
            self.errors.clone().ok_or_else(|| {
                Error::InvalidArgument("--stderr needs the error file (--errors)".into())
            })?
        } else {
            self.out.clone()
        };
        let tasks: Vec<u64> = match &self.task {
            Some(label) => vec![labels.find(label, count).ok_or_else(|| {
                Error::InvalidArgument(format!("no task {label} in {}", self.index.display()))
            })?],
            None => (0..count.max(index.tasks().last().map_or(0, |t| t + 1))).collect(),
        };
        let mut chosen: Vec<(u64, &Attempt)> = tasks
            .iter()
            .filter_map(|&t| {
                if self.failed {
                    (index.state(t) == TaskState::Failed)
                        .then(|| index.attempts_of(t).filter(|(_, a)| a.failed()).last())
                        .flatten()
                        .map(|(_, a)| (t, a))
                } else {
                    index.chosen(t).map(|(_, a)| (t, a))
                }
            })
            .collect();
        if !self.by_task {
            chosen.sort_by_key(|(t, a)| {
                (
                    a.extents
                        .iter()
                        .filter(|e| e.stream == stream)
                        .map(|e| e.offset)
                        .min()
                        .unwrap_or(u64::MAX),
                    *t,
                )
            });
        }
        let file = File::open(&path).map_err(|source| io_err("open", &path, source))?;
        // Another client's bytes may be stale in this client's cache.
        let _ = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        let mut printed = Printed::default();
        let mut damaged = Vec::new();
        let mut buf = Vec::new();
        for (t, a) in chosen {
            buf.clear();
            for e in a.extents.iter().filter(|e| e.stream == stream) {
                read_extent(&file, &path, e.offset, e.len, &mut buf)?;
            }
            let done = a.done.as_ref();
            let matches = stream == Stream::Err
                || done.is_some_and(|d| d.bytes == buf.len() as u64 && d.checksum == Fnv::of(&buf));
            if !matches {
                damaged.push(labels.label(t));
                continue;
            }
            sink.write_all(&buf)
                .map_err(|source| io_err("write", &PathBuf::from("<stdout>"), source))?;
            printed.attempts += 1;
            printed.bytes += buf.len() as u64;
        }
        if !damaged.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} task(s) have output in {} that does not match its index record (the file \
                 was changed or damaged), not printed: {}",
                damaged.len(),
                path.display(),
                damaged
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(printed)
    }
}

fn read_extent(
    file: &File,
    path: &std::path::Path,
    offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let start = buf.len();
    let len_usize = usize::try_from(len)
        .map_err(|_| Error::InvalidArgument(format!("an extent of {len} bytes")))?;
    buf.resize(start + len_usize, 0);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        let at = start + done as usize;
        let got = file
            .read_at(&mut buf[at..at + n], offset + done)
            .map_err(|source| io_err("read", path, source))?;
        if got == 0 {
            // The file ends before the extent: the attempt's check will fail.
            buf.truncate(at);
            return Ok(());
        }
        done += got as u64;
    }
    Ok(())
}

fn read_fresh(path: &std::path::Path, op: &'static str) -> Result<Vec<u8>> {
    let mut f = File::open(path).map_err(|source| io_err(op, path, source))?;
    let _ = posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(|source| io_err(op, path, source))?;
    Ok(bytes)
}

fn io_err(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

//! The index of `brlock collect`: the job's status file and checkpoint, written and read here
//! only.
//!
//! A text file of records, one per line, each guarded by a hash of its text:
//!
//! ```text
//! @#brlock-collect 2 tasks=1-5000 n=5000 command=9f86d081884c7d65 ~1b2c...
//! @E 17 1 3 o 40960 1234 ~...      output of task 17, attempt 1, rank 3: 1234 bytes at 40960
//! @D 17 1 3 node07 ok 1733140000123 41 20 1234 5e1f... ~...   attempt finished
//! @H 8192 512 o ~...               a hole: reserved, never written (a rank died)
//! ```
//!
//! * `#`: the header, first record of a new index: the format version, the task set as given,
//!   the number of tasks and a hash of the command. `--resume` refuses another task set or
//!   command.
//! * `E task attempt rank stream offset length`: an extent of one attempt's output in the
//!   output file (`stream` `o`) or the error file (`e`), in the order the attempt printed it.
//!   Written only after the bytes it describes are in the file.
//! * `D task attempt rank host status start_ms elapsed_ms lines bytes checksum`: the attempt
//!   finished (`status` `ok`, `exit:N`, `signal:N`, `nostart:ERRNO`, `interrupted`). Written
//!   after every extent of the attempt; `bytes` and `checksum` (FNV-1a 64 of the attempt's
//!   output, in order) let a reader check the extents. An attempt without one is unfinished,
//!   and its output never counts.
//! * `H offset length stream`: bytes of the file that no extent will ever describe (space a
//!   rank reserved and did not write before it died), marked by `--resume`.
//!
//! Each record is `@TEXT ~HASH\n` with `HASH` the FNV-1a 64 hash of `TEXT` in hexadecimal. A
//! torn or partial record (a rank killed in the middle of its write), zero bytes of a hole in
//! the index itself, or anything else that does not check out is skipped and counted; a
//! record that follows garbage on the same line is still found (the last `@` starts it).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

/// The index format version this module writes and reads.
pub const FORMAT: u32 = 2;

/// The streaming FNV-1a 64 hash: records' guards and attempts' output checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of what was added.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut h = Fnv::default();
        h.update(bytes);
        h.value()
    }
}

/// Which file an extent is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The output file (the tasks' stdout).
    Out,
    /// The error file (the tasks' stderr, with `--errors`).
    Err,
}

impl Stream {
    fn code(self) -> &'static str {
        match self {
            Stream::Out => "o",
            Stream::Err => "e",
        }
    }

    fn parse(s: &str) -> Option<Stream> {
        match s {
            "o" => Some(Stream::Out),
            "e" => Some(Stream::Err),
            _ => None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Status {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status.
    Exit(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Could not be started (the `errno`).
    NotStarted(i32),
    /// Stopped by `collect` itself: a signal to the job, or a failure elsewhere. Unfinished
    /// for `--resume`, which runs the task again.
    Interrupted,
}

impl Status {
    /// Whether the attempt succeeded.
    pub fn ok(self) -> bool {
        self == Status::Ok
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::Exit(c) => write!(f, "exit:{c}"),
            Status::Signal(s) => write!(f, "signal:{s}"),
            Status::NotStarted(e) => write!(f, "nostart:{e}"),
            Status::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        if s == "ok" {
            return Some(Status::Ok);
        }
        if s == "interrupted" {
            return Some(Status::Interrupted);
        }
        let (kind, value) = s.split_once(':')?;
        let value: i32 = value.parse().ok()?;
        match kind {
            "exit" => Some(Status::Exit(value)),
            "signal" => Some(Status::Signal(value)),
            "nostart" => Some(Status::NotStarted(value)),
            _ => None,
        }
    }
}

/// The first record of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The format version ([`FORMAT`]).
    pub version: u32,
    /// The task set as the user gave it (`1-5000`, `file:tasks.txt`, `ranks`).
    pub tasks: String,
    /// How many tasks it holds.
    pub count: u64,
    /// Hash of the command and its arguments ([`command_hash`]).
    pub command: u64,
}

/// An extent of one attempt's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// The task (its index in the task set, from 0).
    pub task: u64,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The rank that ran it.
    pub rank: u32,
    /// The file the bytes are in.
    pub stream: Stream,
    /// First byte in the file.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// A finished attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// The task.
    pub task: u64,
    /// The attempt.
    pub attempt: u32,
    /// The rank that ran it.
    pub rank: u32,
    /// That rank's host.
    pub host: String,
    /// How it ended.
    pub status: Status,
    /// When it started, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// How long it ran, in milliseconds.
    pub elapsed_ms: u64,
    /// Lines of output (stdout).
    pub lines: u64,
    /// Bytes of output (stdout), as its extents must add up to.
    pub bytes: u64,
    /// FNV-1a 64 of its output, in order.
    pub checksum: u64,
}

/// Bytes of a file no extent describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hole {
    /// First byte.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// The file.
    pub stream: Stream,
}

/// One record of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `#`.
    Header(Header),
    /// `E`.
    Extent(Extent),
    /// `D`.
    Done(Done),
    /// `H`.
    Hole(Hole),
}

/// A hash of the command and its arguments, for the header.
pub fn command_hash(command: &[String]) -> u64 {
    let mut h = Fnv::default();
    for a in command {
        h.update(a.as_bytes());
        h.update(&[0]);
    }
    h.value()
}

/// `text` with every character that the record syntax reserves (space, `@`, `~`, controls)
/// replaced by `_`: host names and task specs go into records.
fn field(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '@' || c == '~' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if clean.is_empty() {
        "_".into()
    } else {
        clean
    }
}

impl Record {
    /// Appends the record, guarded, with its newline, to `out`.
    pub fn push_to(&self, out: &mut String) {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            Record::Header(h) => write!(
                text,
                "#brlock-collect {} tasks={} n={} command={:016x}",
                h.version,
                field(&h.tasks),
                h.count,
                h.command
            ),
            Record::Extent(e) => write!(
                text,
                "E {} {} {} {} {} {}",
                e.task,
                e.attempt,
                e.rank,
                e.stream.code(),
                e.offset,
                e.len
            ),
            Record::Done(d) => write!(
                text,
                "D {} {} {} {} {} {} {} {} {} {:016x}",
                d.task,
                d.attempt,
                d.rank,
                field(&d.host),
                d.status,
                d.start_ms,
                d.elapsed_ms,
                d.lines,
                d.bytes,
                d.checksum
            ),
            Record::Hole(h) => write!(text, "H {} {} {}", h.offset, h.len, h.stream.code()),
        };
        let _ = writeln!(out, "@{text} ~{:016x}", Fnv::of(text.as_bytes()));
    }

    /// The record as its guarded line.
    pub fn line(&self) -> String {
        let mut s = String::new();
        self.push_to(&mut s);
        s
    }

    /// Parses one line (without its newline): the record that starts at its last `@`, if its
    /// guard checks out.
    pub fn parse(line: &[u8]) -> Option<Record> {
        let at = line.iter().rposition(|&b| b == b'@')?;
        let text = std::str::from_utf8(&line[at + 1..]).ok()?;
        let (body, hash) = text.rsplit_once(" ~")?;
        if hash.len() != 16 || u64::from_str_radix(hash, 16).ok()? != Fnv::of(body.as_bytes()) {
            return None;
        }
        let mut f = body.split(' ');
        let kind = f.next()?;
        let num = |s: Option<&str>| s?.parse::<u64>().ok();
        let small = |s: Option<&str>| s?.parse::<u32>().ok();
        let hex = |s: Option<&str>| u64::from_str_radix(s?, 16).ok();
        let record = match kind {
            "#brlock-collect" => {
                let version = small(f.next())?;
                let tasks = f.next()?.strip_prefix("tasks=")?.to_string();
                let count = f.next()?.strip_prefix("n=")?.parse().ok()?;
                let command = u64::from_str_radix(f.next()?.strip_prefix("command=")?, 16).ok()?;
                Record::Header(Header {
                    version,
                    tasks,
                    count,
                    command,
                })
            }
            "E" => Record::Extent(Extent {
                task: num(f.next())?,
                attempt: small(f.next())?,
                rank: small(f.next())?,
                stream: Stream::parse(f.next()?)?,
                offset: num(f.next())?,
                len: num(f.next())?,
            }),
            "D" => Record::Done(Done {
                task: num(f.next())?,
                attempt: small(f.next())?,
                rank: small(f.next())?,
                host: f.next()?.to_string(),
                status: Status::parse(f.next()?)?,
                start_ms: num(f.next())?,
                elapsed_ms: num(f.next())?,
                lines: num(f.next())?,
                bytes: num(f.next())?,
                checksum: hex(f.next())?,
            }),
            "H" => Record::Hole(Hole {
                offset: num(f.next())?,
                len: num(f.next())?,
                stream: Stream::parse(f.next()?)?,
            }),
            _ => return None,
        };
        // Trailing fields: not a record of this format.
        f.next().is_none().then_some(record)
    }
}

/// One attempt as the index tells it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attempt {
    /// Its extents, in the order they were recorded (the order of its output).
    pub extents: Vec<Extent>,
    /// Its end, if it finished.
    pub done: Option<Done>,
}

impl Attempt {
    /// Its output extents (stdout).
    pub fn output(&self) -> impl Iterator<Item = &Extent> + '_ {
        self.extents.iter().filter(|e| e.stream == Stream::Out)
    }

    /// Whether it finished successfully.
    pub fn succeeded(&self) -> bool {
        self.done.as_ref().is_some_and(|d| d.status.ok())
    }

    /// Whether it finished and failed (interrupted attempts did not finish).
    pub fn failed(&self) -> bool {
        self.done
            .as_ref()
            .is_some_and(|d| !d.status.ok() && d.status != Status::Interrupted)
    }
}

/// What one task's attempts came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// An attempt succeeded: its output is the task's.
    Succeeded,
    /// Every finished attempt failed.
    Failed,
    /// Attempts started (or were interrupted) but none finished.
    Unfinished,
    /// Never started.
    Pending,
}

/// A whole index, parsed.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// The header, if the index has one (the first valid header record).
    pub header: Option<Header>,
    /// Attempts by `(task, attempt)`.
    pub attempts: BTreeMap<(u64, u32), Attempt>,
    /// Holes.
    pub holes: Vec<Hole>,
    /// Records that did not check out (torn, partial, damaged), skipped.
    pub damaged: u64,
    /// Records read.
    pub records: u64,
}

impl Index {
    /// Parses an index file's bytes. Never fails: what does not check out is counted in
    /// [`Index::damaged`] and skipped.
    pub fn parse(bytes: &[u8]) -> Index {
        let mut index = Index::default();
        let mut lines = bytes.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            // The last piece has no newline: a record cut short, or nothing.
            let last = lines.peek().is_none();
            let blank = line.iter().all(|&b| b == 0 || b == b' ');
            if blank {
                continue;
            }
            let record = if last { None } else { Record::parse(line) };
            let Some(record) = record else {
                index.damaged += 1;
                continue;
            };
            index.records += 1;
            match record {
                Record::Header(h) => {
                    index.header.get_or_insert(h);
                }
                Record::Extent(e) => index
                    .attempts
                    .entry((e.task, e.attempt))
                    .or_default()
                    .extents
                    .push(e),
                Record::Done(d) => {
                    let a = index.attempts.entry((d.task, d.attempt)).or_default();
                    a.done.get_or_insert(d);
                }
                Record::Hole(h) => index.holes.push(h),
            }
        }
        index
    }

    /// The attempts of `task`, in attempt order.
    pub fn attempts_of(&self, task: u64) -> impl Iterator<Item = (u32, &Attempt)> + '_ {
        self.attempts
            .range((task, 0)..=(task, u32::MAX))
            .map(|(&(_, n), a)| (n, a))
    }

    /// The attempt whose output is the task's: its first successful one.
    pub fn chosen(&self, task: u64) -> Option<(u32, &Attempt)> {
        self.attempts_of(task).find(|(_, a)| a.succeeded())
    }

    /// What `task`'s attempts came to.
    pub fn state(&self, task: u64) -> TaskState {
        let mut state = TaskState::Pending;
        for (_, a) in self.attempts_of(task) {
            if a.succeeded() {
                return TaskState::Succeeded;
            }
            if a.failed() {
                state = TaskState::Failed;
            } else if state == TaskState::Pending {
                state = TaskState::Unfinished;
            }
        }
        state
    }

    /// The highest attempt number recorded for `task` (0 if none).
    pub fn last_attempt(&self, task: u64) -> u32 {
        self.attempts_of(task).map(|(n, _)| n).max().unwrap_or(0)
    }

    /// The tasks that have any record, in order.
    pub fn tasks(&self) -> impl Iterator<Item = u64> + '_ {
        let mut last = None;
        self.attempts.keys().filter_map(move |&(t, _)| {
            if last == Some(t) {
                None
            } else {
                last = Some(t);
                Some(t)
            }
        })
    }

    /// The parts of `[0, end)` of `stream`'s file that no extent and no hole covers: space
    /// reserved by a rank that died before it wrote (or before its record did).
    pub fn uncovered(&self, stream: Stream, end: u64) -> Vec<(u64, u64)> {
        let mut spans: Vec<(u64, u64)> = self
            .attempts
            .values()
            .flat_map(|a| a.extents.iter())
            .filter(|e| e.stream == stream)
            .map(|e| (e.offset, e.offset.saturating_add(e.len)))
            .chain(
                self.holes
                    .iter()
                    .filter(|h| h.stream == stream)
                    .map(|h| (h.offset, h.offset.saturating_add(h.len))),
            )
            .collect();
        spans.sort_unstable();
        let mut gaps = Vec::new();
        let mut at = 0u64;
        for (start, stop) in spans {
            if start > at {
                gaps.push((at, start.min(end) - at.min(end)));
            }
            at = at.max(stop);
        }
        if at < end {
            gaps.push((at, end - at));
        }
        gaps.retain(|&(_, len)| len > 0);
        gaps
    }
}

/// `(start, length without newline)` of every line of `batch`, which holds whole lines (each
/// ends with a newline).
pub fn line_spans(batch: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut start = 0u64;
    batch.split_inclusive(|&b| b == b'\n').map(move |line| {
        let span = (start, line.len() as u64 - 1);
        start += line.len() as u64;
        span
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(task: u64, attempt: u32, status: Status) -> Record {
        Record::Done(Done {
            task,
            attempt,
            rank: 2,
            host: "node 7@x".into(),
            status,
            start_ms: 1_733_140_000_123,
            elapsed_ms: 41,
            lines: 3,
            bytes: 12,
            checksum: 0xdead_beef,
        })
    }

    fn extent(task: u64, attempt: u32, offset: u64, len: u64) -> Record {
        Record::Extent(Extent {
            task,
            attempt,
            rank: 2,
            stream: Stream::Out,
            offset,
            len,
        })
    }

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Header(Header {
                version: FORMAT,
                tasks: "1-5000,7".into(),
                count: 5001,
                command: command_hash(&["echo".into(), "{task}".into()]),
            }),
            extent(17, 1, 1 << 40, 1234),
            done(17, 1, Status::Ok),
            done(3, 2, Status::Exit(3)),
            done(3, 3, Status::Signal(9)),
            done(4, 1, Status::NotStarted(2)),
            done(5, 1, Status::Interrupted),
            Record::Hole(Hole {
                offset: 8192,
                len: 512,
                stream: Stream::Err,
            }),
        ];
        for r in records {
            let line = r.line();
            assert!(line.starts_with('@') && line.ends_with('\n'), "{line:?}");
            let parsed = Record::parse(line.trim_end().as_bytes());
            let expected = match r {
                // Reserved characters in a host name become `_`.
                Record::Done(mut d) => {
                    d.host = field(&d.host);
                    Record::Done(d)
                }
                other => other,
            };
            assert_eq!(parsed, Some(expected), "{line:?}");
        }
    }

    /// Negative controls: damaged records are refused, a record after garbage is found.
    #[test]
    fn damage_is_refused() {
        let line = extent(1, 1, 10, 20).line();
        let body = line.trim_end();
        assert!(Record::parse(body.as_bytes()).is_some());
        // One changed digit.
        let bad = body.replacen(" 10 ", " 11 ", 1);
        assert_eq!(Record::parse(bad.as_bytes()), None);
        // Cut short.
        assert_eq!(Record::parse(&body.as_bytes()[..body.len() - 3]), None);
        // Zeros of a hole, or a partial record, before a good one on the same line.
        let mut glued = vec![0u8; 9];
        glued.extend_from_slice(b"@E 3 1 2 o 4");
        glued.extend_from_slice(body.as_bytes());
        assert_eq!(
            Record::parse(&glued),
            Record::parse(body.as_bytes()),
            "the record after the garbage"
        );
        for junk in ["", "@", "@E ~0", "hello", "@X 1 ~0000000000000000"] {
            assert_eq!(Record::parse(junk.as_bytes()), None, "{junk:?}");
        }
    }

    #[test]
    fn an_index_tells_each_task_and_skips_a_torn_last_record() {
        let mut text = String::new();
        for r in [
            extent(0, 1, 0, 5),
            done(0, 1, Status::Exit(1)),
            extent(0, 2, 5, 5),
            done(0, 2, Status::Ok),
            extent(1, 1, 10, 5),
            done(1, 1, Status::Exit(2)),
            extent(2, 1, 15, 5),
            done(3, 1, Status::Interrupted),
            extent(4, 1, 20, 5),
        ] {
            r.push_to(&mut text);
        }
        let torn = done(4, 1, Status::Ok).line();
        text.push_str(&torn[..torn.len() - 1]); // no newline: cut short
        let index = Index::parse(text.as_bytes());
        assert_eq!(index.damaged, 1);
        assert_eq!(index.state(0), TaskState::Succeeded);
        assert_eq!(index.chosen(0).map(|(n, _)| n), Some(2));
        assert_eq!(index.state(1), TaskState::Failed);
        assert_eq!(index.state(2), TaskState::Unfinished);
        assert_eq!(index.state(3), TaskState::Unfinished);
        assert_eq!(
            index.state(4),
            TaskState::Unfinished,
            "its done record was torn"
        );
        assert_eq!(index.state(9), TaskState::Pending);
        assert_eq!(index.last_attempt(0), 2);
        assert_eq!(index.tasks().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        // Bytes 25..40 were never described.
        assert_eq!(index.uncovered(Stream::Out, 40), vec![(25, 15)]);
    }

    #[test]
    fn uncovered_spans_between_and_after() {
        let mut text = String::new();
        extent(0, 1, 10, 10).push_to(&mut text);
        extent(1, 1, 30, 5).push_to(&mut text);
        Record::Hole(Hole {
            offset: 35,
            len: 5,
            stream: Stream::Out,
        })
        .push_to(&mut text);
        let index = Index::parse(text.as_bytes());
        assert_eq!(
            index.uncovered(Stream::Out, 50),
            vec![(0, 10), (20, 10), (40, 10)]
        );
        assert!(index.uncovered(Stream::Err, 0).is_empty());
    }

    #[test]
    fn spans_of_whole_lines() {
        let spans: Vec<_> = line_spans(b"ab\n\nxyz\n").collect();
        assert_eq!(spans, vec![(0, 2), (3, 0), (4, 3)]);
    }
}

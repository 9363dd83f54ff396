//! Committing batches: the bytes first, then their index records; directly, or through one
//! writer per node (aggregation).
//!
//! A [`Unit`] is one rank's batch: output bytes (and error-file bytes), which task attempt
//! printed which piece of them, and the done records of the attempts whose output is all in
//! this or an earlier unit. [`commit`] appends the bytes of any number of units with one
//! reservation and one write per file, then, with one append to the index, an extent record
//! per piece followed by the units' done records: so a done record is never in the index
//! before the extents it vouches for, and an extent never before its bytes.
//!
//! With aggregation, the ranks of a node (`MPI_Comm_split_type`, shared memory) send their
//! units to the node's first rank (a point-to-point message each), which commits them together
//! once they hold about a batch per rank or the oldest is `batch_age` old. Messages of one
//! sender arrive in order, so a rank's units are committed in the order it made them.

use std::time::{Duration, Instant};

use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, Rank};

use super::super::index::{Extent, Record, Stream};
use super::super::AppendFile;
use crate::error::{Error, Result};
use crate::sys::OwnedComm;

/// Tag of a unit sent to the node's writer.
const UNIT_TAG: i32 = 0x636f;
/// Tag of a rank's last message to the node's writer (empty).
const END_TAG: i32 = 0x6365;

/// Which attempt printed which bytes of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub task: u64,
    pub attempt: u32,
    /// Offset in the unit's bytes of its stream.
    pub start: u64,
    pub len: u64,
}

/// One rank's batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unit {
    pub rank: u32,
    pub lines: u64,
    pub out: Vec<u8>,
    pub out_pieces: Vec<Piece>,
    pub err: Vec<u8>,
    pub err_pieces: Vec<Piece>,
    /// Rendered done records (index lines).
    pub done: String,
}

impl Unit {
    pub fn new(rank: u32) -> Unit {
        Unit {
            rank,
            ..Unit::default()
        }
    }

    /// Appends `bytes` printed by `(task, attempt)` on `stream`, merging with the previous
    /// piece of the same attempt.
    pub fn add(&mut self, stream: Stream, task: u64, attempt: u32, bytes: &[u8]) {
        let (data, pieces) = match stream {
            Stream::Out => (&mut self.out, &mut self.out_pieces),
            Stream::Err => (&mut self.err, &mut self.err_pieces),
        };
        let start = data.len() as u64;
        data.extend_from_slice(bytes);
        let len = bytes.len() as u64;
        match pieces.last_mut() {
            Some(p) if p.task == task && p.attempt == attempt && p.start + p.len == start => {
                p.len += len;
            }
            _ => pieces.push(Piece {
                task,
                attempt,
                start,
                len,
            }),
        }
        if stream == Stream::Out {
            self.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }

    /// Bytes of both streams.
    pub fn bytes(&self) -> u64 {
        (self.out.len() + self.err.len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty() && self.err.is_empty() && self.done.is_empty()
    }

    /// The unit as one message.
    fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.out.len() + self.err.len() + self.done.len() + 64);
        let head = [
            u64::from(self.rank),
            self.lines,
            self.out_pieces.len() as u64,
            self.err_pieces.len() as u64,
            self.out.len() as u64,
            self.err.len() as u64,
            self.done.len() as u64,
        ];
        for v in head {
            m.extend_from_slice(&v.to_le_bytes());
        }
        for p in self.out_pieces.iter().chain(&self.err_pieces) {
            for v in [p.task, u64::from(p.attempt), p.start, p.len] {
                m.extend_from_slice(&v.to_le_bytes());
            }
        }
        m.extend_from_slice(&self.out);
        m.extend_from_slice(&self.err);
        m.extend_from_slice(self.done.as_bytes());
        m
    }

    /// A unit from [`Unit::encode`]'s bytes.
    fn decode(m: &[u8]) -> Option<Unit> {
        let mut at = 0usize;
        let mut word = || -> Option<u64> {
            let w = m.get(at..at + 8)?;
            at += 8;
            Some(u64::from_le_bytes(w.try_into().ok()?))
        };
        let rank = u32::try_from(word()?).ok()?;
        let lines = word()?;
        let (n_out, n_err) = (word()?, word()?);
        let (out_len, err_len, done_len) = (word()?, word()?, word()?);
        let mut piece = || -> Option<Piece> {
            Some(Piece {
                task: word()?,
                attempt: u32::try_from(word()?).ok()?,
                start: word()?,
                len: word()?,
            })
        };
        let out_pieces = (0..n_out).map(|_| piece()).collect::<Option<Vec<_>>>()?;
        let err_pieces = (0..n_err).map(|_| piece()).collect::<Option<Vec<_>>>()?;
        let take = |at: &mut usize, n: u64| -> Option<Vec<u8>> {
            let n = usize::try_from(n).ok()?;
            let v = m.get(*at..at.checked_add(n)?)?.to_vec();
            *at += n;
            Some(v)
        };
        let mut at = 56 + 32 * (out_pieces.len() + err_pieces.len());
        let out = take(&mut at, out_len)?;
        let err = take(&mut at, err_len)?;
        let done = String::from_utf8(take(&mut at, done_len)?).ok()?;
        (at == m.len()).then_some(Unit {
            rank,
            lines,
            out,
            out_pieces,
            err,
            err_pieces,
            done,
        })
    }
}

/// The shared files a run writes.
#[derive(Debug)]
pub(crate) struct Files {
    pub out: AppendFile,
    pub err: Option<AppendFile>,
    pub index: Option<AppendFile>,
}

/// What this rank's commits wrote.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub bytes: u64,
    pub lines: u64,
    pub batches: u64,
    pub write_calls: u64,
}

/// Appends the bytes of `units` (one write per file), then their index records (one append).
pub(crate) fn commit(files: &mut Files, units: &[Unit], stats: &mut Stats) -> Result<()> {
    let out_base = append_all(&mut files.out, units.iter().map(|u| &u.out[..]), stats)?;
    let err_base = match files.err.as_mut() {
        Some(f) => append_all(f, units.iter().map(|u| &u.err[..]), stats)?,
        None => 0,
    };
    stats.lines += units.iter().map(|u| u.lines).sum::<u64>();
    stats.bytes += units.iter().map(|u| u.out.len() as u64).sum::<u64>();
    stats.batches += units.len() as u64;
    let Some(index) = files.index.as_mut() else {
        return Ok(());
    };
    let mut text = String::new();
    let (mut out_at, mut err_at) = (out_base, err_base);
    for u in units {
        for (stream, base, pieces) in [
            (Stream::Out, out_at, &u.out_pieces),
            (Stream::Err, err_at, &u.err_pieces),
        ] {
            for p in pieces {
                Record::Extent(Extent {
                    task: p.task,
                    attempt: p.attempt,
                    rank: u.rank,
                    stream,
                    offset: base + p.start,
                    len: p.len,
                })
                .push_to(&mut text);
            }
        }
        text.push_str(&u.done);
        out_at += u.out.len() as u64;
        err_at += u.err.len() as u64;
    }
    if !text.is_empty() {
        index.append(text.as_bytes())?;
    }
    Ok(())
}

/// Appends the concatenation of `parts` with one reservation and one write; returns its
/// offset (the pointer's position when there is nothing to write).
fn append_all<'a>(
    file: &mut AppendFile,
    parts: impl Iterator<Item = &'a [u8]> + Clone,
    stats: &mut Stats,
) -> Result<u64> {
    let total: usize = parts.clone().map(<[u8]>::len).sum();
    if total == 0 {
        return Ok(0);
    }
    stats.write_calls += 1;
    let mut single = parts.clone().filter(|p| !p.is_empty());
    if let (Some(only), None) = (single.next(), single.next()) {
        return file.append(only);
    }
    let mut all = Vec::with_capacity(total);
    for p in parts {
        all.extend_from_slice(p);
    }
    file.append(&all)
}

/// How this rank's units reach the files.
#[derive(Debug)]
pub(crate) enum Role {
    /// It commits its own.
    Direct,
    /// It sends them to its node's writer (rank 0 of `node`).
    Member,
    /// It commits its own and its node's other ranks'.
    Leader {
        /// Ranks of the node still sending.
        open: usize,
        queue: Vec<Unit>,
        queued: u64,
        oldest: Option<Instant>,
        /// Commit once this much is queued.
        threshold: u64,
    },
}

/// Where a rank's units go.
#[derive(Debug)]
pub(crate) struct Writer {
    pub files: Files,
    role: Role,
    /// The node's communicator, with aggregation.
    node: Option<OwnedComm>,
    age: Duration,
    pub stats: Stats,
    /// The first commit error of a leader: later units are received and dropped.
    failed: Option<Error>,
}

impl Writer {
    /// A writer that commits its own units.
    pub fn direct(files: Files, age: Duration) -> Writer {
        Writer {
            files,
            role: Role::Direct,
            node: None,
            age,
            stats: Stats::default(),
            failed: None,
        }
    }

    /// A writer of an aggregating node: rank 0 of `node` commits, the others send.
    pub fn aggregating(files: Files, node: OwnedComm, batch_bytes: u64, age: Duration) -> Writer {
        let role = if node.rank() == 0 {
            let ranks = u64::try_from(node.size()).unwrap_or(1);
            Role::Leader {
                open: usize::try_from(node.size() - 1).unwrap_or(0),
                queue: Vec::new(),
                queued: 0,
                oldest: None,
                threshold: batch_bytes.saturating_mul(ranks).clamp(1, 64 << 20),
            }
        } else {
            Role::Member
        };
        Writer {
            files,
            role,
            node: Some(node),
            age,
            stats: Stats::default(),
            failed: None,
        }
    }

    /// Whether this writer commits for others.
    pub fn aggregated(&self) -> bool {
        !matches!(self.role, Role::Direct)
    }

    /// Hands over one of this rank's units.
    ///
    /// # Errors
    /// The commit's error (I/O, MPI): the unit's records are then not in the index.
    pub fn submit(&mut self, unit: Unit) -> Result<()> {
        if unit.is_empty() {
            return Ok(());
        }
        match &mut self.role {
            Role::Direct => commit(
                &mut self.files,
                std::slice::from_ref(&unit),
                &mut self.stats,
            ),
            Role::Member => {
                let node = self.node.as_ref().map(OwnedComm::comm);
                if let Some(node) = node {
                    node.process_at_rank(0)
                        .send_with_tag(&unit.encode()[..], UNIT_TAG);
                }
                Ok(())
            }
            Role::Leader { .. } => {
                self.queue(unit);
                self.commit_due(false)
            }
        }
    }

    fn queue(&mut self, unit: Unit) {
        if let Role::Leader {
            queue,
            queued,
            oldest,
            ..
        } = &mut self.role
        {
            *queued += unit.bytes();
            oldest.get_or_insert_with(Instant::now);
            queue.push(unit);
        }
    }

    /// A leader receives what its node sent and commits when due; others do nothing.
    ///
    /// # Errors
    /// A commit's error, once (the leader then drops what it receives: the job is stopping).
    pub fn poll(&mut self) -> Result<()> {
        if !matches!(self.role, Role::Leader { .. }) {
            return Ok(());
        }
        self.receive(false)?;
        self.commit_due(false)
    }

    /// Receives every message waiting (or, with `wait`, waits for one while ranks of the
    /// node are still sending).
    fn receive(&mut self, wait: bool) -> Result<()> {
        let mut got = false;
        loop {
            let probe = |tag| {
                self.node
                    .as_ref()
                    .and_then(|n| n.comm().any_process().immediate_matched_probe_with_tag(tag))
            };
            if let Some(probed) = probe(UNIT_TAG) {
                let (bytes, status) = probed.matched_receive_vec::<u8>();
                let unit = Unit::decode(&bytes).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "a malformed batch from rank {} of the node",
                        status.source_rank()
                    ))
                })?;
                self.queue(unit);
                got = true;
                continue;
            }
            if let Some(probed) = probe(END_TAG) {
                let _ = probed.matched_receive_vec::<u8>();
                if let Role::Leader { open, .. } = &mut self.role {
                    *open = open.saturating_sub(1);
                }
                got = true;
                continue;
            }
            if !wait || got || self.members_open() == 0 {
                return Ok(());
            }
            std::thread::yield_now();
        }
    }

    fn members_open(&self) -> usize {
        match &self.role {
            Role::Leader { open, .. } => *open,
            _ => 0,
        }
    }

    /// Commits the queue if it is big or old enough (or, with `all`, whatever it holds).
    fn commit_due(&mut self, all: bool) -> Result<()> {
        let age = self.age;
        let Role::Leader {
            queue,
            queued,
            oldest,
            threshold,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let due = all || *queued >= *threshold || oldest.is_some_and(|t| t.elapsed() >= age);
        if !due || queue.is_empty() {
            return Ok(());
        }
        let units = std::mem::take(queue);
        *queued = 0;
        *oldest = None;
        if self.failed.is_some() {
            return Ok(());
        }
        match commit(&mut self.files, &units, &mut self.stats) {
            Ok(()) => Ok(()),
            Err(e) => {
                let shown = Error::InvalidArgument(e.to_string());
                self.failed = Some(shown);
                Err(e)
            }
        }
    }

    /// The end of this rank's units: a member says so; a leader receives the rest of its
    /// node's and commits everything.
    ///
    /// # Errors
    /// A commit's error.
    pub fn finish(&mut self) -> Result<()> {
        match &self.role {
            Role::Direct => Ok(()),
            Role::Member => {
                if let Some(node) = self.node.as_ref() {
                    let empty: [u8; 0] = [];
                    node.comm()
                        .process_at_rank(0 as Rank)
                        .send_with_tag(&empty[..], END_TAG);
                }
                Ok(())
            }
            Role::Leader { .. } => {
                while self.members_open() > 0 {
                    self.receive(true)?;
                    if let Err(e) = self.commit_due(false) {
                        tracing::error!("committing the node's batches: {e}");
                    }
                }
                self.commit_due(true)
            }
        }
    }

    /// The files and the node communicator, for the collective close.
    pub fn into_parts(self) -> (Files, Option<OwnedComm>, Stats) {
        (self.files, self.node, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_merge_pieces_and_round_trip() {
        let mut u = Unit::new(3);
        u.add(Stream::Out, 7, 1, b"a\n");
        u.add(Stream::Out, 7, 1, b"bc\n");
        u.add(Stream::Out, 8, 2, b"x\n");
        u.add(Stream::Err, 7, 1, b"oops\n");
        u.done.push_str("@D ... ~0\n");
        assert_eq!(
            u.out_pieces,
            vec![
                Piece {
                    task: 7,
                    attempt: 1,
                    start: 0,
                    len: 5
                },
                Piece {
                    task: 8,
                    attempt: 2,
                    start: 5,
                    len: 2
                }
            ]
        );
        assert_eq!(u.lines, 3);
        assert_eq!(u.bytes(), 12);
        assert_eq!(Unit::decode(&u.encode()), Some(u.clone()));
        let mut bad = u.encode();
        bad.pop();
        assert_eq!(Unit::decode(&bad), None);
        assert_eq!(Unit::decode(&[]), None);
    }
}

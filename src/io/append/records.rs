//! Deterministic test records for shared-file appends, and a verifier that does not trust the
//! appender.
//!
//! Record `(rank, seq)` of a stream with a given `seed` is one line of 1 to [`MAX_LINE`]
//! bytes (pseudo-random length, no newline inside): the first bytes of
//! `"{rank}:{seq}:"` followed by lowercase filler. Everything about it is a function of
//! `(seed, rank, seq)`, so a verifier can regenerate the expected lines instead of trusting
//! what was written. Lines shorter than their header carry only part of it; they are still
//! counted exactly (the check is a multiset comparison), but only lines long enough to name
//! their rank and sequence number take part in the per-rank order check.
//!
//! [`verify`] splits a file into lines and compares them with the expected multiset by a
//! 64-bit hash of each line (a collision between two distinct lines has a probability of about
//! 1e-9 for a million lines; it would hide one defect, it cannot invent one). It counts
//! missing, duplicated and unexpected lines (a torn or overwritten record leaves at least one
//! unexpected line, or a missing one), checks that each rank's records appear in sequence
//! order, and, for ordered output, that the file is exactly rank 0's records, then rank 1's,
//! and so on. [`verify_index`] checks a `collect` index ([`super::index`]) against the data:
//! the output its records vouch for must be exactly each rank's records, in order.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;

use serde::Serialize;

/// Longest record, in bytes, without its newline.
pub const MAX_LINE: usize = 4096;

/// SplitMix64: a small, good-enough generator for test data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator state of record `(rank, seq)`.
fn state(seed: u64, rank: u32, seq: u64) -> u64 {
    mix(mix(seed ^ mix(u64::from(rank))) ^ seq)
}

/// Length of record `(rank, seq)`, 1 to [`MAX_LINE`] bytes (without the newline).
pub fn line_len(seed: u64, rank: u32, seq: u64) -> usize {
    // The remainder is below MAX_LINE, which fits every usize.
    1 + (state(seed, rank, seq) % MAX_LINE as u64) as usize
}

/// How many records task `task` of a task-farm test prints: 0 to `max` (inclusive), a
/// function of `(seed, task)`.
pub fn task_lines(seed: u64, task: u32, max: u64) -> u64 {
    mix(state(seed ^ 0x7a5c, task, 0)) % (max + 1)
}

/// How long task `task` of a task-farm test runs, in milliseconds: 0 to `max`.
pub fn task_millis(seed: u64, task: u32, max: u64) -> u64 {
    mix(state(seed ^ 0x3141, task, 1)) % (max + 1)
}

/// Whether task `task` of a task-farm test fails on purpose (about `percent` percent of the
/// tasks).
pub fn task_fails(seed: u64, task: u32, percent: u64) -> bool {
    mix(state(seed ^ 0x0fa1, task, 2)) % 100 < percent
}

/// Appends record `(rank, seq)` and a newline to `out`.
pub fn push_line(out: &mut Vec<u8>, seed: u64, rank: u32, seq: u64) {
    let len = line_len(seed, rank, seq);
    let start = out.len();
    let header = format!("{rank}:{seq}:");
    out.extend_from_slice(&header.as_bytes()[..header.len().min(len)]);
    let mut s = state(seed, rank, seq);
    while out.len() - start < len {
        s = mix(s);
        for b in s.to_le_bytes() {
            if out.len() - start == len {
                break;
            }
            out.push(b'a' + b % 26);
        }
    }
    out.push(b'\n');
}

/// Record `(rank, seq)` without its newline.
pub fn line(seed: u64, rank: u32, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(line_len(seed, rank, seq) + 1);
    push_line(&mut v, seed, rank, seq);
    v.pop();
    v
}

/// What a file should hold: records `0..per_rank[r]` of every rank `r`, of stream `seed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Seed of the records.
    pub seed: u64,
    /// Number of records of each rank (index = rank).
    pub per_rank: Vec<u64>,
}

impl Expected {
    /// The records of a task farm's tasks `labels` (task `L` prints records `(L, 0..n)` with
    /// `n` from [`task_lines`]), in task order: `per_rank` is indexed by the label.
    pub fn tasks(seed: u64, labels: impl Iterator<Item = u32>, max_lines: u64) -> Expected {
        let mut per_rank = Vec::new();
        for l in labels {
            let i = l as usize;
            if per_rank.len() <= i {
                per_rank.resize(i + 1, 0);
            }
            per_rank[i] = task_lines(seed, l, max_lines);
        }
        Expected { seed, per_rank }
    }

    /// `ranks` ranks with `records` records each.
    pub fn uniform(seed: u64, ranks: u32, records: u64) -> Expected {
        Expected {
            seed,
            per_rank: vec![records; ranks as usize],
        }
    }

    /// Every expected record as `(rank, seq)`, in rank order then sequence order.
    fn all(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.per_rank
            .iter()
            .enumerate()
            .flat_map(|(r, &n)| (0..n).map(move |s| (r as u32, s)))
    }

    /// Total number of records.
    pub fn records(&self) -> u64 {
        self.per_rank.iter().sum()
    }

    /// Total bytes of all records with their newlines.
    pub fn bytes(&self) -> u64 {
        self.all()
            .map(|(r, s)| line_len(self.seed, r, s) as u64 + 1)
            .sum()
    }
}

/// The outcome of [`verify`]. The data are correct when [`Verdict::ok`] says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Records expected.
    pub expected: u64,
    /// Lines found in the data (a final piece without newline counts as one).
    pub lines: u64,
    /// Bytes of the data.
    pub bytes: u64,
    /// Bytes the expected records take.
    pub expected_bytes: u64,
    /// Expected records not found.
    pub missing: u64,
    /// Extra copies of expected records.
    pub duplicated: u64,
    /// Lines that are no expected record: torn, overwritten, or garbage (holes of zeros).
    pub unexpected: u64,
    /// Whether the data end with a newline (or are empty).
    pub ends_with_newline: bool,
    /// Records (long enough to name their rank and sequence number) that come after a later
    /// record of the same rank.
    pub out_of_sequence: u64,
    /// For ordered checks: lines that are not the record expected at their position in rank
    /// order. `None` when order across ranks was not checked.
    pub out_of_rank_order: Option<u64>,
}

impl Verdict {
    /// Every record present exactly once, intact, nothing else, each rank's records in
    /// sequence, and (if checked) in rank order.
    pub fn ok(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.ends_with_newline
            && self.out_of_sequence == 0
            && self.out_of_rank_order.unwrap_or(0) == 0
            && self.lines == self.expected
    }
}

fn hash(line: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(line);
    h.finish()
}

/// The `(rank, seq)` a line names in its header, if it is long enough to carry all of it.
fn header_of(line: &[u8]) -> Option<(u32, u64)> {
    let mut parts = line.splitn(3, |&b| b == b':');
    let rank = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    parts.next()?;
    Some((rank, seq))
}

/// Splits `data` into lines (without newlines); a final piece without newline is a line too.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&b| b == b'\n')
        .filter(move |_| !data.is_empty())
}

/// Checks `data` against `expected` (see the module documentation). With `ordered`, also
/// checks that the records come in rank order.
pub fn verify(data: &[u8], expected: &Expected, ordered: bool) -> Verdict {
    let seed = expected.seed;
    let mut counts: HashMap<u64, (u64, u64)> = HashMap::new(); // hash -> (expected, found)
    let mut order = Vec::new();
    for (r, s) in expected.all() {
        let h = hash(&line(seed, r, s));
        counts.entry(h).or_default().0 += 1;
        if ordered {
            order.push(h);
        }
    }
    let mut v = Verdict {
        expected: expected.records(),
        bytes: data.len() as u64,
        expected_bytes: expected.bytes(),
        ends_with_newline: data.is_empty() || data.ends_with(b"\n"),
        out_of_rank_order: ordered.then_some(0),
        ..Verdict::default()
    };
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    for (i, l) in lines(data).enumerate() {
        v.lines += 1;
        let h = hash(l);
        match counts.get_mut(&h) {
            Some(c) => c.1 += 1,
            None => v.unexpected += 1,
        }
        if let Some((r, s)) = header_of(l) {
            if let Some(prev) = last_seq.insert(r, s) {
                if s <= prev {
                    v.out_of_sequence += 1;
                }
            }
        }
        if let Some(bad) = v.out_of_rank_order.as_mut() {
            if order.get(i) != Some(&h) {
                *bad += 1;
            }
        }
    }
    if let Some(bad) = v.out_of_rank_order.as_mut() {
        *bad += (order.len() as u64).saturating_sub(v.lines);
    }
    for (e, f) in counts.values() {
        v.missing += e.saturating_sub(*f);
        v.duplicated += f.saturating_sub(*e);
    }
    v
}

/// The outcome of [`verify_index`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexVerdict {
    /// Records (lines) found through the index.
    pub entries: u64,
    /// Lines the index points at that are not the record expected there, extents outside the
    /// data, and attempts whose bytes or checksum do not match their done record.
    pub bad: u64,
    /// Expected records the index does not lead to.
    pub missing: u64,
    /// Lines beyond the expected ones.
    pub duplicated: u64,
    /// Index records that did not check out (torn or damaged).
    pub damaged: u64,
}

impl IndexVerdict {
    /// Every expected record is found exactly once through the index, where it belongs.
    pub fn ok(&self) -> bool {
        self.bad == 0 && self.missing == 0 && self.duplicated == 0
    }
}

/// Checks a `collect` index of one task per rank (task `r` is rank `r`'s command) against
/// `data` and `expected`: the output of each task's chosen attempt (its successful one, else
/// its last finished one), read through its extents, must be rank `r`'s records `0..n` in
/// order, and match the attempt's done record.
pub fn verify_index(data: &[u8], index: &[u8], expected: &Expected) -> IndexVerdict {
    let idx = super::index::Index::parse(index);
    let mut v = IndexVerdict {
        damaged: idx.damaged,
        ..IndexVerdict::default()
    };
    for (rank, &n) in expected.per_rank.iter().enumerate() {
        let task = rank as u64;
        let chosen = idx.chosen(task).map(|(_, a)| a).or_else(|| {
            idx.attempts_of(task)
                .filter(|(_, a)| a.done.is_some())
                .map(|(_, a)| a)
                .last()
        });
        let Some(attempt) = chosen else {
            v.missing += n;
            continue;
        };
        let mut bytes = Vec::new();
        for e in attempt.output() {
            let range = usize::try_from(e.offset)
                .ok()
                .and_then(|o| Some((o, o.checked_add(usize::try_from(e.len).ok()?)?)));
            match range.and_then(|(a, b)| data.get(a..b)) {
                Some(b) => bytes.extend_from_slice(b),
                None => v.bad += 1,
            }
        }
        if let Some(done) = &attempt.done {
            if done.bytes != bytes.len() as u64 || done.checksum != super::index::Fnv::of(&bytes) {
                v.bad += 1;
            }
        }
        let mut seq = 0u64;
        for l in lines(&bytes) {
            v.entries += 1;
            if seq >= n {
                v.duplicated += 1;
            } else if l != line(expected.seed, rank as u32, seq) {
                v.bad += 1;
            }
            seq += 1;
        }
        v.missing += n.saturating_sub(seq);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(e: &Expected, order: &[(u32, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(r, s) in order {
            push_line(&mut out, e.seed, r, s);
        }
        out
    }

    fn in_rank_order(e: &Expected) -> Vec<(u32, u64)> {
        e.all().collect()
    }

    #[test]
    fn lines_are_deterministic_and_in_range() {
        let mut lens = Vec::new();
        for s in 0..2000 {
            let l = line(7, 3, s);
            assert_eq!(l, line(7, 3, s));
            assert_eq!(l.len(), line_len(7, 3, s));
            assert!((1..=MAX_LINE).contains(&l.len()));
            assert!(!l.contains(&b'\n'));
            lens.push(l.len());
        }
        assert!(lens.iter().any(|&n| n < 10) && lens.iter().any(|&n| n > 4000));
        assert_ne!(line(7, 3, 5), line(8, 3, 5));
    }

    #[test]
    fn correct_files_pass_in_any_interleaving_and_in_rank_order() {
        let e = Expected::uniform(1, 3, 200);
        let ordered = file(&e, &in_rank_order(&e));
        assert!(
            verify(&ordered, &e, true).ok(),
            "{:?}",
            verify(&ordered, &e, true)
        );
        // Round-robin interleaving keeps each rank's sequence.
        let rr: Vec<_> = (0..200).flat_map(|s| (0..3).map(move |r| (r, s))).collect();
        let data = file(&e, &rr);
        assert!(verify(&data, &e, false).ok());
        let v = verify(&data, &e, true);
        assert!(!v.ok() && v.out_of_rank_order.unwrap_or(0) > 0);
        assert_eq!(v.bytes, e.bytes());
    }

    /// Negative controls: each kind of damage is seen.
    #[test]
    fn damage_is_detected() {
        let e = Expected::uniform(2, 2, 100);
        let good = file(&e, &in_rank_order(&e));
        // Missing record.
        let mut order = in_rank_order(&e);
        order.remove(17);
        let v = verify(&file(&e, &order), &e, false);
        assert_eq!((v.missing, v.ok()), (1, false));
        // Duplicated record.
        let mut order = in_rank_order(&e);
        order.push((1, 3));
        let v = verify(&file(&e, &order), &e, false);
        assert!(v.duplicated == 1 && v.out_of_sequence == 1 && !v.ok());
        // Torn: a later record written over the middle of an earlier one.
        let mut torn = good.clone();
        let at = good.len() / 2;
        let patch = line(2, 0, 0);
        torn[at..at + patch.len()].copy_from_slice(&patch);
        let v = verify(&torn, &e, false);
        assert!(v.unexpected > 0 && !v.ok(), "{v:?}");
        // A hole of zeros.
        let mut holed = good.clone();
        holed[10..20].fill(0);
        assert!(!verify(&holed, &e, false).ok());
        // A final line without newline.
        let v = verify(&good[..good.len() - 1], &e, false);
        assert!(!v.ends_with_newline && !v.ok());
        // Out of sequence within one rank.
        let mut order = in_rank_order(&e);
        order.swap(3, 60);
        let v = verify(&file(&e, &order), &e, false);
        assert!(v.out_of_sequence > 0 && !v.ok());
    }

    #[test]
    fn index_checks_every_entry() {
        use super::super::index::{Done, Extent, Fnv, Record, Status, Stream};
        let e = Expected::uniform(3, 2, 50);
        let order = in_rank_order(&e);
        let data = file(&e, &order);
        // One attempt per rank, two extents each.
        let mut index = String::new();
        let half = |r: u32| (0..25).map(|s| line_len(3, r, s) as u64 + 1).sum::<u64>();
        let whole = |r: u32| (0..50).map(|s| line_len(3, r, s) as u64 + 1).sum::<u64>();
        let mut at = 0u64;
        for r in 0..2u32 {
            let (h, w) = (half(r), whole(r));
            for (offset, len) in [(at, h), (at + h, w - h)] {
                Record::Extent(Extent {
                    task: u64::from(r),
                    attempt: 1,
                    rank: r,
                    stream: Stream::Out,
                    offset,
                    len,
                })
                .push_to(&mut index);
            }
            let bytes = &data[at as usize..(at + w) as usize];
            Record::Done(Done {
                task: u64::from(r),
                attempt: 1,
                rank: r,
                host: "h".into(),
                status: Status::Ok,
                start_ms: 0,
                elapsed_ms: 0,
                lines: 50,
                bytes: w,
                checksum: Fnv::of(bytes),
            })
            .push_to(&mut index);
            at += w;
        }
        let v = verify_index(&data, index.as_bytes(), &e);
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.entries, 100);
        // Negative controls: a shifted extent, a lost extent record.
        let shifted = index.replacen(" o 0 ", " o 1 ", 1);
        assert!(!verify_index(&data, shifted.as_bytes(), &e).ok());
        let first_line_gone: String = index.lines().skip(1).map(|l| format!("{l}\n")).collect();
        assert!(!verify_index(&data, first_line_gone.as_bytes(), &e).ok());
    }
}

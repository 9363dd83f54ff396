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
//! and so on. [`verify_index`] checks an index of `rank seq offset length` lines against the
//! data.

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
    /// Index entries read.
    pub entries: u64,
    /// Entries that do not parse, or whose bytes in the data are not the record they name
    /// followed by a newline.
    pub bad: u64,
    /// Expected records with no entry.
    pub missing: u64,
    /// Records with more than one entry.
    pub duplicated: u64,
}

impl IndexVerdict {
    /// Every expected record has exactly one entry, and every entry points at its record.
    pub fn ok(&self) -> bool {
        self.bad == 0 && self.missing == 0 && self.duplicated == 0
    }
}

/// Checks an index ([`super::index`]: `rank seq offset length` text lines, length without the
/// newline) against `data` and `expected`.
pub fn verify_index(data: &[u8], index: &[u8], expected: &Expected) -> IndexVerdict {
    let mut v = IndexVerdict::default();
    let mut seen: HashMap<(u32, u64), u64> = HashMap::new();
    for l in lines(index) {
        v.entries += 1;
        let Some(super::index::Entry {
            rank,
            seq,
            offset,
            len,
        }) = super::index::Entry::parse(l)
        else {
            v.bad += 1;
            continue;
        };
        let want = line(expected.seed, rank, seq);
        let got = usize::try_from(offset).ok().and_then(|o| {
            let end = o.checked_add(usize::try_from(len).ok()?)?;
            Some((data.get(o..end)?, data.get(end)?))
        });
        if got != Some((&want[..], &b'\n')) {
            v.bad += 1;
        }
        *seen.entry((rank, seq)).or_default() += 1;
    }
    for key in expected.all() {
        match seen.get(&key) {
            None => v.missing += 1,
            Some(&n) if n > 1 => v.duplicated += n - 1,
            Some(_) => {}
        }
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
        let e = Expected::uniform(3, 2, 50);
        let order = in_rank_order(&e);
        let data = file(&e, &order);
        let mut index = String::new();
        let mut off = 0;
        for &(r, s) in &order {
            let n = line_len(3, r, s);
            index.push_str(&format!("{r} {s} {off} {n}\n"));
            off += n + 1;
        }
        assert!(verify_index(&data, index.as_bytes(), &e).ok());
        let shifted = index.replacen(" 0 ", " 1 ", 1);
        assert!(!verify_index(&data, shifted.as_bytes(), &e).ok());
        let short: String = index.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let v = verify_index(&data, short.as_bytes(), &e);
        assert_eq!((v.missing, v.ok()), (1, false));
    }
}

//! The index of `brlock collect`'s output, written and read here only: one text line
//! `RANK SEQ OFFSET LENGTH` per line of output — SEQ counts the rank's lines from 0, OFFSET is
//! the line's first byte in the output file, LENGTH its bytes without the newline.

use std::fmt::Write as _;

/// One index line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The rank whose command printed the line.
    pub rank: u32,
    /// The line's number among that rank's lines, from 0.
    pub seq: u64,
    /// The line's first byte in the output file.
    pub offset: u64,
    /// The line's length without its newline.
    pub len: u64,
}

impl Entry {
    /// Appends the entry as one text line (with its newline) to `text`.
    pub fn push_to(&self, text: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{} {} {} {}",
            self.rank, self.seq, self.offset, self.len
        );
    }

    /// Parses one index line (without its newline); `None` if it is not four numbers with a
    /// rank that fits a `u32`.
    pub fn parse(line: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(line).ok()?;
        let mut fields = text.split(' ').map(|f| f.parse::<u64>().ok());
        let (Some(rank), Some(seq), Some(offset), Some(len), None) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next(),
        ) else {
            return None;
        };
        Some(Entry {
            rank: u32::try_from(rank).ok()?,
            seq,
            offset,
            len,
        })
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

    #[test]
    fn entries_round_trip_and_bad_lines_are_refused() {
        let e = Entry {
            rank: 3,
            seq: 7,
            offset: 1 << 40,
            len: 12,
        };
        let mut text = String::new();
        e.push_to(&mut text);
        assert_eq!(text, "3 7 1099511627776 12\n");
        assert_eq!(Entry::parse(text.trim_end().as_bytes()), Some(e));
        for bad in [
            "",
            "1 2 3",
            "1 2 3 4 5",
            "a 2 3 4",
            "4294967296 0 0 0",
            "1  2 3 4",
        ] {
            assert_eq!(Entry::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn spans_of_whole_lines() {
        let spans: Vec<_> = line_spans(b"ab\n\nxyz\n").collect();
        assert_eq!(spans, vec![(0, 2), (3, 0), (4, 3)]);
    }
}

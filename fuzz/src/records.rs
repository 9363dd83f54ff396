//! `records_and_index`: the append record verifier, the index verifier and the index format,
//! on arbitrary bytes and on real files damaged on purpose.
//!
//! Checked:
//! * [`records::verify`] on any data: no panic, its counts agree with each other (every line
//!   is counted once: `lines - unexpected + missing = expected + duplicated`) and with the
//!   data (lines, bytes, final newline); the records written in rank order, or interleaved
//!   keeping each rank's order, pass; any change of a real file (a byte changed, a line
//!   dropped or repeated, the file cut short) fails, and swapping two different lines fails
//!   the ordered check;
//! * [`records::verify_index`] and [`index::Index::parse`] on any index: no panic, counts
//!   within bounds; the real index of a real file passes, and an index with a damaged record
//!   (which then does not check out) fails;
//! * [`index::Record::parse`] on any line: no panic, and whatever it accepts prints back (with
//!   [`index::Record::push_to`]) as a line that parses to the same record; any record printed
//!   with `push_to` is one line that parses back identically;
//! * [`index::line_spans`] on any batch: no panic; on whole lines, the spans tile the batch;
//! * [`records::line`]: 1 to `MAX_LINE` bytes, no newline, its header's prefix then letters.

use arbitrary::{Result, Unstructured};
use brlock::io::append::index::{self, Done, Extent, Fnv, Hole, Index, Record, Status, Stream};
use brlock::io::append::records::{self, Expected, MAX_LINE};

/// Most ranks and records per rank of an expected set (keeps each input fast).
const MAX_RANKS: u32 = 5;
const MAX_RECORDS: u64 = 12;

pub(crate) fn target(u: &mut Unstructured<'_>) -> Result<()> {
    entries(u)?;
    one_line(u)?;
    let expected = Expected {
        seed: u.arbitrary()?,
        per_rank: (0..u.int_in_range(0..=MAX_RANKS)?)
            .map(|_| u.int_in_range(0..=MAX_RECORDS))
            .collect::<Result<_>>()?,
    };
    match u.int_in_range(0u8..=3)? {
        0 => {
            // Anything at all, as data and as index.
            let data: Vec<u8> = u.arbitrary()?;
            let index: Vec<u8> = u.arbitrary()?;
            check_verdict(&data, &expected, u.arbitrary()?);
            check_index_verdict(&data, &index, &expected);
            spans(&data);
        }
        _ => real_files(u, &expected)?,
    }
    Ok(())
}

/// Lines of `data` as the verifiers count them: a final piece without newline is a line.
fn count_lines(data: &[u8]) -> u64 {
    if data.is_empty() {
        return 0;
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

fn check_verdict(data: &[u8], expected: &Expected, ordered: bool) -> records::Verdict {
    let v = records::verify(data, expected, ordered);
    assert_eq!(v.expected, expected.records());
    assert_eq!(v.bytes, data.len() as u64);
    assert_eq!(v.expected_bytes, expected.bytes());
    assert_eq!(v.lines, count_lines(data), "{v:?}");
    assert_eq!(
        v.ends_with_newline,
        data.is_empty() || data.ends_with(b"\n")
    );
    assert_eq!(
        v.lines - v.unexpected + v.missing,
        v.expected + v.duplicated,
        "counts disagree: {v:?}"
    );
    assert!(v.out_of_sequence <= v.lines);
    assert_eq!(v.out_of_rank_order.is_some(), ordered);
    if let Some(bad) = v.out_of_rank_order {
        assert!(bad <= v.lines.max(v.expected), "{v:?}");
    }
    if v.ok() {
        assert!(
            v.bytes == v.expected_bytes,
            "ok with {} bytes instead of {}",
            v.bytes,
            v.expected_bytes
        );
    }
    v
}

fn check_index_verdict(data: &[u8], idx: &[u8], expected: &Expected) -> records::IndexVerdict {
    let v = records::verify_index(data, idx, expected);
    assert!(v.missing <= expected.records(), "{v:?}");
    assert!(v.duplicated <= v.entries, "{v:?}");
    let parsed = Index::parse(idx);
    assert_eq!(v.damaged, parsed.damaged);
    assert!(
        parsed.records + parsed.damaged <= count_lines(idx),
        "{parsed:?}"
    );
    v
}

/// The records of `expected` in a fuzz-chosen interleaving that keeps each rank's order, and
/// that order as (rank, seq).
fn interleaving(u: &mut Unstructured<'_>, expected: &Expected) -> Result<Vec<(u32, u64)>> {
    let mut next: Vec<u64> = vec![0; expected.per_rank.len()];
    let mut order = Vec::new();
    loop {
        let open: Vec<usize> = (0..next.len())
            .filter(|&r| next[r] < expected.per_rank[r])
            .collect();
        let Ok(&r) = u.choose(&open) else {
            break;
        };
        order.push((r as u32, next[r]));
        next[r] += 1;
    }
    // Whatever the input did not decide goes in rank order.
    for (r, n) in next.iter_mut().enumerate() {
        while *n < expected.per_rank[r] {
            order.push((r as u32, *n));
            *n += 1;
        }
    }
    Ok(order)
}

/// The file of `order`, and its index: one attempt per rank (task `r` is rank `r`), one
/// extent per record, then the attempt's done record.
fn write(expected: &Expected, order: &[(u32, u64)]) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    let mut text = String::new();
    let ranks = expected.per_rank.len();
    let mut sums = vec![(Fnv::default(), 0u64, 0u64); ranks];
    for &(rank, seq) in order {
        let offset = data.len() as u64;
        records::push_line(&mut data, expected.seed, rank, seq);
        let bytes = &data[offset as usize..];
        let s = &mut sums[rank as usize];
        s.0.update(bytes);
        s.1 += bytes.len() as u64;
        s.2 += 1;
        Record::Extent(Extent {
            task: u64::from(rank),
            attempt: 1,
            rank,
            stream: Stream::Out,
            offset,
            len: bytes.len() as u64,
        })
        .push_to(&mut text);
    }
    for (rank, (fnv, bytes, lines)) in sums.into_iter().enumerate() {
        Record::Done(Done {
            task: rank as u64,
            attempt: 1,
            rank: rank as u32,
            host: "fuzz".into(),
            status: Status::Ok,
            start_ms: 0,
            elapsed_ms: 0,
            lines,
            bytes,
            checksum: fnv.value(),
        })
        .push_to(&mut text);
    }
    (data, text.into_bytes())
}

fn real_files(u: &mut Unstructured<'_>, expected: &Expected) -> Result<()> {
    let in_rank_order: Vec<(u32, u64)> = expected
        .per_rank
        .iter()
        .enumerate()
        .flat_map(|(r, &n)| (0..n).map(move |s| (r as u32, s)))
        .collect();
    let ordered = u.arbitrary::<bool>()?;
    let order = if ordered {
        in_rank_order
    } else {
        interleaving(u, expected)?
    };
    let (data, idx) = write(expected, &order);
    assert!(
        check_verdict(&data, expected, false).ok(),
        "a correct file fails"
    );
    if ordered {
        assert!(
            check_verdict(&data, expected, true).ok(),
            "a correct ordered file fails"
        );
    }
    assert!(
        check_index_verdict(&data, &idx, expected).ok(),
        "a correct index fails"
    );
    spans(&data);

    // Damage the data.
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let mut damaged = data.clone();
    let mut must_fail_unordered = true;
    match u.int_in_range(0u8..=4)? {
        0 if !data.is_empty() => {
            let at = u.choose_index(data.len())?;
            let to = u.arbitrary::<u8>()?;
            if to == data[at] {
                return Ok(());
            }
            damaged[at] = to;
        }
        1 if !lines.is_empty() => {
            let i = u.choose_index(lines.len())?;
            damaged = lines
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
        }
        2 if !lines.is_empty() => {
            let i = u.choose_index(lines.len())?;
            let j = u.choose_index(lines.len() + 1)?;
            let mut l2 = lines.clone();
            l2.insert(j, lines[i]);
            damaged = l2.concat();
        }
        3 if !data.is_empty() => {
            let at = u.choose_index(data.len())?;
            damaged.truncate(at);
        }
        4 if lines.len() >= 2 => {
            let i = u.choose_index(lines.len())?;
            let j = u.choose_index(lines.len())?;
            if lines[i] == lines[j] {
                return Ok(());
            }
            let mut l2 = lines.clone();
            l2.swap(i, j);
            damaged = l2.concat();
            // Two ranks' records may change places in an unordered file.
            must_fail_unordered = false;
            if ordered {
                assert!(
                    !check_verdict(&damaged, expected, true).ok(),
                    "swapped lines pass the ordered check"
                );
            }
        }
        _ => return Ok(()),
    }
    let v = check_verdict(&damaged, expected, false);
    if must_fail_unordered {
        assert!(!v.ok(), "damaged data pass: {v:?}");
    }
    check_verdict(&damaged, expected, true);
    check_index_verdict(&damaged, &idx, expected);

    // Damage the index: a changed byte in a record, or an arbitrary line instead of it.
    let idx_lines: Vec<&[u8]> = idx.split_inclusive(|&b| b == b'\n').collect();
    if idx_lines.is_empty() {
        return Ok(());
    }
    let i = u.choose_index(idx_lines.len())?;
    let mut line = idx_lines[i].to_vec();
    if u.arbitrary::<bool>()? {
        let at = u.choose_index(line.len() - 1)?;
        let to = u.arbitrary::<u8>()?;
        if line[at] == to || to == b'\n' {
            return Ok(());
        }
        line[at] = to;
    } else {
        line = u.arbitrary::<Vec<u8>>()?;
        line.retain(|&b| b != b'\n');
        line.push(b'\n');
    }
    let mut l2 = idx_lines.clone();
    l2[i] = &line;
    let bad_idx = l2.concat();
    if bad_idx == idx {
        return Ok(());
    }
    let v = check_index_verdict(&data, &bad_idx, expected);
    // A damaged record no longer checks out, and is skipped: an extent of a record, or the
    // done record of a rank with records, is then missing, which the verifier must see. (A
    // line that still parses, to the same or another record, may pass.)
    let original = Record::parse(idx_lines[i].strip_suffix(b"\n").unwrap_or(idx_lines[i]));
    let dropped = Record::parse(line.strip_suffix(b"\n").unwrap_or(&line)).is_none();
    let mattered = match &original {
        Some(Record::Extent(e)) => e.len > 0,
        Some(Record::Done(d)) => expected
            .per_rank
            .get(d.task as usize)
            .is_some_and(|&n| n > 0),
        _ => false,
    };
    if dropped && mattered {
        assert!(
            !v.ok(),
            "an index with a damaged record passes: {original:?}, {v:?}"
        );
    }
    Ok(())
}

fn entries(u: &mut Unstructured<'_>) -> Result<()> {
    // Any record prints as one line that parses back (host names lose reserved characters).
    let host: String = u.arbitrary()?;
    let status = match u.int_in_range(0u8..=4)? {
        0 => Status::Ok,
        1 => Status::Exit(u.arbitrary()?),
        2 => Status::Signal(u.arbitrary()?),
        3 => Status::NotStarted(u.arbitrary()?),
        _ => Status::Interrupted,
    };
    let stream = if u.arbitrary()? {
        Stream::Out
    } else {
        Stream::Err
    };
    let record = match u.int_in_range(0u8..=2)? {
        0 => Record::Extent(Extent {
            task: u.arbitrary()?,
            attempt: u.arbitrary()?,
            rank: u.arbitrary()?,
            stream,
            offset: crate::gen::edgy_u64(u)?,
            len: crate::gen::edgy_u64(u)?,
        }),
        1 => Record::Done(Done {
            task: u.arbitrary()?,
            attempt: u.arbitrary()?,
            rank: u.arbitrary()?,
            host,
            status,
            start_ms: u.arbitrary()?,
            elapsed_ms: u.arbitrary()?,
            lines: u.arbitrary()?,
            bytes: u.arbitrary()?,
            checksum: u.arbitrary()?,
        }),
        _ => Record::Hole(Hole {
            offset: u.arbitrary()?,
            len: u.arbitrary()?,
            stream,
        }),
    };
    let text = record.line();
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    let back = Record::parse(text.trim_end_matches('\n').as_bytes());
    assert!(back.is_some(), "{text:?}");
    // Printed again, the parsed record is the same line (sanitizing is idempotent).
    assert_eq!(
        back.as_ref().map(Record::line),
        Some(text.clone()),
        "{text:?}"
    );

    // Any line: what parses prints back as a line that parses to the same.
    let line: Vec<u8> = u.arbitrary()?;
    if let Some(r) = Record::parse(&line) {
        let text = r.line();
        assert_eq!(
            Record::parse(text.trim_end_matches('\n').as_bytes()),
            Some(r)
        );
    }
    // Any bytes as a whole index: no panic.
    let _ = Index::parse(&line);
    Ok(())
}

fn one_line(u: &mut Unstructured<'_>) -> Result<()> {
    let (seed, rank, seq) = (u.arbitrary()?, u.arbitrary()?, crate::gen::edgy_u64(u)?);
    let line = records::line(seed, rank, seq);
    assert_eq!(line.len(), records::line_len(seed, rank, seq));
    assert!((1..=MAX_LINE).contains(&line.len()));
    assert!(!line.contains(&b'\n'));
    let header = format!("{rank}:{seq}:");
    let h = header.len().min(line.len());
    assert_eq!(&line[..h], &header.as_bytes()[..h]);
    assert!(line[h..].iter().all(u8::is_ascii_lowercase));
    let mut pushed = b"x".to_vec();
    records::push_line(&mut pushed, seed, rank, seq);
    assert_eq!(&pushed[1..pushed.len() - 1], &line[..]);
    assert_eq!(pushed.last(), Some(&b'\n'));
    Ok(())
}

fn spans(batch: &[u8]) {
    let spans: Vec<(u64, u64)> = index::line_spans(batch).collect();
    if !(batch.is_empty() || batch.ends_with(b"\n")) {
        // Not whole lines: outside the contract, only no panic.
        return;
    }
    let mut at = 0u64;
    for &(start, len) in &spans {
        assert_eq!(start, at);
        let (s, e) = (start as usize, (start + len) as usize);
        assert!(!batch[s..e].contains(&b'\n'));
        assert_eq!(batch[e], b'\n');
        at = start + len + 1;
    }
    assert_eq!(at, batch.len() as u64);
}

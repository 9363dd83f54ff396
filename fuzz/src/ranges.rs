//! `ranges_and_pieces`: [`ByteRange`] and [`Pieces`] from arbitrary numbers.
//!
//! Checked:
//! * `ByteRange::new` and `ByteRange::at` accept exactly the non-empty ranges ending at or
//!   below [`MAX_OFFSET`], with the documented error for each kind of bad input;
//! * `overlaps` is symmetric and true exactly when the ranges share a byte, `cover` is the
//!   smallest range holding both, `conflicts` follows overlap and modes;
//! * `Pieces::new` accepts exactly the pair lists that, with zero-length pairs dropped, are
//!   sorted, non-overlapping and within [`MAX_OFFSET`] (an independent oracle decides), and
//!   then holds those pieces; every accepted list is sorted, non-overlapping, without empty
//!   pieces, its total is the sum of the lengths, its extent runs from the first piece's
//!   start to the last one's end and covers every piece, its shape starts at 0 with the same
//!   gaps, and `check_buffer` accepts exactly a buffer of the total's length;
//! * `Pieces::strided` accepts exactly what its documentation says and equals the explicit
//!   list of its blocks; `Pieces::contiguous` is one piece.

use arbitrary::{Result, Unstructured};
use brlock::range::{conflicts, MAX_OFFSET};
use brlock::{ByteRange, Error, LockMode, Pieces, RangeError};

use crate::gen::edgy_u64;

/// Most pieces built at once (keeps each input fast).
const MAX_PIECES: usize = 256;

/// Most blocks of a strided access that is expected to be built (memory is taken per block).
const MAX_STRIDED_BLOCKS: u64 = 4096;

pub(crate) fn target(u: &mut Unstructured<'_>) -> Result<()> {
    let a = range(u)?;
    let b = range(u)?;
    if let (Some(a), Some(b)) = (a, b) {
        range_pair(u, a, b)?;
    }
    pieces_new(u)?;
    strided(u)?;
    contiguous(u)?;
    Ok(())
}

/// `ByteRange::new` or `ByteRange::at` of edge-biased numbers, checked against the rules;
/// the range if one was made.
fn range(u: &mut Unstructured<'_>) -> Result<Option<ByteRange>> {
    let x = edgy_u64(u)?;
    let y = edgy_u64(u)?;
    if u.arbitrary::<bool>()? {
        let got = ByteRange::new(x, y);
        let expected = if x == y {
            Err(RangeError::Empty(x))
        } else if x > y {
            Err(RangeError::Reversed { start: x, end: y })
        } else if y > MAX_OFFSET {
            Err(RangeError::Overflow {
                offset: x,
                len: y - x,
            })
        } else {
            Ok((x, y))
        };
        assert_eq!(
            got.clone().map(|r| (r.start(), r.end())),
            expected,
            "new({x}, {y})"
        );
        Ok(got.ok())
    } else {
        let got = ByteRange::at(x, y);
        let expected = if y == 0 {
            Err(RangeError::Empty(x))
        } else {
            match x.checked_add(y) {
                Some(end) if end <= MAX_OFFSET => Ok((x, end)),
                _ => Err(RangeError::Overflow { offset: x, len: y }),
            }
        };
        assert_eq!(
            got.clone().map(|r| (r.start(), r.end())),
            expected,
            "at({x}, {y})"
        );
        if let Ok(r) = &got {
            assert_eq!(r.len(), y);
            assert!(!r.is_empty());
        }
        Ok(got.ok())
    }
}

fn mode(u: &mut Unstructured<'_>) -> Result<LockMode> {
    Ok(if u.arbitrary::<bool>()? {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    })
}

fn range_pair(u: &mut Unstructured<'_>, a: ByteRange, b: ByteRange) -> Result<()> {
    let share = a.start().max(b.start()) < a.end().min(b.end());
    assert_eq!(a.overlaps(&b), share, "{a} overlaps {b}");
    assert_eq!(b.overlaps(&a), share, "{b} overlaps {a}");
    assert!(a.overlaps(&a));
    let c = a.cover(&b);
    assert_eq!(c, b.cover(&a));
    assert_eq!(c.start(), a.start().min(b.start()));
    assert_eq!(c.end(), a.end().max(b.end()));
    assert!(c.len() >= a.len().max(b.len()));
    assert!(c.overlaps(&a) && c.overlaps(&b));
    assert_eq!(a.cover(&a), a);
    assert_eq!(c.cover(&a), c);
    // A valid range's cover is valid: rebuilding it succeeds.
    assert_eq!(ByteRange::new(c.start(), c.end()), Ok(c));
    let (ma, mb) = (mode(u)?, mode(u)?);
    let conflict = share && (ma == LockMode::Exclusive || mb == LockMode::Exclusive);
    assert_eq!(conflicts((a, ma), (b, mb)), conflict);
    assert_eq!(conflicts((b, mb), (a, ma)), conflict);
    assert_eq!(format!("{a}"), format!("[{}, {})", a.start(), a.end()));
    Ok(())
}

/// (offset, length) pairs: sometimes anything, usually laid out from a start with gaps that
/// are mostly forward, so that both acceptance and each kind of refusal are reached.
fn pairs(u: &mut Unstructured<'_>) -> Result<Vec<(u64, u64)>> {
    let n = u.int_in_range(0..=MAX_PIECES)?;
    let mut out = Vec::with_capacity(n);
    if u.ratio(1u8, 8u8)? {
        for _ in 0..n {
            out.push((edgy_u64(u)?, edgy_u64(u)?));
        }
        return Ok(out);
    }
    let mut at = edgy_u64(u)?;
    for _ in 0..n {
        let len = match u.int_in_range(0u8..=9)? {
            0 => 0,
            1 => edgy_u64(u)?,
            _ => 1 + u64::from(u.arbitrary::<u16>()?),
        };
        out.push((at, len));
        let gap = match u.int_in_range(0u8..=9)? {
            0 => 0,
            // Backwards: overlapping or unsorted.
            1 => at.saturating_sub(u64::from(u.arbitrary::<u16>()?)),
            2 => edgy_u64(u)?,
            _ => at
                .saturating_add(len)
                .saturating_add(u64::from(u.arbitrary::<u16>()?)),
        };
        at = gap;
    }
    Ok(out)
}

/// What `Pieces::new(pairs)` must give, decided from its documentation: the non-empty pairs
/// if they fit, are sorted and do not overlap.
fn oracle(pairs: &[(u64, u64)]) -> Option<Vec<(u64, u64)>> {
    let kept: Vec<(u64, u64)> = pairs.iter().copied().filter(|&(_, l)| l > 0).collect();
    for &(o, l) in &kept {
        if o.checked_add(l).is_none_or(|e| e > MAX_OFFSET) {
            return None;
        }
    }
    for w in kept.windows(2) {
        if w[1].0 < w[0].0 + w[0].1 {
            return None;
        }
    }
    Some(kept)
}

/// The invariants of any `Pieces`.
pub(crate) fn check_pieces(p: &Pieces) {
    let s = p.as_slice();
    assert_eq!(s.len(), p.len());
    assert_eq!(p.is_empty(), s.is_empty());
    let mut total = 0u64;
    for (i, piece) in s.iter().enumerate() {
        assert!(piece.len > 0, "empty piece {i}");
        let end = piece
            .offset
            .checked_add(piece.len)
            .expect("piece end overflows");
        assert!(end <= MAX_OFFSET, "piece {i} ends past the largest offset");
        assert_eq!(piece.end(), end);
        if i > 0 {
            assert!(
                s[i - 1].end() <= piece.offset,
                "pieces {} and {i} out of order or overlapping",
                i - 1
            );
        }
        total = total.checked_add(piece.len).expect("total overflows");
    }
    assert_eq!(p.total_bytes(), total);
    assert!(p.iter().eq(s.iter()));
    assert!((&p.clone()).into_iter().eq(s.iter()));
    match (p.extent(), s.first(), s.last()) {
        (None, None, None) => assert_eq!(total, 0),
        (Some(e), Some(first), Some(last)) => {
            assert_eq!((e.start(), e.end()), (first.offset, last.end()));
            assert!(e.len() >= total);
            for piece in s {
                assert!(e.start() <= piece.offset && piece.end() <= e.end());
            }
        }
        (e, f, l) => panic!("extent {e:?} for first {f:?} and last {l:?}"),
    }
    let shape = p.shape();
    assert_eq!(shape.len(), p.len());
    assert_eq!(shape.total_bytes(), total);
    if let Some(first) = s.first() {
        for (a, b) in s.iter().zip(shape.as_slice()) {
            assert_eq!((b.offset, b.len), (a.offset - first.offset, a.len));
        }
        assert_eq!(shape.as_slice()[0].offset, 0);
    }
    if let Ok(n) = usize::try_from(total) {
        assert!(p.check_buffer(n).is_ok());
        if let Some(more) = n.checked_add(1) {
            assert!(matches!(
                p.check_buffer(more),
                Err(Error::InvalidArgument(_))
            ));
        }
        if let Some(less) = n.checked_sub(1) {
            assert!(matches!(
                p.check_buffer(less),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}

fn pieces_new(u: &mut Unstructured<'_>) -> Result<()> {
    let pairs = pairs(u)?;
    let got = Pieces::new(pairs.iter().copied());
    match (oracle(&pairs), &got) {
        (Some(kept), Ok(p)) => {
            let have: Vec<(u64, u64)> = p.iter().map(|x| (x.offset, x.len)).collect();
            assert_eq!(have, kept, "pieces of {pairs:?}");
            check_pieces(p);
        }
        (None, Err(Error::InvalidArgument(_))) => {}
        (expected, got) => panic!("Pieces::new({pairs:?}): {got:?}, expected {expected:?}"),
    }
    Ok(())
}

fn strided(u: &mut Unstructured<'_>) -> Result<()> {
    let start = edgy_u64(u)?;
    let block = edgy_u64(u)?;
    let stride = edgy_u64(u)?;
    let count = if u.arbitrary::<bool>()? {
        u64::from(u.arbitrary::<u8>()?)
    } else {
        edgy_u64(u)?
    };
    // The documented outcome: refused if blocks overlap or the last one ends too far.
    let expected_ok = if count > 1 && stride < block {
        false
    } else if count == 0 || block == 0 {
        true
    } else {
        stride
            .checked_mul(count - 1)
            .and_then(|d| d.checked_add(start))
            .and_then(|o| o.checked_add(block))
            .is_some_and(|e| e <= MAX_OFFSET)
    };
    let blocks = if count == 0 || block == 0 { 0 } else { count };
    if expected_ok && blocks > MAX_STRIDED_BLOCKS {
        // Valid but too many blocks to build here.
        return Ok(());
    }
    let got = Pieces::strided(start, block, stride, count);
    match (expected_ok, &got) {
        (true, Ok(p)) => {
            check_pieces(p);
            assert_eq!(p.len() as u64, blocks);
            let explicit = Pieces::new((0..blocks).map(|i| (start + i * stride, block)))
                .expect("the blocks of a valid strided access are valid pieces");
            assert_eq!(p, &explicit);
        }
        (false, Err(Error::InvalidArgument(_))) => {}
        (expected, got) => panic!(
            "Pieces::strided({start}, {block}, {stride}, {count}): {got:?}, expected ok = {expected}"
        ),
    }
    Ok(())
}

fn contiguous(u: &mut Unstructured<'_>) -> Result<()> {
    let offset = edgy_u64(u)?;
    let len = edgy_u64(u)?;
    let got = Pieces::contiguous(offset, len);
    assert_eq!(
        got.as_ref().ok(),
        Pieces::new([(offset, len)]).as_ref().ok(),
        "contiguous({offset}, {len})"
    );
    if let Ok(p) = &got {
        check_pieces(p);
        assert_eq!(p.len(), usize::from(len > 0));
    }
    Ok(())
}

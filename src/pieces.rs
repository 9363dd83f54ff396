//! Descriptions of noncontiguous accesses: sorted lists of (offset, length) pieces.
//!
//! A [`Pieces`] value says which bytes of a file an access touches; the caller's buffer holds
//! those bytes back to back, in piece order (the way an MPI file view with a contiguous memory
//! buffer lays them out). Pieces are sorted by offset and do not overlap, as in an MPI file
//! view, where displacements must be monotonically nondecreasing; zero-length pieces are
//! dropped. Construction validates everything, so code that takes a `Pieces` never sees an
//! overflowing or overlapping access.

use crate::error::{Error, Result};
use crate::range::{ByteRange, MAX_OFFSET};

/// One contiguous part of a noncontiguous access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// File offset of the first byte.
    pub offset: u64,
    /// Number of bytes (never zero inside a [`Pieces`]).
    pub len: u64,
}

impl Piece {
    /// The offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A validated noncontiguous access: sorted, non-overlapping, non-empty pieces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pieces {
    pieces: Vec<Piece>,
    total: u64,
}

impl Pieces {
    /// Pieces from `(offset, length)` pairs. Zero-length pairs are dropped; adjacent pieces
    /// are kept apart (they describe the caller's intent; merging is the I/O layer's choice).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a piece ends beyond the largest file offset, if the
    /// pieces are not sorted by offset, or if two pieces overlap.
    pub fn new(pairs: impl IntoIterator<Item = (u64, u64)>) -> Result<Pieces> {
        let mut pieces = Vec::new();
        let mut total: u64 = 0;
        let mut prev_end: Option<u64> = None;
        for (offset, len) in pairs {
            if len == 0 {
                continue;
            }
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= MAX_OFFSET)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "piece at offset {offset} with length {len} ends beyond the largest file offset"
                    ))
                })?;
            if let Some(prev) = prev_end {
                if offset < prev {
                    return Err(Error::InvalidArgument(format!(
                        "pieces must be sorted by offset and must not overlap: piece at {offset} \
                         starts before the previous one ends at {prev}"
                    )));
                }
            }
            prev_end = Some(end);
            // Cannot overflow: the pieces are disjoint and all end at or below MAX_OFFSET.
            total += len;
            pieces.push(Piece { offset, len });
        }
        Ok(Pieces { pieces, total })
    }

    /// One contiguous piece (none if `len` is zero).
    ///
    /// # Errors
    /// As [`Pieces::new`].
    pub fn contiguous(offset: u64, len: u64) -> Result<Pieces> {
        Pieces::new([(offset, len)])
    }

    /// The strided (vector) form: `count` blocks of `block` bytes, the first at `start`, each
    /// `stride` bytes after the previous one, like `MPI_Type_vector` of bytes as a file view.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `stride < block` (blocks would overlap) or the last
    /// block ends beyond the largest file offset.
    pub fn strided(start: u64, block: u64, stride: u64, count: u64) -> Result<Pieces> {
        if count > 1 && stride < block {
            return Err(Error::InvalidArgument(format!(
                "stride {stride} is smaller than the block length {block}: blocks would overlap"
            )));
        }
        if count == 0 || block == 0 {
            return Ok(Pieces::default());
        }
        let last = stride
            .checked_mul(count - 1)
            .and_then(|d| d.checked_add(start))
            .and_then(|o| o.checked_add(block))
            .filter(|&e| e <= MAX_OFFSET);
        if last.is_none() {
            return Err(Error::InvalidArgument(format!(
                "{count} blocks of {block} bytes at stride {stride} from offset {start} end \
                 beyond the largest file offset"
            )));
        }
        Pieces::new((0..count).map(|i| (start + i * stride, block)))
    }

    /// The pieces, in offset order.
    pub fn as_slice(&self) -> &[Piece] {
        &self.pieces
    }

    /// Iterates over the pieces in offset order.
    pub fn iter(&self) -> std::slice::Iter<'_, Piece> {
        self.pieces.iter()
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the access touches no byte.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Total bytes over all pieces: the length of the caller's buffer.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// From the first byte of the first piece to the last byte of the last: the range a lock
    /// must cover. `None` for an empty access.
    pub fn extent(&self) -> Option<ByteRange> {
        let first = self.pieces.first()?;
        let last = self.pieces.last()?;
        // Valid by construction: non-empty, ordered, within MAX_OFFSET.
        ByteRange::new(first.offset, last.end()).ok()
    }

    /// The same pieces shifted so that the first one starts at offset 0 (the access's
    /// "shape", independent of where it lands).
    pub fn shape(&self) -> Pieces {
        let base = self.pieces.first().map_or(0, |p| p.offset);
        Pieces {
            pieces: self
                .pieces
                .iter()
                .map(|p| Piece {
                    offset: p.offset - base,
                    len: p.len,
                })
                .collect(),
            total: self.total,
        }
    }

    /// The part of the access that lies before offset `end` (a file's size), the way a read
    /// of an MPI data stream stops at the end of the file: the pieces in order up to the
    /// first byte at or past `end`, the piece that crosses it cut there. Its bytes are a
    /// prefix of this access's buffer.
    pub fn before(&self, end: u64) -> Pieces {
        let mut pieces = Vec::new();
        let mut total = 0;
        for p in &self.pieces {
            if p.offset >= end {
                break;
            }
            let len = p.len.min(end - p.offset);
            pieces.push(Piece {
                offset: p.offset,
                len,
            });
            total += len;
            if len < p.len {
                break;
            }
        }
        Pieces { pieces, total }
    }

    /// Checks that a buffer of `len` bytes matches this access.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if it does not.
    pub fn check_buffer(&self, len: usize) -> Result<()> {
        if len as u64 != self.total {
            return Err(Error::InvalidArgument(format!(
                "buffer of {len} bytes for an access of {} bytes in {} pieces",
                self.total,
                self.pieces.len()
            )));
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Pieces {
    type Item = &'a Piece;
    type IntoIter = std::slice::Iter<'a, Piece>;

    fn into_iter(self) -> Self::IntoIter {
        self.pieces.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_empty_pieces_and_sums() {
        let p = Pieces::new([(0, 4), (4, 0), (8, 4)]).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.total_bytes(), 8);
        assert_eq!(p.extent(), Some(ByteRange::new(0, 12).unwrap()));
    }

    #[test]
    fn rejects_unsorted_and_overlapping() {
        assert!(Pieces::new([(8, 4), (0, 4)]).is_err());
        assert!(Pieces::new([(0, 8), (4, 4)]).is_err());
        assert!(Pieces::new([(0, 4), (4, 4)]).is_ok());
    }

    #[test]
    fn rejects_overflow() {
        assert!(Pieces::new([(MAX_OFFSET - 1, 2)]).is_err());
        assert!(Pieces::new([(u64::MAX, 1)]).is_err());
        assert!(Pieces::strided(0, 4, u64::MAX / 2, 3).is_err());
    }

    #[test]
    fn strided_matches_vector_layout() {
        let p = Pieces::strided(100, 4, 8, 3).unwrap();
        let offs: Vec<_> = p.iter().map(|x| (x.offset, x.len)).collect();
        assert_eq!(offs, vec![(100, 4), (108, 4), (116, 4)]);
        assert_eq!(p.extent(), Some(ByteRange::new(100, 120).unwrap()));
        assert_eq!(p.shape().as_slice()[0].offset, 0);
        assert!(Pieces::strided(0, 8, 4, 2).is_err());
        assert!(Pieces::strided(0, 8, 4, 1).is_ok());
        assert!(Pieces::strided(0, 8, 8, 0).unwrap().is_empty());
    }

    #[test]
    fn before_is_the_prefix_ahead_of_the_end() {
        let p = Pieces::new([(0, 4), (10, 4), (20, 4)]).unwrap();
        assert_eq!(p.before(100), p);
        assert_eq!(p.before(12), Pieces::new([(0, 4), (10, 2)]).unwrap());
        // A hole past the end stops the stream even where a later piece would fit.
        assert_eq!(p.before(14).total_bytes(), 8);
        assert_eq!(p.before(7), Pieces::new([(0, 4)]).unwrap());
        assert!(p.before(0).is_empty());
    }

    #[test]
    fn buffer_length_is_checked() {
        let p = Pieces::strided(0, 4, 8, 3).unwrap();
        assert!(p.check_buffer(12).is_ok());
        assert!(p.check_buffer(11).is_err());
        assert_eq!(Pieces::default().extent(), None);
    }
}

//! Byte ranges and lock modes.
//!
//! A [`ByteRange`] is a non-empty half-open interval `[start, end)` of file offsets. Offsets
//! are limited to `0..=i64::MAX` because that is what a file offset (`off_t`, `MPI_Offset`)
//! can address; constructing a range that is empty, reversed or that overflows that limit
//! fails with a typed [`RangeError`] instead of producing a range that silently means
//! something else.

use std::fmt;

/// The largest offset a range may end at (exclusive end): the largest `off_t`.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Why a byte range could not be constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `start == end`, or a zero length: an empty range locks nothing and is rejected.
    #[error("empty byte range at offset {0}")]
    Empty(u64),
    /// `start > end`.
    #[error("byte range start {start} is after its end {end}")]
    Reversed {
        /// Requested start.
        start: u64,
        /// Requested (exclusive) end.
        end: u64,
    },
    /// `offset + len` does not fit in a file offset.
    #[error("byte range at offset {offset} with length {len} overflows the largest file offset")]
    Overflow {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
    },
}

/// A non-empty half-open byte range `[start, end)` with `end <= i64::MAX`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    /// The range `[start, end)`.
    ///
    /// # Errors
    /// [`RangeError::Empty`] if `start == end`, [`RangeError::Reversed`] if `start > end`,
    /// [`RangeError::Overflow`] if `end > i64::MAX`.
    pub fn new(start: u64, end: u64) -> Result<Self, RangeError> {
        if start == end {
            return Err(RangeError::Empty(start));
        }
        if start > end {
            return Err(RangeError::Reversed { start, end });
        }
        if end > MAX_OFFSET {
            return Err(RangeError::Overflow {
                offset: start,
                len: end - start,
            });
        }
        Ok(Self { start, end })
    }

    /// The `len` bytes starting at `offset`.
    ///
    /// # Errors
    /// [`RangeError::Empty`] if `len == 0`, [`RangeError::Overflow`] if the end does not fit
    /// in a file offset.
    pub fn at(offset: u64, len: u64) -> Result<Self, RangeError> {
        if len == 0 {
            return Err(RangeError::Empty(offset));
        }
        match offset.checked_add(len) {
            Some(end) if end <= MAX_OFFSET => Ok(Self { start: offset, end }),
            _ => Err(RangeError::Overflow { offset, len }),
        }
    }

    /// First byte of the range.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last byte of the range.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of bytes in the range (never 0).
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Always `false`: empty ranges cannot be constructed. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: &ByteRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The smallest range covering both.
    pub fn cover(&self, other: &ByteRange) -> ByteRange {
        ByteRange {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl fmt::Debug for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How a range is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// Read lock: compatible with other shared holders of overlapping ranges.
    Shared,
    /// Write lock: conflicts with every other holder of an overlapping range.
    Exclusive,
}

impl LockMode {
    /// Whether two requests in these modes on overlapping ranges conflict.
    pub fn conflicts_with(self, other: LockMode) -> bool {
        self == LockMode::Exclusive || other == LockMode::Exclusive
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        })
    }
}

/// Whether request `a` (range, mode) conflicts with request `b`.
pub fn conflicts(a: (ByteRange, LockMode), b: (ByteRange, LockMode)) -> bool {
    a.0.overlaps(&b.0) && a.1.conflicts_with(b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ranges() {
        assert_eq!(ByteRange::new(5, 5), Err(RangeError::Empty(5)));
        assert_eq!(
            ByteRange::new(9, 3),
            Err(RangeError::Reversed { start: 9, end: 3 })
        );
        assert!(matches!(
            ByteRange::at(u64::MAX - 1, 10),
            Err(RangeError::Overflow { .. })
        ));
        assert!(matches!(
            ByteRange::at(MAX_OFFSET, 1),
            Err(RangeError::Overflow { .. })
        ));
        assert!(matches!(
            ByteRange::new(0, MAX_OFFSET + 1),
            Err(RangeError::Overflow { .. })
        ));
        assert_eq!(ByteRange::at(7, 0), Err(RangeError::Empty(7)));
        let r = ByteRange::at(MAX_OFFSET - 1, 1).unwrap();
        assert_eq!(r.end(), MAX_OFFSET);
    }

    #[test]
    fn overlap_and_conflict() {
        let a = ByteRange::new(0, 10).unwrap();
        let b = ByteRange::new(9, 20).unwrap();
        let c = ByteRange::new(10, 20).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(conflicts((a, LockMode::Exclusive), (b, LockMode::Shared)));
        assert!(!conflicts((a, LockMode::Shared), (b, LockMode::Shared)));
        assert!(!conflicts(
            (a, LockMode::Exclusive),
            (c, LockMode::Exclusive)
        ));
        assert_eq!(a.cover(&c), ByteRange::new(0, 20).unwrap());
    }
}

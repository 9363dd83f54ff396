//! MPI file views as byte maps: which bytes of the file an access of a view's data stream
//! touches.
//!
//! An MPI file view (MPI 3.1 §13.3) is a displacement, an elementary type (the etype, the
//! unit of offsets) and a filetype, tiled over the file from the displacement on: instance `i`
//! of the filetype starts at `disp + i * extent(filetype)`, and its type map says which of
//! those bytes belong to the view. The bytes that belong, in file order, form the view's data
//! stream; an access at offset `o` (counted in etypes) of `n` bytes reads or writes stream
//! bytes `o * size(etype) .. o * size(etype) + n`.
//!
//! [`FileView::pieces`] turns such an access into the [`Pieces`] of the file it touches, which
//! is what the I/O layers lock and move. Nothing here calls MPI: the filetype arrives already
//! flattened into a [`TypeMap`] (the MPI layer builds one from a datatype handle,
//! `brlock::sys::type_map`), so the mapping is plain arithmetic and tested as such.

use crate::error::{Error, Result};
use crate::pieces::{Piece, Pieces};
use crate::range::MAX_OFFSET;

/// One instance of a datatype, flattened: the bytes it covers and the stride between
/// instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMap {
    /// The covered bytes as runs in address order, displacements from the datatype's origin,
    /// adjacent runs merged.
    pub runs: Pieces,
    /// The distance from one instance to the next when the type is tiled (its extent, `ub -
    /// lb`, which a resized type may set apart from the bytes it covers).
    pub extent: u64,
}

impl TypeMap {
    /// `len` contiguous bytes from displacement 0 with extent `len`: `MPI_BYTE` repeated.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `len` is zero or beyond the largest file offset.
    pub fn contiguous(len: u64) -> Result<TypeMap> {
        if len == 0 {
            return Err(Error::InvalidArgument(
                "a contiguous type map needs at least one byte".into(),
            ));
        }
        Ok(TypeMap {
            runs: Pieces::contiguous(0, len)?,
            extent: len,
        })
    }

    /// The number of bytes one instance covers (`MPI_Type_size`).
    pub fn size(&self) -> u64 {
        self.runs.total_bytes()
    }
}

/// A file view: displacement, etype size and flattened filetype, with the bookkeeping that
/// maps a stream offset to its run in `O(log runs)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    disp: u64,
    etype_size: u64,
    runs: Vec<Piece>,
    /// `starts[i]`: the stream offset, within one instance, of the first byte of `runs[i]`.
    starts: Vec<u64>,
    size: u64,
    extent: u64,
}

impl FileView {
    /// The default view of a newly opened file: displacement 0, etype and filetype
    /// `MPI_BYTE`, so stream offsets are file offsets.
    pub fn bytes() -> FileView {
        FileView {
            disp: 0,
            etype_size: 1,
            runs: vec![Piece { offset: 0, len: 1 }],
            starts: vec![0],
            size: 1,
            extent: 1,
        }
    }

    /// A view at `disp` with etypes of `etype_size` bytes and the flattened `filetype`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the view is one MPI forbids or that has no data stream:
    /// an etype of no bytes, a filetype that covers no bytes or not a whole number of etypes,
    /// a filetype whose extent is zero, or whose consecutive instances overlap (its type map
    /// would not be monotonically nondecreasing over the file, MPI 3.1 §13.3).
    pub fn new(disp: u64, etype_size: u64, filetype: TypeMap) -> Result<FileView> {
        let bad = |why: String| Err(Error::InvalidArgument(format!("file view: {why}")));
        let size = filetype.size();
        let runs = filetype.runs.as_slice();
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            return bad("the filetype covers no bytes".into());
        };
        if etype_size == 0 {
            return bad("the etype has no bytes".into());
        }
        if size % etype_size != 0 {
            return bad(format!(
                "the filetype covers {size} bytes, not a whole number of {etype_size}-byte etypes"
            ));
        }
        if filetype.extent == 0 {
            return bad("the filetype's extent is zero".into());
        }
        // Instance i + 1 starts `extent` after instance i: its first byte must not come
        // before the last byte of instance i.
        if first
            .offset
            .checked_add(filetype.extent)
            .map_or(true, |next_first| next_first < last.end())
        {
            return bad(format!(
                "consecutive instances of the filetype overlap (its bytes span {}..{} but its \
                 extent is {})",
                first.offset,
                last.end(),
                filetype.extent
            ));
        }
        if disp > MAX_OFFSET {
            return bad(format!(
                "displacement {disp} is beyond the largest file offset"
            ));
        }
        let mut starts = Vec::with_capacity(runs.len());
        let mut at = 0u64;
        for run in runs {
            starts.push(at);
            at += run.len;
        }
        Ok(FileView {
            disp,
            etype_size,
            runs: runs.to_vec(),
            starts,
            size,
            extent: filetype.extent,
        })
    }

    /// The displacement: the file offset where the first instance of the filetype starts.
    pub fn disp(&self) -> u64 {
        self.disp
    }

    /// The etype's size in bytes: offsets in this view count units of it.
    pub fn etype_size(&self) -> u64 {
        self.etype_size
    }

    /// Whether the data stream is the file itself from the displacement on (no holes), so an
    /// access is one piece.
    pub fn is_contiguous(&self) -> bool {
        self.runs.len() == 1 && self.runs[0].offset == 0 && self.runs[0].len == self.extent
    }

    /// The file offset of stream byte `s`, and how many stream bytes from `s` on are
    /// contiguous in the file within its run.
    fn locate(&self, s: u64) -> Result<(u64, u64)> {
        let instance = s / self.size;
        let within = s % self.size;
        // The last run that starts at or before `within`; run 0 starts at 0.
        let i = self.starts.partition_point(|&start| start <= within) - 1;
        let run = self.runs[i];
        let into = within - self.starts[i];
        let offset = instance
            .checked_mul(self.extent)
            .and_then(|o| o.checked_add(self.disp))
            .and_then(|o| o.checked_add(run.offset + into))
            .filter(|&o| o <= MAX_OFFSET)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "stream byte {s} of the file view lies beyond the largest file offset"
                ))
            })?;
        Ok((offset, run.len - into))
    }

    /// The file bytes an access of `len` bytes at `offset` etypes touches, in file order,
    /// adjacent bytes merged into one piece. Empty for `len` 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the access ends beyond the largest file offset.
    pub fn pieces(&self, offset: u64, len: u64) -> Result<Pieces> {
        let too_far = || {
            Error::InvalidArgument(format!(
                "an access of {len} bytes at offset {offset} (etypes of {} bytes) ends beyond \
                 the largest file offset",
                self.etype_size
            ))
        };
        let start = offset.checked_mul(self.etype_size).ok_or_else(too_far)?;
        let end = start.checked_add(len).ok_or_else(too_far)?;
        if len == 0 {
            return Ok(Pieces::default());
        }
        if self.is_contiguous() {
            let at = self.disp.checked_add(start).ok_or_else(too_far)?;
            return Pieces::contiguous(at, len);
        }
        // The last byte first: an access that ends beyond the largest offset is refused before
        // any piece is built.
        self.locate(end - 1).map_err(|_| too_far())?;
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut s = start;
        while s < end {
            let (at, run_left) = self.locate(s)?;
            let take = run_left.min(end - s);
            match out.last_mut() {
                Some((o, l)) if *o + *l == at => *l += take,
                _ => out.push((at, take)),
            }
            s += take;
        }
        Pieces::new(out)
    }

    /// The offset in etypes of the end of a file of `size` bytes under this view, where
    /// `MPI_File_seek(.., MPI_SEEK_END)` puts the pointer: the view's data bytes that lie
    /// before byte `size`, rounded up to whole etypes (an end of file inside an etype or a
    /// hole of the filetype counts as the next etype).
    pub fn end_offset(&self, size: u64) -> u64 {
        let first = self.runs[0].offset;
        let Some(rel) = size.checked_sub(self.disp).filter(|&r| r > first) else {
            return 0;
        };
        // Instance k spans [k * extent + first, (k + 1) * extent + first) (consecutive instances
        // do not overlap): the one holding byte `rel - 1` is the only partial one.
        let k = (rel - first) / self.extent;
        let into = rel - k * self.extent;
        let partial: u64 = self
            .runs
            .iter()
            .map(|r| into.saturating_sub(r.offset).min(r.len))
            .sum();
        (k * self.size + partial).div_ceil(self.etype_size)
    }

    /// The absolute file offset of the etype at `offset` in this view
    /// (`MPI_File_get_byte_offset`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if it lies beyond the largest file offset.
    pub fn byte_offset(&self, offset: u64) -> Result<u64> {
        let s = offset.checked_mul(self.etype_size).ok_or_else(|| {
            Error::InvalidArgument(format!("offset {offset} of the file view overflows"))
        })?;
        Ok(self.locate(s)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(runs: &[(u64, u64)], extent: u64) -> TypeMap {
        TypeMap {
            runs: Pieces::new(runs.iter().copied()).unwrap(),
            extent,
        }
    }

    /// Every byte of the access, one at a time, the slow obvious way: the stream byte's
    /// instance and position among the instance's covered bytes.
    fn brute(v: &FileView, offset: u64, len: u64) -> Vec<u64> {
        let bytes: Vec<u64> = v.runs.iter().flat_map(|r| r.offset..r.end()).collect();
        (offset * v.etype_size..offset * v.etype_size + len)
            .map(|s| v.disp + (s / v.size) * v.extent + bytes[(s % v.size) as usize])
            .collect()
    }

    fn expand(p: &Pieces) -> Vec<u64> {
        p.iter().flat_map(|p| p.offset..p.end()).collect()
    }

    #[test]
    fn end_offset_counts_the_etypes_before_the_end_of_file() {
        let views = [
            FileView::bytes(),
            FileView::new(10, 4, map(&[(0, 8), (16, 4)], 24)).unwrap(),
            FileView::new(0, 2, map(&[(6, 2), (9, 4)], 8)).unwrap(),
            FileView::new(3, 1, map(&[(2, 1)], 5)).unwrap(),
        ];
        for v in &views {
            // The slow way: the stream bytes whose file offset is below the size (enough
            // instances to pass the largest size).
            let stream: Vec<u64> = brute(v, 0, (200 / v.extent + 2) * v.size);
            for size in 0..=200u64 {
                let below = stream.iter().filter(|&&o| o < size).count() as u64;
                assert_eq!(
                    v.end_offset(size),
                    below.div_ceil(v.etype_size),
                    "view {v:?}, size {size}"
                );
            }
        }
    }

    #[test]
    fn default_view_is_the_file() {
        let v = FileView::bytes();
        assert!(v.is_contiguous());
        assert_eq!(
            v.pieces(10, 5).unwrap().as_slice(),
            &[Piece { offset: 10, len: 5 }]
        );
        assert!(v.pieces(3, 0).unwrap().is_empty());
        assert_eq!(v.byte_offset(7).unwrap(), 7);
    }

    #[test]
    fn vector_view_of_ints() {
        // Rank 1 of 4 in a view of 4-byte ints interleaved by blocks of 2: filetype covers
        // bytes 8..16 of every 32, displacement 100.
        let v = FileView::new(100, 4, map(&[(8, 8)], 32)).unwrap();
        assert!(!v.is_contiguous());
        let p = v.pieces(1, 12).unwrap();
        assert_eq!(
            p.as_slice(),
            &[
                Piece {
                    offset: 112,
                    len: 4
                },
                Piece {
                    offset: 140,
                    len: 8
                }
            ]
        );
        assert_eq!(v.byte_offset(2).unwrap(), 140);
    }

    #[test]
    fn adjacent_instances_merge() {
        // A resized type whose instances abut: the stream is contiguous over instances.
        let v = FileView::new(0, 1, map(&[(0, 4)], 4)).unwrap();
        assert_eq!(v.pieces(2, 10).unwrap().len(), 1);
        let holes = FileView::new(0, 1, map(&[(0, 2), (3, 1)], 4)).unwrap();
        assert_eq!(expand(&holes.pieces(0, 6).unwrap()), vec![0, 1, 3, 4, 5, 7]);
        // 3 and 4 are adjacent across the instance boundary: one piece.
        assert_eq!(holes.pieces(2, 2).unwrap().len(), 1);
    }

    #[test]
    fn matches_byte_by_byte_mapping() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..2000 {
            let etype = 1 + next(4);
            let mut runs = Vec::new();
            let mut at = next(5);
            for _ in 0..1 + next(4) {
                let len = etype * (1 + next(3));
                runs.push((at, len));
                at += len + next(6);
            }
            let extent = at + next(5);
            let disp = next(50);
            let v = FileView::new(disp, etype, map(&runs, extent)).unwrap();
            let offset = next(20);
            let len = next(60);
            let got = v.pieces(offset, len).unwrap();
            assert_eq!(
                expand(&got),
                brute(&v, offset, len),
                "{v:?} at {offset}+{len}"
            );
            assert!(got.as_slice().windows(2).all(|w| w[0].end() < w[1].offset));
        }
    }

    #[test]
    fn refuses_views_mpi_forbids() {
        assert!(
            FileView::new(0, 4, map(&[(0, 6)], 8)).is_err(),
            "not whole etypes"
        );
        assert!(
            FileView::new(0, 0, map(&[(0, 4)], 4)).is_err(),
            "empty etype"
        );
        assert!(FileView::new(0, 1, map(&[], 4)).is_err(), "no bytes");
        assert!(
            FileView::new(0, 1, map(&[(0, 4)], 0)).is_err(),
            "zero extent"
        );
        assert!(
            FileView::new(0, 1, map(&[(0, 8)], 4)).is_err(),
            "instances overlap"
        );
        assert!(FileView::new(0, 1, map(&[(4, 4)], 4)).is_ok(), "abutting");
        assert!(FileView::new(MAX_OFFSET + 1, 1, map(&[(0, 1)], 1)).is_err());
    }

    #[test]
    fn refuses_accesses_beyond_the_largest_offset() {
        let v = FileView::new(0, 8, map(&[(0, 8)], 16)).unwrap();
        assert!(v.pieces(u64::MAX / 4, 8).is_err());
        assert!(v.pieces(0, u64::MAX).is_err());
        assert!(v.byte_offset(u64::MAX).is_err());
        assert!(FileView::bytes().pieces(MAX_OFFSET, 2).is_err());
    }
}

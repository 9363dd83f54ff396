//! Derived datatypes of bytes, only as far as file views need them.

use std::marker::PhantomData;
use std::os::raw::c_int;

use mpi::ffi;

use super::{check, free_on_drop};
use crate::error::{Error, Result};
use crate::pieces::Pieces;
use crate::view::TypeMap;

/// The largest true extent (first to last byte) of a datatype that [`type_map`] flattens: it
/// works on a scratch buffer of that many bytes.
pub const MAX_FLATTENED_EXTENT: u64 = 256 << 20;

/// A committed datatype's type map, flattened to the byte runs one instance covers, for file
/// views ([`crate::view::FileView`]).
///
/// Works for every datatype MPI can describe, without decoding its constructors: it unpacks a
/// buffer of marker bytes through the type into zeroed scratch memory spanning the type's
/// true extent (the marked bytes are the covered ones), then packs a pattern of
/// position-dependent bytes back through the type and checks that the packed order is the
/// address order. That second step refuses type maps whose displacements are not
/// monotonically nondecreasing, which MPI forbids for filetypes (MPI 3.1 §13.3) and which a
/// list of file pieces cannot express. It relies on `MPI_Pack` moving bytes unchanged, which
/// holds for the native representation of Open MPI and MPICH on one machine type; a library
/// that converted would fail the check, not flatten wrongly.
///
/// # Errors
/// [`Error::InvalidArgument`] if the type has negative displacements, a true extent beyond
/// [`MAX_FLATTENED_EXTENT`], covers a byte twice, or is not in address order;
/// [`Error::Mpi`] if MPI fails (an uncommitted type, for one).
///
/// MPI 3.1 §4.1.5 `MPI_Type_size_x`, §4.1.7 `MPI_Type_get_extent_x` and
/// `MPI_Type_get_true_extent_x`, §4.2 `MPI_Pack` and `MPI_Unpack`.
pub fn type_map(ty: &impl mpi::datatype::Datatype) -> Result<TypeMap> {
    let raw = ty.as_raw();
    let (mut size, mut lb, mut extent, mut true_lb, mut true_extent) = (0, 0, 0, 0, 0);
    // SAFETY: `raw` is a live committed datatype (the trait's promise); valid out-pointers.
    check("MPI_Type_size_x", unsafe {
        ffi::MPI_Type_size_x(raw, &mut size)
    })?;
    // SAFETY: as above.
    check("MPI_Type_get_extent_x", unsafe {
        ffi::MPI_Type_get_extent_x(raw, &mut lb, &mut extent)
    })?;
    // SAFETY: as above.
    check("MPI_Type_get_true_extent_x", unsafe {
        ffi::MPI_Type_get_true_extent_x(raw, &mut true_lb, &mut true_extent)
    })?;
    let bad = |why: String| Error::InvalidArgument(format!("datatype for a file view: {why}"));
    let extent = u64::try_from(extent).map_err(|_| bad(format!("negative extent {extent}")))?;
    if size == 0 {
        return Ok(TypeMap {
            runs: Pieces::default(),
            extent,
        });
    }
    let origin = u64::try_from(true_lb).map_err(|_| {
        bad(format!(
            "negative displacement {true_lb} (lower bound {lb})"
        ))
    })?;
    let span = u64::try_from(true_extent).unwrap_or(u64::MAX);
    if span > MAX_FLATTENED_EXTENT {
        return Err(bad(format!(
            "its bytes span {span} bytes, more than the {MAX_FLATTENED_EXTENT} that can be \
             flattened"
        )));
    }
    let size = c_int::try_from(size).map_err(|_| bad(format!("{size} bytes per instance")))?;
    // Both fit `usize` and `c_int`: at most MAX_FLATTENED_EXTENT.
    let span = span as usize;
    let mut scratch = vec![0u8; span];
    // MPI addresses byte `d` of the type at `base + d`; the scratch buffer holds displacements
    // `true_lb .. true_lb + true_extent`, so the base lies `true_lb` before it. Never
    // dereferenced by Rust; MPI only touches addresses inside the buffer.
    let base = |buf: *mut u8| buf.wrapping_sub(origin as usize);
    let marks = vec![0xffu8; size as usize];
    let mut position: c_int = 0;
    // SAFETY: `marks` holds `size` bytes, one packed instance; MPI writes only the bytes the
    // type covers, which lie inside `scratch` (see `base`); `position` is a valid
    // out-pointer; MPI_COMM_SELF is predefined.
    check("MPI_Unpack", unsafe {
        ffi::MPI_Unpack(
            marks.as_ptr().cast(),
            size,
            &mut position,
            base(scratch.as_mut_ptr()).cast(),
            1,
            raw,
            ffi::RSMPI_COMM_SELF,
        )
    })?;
    let covered: Vec<usize> = (0..span).filter(|&j| scratch[j] != 0).collect();
    if covered.len() != size as usize {
        return Err(bad(format!(
            "it covers {} distinct bytes but holds {size}: some bytes more than once",
            covered.len()
        )));
    }
    // A byte pattern that differs between positions 256 apart too, so that blocks moved by
    // whole multiples of 256 bytes are caught.
    let pattern = |j: usize| {
        let j = j as u64;
        (j ^ (j >> 8) ^ (j >> 16) ^ (j >> 24)).wrapping_mul(0x9d) as u8
    };
    for (j, byte) in scratch.iter_mut().enumerate() {
        *byte = pattern(j);
    }
    let mut packed = vec![0u8; size as usize];
    let mut position: c_int = 0;
    // SAFETY: MPI reads only the covered bytes, inside `scratch`; `packed` has room for one
    // packed instance (`size` bytes, the native representation); valid out-pointer.
    check("MPI_Pack", unsafe {
        ffi::MPI_Pack(
            base(scratch.as_mut_ptr()).cast_const().cast(),
            1,
            raw,
            packed.as_mut_ptr().cast(),
            size,
            &mut position,
            ffi::RSMPI_COMM_SELF,
        )
    })?;
    if position != size || covered.iter().zip(&packed).any(|(&j, &p)| pattern(j) != p) {
        return Err(bad(
            "its displacements are not monotonically nondecreasing (or MPI_Pack converts \
             bytes)"
                .into(),
        ));
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for j in covered {
        let at = origin + j as u64;
        match runs.last_mut() {
            Some((o, l)) if *o + *l == at => *l += 1,
            _ => runs.push((at, 1)),
        }
    }
    Ok(TypeMap {
        runs: Pieces::new(runs)?,
        extent,
    })
}

/// `MPI_UINT8_T`, the byte type of every buffer and file view here (rsmpi has no `MPI_BYTE`;
/// for the `"native"` data representation the two move the same bytes).
pub(crate) fn byte_type() -> ffi::MPI_Datatype {
    // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
    unsafe { ffi::RSMPI_UINT8_T }
}

/// A committed derived datatype we created, freed exactly once (on drop).
///
/// Freeing a datatype that a file view still uses is legal: MPI keeps its own reference
/// (MPI 3.1 §4.1.9). Neither `Send` nor `Sync`: MPI runs with `MPI_THREAD_FUNNELED`.
pub(crate) struct Datatype {
    raw: ffi::MPI_Datatype,
    _not_send: PhantomData<*const ()>,
}

impl Datatype {
    /// A committed datatype of bytes whose type map is `pieces`, displacements relative to 0:
    /// a byte `hvector` when the pieces are equal blocks at a constant stride starting at 0,
    /// an `hindexed` type otherwise. The lower bound is the first piece's offset and the
    /// extent reaches the end of the last piece.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `pieces` is empty, or has more pieces or a longer piece
    /// than MPI's `int` counts can describe; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §4.1.2 `MPI_Type_create_hvector`, §4.1.2 `MPI_Type_create_hindexed`, §4.1.9
    /// `MPI_Type_commit`.
    pub(crate) fn byte_pieces(pieces: &Pieces) -> Result<Datatype> {
        let slice = pieces.as_slice();
        let (Some(first), Some(last)) = (slice.first(), slice.last()) else {
            return Err(Error::InvalidArgument(
                "a datatype needs at least one piece of at least one byte".into(),
            ));
        };
        let count = c_int::try_from(slice.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "{} pieces exceed what one MPI datatype can describe ({})",
                slice.len(),
                c_int::MAX
            ))
        })?;
        let lens = slice
            .iter()
            .map(|p| {
                c_int::try_from(p.len).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "piece at offset {} of {} bytes is longer than one MPI datatype block \
                         ({} bytes)",
                        p.offset,
                        p.len,
                        c_int::MAX
                    ))
                })
            })
            .collect::<Result<Vec<c_int>>>()?;
        let aint = |v: u64| {
            ffi::MPI_Aint::try_from(v)
                .map_err(|_| Error::InvalidArgument(format!("offset {v} does not fit an MPI_Aint")))
        };
        aint(last.end())?;

        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut raw = unsafe { ffi::RSMPI_DATATYPE_NULL };
        let stride = slice
            .get(1)
            .map_or(Some(first.len), |second| Some(second.offset - first.offset));
        let regular = first.offset == 0
            && stride.is_some_and(|stride| {
                slice
                    .windows(2)
                    .all(|w| w[1].len == first.len && w[1].offset - w[0].offset == stride)
            });
        if regular {
            let stride = aint(stride.unwrap_or(first.len))?;
            // SAFETY: plain values and a valid out-pointer; the old type is predefined.
            check("MPI_Type_create_hvector", unsafe {
                ffi::MPI_Type_create_hvector(count, lens[0], stride, byte_type(), &mut raw)
            })?;
        } else {
            let disps = slice
                .iter()
                .map(|p| aint(p.offset))
                .collect::<Result<Vec<ffi::MPI_Aint>>>()?;
            // SAFETY: `lens` and `disps` hold `count` elements each and outlive the call (MPI
            // copies them); the old type is predefined; `raw` is a valid out-pointer.
            check("MPI_Type_create_hindexed", unsafe {
                ffi::MPI_Type_create_hindexed(
                    count,
                    lens.as_ptr(),
                    disps.as_ptr(),
                    byte_type(),
                    &mut raw,
                )
            })?;
        }
        // From here on the handle is ours and freed by `drop`, also if the commit fails.
        let mut ty = Datatype {
            raw,
            _not_send: PhantomData,
        };
        // SAFETY: `ty.raw` is the live, uncommitted type just created.
        check("MPI_Type_commit", unsafe {
            ffi::MPI_Type_commit(&mut ty.raw)
        })?;
        Ok(ty)
    }

    /// The handle, for passing to MPI while `self` is alive.
    pub(crate) fn raw(&self) -> ffi::MPI_Datatype {
        self.raw
    }
}

impl Drop for Datatype {
    fn drop(&mut self) {
        free_on_drop(&"a datatype", || {
            // SAFETY: `raw` is a live datatype this object created and frees exactly once,
            // here.
            check("MPI_Type_free", unsafe {
                ffi::MPI_Type_free(&mut self.raw)
            })
        });
    }
}

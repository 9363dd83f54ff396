//! Derived datatypes of bytes, only as far as file views need them.

use std::marker::PhantomData;
use std::os::raw::c_int;

use mpi::ffi;

use super::{check, free_on_drop};
use crate::error::{Error, Result};
use crate::pieces::Pieces;

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

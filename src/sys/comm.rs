//! A communicator we own: duplicated, `MPI_ERRORS_RETURN`, freed exactly once.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::raw::c_int;

use mpi::ffi;
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{AsCommunicator, Communicator, Rank, SimpleCommunicator};

use super::{check, errors_return, is_finalized};
use crate::error::{Error, Result};

/// A private duplicate of a communicator, with `MPI_ERRORS_RETURN` as its error handler.
///
/// Messages and collectives on it never match those of the communicator it was duplicated
/// from, so a library can use it without disturbing its caller. Use rsmpi's safe
/// point-to-point and collective operations through [`OwnedComm::comm`] (or
/// [`AsCommunicator`]).
///
/// It is freed by [`OwnedComm::free`] or on drop, which must happen before MPI is finalized
/// and after every [`Window`](super::Window) created on it is freed. Neither `Send` nor
/// `Sync`: MPI runs with `MPI_THREAD_FUNNELED`.
pub struct OwnedComm {
    /// rsmpi's wrapper. Never dropped by rsmpi: its drop would call `MPI_Comm_free` and
    /// assert (panic) on failure, after finalization too. We free the handle ourselves.
    comm: ManuallyDrop<SimpleCommunicator>,
    rank: Rank,
    size: Rank,
    freed: bool,
    _not_send: PhantomData<*const ()>,
}

impl OwnedComm {
    /// Duplicates `comm` (collective over `comm`) and sets `MPI_ERRORS_RETURN` on the copy.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `comm` is an inter-communicator (decided identically on
    /// every rank, before any communication); [`Error::Mpi`] if a call fails.
    ///
    /// MPI 3.1 §6.6.1 `MPI_Comm_test_inter`, §6.4.2 `MPI_Comm_dup`, §8.3.1
    /// `MPI_Comm_set_errhandler`.
    pub fn duplicate(comm: &impl Communicator) -> Result<OwnedComm> {
        let raw = comm.as_raw();
        let mut inter: c_int = 0;
        // SAFETY: `raw` is a live communicator borrowed from `comm` for this call; `inter` is a
        // valid out-pointer.
        check("MPI_Comm_test_inter", unsafe {
            ffi::MPI_Comm_test_inter(raw, &mut inter)
        })?;
        if inter != 0 {
            return Err(Error::InvalidArgument(
                "cannot duplicate an inter-communicator into an OwnedComm".into(),
            ));
        }
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut new = unsafe { ffi::RSMPI_COMM_NULL };
        // SAFETY: `raw` is live (see above); `new` is a valid out-pointer for the new handle.
        check("MPI_Comm_dup", unsafe { ffi::MPI_Comm_dup(raw, &mut new) })?;
        // SAFETY: `new` was just returned by a successful MPI_Comm_dup of an
        // intra-communicator: it is a live, user-created intra-communicator that is neither
        // MPI_COMM_WORLD, MPI_COMM_SELF nor the parent communicator, and no other wrapper
        // refers to it. The wrapper is never dropped (ManuallyDrop), so rsmpi never frees it.
        let comm = ManuallyDrop::new(unsafe { SimpleCommunicator::from_raw(new) });
        let mut owned = OwnedComm {
            rank: comm.rank(),
            size: comm.size(),
            comm,
            freed: false,
            _not_send: PhantomData,
        };
        // SAFETY: the handle is live and owned by `owned`; the error handler is predefined.
        check("MPI_Comm_set_errhandler", unsafe {
            ffi::MPI_Comm_set_errhandler(owned.comm.as_raw(), errors_return())
        })
        .inspect_err(|_| {
            // Do not leak the duplicate; the error to report is the one above.
            let _ = owned.release();
        })?;
        Ok(owned)
    }

    /// The rsmpi communicator, for point-to-point and collective operations.
    pub fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }

    /// This process's rank in the communicator (asked once, at duplication).
    ///
    /// MPI 3.1 §6.4.1, `MPI_Comm_rank`.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// Number of processes in the communicator (asked once, at duplication).
    ///
    /// MPI 3.1 §6.4.1, `MPI_Comm_size`.
    pub fn size(&self) -> Rank {
        self.size
    }

    /// Frees the communicator (collective), reporting failure.
    ///
    /// # Errors
    /// [`Error::Mpi`] if `MPI_Comm_free` fails.
    ///
    /// MPI 3.1 §6.4.3, `MPI_Comm_free`.
    pub fn free(mut self) -> Result<()> {
        self.release()
    }

    /// Frees the handle once; later calls do nothing.
    fn release(&mut self) -> Result<()> {
        if self.freed {
            return Ok(());
        }
        self.freed = true;
        let mut raw = self.comm.as_raw();
        // SAFETY: `raw` is the live handle this object owns, freed at most once thanks to
        // `freed`; rsmpi's wrapper is never dropped and never used after this point (the only
        // callers are `free`, which consumes `self`, and `drop`).
        check("MPI_Comm_free", unsafe { ffi::MPI_Comm_free(&mut raw) })
    }
}

impl AsCommunicator for OwnedComm {
    type Out = SimpleCommunicator;

    fn as_communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

impl std::fmt::Debug for OwnedComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedComm")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl Drop for OwnedComm {
    fn drop(&mut self) {
        if self.freed {
            return;
        }
        if is_finalized() {
            self.freed = true;
            tracing::error!("communicator dropped after MPI_Finalize; its handle is leaked");
            return;
        }
        if let Err(e) = self.release() {
            tracing::error!("freeing a communicator on drop: {e}");
        }
    }
}

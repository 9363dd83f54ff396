//! Communicators: one we own (duplicated, `MPI_ERRORS_RETURN`, freed exactly once), and one a
//! caller lends us (a handle from C).

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::raw::c_int;

use mpi::ffi;
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{AsCommunicator, Communicator, Rank, SimpleCommunicator};

use super::{check, errors_return, free_or_abandon, is_finalized};
use crate::error::{Error, Result};

/// A private duplicate of a communicator, with `MPI_ERRORS_RETURN` as its error handler.
///
/// Messages and collectives on it never match those of the communicator it was duplicated
/// from, so a library can use it without disturbing its caller. Use rsmpi's safe
/// point-to-point and collective operations through [`OwnedComm::comm`] (or
/// [`AsCommunicator`]).
///
/// It is freed by [`OwnedComm::free`] (collective), which every rank must call before MPI is
/// finalized and after every [`Window`](super::Window) created on it is freed. Dropping it
/// instead does not free it (unless it has one rank) and records it in
/// [`abandoned`](super::abandoned); see the module's lifetime rules. Neither `Send` nor
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
        // SAFETY: `raw` is a live communicator borrowed from `comm` for this call.
        unsafe { ensure_intra(raw) }?;
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let mut new = unsafe { ffi::RSMPI_COMM_NULL };
        // SAFETY: `raw` is live (see above); `new` is a valid out-pointer for the new handle.
        check("MPI_Comm_dup", unsafe { ffi::MPI_Comm_dup(raw, &mut new) })?;
        // SAFETY: `new` was just returned by a successful MPI_Comm_dup of an
        // intra-communicator.
        unsafe { OwnedComm::adopt(new) }
    }

    /// Splits `comm` into the groups of ranks that share memory (one per node; collective
    /// over `comm`), each ordered as in `comm`, with `MPI_ERRORS_RETURN`.
    ///
    /// # Errors
    /// As [`OwnedComm::duplicate`].
    ///
    /// MPI 3.1 §6.4.2 `MPI_Comm_split_type` (`MPI_COMM_TYPE_SHARED`).
    pub fn split_shared(comm: &impl Communicator) -> Result<OwnedComm> {
        let raw = comm.as_raw();
        // SAFETY: `raw` is a live communicator borrowed from `comm` for this call.
        unsafe { ensure_intra(raw) }?;
        // SAFETY: reading immutable extern statics initialised by rsmpi's C shim.
        let (mut new, shared, info) = unsafe {
            (
                ffi::RSMPI_COMM_NULL,
                ffi::RSMPI_COMM_TYPE_SHARED,
                ffi::RSMPI_INFO_NULL,
            )
        };
        // SAFETY: `raw` is live; the key 0 keeps `comm`'s order; `new` is a valid
        // out-pointer. With MPI_COMM_TYPE_SHARED every rank gets a communicator (never
        // MPI_COMM_NULL: no rank passes MPI_UNDEFINED).
        check("MPI_Comm_split_type", unsafe {
            ffi::MPI_Comm_split_type(raw, shared, 0, info, &mut new)
        })?;
        // SAFETY: `new` was just returned by a successful MPI_Comm_split_type of an
        // intra-communicator, with a split type that never yields MPI_COMM_NULL.
        unsafe { OwnedComm::adopt(new) }
    }

    /// Takes ownership of `new` and sets `MPI_ERRORS_RETURN` on it.
    ///
    /// # Safety
    /// `new` is a live, user-created intra-communicator (not `MPI_COMM_WORLD`, `MPI_COMM_SELF`
    /// or `MPI_COMM_NULL`) that nothing else refers to or will free.
    unsafe fn adopt(new: ffi::MPI_Comm) -> Result<OwnedComm> {
        // SAFETY: by the contract above `new` is a live, user-created intra-communicator that
        // no other wrapper refers to. The wrapper is never dropped (ManuallyDrop), so rsmpi
        // never frees it.
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
        if !self.freed {
            let size = self.size;
            free_or_abandon(&"a communicator", size, || self.release());
        }
    }
}

/// A communicator that belongs to someone else — typically an `MPI_Comm` handed over by a C or
/// Fortran caller — used by the library without owning it: never freed here.
///
/// Everything that takes `&impl Communicator` takes it through [`BorrowedComm::comm`]; the
/// lock service, `AtomicFile` and `AppendFile` duplicate it for their own traffic, so the
/// caller's handle is only read. Neither `Send` nor `Sync`.
pub struct BorrowedComm {
    /// rsmpi's wrapper around the caller's handle. Never dropped: its drop would free the
    /// caller's communicator.
    comm: ManuallyDrop<SimpleCommunicator>,
    _not_send: PhantomData<*const ()>,
}

impl BorrowedComm {
    /// Wraps the caller's communicator `raw`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `MPI_COMM_NULL`, when MPI is not initialised (or already
    /// finalized), and for an inter-communicator; [`Error::Mpi`] if asking MPI about `raw`
    /// fails.
    ///
    /// # Safety
    /// `raw` must be `MPI_COMM_NULL` or a live communicator handle of this process, and stay
    /// live (not freed by the caller) for as long as the returned value and everything built
    /// on it are used.
    ///
    /// MPI 3.1 §8.7 `MPI_Initialized`, §6.6.1 `MPI_Comm_test_inter`.
    pub unsafe fn from_raw(raw: ffi::MPI_Comm) -> Result<BorrowedComm> {
        // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
        let null = unsafe { ffi::RSMPI_COMM_NULL };
        if raw == null {
            return Err(Error::InvalidArgument(
                "the communicator is MPI_COMM_NULL".into(),
            ));
        }
        let mut initialized: c_int = 0;
        // SAFETY: a valid out-pointer; MPI_Initialized may be called at any time.
        check("MPI_Initialized", unsafe {
            ffi::MPI_Initialized(&mut initialized)
        })?;
        if initialized == 0 || is_finalized() {
            return Err(Error::InvalidArgument(
                "MPI is not initialised (or already finalized): the caller owns MPI and must \
                 initialise it first"
                    .into(),
            ));
        }
        // SAFETY: the caller guarantees `raw` is a live communicator handle.
        unsafe { ensure_intra(raw) }?;
        // SAFETY: reading immutable extern statics initialised by rsmpi's C shim.
        let (world, me) = unsafe { (ffi::RSMPI_COMM_WORLD, ffi::RSMPI_COMM_SELF) };
        // rsmpi models the predefined communicators apart from user handles.
        let comm = ManuallyDrop::new(if raw == world {
            SimpleCommunicator::world()
        } else if raw == me {
            SimpleCommunicator::self_comm()
        } else {
            // SAFETY: `raw` is a live intra-communicator of this process (checked above, and
            // by the caller's promise) other than the predefined ones. The wrapper is never
            // dropped (ManuallyDrop), so rsmpi never frees the caller's handle.
            unsafe { SimpleCommunicator::from_raw(raw) }
        });
        Ok(BorrowedComm {
            comm,
            _not_send: PhantomData,
        })
    }

    /// The communicator, for the library's constructors and rsmpi's operations.
    pub fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

impl std::fmt::Debug for BorrowedComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BorrowedComm")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .finish()
    }
}

/// `Ok` if `raw` is an intra-communicator: an inter-communicator cannot carry a lock service or
/// a shared file (decided identically on every rank, before any communication).
///
/// # Errors
/// [`Error::InvalidArgument`] for an inter-communicator; [`Error::Mpi`] if MPI fails.
///
/// # Safety
/// `raw` must be a live communicator handle.
///
/// MPI 3.1 §6.6.1, `MPI_Comm_test_inter`.
unsafe fn ensure_intra(raw: ffi::MPI_Comm) -> Result<()> {
    let mut inter: c_int = 0;
    // SAFETY: `raw` is live (the caller's promise); `inter` is a valid out-pointer.
    check("MPI_Comm_test_inter", unsafe {
        ffi::MPI_Comm_test_inter(raw, &mut inter)
    })?;
    if inter != 0 {
        return Err(Error::InvalidArgument(
            "an inter-communicator cannot carry a lock service or a shared file".into(),
        ));
    }
    Ok(())
}

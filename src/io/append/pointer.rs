//! The shared file pointer itself: one `u64` word in an MPI window on rank 0 of a private
//! communicator, moved by atomic fetch-and-add. [`AppendFile`](super::AppendFile) counts bytes
//! with it; the MPI-IO interposition library (`mpiio/`) counts etypes of a file view. The unit
//! is the caller's business.

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::point_to_point::Source;
use mpi::topology::{Communicator, Rank};

use crate::collective::{agree_outcome, agree_result, free_after};
use crate::error::{Error, Result};
use crate::sys::{LockKind, Op, OwnedComm, Window};

/// Rank that holds the pointer.
const HOME: Rank = 0;
/// Word of the pointer in the home rank's window.
const WORD: usize = 0;

/// A counter shared by every rank of a communicator: one word in a window on rank 0, read and
/// moved with one-sided atomics. Collective calls ([`open`](SharedPointer::open),
/// [`set`](SharedPointer::set), [`reserve_ordered`](SharedPointer::reserve_ordered),
/// [`free`](SharedPointer::free)) agree on their outcome; the others are independent. Neither
/// `Send` nor `Sync` (it holds an MPI window).
#[derive(Debug)]
pub struct SharedPointer {
    // Field order is drop order: the window before its communicator.
    window: Window,
    comm: OwnedComm,
}

impl SharedPointer {
    /// Makes the pointer on every rank of `comm` (collective; takes the communicator, which it
    /// frees with the pointer) and sets it to rank 0's `start` before any rank can move it.
    /// `ready` is this rank's outcome of whatever the caller did before: if it is an error on
    /// any rank, no window is made and every rank gets [`Error::Collective`].
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if some rank's `ready` failed or the pointer could
    /// not be set; MPI errors.
    pub fn open(comm: OwnedComm, start: u64, ready: Result<()>) -> Result<SharedPointer> {
        if let Err(e) = agree_result(comm.comm(), "open", ready) {
            return Err(free_after(comm, e));
        }
        let rank = comm.rank();
        let window = Window::allocate(comm.comm(), if rank == HOME { 1 } else { 0 })?;
        let init = if rank == HOME {
            let init = [start];
            window.with_lock(HOME, LockKind::Exclusive, |e| e.put(&init, WORD))
        } else {
            Ok(())
        };
        // The pointer is set before any rank can move it (the agreement synchronises).
        if let Err(e) = agree_result(comm.comm(), "open", init) {
            // Every rank knows: free together.
            let _ = window.free();
            return Err(free_after(comm, e));
        }
        Ok(SharedPointer { window, comm })
    }

    /// The private communicator the pointer lives on (a duplicate the caller handed over).
    pub fn comm(&self) -> &OwnedComm {
        &self.comm
    }

    /// One atomic fetch-and-add of `n` (independent); returns the value before. Other ranks'
    /// additions are ordered with it, so the ranges `[old, old + n)` of different calls never
    /// overlap.
    ///
    /// # Errors
    /// MPI errors.
    pub fn fetch_add(&self, n: u64) -> Result<u64> {
        let mut old = 0u64;
        self.window.with_lock(HOME, LockKind::Shared, |e| {
            e.fetch_and_op(&n, &mut old, WORD, Op::Sum)
        })?;
        Ok(old)
    }

    /// The current value (an atomic read, independent; other ranks may move it at any time).
    ///
    /// # Errors
    /// MPI errors.
    pub fn get(&self) -> Result<u64> {
        let mut value = 0u64;
        self.window
            .with_lock(HOME, LockKind::Shared, |e| e.atomic_read(&mut value, WORD))?;
        Ok(value)
    }

    /// Sets the pointer to rank 0's `value` (collective): after every rank has entered the
    /// call (so no earlier move of any rank is lost after it) and before any rank returns.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if rank 0 could not set it.
    pub fn set(&self, value: u64) -> Result<()> {
        let comm = self.comm.comm();
        comm.barrier();
        let put = (self.comm.rank() == HOME).then(|| {
            let word = [value];
            self.window
                .with_lock(HOME, LockKind::Exclusive, |e| e.put(&word, WORD))
        });
        agree_outcome(comm, "setting the shared pointer", put).map(|_| ())
    }

    /// Reserves, collectively, `len` for every rank back to back in rank order and returns this
    /// rank's start (MPI `write_ordered` semantics): an exclusive prefix sum of the lengths
    /// (`MPI_Exscan`), one fetch-and-add of the total by the last rank, a broadcast of its
    /// start. Ranks may pass 0.
    ///
    /// # Errors
    /// MPI errors, and [`Error::Collective`] on every rank if the last rank failed, for
    /// instance because the pointer would pass 2^64.
    pub fn reserve_ordered(&self, len: u64) -> Result<u64> {
        let comm = self.comm.comm();
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let mut before = 0u64;
        comm.exclusive_scan_into(&len, &mut before, SystemOperation::sum());
        if rank == 0 {
            // MPI_Exscan leaves rank 0's result undefined.
            before = 0;
        }
        let last = size - 1;
        // The last rank knows the block's total and reserves it.
        let reserved = (rank == last).then(|| match before.checked_add(len) {
            Some(0) => Ok(0),
            Some(total) => self.fetch_add(total),
            None => Err(Error::InvalidArgument(
                "the ordered block exceeds 2^64 bytes".into(),
            )),
        });
        let reserved = agree_outcome(comm, "reserving the ordered block", reserved)?;
        let mut base = [reserved.unwrap_or(0)];
        comm.process_at_rank(last).broadcast_into(&mut base[..]);
        base[0]
            .checked_add(before)
            .ok_or_else(|| Error::InvalidArgument("the ordered block exceeds 2^64 bytes".into()))
    }

    /// Lets MPI make progress on other ranks' moves (a nonblocking probe); see
    /// [`AppendFile::progress`](super::AppendFile::progress).
    pub fn progress(&self) {
        let _ = self.comm.comm().any_process().immediate_probe();
    }

    /// Frees the window and the communicator (collective).
    ///
    /// # Errors
    /// MPI errors.
    pub fn free(self) -> Result<()> {
        let SharedPointer { window, comm } = self;
        window.free().and_then(|()| comm.free())
    }
}

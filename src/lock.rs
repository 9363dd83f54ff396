//! The one trait every byte-range lock implements, and its RAII guard.
//!
//! Modelled on `lock_api`'s split between a raw trait that carries the algorithm and a guard
//! written once on top of it. Two differences matter for locks that talk to other processes:
//!
//! * Releasing can fail (an MPI error, an fcntl error), so the guard has an explicit
//!   [`RangeGuard::unlock`] returning `Result`; dropping a guard also releases, and reports a
//!   failure through `tracing` instead of panicking.
//! * A lock handle belongs to one rank and holds at most one range at a time. The guard borrows
//!   the handle mutably, so taking a second range while a guard lives does not compile; through
//!   the raw methods it is an [`Error::AlreadyHeld`] instead of a self-deadlock.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::range::{ByteRange, LockMode};

/// A byte-range lock, as seen by one rank.
///
/// Implementations: the MPI one-sided lock service ([`crate::protocol::LockClient`] over
/// [`crate::transport::rma::RmaTransport`]), the same protocol over the in-process
/// simulation ([`crate::transport::sim`]), and the kernel's `fcntl` locks
/// ([`crate::fcntl::FcntlLock`]).
pub trait RangeLock {
    /// Block until `range` is held in `mode`.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`] if this handle already holds a range; transport errors.
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()>;

    /// Take `range` in `mode` if that is possible without waiting. Returns whether it was
    /// taken. Never blocks on other ranks (it still performs the table epochs).
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn try_lock(&mut self, range: ByteRange, mode: LockMode) -> Result<bool>;

    /// Like [`RangeLock::lock`], but give up after `timeout`. Returns whether it was taken.
    /// Giving up leaves nothing held and no other rank waiting because of this request.
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn lock_timeout(&mut self, range: ByteRange, mode: LockMode, timeout: Duration)
        -> Result<bool>;

    /// Release the range held by this handle.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if nothing is held; transport errors.
    fn unlock(&mut self) -> Result<()>;

    /// The range and mode currently held, if any.
    fn held(&self) -> Option<(ByteRange, LockMode)>;

    /// The arrival order (ticket) of this handle's most recent request, for implementations
    /// that keep one. Used by checkers to measure overtaking.
    fn arrival_ticket(&self) -> Option<u64> {
        None
    }

    /// Lock `range` and return a guard that releases it.
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn acquire(&mut self, range: ByteRange, mode: LockMode) -> Result<RangeGuard<'_, Self>>
    where
        Self: Sized,
    {
        self.lock(range, mode)?;
        Ok(RangeGuard::new(self, range, mode))
    }

    /// [`RangeLock::try_lock`] returning a guard when the range was taken.
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn try_acquire(
        &mut self,
        range: ByteRange,
        mode: LockMode,
    ) -> Result<Option<RangeGuard<'_, Self>>>
    where
        Self: Sized,
    {
        Ok(if self.try_lock(range, mode)? {
            Some(RangeGuard::new(self, range, mode))
        } else {
            None
        })
    }

    /// [`RangeLock::lock_timeout`] returning a guard when the range was taken.
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn acquire_timeout(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<Option<RangeGuard<'_, Self>>>
    where
        Self: Sized,
    {
        Ok(if self.lock_timeout(range, mode, timeout)? {
            Some(RangeGuard::new(self, range, mode))
        } else {
            None
        })
    }
}

/// Holds a range until dropped or [`unlock`](RangeGuard::unlock)ed.
#[must_use = "dropping the guard releases the range at once"]
pub struct RangeGuard<'a, L: RangeLock> {
    lock: &'a mut L,
    range: ByteRange,
    mode: LockMode,
    released: bool,
}

impl<'a, L: RangeLock> RangeGuard<'a, L> {
    fn new(lock: &'a mut L, range: ByteRange, mode: LockMode) -> Self {
        RangeGuard {
            lock,
            range,
            mode,
            released: false,
        }
    }

    /// The range held.
    pub fn range(&self) -> ByteRange {
        self.range
    }

    /// The mode it is held in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Release the range, reporting failure.
    ///
    /// # Errors
    /// Whatever the lock's [`RangeLock::unlock`] returns.
    pub fn unlock(mut self) -> Result<()> {
        self.released = true;
        self.lock.unlock()
    }
}

impl<L: RangeLock> Drop for RangeGuard<'_, L> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.lock.unlock() {
                tracing::error!(range = %self.range, mode = %self.mode, error = %e, "releasing a byte-range lock on drop failed");
            }
        }
    }
}

impl<L: RangeLock> std::fmt::Debug for RangeGuard<'_, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeGuard")
            .field("range", &self.range)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Error unless nothing is held; shared by implementations to reject a second acquisition.
pub(crate) fn ensure_free(held: Option<(ByteRange, LockMode)>, requested: ByteRange) -> Result<()> {
    match held {
        Some((held, held_mode)) => Err(Error::AlreadyHeld {
            held,
            held_mode,
            requested,
        }),
        None => Ok(()),
    }
}

/// A "lock" that takes nothing and lets every request through at once: the negative control
/// of the checks (`--backend none`), which must then see violations.
#[derive(Debug, Default)]
pub struct NoLock {
    held: Option<(ByteRange, LockMode)>,
}

impl RangeLock for NoLock {
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()> {
        ensure_free(self.held, range)?;
        self.held = Some((range, mode));
        Ok(())
    }

    fn try_lock(&mut self, range: ByteRange, mode: LockMode) -> Result<bool> {
        self.lock(range, mode).map(|()| true)
    }

    fn lock_timeout(&mut self, range: ByteRange, mode: LockMode, _: Duration) -> Result<bool> {
        self.try_lock(range, mode)
    }

    fn unlock(&mut self) -> Result<()> {
        self.held.take().map(|_| ()).ok_or(Error::NotHeld)
    }

    fn held(&self) -> Option<(ByteRange, LockMode)> {
        self.held
    }
}

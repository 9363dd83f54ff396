//! The lock layer: the one trait every byte-range lock implements, its RAII guard, and the
//! implementations.
//!
//! * [`RangeLock`], [`RangeGuard`], [`NoLock`] (the negative control), [`deadline_after`];
//! * [`rma`]: the lock service, the protocol of [`crate::protocol`] as a [`RangeLock`] over
//!   any transport, and [`RmaLock`], the service over MPI one-sided communication;
//! * [`fcntl`]: the kernel's record locks (POSIX and open-file-description) behind the same
//!   trait, the baseline the service is compared with.
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

pub mod fcntl;
pub mod rma;
pub mod sharded;

pub use fcntl::{FcntlKind, FcntlLock};
pub use rma::RmaLock;
pub use sharded::Sharded;

use std::time::{Duration, Instant};

use crate::error::{ensure_free, Error, Result};
use crate::range::{ByteRange, LockMode};

/// The instant `timeout` from now, or `None` when that is beyond what the clock can represent
/// (a timeout of years, `Duration::MAX`): such a wait never expires. Every `lock_timeout`
/// computes its deadline here, so none can overflow.
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A byte-range lock, as seen by one rank.
///
/// Implementations: the MPI one-sided lock service ([`RmaLock`], the protocol's
/// [`LockClient`](crate::protocol::LockClient) over MPI; the same client over any other
/// [`Transport`](crate::protocol::Transport), such as the simulation), the kernel's `fcntl`
/// locks ([`FcntlLock`]) and [`NoLock`].
pub trait RangeLock {
    /// Block until `range` is held in `mode`.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`] if this handle already holds a range; transport errors.
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()>;

    /// Like [`RangeLock::lock`], calling `progress` every so often while the wait happens
    /// outside MPI. For a caller that hosts a window other ranks access while it waits: under
    /// one-sided components that progress only inside MPI calls (`osc pt2pt`, `osc ucx` over
    /// TCP), a rank blocked in the kernel (`F_SETLKW`) would stall the holder it waits for.
    ///
    /// The default just calls [`RangeLock::lock`]: locks that wait inside MPI make progress
    /// while they wait.
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn lock_progressing(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        progress: &mut dyn FnMut(),
    ) -> Result<()> {
        let _ = progress;
        self.lock(range, mode)
    }

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

    /// The tickets of this handle's most recent granted request, one per lock service it
    /// went through, as `(service index, ticket)`: one entry (index 0) for a single service,
    /// one per shard taken for a [`Sharded`] lock, none for locks that keep no tickets. Tickets
    /// of different services are not comparable; checkers compare requests service by
    /// service.
    fn arrival_tickets(&self) -> Vec<(usize, u64)> {
        self.arrival_ticket()
            .map(|t| vec![(0, t)])
            .unwrap_or_default()
    }

    /// Releases what this handle holds and tears it down. For the lock service this is
    /// collective: every rank of its communicator calls it at the same point (dropping the
    /// handle instead only releases, see [`LockClient`](crate::protocol::LockClient)). For
    /// the others it is local, like dropping.
    ///
    /// # Errors
    /// Release and teardown errors (MPI errors for the lock service).
    fn close(self) -> Result<()>
    where
        Self: Sized,
    {
        drop(self);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_never_expire_instead_of_overflowing() {
        assert!(deadline_after(Duration::MAX).is_none());
        assert!(deadline_after(Duration::from_secs(u64::MAX)).is_none());
        let soon = deadline_after(Duration::from_millis(5)).expect("a near deadline");
        assert!(soon > Instant::now() - Duration::from_secs(1));
    }
}

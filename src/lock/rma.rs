//! The lock service: the protocol's [`LockClient`] as a [`RangeLock`], over any
//! [`Transport`], and [`RmaLock`], the service over MPI one-sided communication (the table in
//! a window on the home rank, wake-ups as messages).

use std::time::Duration;

use mpi::topology::{Communicator, Rank};

use super::{deadline_after, RangeLock};
use crate::error::Result;
use crate::protocol::{LockClient, Patience, Transport};
use crate::range::{ByteRange, LockMode};
use crate::transport::rma::RmaTransport;

/// The lock service over MPI: [`LockClient`] on [`RmaTransport`].
pub type RmaLock = LockClient<RmaTransport>;

impl LockClient<RmaTransport> {
    /// Creates a lock service over `comm` with the table on rank `home`. Collective over
    /// `comm`: every rank calls it with the same `home`. Independent services (one per file,
    /// say) can coexist; each has its own window and private communicator.
    ///
    /// `comm` may be any intra-communicator the caller has, including one handed over from C
    /// ([`crate::sys::BorrowedComm`]); MPI must have been initialised by someone, and every
    /// rank must shut the service down ([`LockClient::shutdown`] or [`RangeLock::close`],
    /// collective) before it is finalized. Dropping it instead releases what this rank holds
    /// but skips the collective teardown: see [`crate::sys`], "Lifetime rules".
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `home` is not a rank of `comm`; MPI errors.
    pub fn open(comm: &impl Communicator, home: Rank) -> Result<RmaLock> {
        RmaTransport::new(comm, home).map(LockClient::new)
    }
}

impl<T: Transport> RangeLock for LockClient<T> {
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()> {
        self.request(range, mode, Patience::Forever).map(|_| ())
    }

    fn try_lock(&mut self, range: ByteRange, mode: LockMode) -> Result<bool> {
        self.request(range, mode, Patience::Never)
    }

    fn lock_timeout(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<bool> {
        let patience = deadline_after(timeout).map_or(Patience::Forever, Patience::Until);
        self.request(range, mode, patience)
    }

    fn unlock(&mut self) -> Result<()> {
        self.release()
    }

    fn held(&self) -> Option<(ByteRange, LockMode)> {
        LockClient::held(self)
    }

    fn arrival_ticket(&self) -> Option<u64> {
        self.last_ticket()
    }

    fn close(self) -> Result<()> {
        let drained = self.shutdown()?;
        if drained.leftover > 0 {
            return Err(crate::Error::Poisoned(format!(
                "{} wake-up messages were unaccounted for at shutdown",
                drained.leftover
            )));
        }
        Ok(())
    }
}

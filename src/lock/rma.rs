//! The lock service: the protocol's [`LockClient`] as a [`RangeLock`], over any
//! [`Transport`], and [`RmaLock`], the service over MPI one-sided communication (the table in
//! a window on the home rank, wake-ups as messages).

use std::time::Duration;

use mpi::topology::{Communicator, Rank};

use super::{deadline_after, RangeLock, Sharded};
use crate::error::Result;
use crate::protocol::{Algorithm, LockClient, Patience, Transport};
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

    /// Creates a [`Sharded`] lock service over `comm`: one service per entry of `homes` (its
    /// table on that rank), the lock space spread over them by stripes of `stripe` bytes.
    /// Collective over `comm`: every rank calls it with the same arguments.
    /// [`spread_homes`] picks homes spread over the communicator.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `homes` is empty, a home is not a rank of `comm`,
    /// or `stripe` is 0; MPI errors.
    pub fn open_sharded(
        comm: &impl Communicator,
        homes: &[Rank],
        stripe: u64,
        algorithm: Algorithm,
    ) -> Result<Sharded<RmaLock>> {
        if homes.is_empty() || stripe == 0 {
            return Err(crate::Error::InvalidArgument(format!(
                "a sharded lock needs at least one home and a stripe of at least 1 byte (got                  {} homes, stripe {stripe})",
                homes.len()
            )));
        }
        let shards = homes
            .iter()
            .map(|&home| RmaLock::open(comm, home).map(|l| l.with_algorithm(algorithm)))
            .collect::<Result<Vec<_>>>()?;
        Sharded::new(shards, stripe)
    }
}

/// `k` home ranks spread evenly over `size` ranks starting at `first`: rank
/// `(first + i * size / k) mod size` for shard `i` (distinct when `k <= size`; on block-mapped
/// jobs, on different nodes as far as possible).
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `first` is not in `0..size` (it would otherwise wrap
/// into the communicator silently).
pub fn spread_homes(size: Rank, k: usize, first: Rank) -> Result<Vec<Rank>> {
    if !(0..size).contains(&first) {
        return Err(crate::Error::InvalidArgument(format!(
            "home rank {first} is not a rank of the communicator (0..{size})"
        )));
    }
    let size = i64::from(size);
    let k_wide = i64::try_from(k.max(1)).unwrap_or(i64::MAX);
    Ok((0..k_wide)
        .map(|i| ((i64::from(first) + i * size / k_wide) % size) as Rank)
        .collect())
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

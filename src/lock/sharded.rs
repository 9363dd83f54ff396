//! Sharded homes: the lock space spread over K independent lock services by stripes, so that
//! requests for disjoint ranges go to different home ranks instead of queueing at one
//! (`docs/protocol.md`, "Sharded homes").
//!
//! Stripe `s` (bytes `s * stripe .. (s + 1) * stripe`) belongs to shard `s mod K`. A request
//! is registered, whole, with every shard that owns a stripe it touches, taken one after the
//! other in increasing shard index, each held while the next is taken. Two requests that
//! conflict overlap in some stripe, whose shard both register with: the conflict is decided
//! there, by that shard's own protocol. Taking shards in one global order keeps the
//! composition deadlock-free (a rank waits at shard j only while holding shards below j), and
//! each shard keeps its bypass bound: a later-arriving conflicting request never gets a shard
//! before an earlier one, so it cannot be granted overall before it either.

use std::time::{Duration, Instant};

use super::{deadline_after, RangeLock};
use crate::error::{ensure_free, Error, Result};
use crate::range::{ByteRange, LockMode};

/// A lock made of `K` shards, each a [`RangeLock`] of its own (for the one-sided service, a
/// [`LockClient`](crate::protocol::LockClient) with its table on its own home rank: see
/// [`RmaLock::open_sharded`](crate::lock::RmaLock::open_sharded)).
#[derive(Debug)]
pub struct Sharded<L: RangeLock> {
    shards: Vec<L>,
    stripe: u64,
    held: Option<(ByteRange, LockMode)>,
    /// Shards held, in the order taken.
    taken: Vec<usize>,
    /// The tickets of the last granted request, per shard taken.
    tickets: Vec<(usize, u64)>,
    /// Take shards in decreasing order (the model checks' deadlock control).
    reversed: bool,
}

impl<L: RangeLock> Sharded<L> {
    /// Combines `shards` (every rank must pass the same services in the same order) with
    /// stripes of `stripe` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no shard or `stripe` is 0.
    pub fn new(shards: Vec<L>, stripe: u64) -> Result<Self> {
        if shards.is_empty() || stripe == 0 {
            return Err(Error::InvalidArgument(format!(
                "a sharded lock needs at least one shard and a stripe of at least 1 byte \
                 (got {} shards, stripe {stripe})",
                shards.len()
            )));
        }
        Ok(Sharded {
            shards,
            stripe,
            held: None,
            taken: Vec::new(),
            tickets: Vec::new(),
            reversed: false,
        })
    }

    /// Takes shards in decreasing index order: a broken variant that can deadlock, for the
    /// model checks' negative control.
    #[cfg(feature = "testing")]
    pub fn with_shards_out_of_order(mut self) -> Self {
        self.reversed = true;
        self
    }

    /// The shards, by index.
    pub fn shards(&self) -> &[L] {
        &self.shards
    }

    /// The shards, by index, for their collective teardown one by one (what
    /// [`RangeLock::close`] does, for callers that want each shard's own result).
    pub fn into_shards(self) -> Vec<L> {
        self.shards
    }

    /// The stripe size in bytes.
    pub fn stripe(&self) -> u64 {
        self.stripe
    }

    /// The shards owning a stripe of `range`, in increasing index.
    pub fn shards_of(&self, range: ByteRange) -> Vec<usize> {
        let k = self.shards.len() as u64;
        let first = range.start() / self.stripe;
        let last = (range.end() - 1) / self.stripe;
        if last - first + 1 >= k {
            return (0..self.shards.len()).collect();
        }
        let mut of: Vec<usize> = (first..=last).map(|s| (s % k) as usize).collect();
        of.sort_unstable();
        of.dedup();
        of
    }

    fn order(&self, range: ByteRange) -> Vec<usize> {
        let mut order = self.shards_of(range);
        if self.reversed {
            order.reverse();
        }
        order
    }

    /// Releases the shards taken so far (an acquisition that gave up or failed), keeping the
    /// first error.
    fn release_taken(&mut self) -> Result<()> {
        let mut first = Ok(());
        while let Some(s) = self.taken.pop() {
            let released = self.shards[s].unlock();
            if first.is_ok() {
                first = released;
            }
        }
        first
    }

    /// Takes `range` from every shard of it with `take` (which returns whether the shard was
    /// taken), in order; if one is not taken or fails, releases those taken.
    fn acquire(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        take: &mut dyn FnMut(&mut L) -> Result<bool>,
    ) -> Result<bool> {
        ensure_free(self.held, range)?;
        for s in self.order(range) {
            match take(&mut self.shards[s]) {
                Ok(true) => self.taken.push(s),
                Ok(false) => {
                    self.release_taken()?;
                    return Ok(false);
                }
                Err(e) => {
                    // The error that stopped the acquisition is the one to report.
                    let _ = self.release_taken();
                    return Err(e);
                }
            }
        }
        self.tickets = self
            .taken
            .iter()
            .filter_map(|&s| self.shards[s].arrival_ticket().map(|t| (s, t)))
            .collect();
        self.held = Some((range, mode));
        Ok(true)
    }
}

impl<L: RangeLock> RangeLock for Sharded<L> {
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()> {
        self.acquire(range, mode, &mut |l| l.lock(range, mode).map(|()| true))
            .map(|_| ())
    }

    fn lock_progressing(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        progress: &mut dyn FnMut(),
    ) -> Result<()> {
        self.acquire(range, mode, &mut |l| {
            l.lock_progressing(range, mode, progress).map(|()| true)
        })
        .map(|_| ())
    }

    fn try_lock(&mut self, range: ByteRange, mode: LockMode) -> Result<bool> {
        self.acquire(range, mode, &mut |l| l.try_lock(range, mode))
    }

    fn lock_timeout(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<bool> {
        let deadline = deadline_after(timeout);
        self.acquire(range, mode, &mut |l| match deadline {
            Some(d) => l.lock_timeout(range, mode, d.saturating_duration_since(Instant::now())),
            None => l.lock(range, mode).map(|()| true),
        })
    }

    fn unlock(&mut self) -> Result<()> {
        if self.held.take().is_none() {
            return Err(Error::NotHeld);
        }
        self.release_taken()
    }

    fn held(&self) -> Option<(ByteRange, LockMode)> {
        self.held
    }

    /// The ticket at the only shard, when there is one; see [`RangeLock::arrival_tickets`].
    fn arrival_ticket(&self) -> Option<u64> {
        match self.shards.len() {
            1 => self.shards[0].arrival_ticket(),
            _ => None,
        }
    }

    fn arrival_tickets(&self) -> Vec<(usize, u64)> {
        self.tickets.clone()
    }

    /// Closes every shard, in index order (collective for the lock service: every rank closes
    /// the same shards in the same order); returns the first error.
    fn close(self) -> Result<()> {
        let mut first = Ok(());
        for shard in self.shards {
            let closed = shard.close();
            if first.is_ok() {
                first = closed;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::NoLock;

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    fn four() -> Sharded<NoLock> {
        Sharded::new((0..4).map(|_| NoLock::default()).collect(), 100).unwrap()
    }

    #[test]
    fn stripes_map_to_shards_round_robin() {
        let l = four();
        assert_eq!(l.shards_of(r(0, 100)), vec![0]);
        assert_eq!(l.shards_of(r(99, 101)), vec![0, 1]);
        assert_eq!(l.shards_of(r(350, 420)), vec![0, 3]);
        assert_eq!(l.shards_of(r(100, 500)), vec![0, 1, 2, 3]);
        assert_eq!(l.shards_of(r(1000, 1001)), vec![2]);
    }

    #[test]
    fn holds_every_shard_of_its_range_and_releases_them() {
        let mut l = four();
        l.lock(r(150, 260), LockMode::Exclusive).unwrap();
        assert_eq!(l.taken, vec![1, 2]);
        assert!(l.shards[1].held().is_some() && l.shards[0].held().is_none());
        assert!(matches!(
            l.lock(r(0, 1), LockMode::Shared),
            Err(Error::AlreadyHeld { .. })
        ));
        l.unlock().unwrap();
        assert!(l.shards.iter().all(|s| s.held().is_none()));
        assert!(matches!(l.unlock(), Err(Error::NotHeld)));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Sharded::<NoLock>::new(vec![], 10).is_err());
        assert!(Sharded::new(vec![NoLock::default()], 0).is_err());
    }
}

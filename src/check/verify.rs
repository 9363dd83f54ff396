//! Checks of lock behaviour that do not trust the lock.
//!
//! * Mutual exclusion is checked by whoever drives the lock (`brlock check lock` stamps a
//!   verification window; the simulation keeps an `Observer` of current holders, feature `testing`).
//! * The bypass bound is computed here from a log of grants: a request `X` is *bypassed* by a
//!   conflicting request `Y` that arrived later (larger ticket) but was granted earlier. The
//!   protocol promises zero such bypasses (see `docs/protocol.md`, "Bounded waiting"). A
//!   sharded lock has one ticket counter per shard: requests are compared at every shard both
//!   went through, with that shard's tickets.

use crate::range::{conflicts, ByteRange, LockMode};
#[cfg(feature = "testing")]
use crate::sync::{self, Arc, Mutex};

/// Lock services (shards) whose tickets a [`Grant`] records.
pub const CHECKED_SHARDS: usize = 8;
/// The ticket of a shard a request did not go through.
pub const NO_SHARD_TICKET: u64 = u64::MAX;

/// Per shard, the ticket a request got there, or [`NO_SHARD_TICKET`].
pub type Tickets = [u64; CHECKED_SHARDS];

/// `Tickets` from `(shard, ticket)` pairs (shards from [`CHECKED_SHARDS`] on are left out).
pub fn tickets_of(pairs: &[(usize, u64)]) -> Tickets {
    let mut t = [NO_SHARD_TICKET; CHECKED_SHARDS];
    for &(s, ticket) in pairs {
        if let Some(slot) = t.get_mut(s) {
            *slot = ticket;
        }
    }
    t
}

/// One granted request, as recorded by the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// Requesting rank.
    pub rank: usize,
    /// Arrival order per shard (the lock's tickets, or the checker's own arrival stamp as
    /// shard 0's).
    pub tickets: Tickets,
    /// Value of the global grant counter when the request arrived.
    pub arrival_seq: u64,
    /// Position in the global grant order.
    pub grant_seq: u64,
    /// Range start.
    pub start: u64,
    /// Range end (exclusive).
    pub end: u64,
    /// Whether the request was exclusive.
    pub exclusive: bool,
}

impl Grant {
    /// The grant of `range` in `mode` to `rank`.
    pub fn new(
        rank: usize,
        tickets: Tickets,
        arrival_seq: u64,
        grant_seq: u64,
        range: ByteRange,
        mode: LockMode,
    ) -> Grant {
        Grant {
            rank,
            tickets,
            arrival_seq,
            grant_seq,
            start: range.start(),
            end: range.end(),
            exclusive: mode == LockMode::Exclusive,
        }
    }

    /// Whether `self` arrived after `other` at some shard both went through.
    fn arrived_after(&self, other: &Grant) -> bool {
        self.tickets
            .iter()
            .zip(&other.tickets)
            .any(|(&mine, &theirs)| {
                mine != NO_SHARD_TICKET && theirs != NO_SHARD_TICKET && mine > theirs
            })
    }

    fn request(&self) -> Option<(ByteRange, LockMode)> {
        let mode = if self.exclusive {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        ByteRange::new(self.start, self.end).ok().map(|r| (r, mode))
    }
}

/// The largest number of later-arriving conflicting requests granted before any one request
/// (later at some shard both went through).
///
/// Only grants between a request's arrival and its own grant can have bypassed it, so each
/// request scans that window of the grant order: linear in practice.
pub fn max_bypass(grants: &[Grant]) -> u64 {
    let mut by_seq: Vec<&Grant> = grants.iter().collect();
    by_seq.sort_by_key(|g| g.grant_seq);
    let mut worst = 0;
    for (i, x) in by_seq.iter().enumerate() {
        let Some(xr) = x.request() else { continue };
        let from = by_seq.partition_point(|g| g.grant_seq < x.arrival_seq);
        let count = by_seq[from.min(i)..i]
            .iter()
            .filter(|y| y.arrived_after(x) && y.request().is_some_and(|yr| conflicts(xr, yr)))
            .count() as u64;
        worst = worst.max(count);
    }
    worst
}

/// What an `Observer` saw (feature `testing`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Grants that overlapped a conflicting holder.
    pub violations: u64,
    /// Every grant, in grant order.
    pub grants: Vec<Grant>,
}

impl Observed {
    /// [`max_bypass`] over the grants.
    pub fn max_bypass(&self) -> u64 {
        max_bypass(&self.grants)
    }
}

#[cfg(feature = "testing")]
#[derive(Debug, Default)]
struct ObserverState {
    holders: Vec<Option<(ByteRange, LockMode)>>,
    observed: Observed,
}

/// An in-process checker for simulated ranks (feature `testing`): it is told about arrivals,
/// grants and releases, keeps its own record of who holds what, and counts grants that
/// conflict with a holder. Built on `crate::sync` (src/sync.rs), so the model checkers see its
/// synchronisation too.
#[cfg(feature = "testing")]
#[derive(Debug, Clone)]
pub struct Observer {
    state: Arc<Mutex<ObserverState>>,
}

#[cfg(feature = "testing")]
impl Observer {
    /// An observer for `ranks` simulated ranks.
    pub fn new(ranks: usize) -> Self {
        Observer {
            state: Arc::new(Mutex::new(ObserverState {
                holders: vec![None; ranks],
                observed: Observed::default(),
            })),
        }
    }

    /// A request is about to be made: returns the arrival stamp to pass to [`Observer::granted`].
    pub fn arriving(&self) -> u64 {
        sync::lock(&self.state).observed.grants.len() as u64
    }

    /// `rank` was granted `range` in `mode`; `tickets` are its arrival order per shard
    /// ([`RangeLock::arrival_tickets`](crate::lock::RangeLock::arrival_tickets)).
    pub fn granted(
        &self,
        rank: usize,
        range: ByteRange,
        mode: LockMode,
        tickets: &[(usize, u64)],
        arrival_seq: u64,
    ) {
        let mut st = sync::lock(&self.state);
        let clash = st
            .holders
            .iter()
            .enumerate()
            .any(|(r, h)| r != rank && h.is_some_and(|h| conflicts(h, (range, mode))));
        if clash {
            st.observed.violations += 1;
        }
        st.holders[rank] = Some((range, mode));
        let grant_seq = st.observed.grants.len() as u64;
        st.observed.grants.push(Grant::new(
            rank,
            tickets_of(tickets),
            arrival_seq,
            grant_seq,
            range,
            mode,
        ));
    }

    /// `rank` is about to release what it holds.
    pub fn releasing(&self, rank: usize) {
        sync::lock(&self.state).holders[rank] = None;
    }

    /// Everything observed so far.
    pub fn observed(&self) -> Observed {
        sync::lock(&self.state).observed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(rank: usize, ticket: u64, arrival_seq: u64, grant_seq: u64) -> Grant {
        Grant {
            rank,
            tickets: tickets_of(&[(0, ticket)]),
            arrival_seq,
            grant_seq,
            start: 0,
            end: 10,
            exclusive: true,
        }
    }

    #[test]
    fn bypass_counts_only_later_conflicting_arrivals() {
        // In ticket order: no bypass.
        assert_eq!(
            max_bypass(&[g(0, 0, 0, 0), g(1, 1, 0, 1), g(2, 2, 0, 2)]),
            0
        );
        // Ticket 0 arrived first but was granted after tickets 1 and 2.
        assert_eq!(
            max_bypass(&[g(1, 1, 0, 0), g(2, 2, 0, 1), g(0, 0, 0, 2)]),
            2
        );
        // A later arrival granted before an earlier one that does not conflict: no bypass.
        let mut disjoint = g(1, 1, 0, 0);
        disjoint.start = 10;
        disjoint.end = 20;
        assert_eq!(max_bypass(&[disjoint, g(0, 0, 0, 1)]), 0);
        // Shared requests do not bypass each other.
        let (mut a, mut b) = (g(1, 1, 0, 0), g(0, 0, 0, 1));
        a.exclusive = false;
        b.exclusive = false;
        assert_eq!(max_bypass(&[a, b]), 0);
    }

    #[test]
    fn sharded_requests_compare_at_the_shards_they_share() {
        let at = |rank, tickets: &[(usize, u64)], grant_seq| Grant {
            tickets: tickets_of(tickets),
            ..g(rank, 0, 0, grant_seq)
        };
        // Later at shard 1, granted first: a bypass.
        assert_eq!(
            max_bypass(&[at(1, &[(0, 5), (1, 9)], 0), at(0, &[(1, 3)], 1)]),
            1
        );
        // Tickets of different shards are not compared.
        assert_eq!(max_bypass(&[at(1, &[(0, 9)], 0), at(0, &[(1, 3)], 1)]), 0);
        // Shards past the checked ones are left out.
        assert_eq!(
            tickets_of(&[(CHECKED_SHARDS, 1)]),
            [NO_SHARD_TICKET; CHECKED_SHARDS]
        );
    }
}

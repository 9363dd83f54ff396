//! The decisions of the handoff algorithm ([`Algorithm::Handoff`](super::Algorithm)), as pure
//! functions of the request list ([`super::list`]) read inside one exclusive epoch
//! (`docs/protocol.md`, "The handoff algorithm").
//!
//! In this algorithm an ACTIVE entry always means "holds its range" and always carries its
//! ticket; a WAITING entry is a request that something blocks. Every epoch leaves the list
//! *closed*: no two conflicting entries are ACTIVE, and every WAITING entry conflicts with an
//! ACTIVE entry or with an older WAITING one.

use super::list::Entry;
use super::{Faults, Request, Slot, State};
use crate::range::{ByteRange, LockMode};

/// Rank `rank`'s entry in the list, if it has one.
pub(crate) fn own(list: &[Entry], rank: usize) -> Option<Slot> {
    list.iter().find(|e| e.rank == rank).map(|e| e.slot)
}

/// Removes rank `rank`'s entry (the last entry takes its place). Returns whether it had one.
pub(crate) fn remove(list: &mut Vec<Entry>, rank: usize) -> bool {
    match list.iter().position(|e| e.rank == rank) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Whether a new request `me` of rank `rank`, whose ticket was taken in this very epoch (so it
/// is younger than every listed request), can hold at once: no other listed request conflicts
/// with it. Holders block it, and so does every waiter, all of them older.
pub(crate) fn admissible(me: &Request, rank: usize, list: &[Entry], faults: Faults) -> bool {
    faults.ignore_conflicts
        || list
            .iter()
            .filter(|e| e.rank != rank)
            .all(|e| !e.slot.conflicts_with(me.range, me.mode))
}

/// The grant pass of a release (or of a waiter that withdraws): `departed` (the range and mode
/// that just left the list) may have unblocked waiters. Grants, in ticket order, every waiter
/// that conflicts with `departed` and with no ACTIVE entry and no older WAITING entry, marking
/// it ACTIVE as it goes (so a grant blocks the younger conflicting waiters after it, and
/// compatible readers are granted together). Returns the granted ranks.
///
/// Only waiters that conflicted with `departed` can have become grantable: the list was
/// closed, and a grant turns a blocking WAITING entry into a blocking ACTIVE one.
pub(crate) fn grant_waiters(
    list: &mut [Entry],
    departed: (ByteRange, LockMode),
    faults: Faults,
) -> Vec<usize> {
    let mut candidates: Vec<(u64, usize)> = list
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.slot.state == State::Waiting && e.slot.conflicts_with(departed.0, departed.1)
        })
        .map(|(i, e)| (e.slot.ticket, i))
        .collect();
    candidates.sort_unstable();
    let mut granted = Vec::new();
    for (ticket, w) in candidates {
        let ws = list[w].slot;
        let Ok(range) = ByteRange::new(ws.start, ws.end) else {
            continue;
        };
        let blocked = list.iter().enumerate().any(|(i, e)| {
            i != w
                && e.slot.conflicts_with(range, ws.mode)
                && match e.slot.state {
                    State::Active => !faults.grant_conflicting,
                    State::Waiting => e.slot.ticket < ticket,
                    State::Idle => false,
                }
        });
        if !blocked {
            list[w].slot.state = State::Active;
            granted.push(list[w].rank);
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NO_TICKET;

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    /// A list with rank `i`'s request at position `i`, idle slots left out.
    fn list(slots: &[Slot]) -> Vec<Entry> {
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state != State::Idle)
            .map(|(rank, &slot)| Entry { rank, slot })
            .collect()
    }

    #[test]
    fn newcomer_defers_to_holders_and_waiters() {
        let me = Request {
            range: r(0, 10),
            mode: LockMode::Shared,
            ticket: 9,
        };
        let held = Slot::request(State::Active, r(5, 15), LockMode::Shared, 1);
        let waiting = Slot::request(State::Waiting, r(5, 15), LockMode::Exclusive, 2);
        let f = Faults::default();
        assert!(admissible(&me, 0, &list(&[Slot::IDLE, held]), f));
        assert!(!admissible(&me, 0, &list(&[Slot::IDLE, held, waiting]), f));
        // Its own (stale) slot does not count.
        assert!(admissible(&me, 1, &list(&[Slot::IDLE, waiting]), f));
    }

    #[test]
    fn grants_in_ticket_order_readers_together() {
        let x = |t| Slot::request(State::Waiting, r(0, 10), LockMode::Exclusive, t);
        let s = |t| Slot::request(State::Waiting, r(0, 10), LockMode::Shared, t);
        let f = Faults::default();
        let departed = (r(0, 10), LockMode::Exclusive);
        // Readers 3 and 4 go together; the writer 5 and the reader 6 behind it wait.
        let mut t = list(&[Slot::IDLE, x(5), s(4), s(3), s(6)]);
        assert_eq!(grant_waiters(&mut t, departed, f), vec![3, 2]);
        assert_eq!(own(&t, 3).unwrap().state, State::Active);
        assert_eq!(own(&t, 1).unwrap().state, State::Waiting);
        // Removal leaves the others in place but the last.
        assert!(remove(&mut t, 1));
        assert!(!remove(&mut t, 1));
        assert_eq!(t.iter().map(|e| e.rank).collect::<Vec<_>>(), vec![4, 2, 3]);
        // One writer at a time.
        let mut t = list(&[Slot::IDLE, x(2), x(1)]);
        assert_eq!(grant_waiters(&mut t, departed, f), vec![2]);
        // A holder elsewhere still blocks; the injected fault ignores it.
        let holder = Slot::request(State::Active, r(5, 6), LockMode::Shared, NO_TICKET);
        let mut t = list(&[Slot::IDLE, x(2), holder]);
        assert!(grant_waiters(&mut t, departed, f).is_empty());
        let bad = Faults {
            grant_conflicting: true,
            ..Faults::default()
        };
        assert_eq!(grant_waiters(&mut t, departed, bad), vec![1]);
    }
}

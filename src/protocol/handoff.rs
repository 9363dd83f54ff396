//! The decisions of the handoff algorithm ([`Algorithm::Handoff`](super::Algorithm)), as pure
//! functions of a table read inside one exclusive epoch (`docs/protocol.md`, "The handoff
//! algorithm").
//!
//! In this algorithm an ACTIVE slot always means "holds its range" and always carries its
//! ticket; a WAITING slot is a request that something blocks. Every epoch leaves the table
//! *closed*: no two conflicting slots are ACTIVE, and every WAITING slot conflicts with an
//! ACTIVE slot or with an older WAITING one.

use super::{Faults, Request, Slot, State, SLOT_WORDS};
use crate::range::{ByteRange, LockMode};

/// Rank `r`'s slot in a full table (every rank's slot, own included).
pub(crate) fn slot(table: &[u64], r: usize) -> Slot {
    Slot::decode(&table[r * SLOT_WORDS..(r + 1) * SLOT_WORDS])
}

fn set(table: &mut [u64], r: usize, s: Slot) {
    table[r * SLOT_WORDS..(r + 1) * SLOT_WORDS].copy_from_slice(&s.encode());
}

/// Whether a new request `me` of rank `rank`, whose ticket was taken in this very epoch (so it
/// is younger than every published request), can hold at once: no other non-idle slot
/// conflicts with it. Holders block it, and so does every waiter, all of them older.
pub(crate) fn admissible(me: &Request, rank: usize, table: &[u64], faults: Faults) -> bool {
    faults.ignore_conflicts
        || (0..table.len() / SLOT_WORDS)
            .filter(|&r| r != rank)
            .all(|r| !slot(table, r).conflicts_with(me.range, me.mode))
}

/// The grant pass of a release (or of a waiter that withdraws): `departed` (the range and mode
/// that just left the table, already written IDLE in `table`) may have unblocked waiters.
/// Grants, in ticket order, every waiter that conflicts with `departed` and with no ACTIVE slot
/// and no older WAITING slot, marking it ACTIVE in `table` as it goes (so a grant blocks the
/// younger conflicting waiters after it, and compatible readers are granted together).
/// Returns the granted ranks.
///
/// Only waiters that conflicted with `departed` can have become grantable: the table was
/// closed, and a grant turns a blocking WAITING slot into a blocking ACTIVE one.
pub(crate) fn grant_waiters(
    table: &mut [u64],
    departed: (ByteRange, LockMode),
    faults: Faults,
) -> Vec<usize> {
    let ranks = table.len() / SLOT_WORDS;
    let mut candidates: Vec<(u64, usize)> = (0..ranks)
        .filter_map(|r| {
            let s = slot(table, r);
            (s.state == State::Waiting && s.conflicts_with(departed.0, departed.1))
                .then_some((s.ticket, r))
        })
        .collect();
    candidates.sort_unstable();
    let mut granted = Vec::new();
    for (ticket, w) in candidates {
        let ws = slot(table, w);
        let Ok(range) = ByteRange::new(ws.start, ws.end) else {
            continue;
        };
        let blocked = (0..ranks).filter(|&r| r != w).any(|r| {
            let s = slot(table, r);
            s.conflicts_with(range, ws.mode)
                && match s.state {
                    State::Active => !faults.grant_conflicting,
                    State::Waiting => s.ticket < ticket,
                    State::Idle => false,
                }
        });
        if !blocked {
            set(
                table,
                w,
                Slot {
                    state: State::Active,
                    ..ws
                },
            );
            granted.push(w);
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

    fn table(slots: &[Slot]) -> Vec<u64> {
        slots.iter().flat_map(|s| s.encode()).collect()
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
        assert!(admissible(&me, 0, &table(&[Slot::IDLE, held]), f));
        assert!(!admissible(&me, 0, &table(&[Slot::IDLE, held, waiting]), f));
        // Its own (stale) slot does not count.
        assert!(admissible(&me, 1, &table(&[Slot::IDLE, waiting]), f));
    }

    #[test]
    fn grants_in_ticket_order_readers_together() {
        let x = |t| Slot::request(State::Waiting, r(0, 10), LockMode::Exclusive, t);
        let s = |t| Slot::request(State::Waiting, r(0, 10), LockMode::Shared, t);
        let f = Faults::default();
        let departed = (r(0, 10), LockMode::Exclusive);
        // Readers 3 and 4 go together; the writer 5 and the reader 6 behind it wait.
        let mut t = table(&[Slot::IDLE, x(5), s(4), s(3), s(6)]);
        assert_eq!(grant_waiters(&mut t, departed, f), vec![3, 2]);
        assert_eq!(slot(&t, 3).state, State::Active);
        assert_eq!(slot(&t, 1).state, State::Waiting);
        // One writer at a time.
        let mut t = table(&[Slot::IDLE, x(2), x(1)]);
        assert_eq!(grant_waiters(&mut t, departed, f), vec![2]);
        // A holder elsewhere still blocks; the injected fault ignores it.
        let holder = Slot::request(State::Active, r(5, 6), LockMode::Shared, NO_TICKET);
        let mut t = table(&[Slot::IDLE, x(2), holder]);
        assert!(grant_waiters(&mut t, departed, f).is_empty());
        let bad = Faults {
            grant_conflicting: true,
            ..Faults::default()
        };
        assert_eq!(grant_waiters(&mut t, departed, bad), vec![1]);
    }
}

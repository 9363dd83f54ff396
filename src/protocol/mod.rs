//! The byte-range lock protocol, independent of any transport.
//!
//! Two algorithms over one driver: the handoff algorithm (the default: decide in one epoch, a
//! release grants the range directly) and the algorithm of Thakur, Ross and Latham
//! (EuroPVM/MPI 2005), both with the extensions described in `docs/protocol.md`: shared and
//! exclusive modes, tickets that make grants first-come-first-served among conflicting
//! requests (no later conflicting request is ever granted before an earlier one), `try_lock`,
//! timeouts, and exact accounting of wake-up messages.
//!
//! The module has these parts:
//! * the table layouts: the 2005 algorithm's one [`Slot`] per rank (what one rank publishes
//!   about itself), and the handoff algorithm's compact list of live requests ([`list`]);
//! * [`blocks`], the one rule that decides whether another rank's slot keeps a request from
//!   being granted;
//! * [`Transport`], what the protocol needs from the world (the table window and the wake-up
//!   channel), implemented in [`crate::transport`];
//! * [`Algorithm`]: the 2005 algorithm (attempt, retreat, wake, retry) or the handoff
//!   algorithm (decide in one epoch, a release grants directly), both driven by the same
//!   client over the same transports;
//! * [`LockClient`], the driver that runs the protocol over any [`Transport`], with its
//!   [`WakePolicy`] (the 2005 algorithm's wake-everyone release is one of them) and, with the
//!   `testing` feature, `Faults`: deliberately broken variants for the model checks.
//!
//! No MPI inside: everything here runs unchanged over MPI and over the simulation.

mod client;
mod faults;
mod handoff;
pub mod list;
mod transport;

pub use client::{LockClient, Patience, Stats, WakePolicy};
#[cfg(feature = "testing")]
pub use faults::Faults;
#[cfg(not(feature = "testing"))]
pub(crate) use faults::Faults;
pub use transport::{Drained, Transport};

use crate::choice::choice;
use crate::range::{self, ByteRange, LockMode};

choice! {
    /// Which lock algorithm a [`LockClient`] runs (`docs/protocol.md`). Both use the same table,
    /// tickets and wake-up channel, and keep the same promises (mutual exclusion, no deadlock,
    /// bypass 0, exact accounting); they differ in cost under contention.
    #[derive(Default)]
    pub enum Algorithm {
        /// Decide once, hand off directly: one epoch per acquire and per release; a release grants the range to the waiters it unblocks.
        Handoff = "handoff" (default),
        /// Thakur, Ross and Latham 2005 with tickets: attempt, retreat, wait for a wake-up, retry.
        Tr2005 = "tr2005",
    }
}

/// Words (u64) per slot in the table.
pub const SLOT_WORDS: usize = 4;
/// Words before the first slot: word 0 is the ticket counter.
pub const HEADER_WORDS: usize = 1;
/// Word offset of the ticket counter in the table window.
pub const TICKET_WORD: usize = 0;
/// The ticket field of a slot whose owner has not yet learned its ticket. Only an ACTIVE slot
/// written by a request's first epoch carries it; it compares as "maybe older than anyone".
pub const NO_TICKET: u64 = u64::MAX;

/// Number of u64 words of the 2005 algorithm's slot table for `ranks` ranks.
pub fn table_words(ranks: usize) -> usize {
    HEADER_WORDS + SLOT_WORDS * ranks
}

/// The 2005 layout's words per epoch of [`Transport::exchange`] for `ranks` ranks: the own
/// slot written, every other slot read, and the ticket if taken.
pub fn exchange_words(ranks: usize, take_ticket: bool) -> u64 {
    (SLOT_WORDS * ranks) as u64 + u64::from(take_ticket)
}

/// Number of u64 words of the table window on the home rank for `ranks` ranks: room for
/// either layout (the slot table of [`Algorithm::Tr2005`], the request list of
/// [`Algorithm::Handoff`], [`list`]), which share the ticket counter.
pub fn window_words(ranks: usize) -> usize {
    table_words(ranks).max(list::list_words(ranks))
}

/// Word offset of `rank`'s slot in the table window.
pub fn slot_offset(rank: usize) -> usize {
    HEADER_WORDS + SLOT_WORDS * rank
}

/// What a rank is doing with respect to the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Holds nothing and requests nothing.
    Idle,
    /// Holds its range, or is trying to take it in this very epoch.
    Active,
    /// Announced that it waits for its range; blocks on a wake-up message.
    Waiting,
}

/// One rank's entry in the lock table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The owner's state.
    pub state: State,
    /// Requested mode (meaningless when idle).
    pub mode: LockMode,
    /// Requested range start (meaningless when idle).
    pub start: u64,
    /// Requested range end, exclusive (meaningless when idle).
    pub end: u64,
    /// The request's ticket, or [`NO_TICKET`].
    pub ticket: u64,
}

const STATE_MASK: u64 = 0b11;
const EXCLUSIVE_BIT: u64 = 0b100;

impl Slot {
    /// The idle slot (all zero words, which is also what a fresh window holds).
    pub const IDLE: Slot = Slot {
        state: State::Idle,
        mode: LockMode::Shared,
        start: 0,
        end: 0,
        ticket: 0,
    };

    /// A slot in `state` for a request.
    pub fn request(state: State, range: ByteRange, mode: LockMode, ticket: u64) -> Slot {
        Slot {
            state,
            mode,
            start: range.start(),
            end: range.end(),
            ticket,
        }
    }

    /// The slot as table words.
    pub fn encode(&self) -> [u64; SLOT_WORDS] {
        let state = match self.state {
            State::Idle => 0,
            State::Active => 1,
            State::Waiting => 2,
        };
        let mode = match self.mode {
            LockMode::Shared => 0,
            LockMode::Exclusive => EXCLUSIVE_BIT,
        };
        [state | mode, self.start, self.end, self.ticket]
    }

    /// Decode table words. Unknown state values decode as idle: they cannot occur in a table
    /// written only by this code, and treating them as idle never makes a rank wait forever.
    pub fn decode(words: &[u64]) -> Slot {
        let state = match words[0] & STATE_MASK {
            1 => State::Active,
            2 => State::Waiting,
            _ => State::Idle,
        };
        let mode = if words[0] & EXCLUSIVE_BIT != 0 {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        Slot {
            state,
            mode,
            start: words[1],
            end: words[2],
            ticket: words[3],
        }
    }

    /// Whether this slot's request conflicts with `range` in `mode` (overlap, and at least one
    /// side exclusive). Idle slots conflict with nothing.
    pub fn conflicts_with(&self, range: ByteRange, mode: LockMode) -> bool {
        self.state != State::Idle
            && self.start < range.end()
            && range.start() < self.end
            && self.mode.conflicts_with(mode)
    }
}

/// A request as its owner knows it after an epoch: range, mode and its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Requested range.
    pub range: ByteRange,
    /// Requested mode.
    pub mode: LockMode,
    /// The request's ticket (arrival order; smaller is older).
    pub ticket: u64,
}

impl Request {
    /// Whether `(range, mode)` of both conflict.
    pub fn conflicts_with(&self, other: &Request) -> bool {
        range::conflicts((self.range, self.mode), (other.range, other.mode))
    }
}

/// Whether `other` (another rank's slot, as read in an epoch) keeps `me` from being granted,
/// and so is what `me` must wait for.
///
/// * An ACTIVE conflicting slot blocks unless it carries a younger ticket: a younger request
///   can never be granted while `me` is pending (it defers to `me`), so an ACTIVE younger slot
///   is a try that will fail. An ACTIVE slot without a ticket yet ([`NO_TICKET`]) may be a
///   holder and always blocks.
/// * A WAITING conflicting slot blocks if it is older: newcomers defer to older waiters.
/// * IDLE or non-conflicting slots never block.
pub fn blocks(me: &Request, other: &Slot) -> bool {
    blocks_with(me, other, Faults::default())
}

/// [`blocks`], with the injected faults of the model checks' controls.
pub(crate) fn blocks_with(me: &Request, other: &Slot, faults: Faults) -> bool {
    if !other.conflicts_with(me.range, me.mode) {
        return false;
    }
    if faults.ignore_tickets {
        return other.state == State::Active;
    }
    match other.state {
        State::Idle => false,
        State::Active => other.ticket == NO_TICKET || other.ticket < me.ticket,
        State::Waiting => other.ticket < me.ticket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    #[test]
    fn slot_roundtrip() {
        let s = Slot::request(State::Waiting, r(3, 99), LockMode::Exclusive, 42);
        assert_eq!(Slot::decode(&s.encode()), s);
        assert_eq!(Slot::decode(&[0; SLOT_WORDS]).state, State::Idle);
        assert_eq!(Slot::decode(&Slot::IDLE.encode()), Slot::IDLE);
    }

    #[test]
    fn blocking_rule() {
        let me = Request {
            range: r(0, 10),
            mode: LockMode::Exclusive,
            ticket: 5,
        };
        let slot = |state, t| Slot::request(state, r(5, 15), LockMode::Shared, t);
        assert!(blocks(&me, &slot(State::Active, NO_TICKET)));
        assert!(blocks(&me, &slot(State::Active, 4)));
        assert!(!blocks(&me, &slot(State::Active, 6)));
        assert!(blocks(&me, &slot(State::Waiting, 4)));
        assert!(!blocks(&me, &slot(State::Waiting, 6)));
        assert!(!blocks(&me, &Slot::IDLE));
        let disjoint = Slot::request(State::Active, r(10, 20), LockMode::Exclusive, 1);
        assert!(!blocks(&me, &disjoint));
        let reader = Request {
            mode: LockMode::Shared,
            ..me
        };
        assert!(!blocks(&reader, &slot(State::Active, 1)));
    }
}

//! The handoff algorithm's table layout: a compact list of live requests, so that an epoch
//! moves bytes in proportion to the requests that are live, not to the number of ranks
//! (`docs/protocol.md`, "Layout").
//!
//! ```text
//! word 0                  ticket counter (shared with the slot layout)
//! word 1                  n, the number of live requests
//! words 2 + 5 i .. + 5    entry i < n: owner rank, then the owner's slot (state | mode,
//!                         start, end, ticket); only ACTIVE and WAITING requests are listed
//! ```
//!
//! The window holds room for one entry per rank (each rank has at most one live request), but
//! an epoch reads only the count and the first [`PREFETCH_ENTRIES`] entries in one round trip,
//! and the rest only when more are live. Removing an entry moves the last one into its place,
//! so a release writes at most one entry and the count.

use super::{Slot, Transport, NO_TICKET, SLOT_WORDS};
use crate::error::{Error, Result};

/// Word offset of the live-request count.
pub const COUNT_WORD: usize = 1;
/// Word offset of the first entry.
pub const LIST_OFFSET: usize = 2;
/// Words per entry: the owner rank, then its [`Slot`].
pub const ENTRY_WORDS: usize = 1 + SLOT_WORDS;
/// Entries read together with the count, in the epoch's first (and usually only) round trip.
pub const PREFETCH_ENTRIES: usize = 4;

// The count shares the window with the ticket counter, before the entries.
const _: () = assert!(COUNT_WORD != super::TICKET_WORD && COUNT_WORD < LIST_OFFSET);

/// Words of a window holding the list for `ranks` ranks.
pub fn list_words(ranks: usize) -> usize {
    LIST_OFFSET + ENTRY_WORDS * ranks
}

/// Word offset of entry `i`.
pub fn entry_offset(i: usize) -> usize {
    LIST_OFFSET + ENTRY_WORDS * i
}

/// One live request in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The requesting rank.
    pub rank: usize,
    /// Its request (never [`State::Idle`](super::State::Idle) in a list written by this code).
    pub slot: Slot,
}

impl Entry {
    /// The entry as window words.
    pub fn encode(&self) -> [u64; ENTRY_WORDS] {
        let mut words = [0; ENTRY_WORDS];
        words[0] = self.rank as u64;
        words[1..].copy_from_slice(&self.slot.encode());
        words
    }

    /// Decodes window words; `None` if the rank is not one of `ranks`.
    pub fn decode(words: &[u64], ranks: usize) -> Option<Entry> {
        let rank = usize::try_from(words[0]).ok().filter(|&r| r < ranks)?;
        Some(Entry {
            rank,
            slot: Slot::decode(&words[1..ENTRY_WORDS]),
        })
    }
}

/// One epoch's access to the table window, lent by [`Transport::transact`]. Word offsets are
/// into the home rank's window.
pub trait EpochAccess {
    /// Reads `buf.len()` words at `at`, after fetching and incrementing the ticket counter if
    /// `take_ticket`; both are complete when this returns (one round trip). Returns the ticket
    /// taken, or [`NO_TICKET`].
    fn read(&mut self, take_ticket: bool, at: usize, buf: &mut [u64]) -> Result<u64>;

    /// Writes `words` at `at` before the epoch ends, after every read of the epoch.
    fn write(&mut self, at: usize, words: &[u64]) -> Result<()>;
}

/// What one [`decided_epoch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The ticket taken, or [`NO_TICKET`].
    pub ticket: u64,
    /// Words moved between the rank and the window (read and written, the ticket's
    /// fetch-and-add counted as one).
    pub words: u64,
}

/// One decided epoch on the list: take a ticket if `take_ticket`, read the live requests,
/// call `decide(ticket, list)` once, and write back the entries it changed and the count.
/// `decide` may reorder nothing it keeps: entries are compared by position, so remove with
/// `swap_remove` and add with `push` to write the fewest words.
///
/// # Errors
/// The transport's; [`Error::Poisoned`] if the window holds a count or an owner that cannot
/// be (a corrupted table), or if `decide` leaves more entries than ranks.
pub fn decided_epoch<T: Transport + ?Sized>(
    transport: &mut T,
    take_ticket: bool,
    decide: &mut dyn FnMut(u64, &mut Vec<Entry>),
) -> Result<Decided> {
    let ranks = transport.size();
    let prefetch = PREFETCH_ENTRIES.min(ranks);
    let mut out = Decided {
        ticket: NO_TICKET,
        words: 0,
    };
    // Every buffer is allocated before the epoch: the time between lock and unlock is what
    // the other ranks wait for.
    let mut head = vec![0u64; 1 + prefetch * ENTRY_WORDS];
    let mut rest = Vec::new();
    let mut old: Vec<Entry> = Vec::with_capacity(prefetch + 1);
    let mut list: Vec<Entry> = Vec::with_capacity(prefetch + 1);
    transport.transact(&mut |access| {
        out.ticket = access.read(take_ticket, COUNT_WORD, &mut head)?;
        out.words = head.len() as u64 + u64::from(take_ticket);
        let n = usize::try_from(head[0])
            .ok()
            .filter(|&n| n <= ranks)
            .ok_or_else(|| {
                Error::Poisoned(format!(
                    "the lock table lists {} live requests for {ranks} ranks",
                    head[0]
                ))
            })?;
        let decode = |words: &[u64], into: &mut Vec<Entry>| {
            for w in words.chunks_exact(ENTRY_WORDS) {
                into.push(Entry::decode(w, ranks).ok_or_else(|| {
                    Error::Poisoned("the lock table lists a rank that is not one".into())
                })?);
            }
            Ok::<(), Error>(())
        };
        old.clear();
        decode(&head[1..1 + n.min(prefetch) * ENTRY_WORDS], &mut old)?;
        if n > prefetch {
            rest.clear();
            rest.resize((n - prefetch) * ENTRY_WORDS, 0);
            access.read(false, entry_offset(prefetch), &mut rest)?;
            out.words += rest.len() as u64;
            decode(&rest, &mut old)?;
        }
        list.clear();
        list.extend_from_slice(&old);
        decide(out.ticket, &mut list);
        if list.len() > ranks {
            return Err(Error::Poisoned(format!(
                "a decision left {} live requests for {ranks} ranks",
                list.len()
            )));
        }
        for (i, e) in list.iter().enumerate() {
            if old.get(i) != Some(e) {
                access.write(entry_offset(i), &e.encode())?;
                out.words += ENTRY_WORDS as u64;
            }
        }
        if list.len() != old.len() {
            access.write(COUNT_WORD, &[list.len() as u64])?;
            out.words += 1;
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::State;
    use crate::range::{ByteRange, LockMode};

    #[test]
    fn entry_roundtrip_and_bad_rank() {
        let slot = Slot::request(
            State::Waiting,
            ByteRange::new(3, 9).unwrap(),
            LockMode::Exclusive,
            7,
        );
        let e = Entry { rank: 5, slot };
        assert_eq!(Entry::decode(&e.encode(), 6), Some(e));
        assert_eq!(Entry::decode(&e.encode(), 5), None);
    }

    #[test]
    fn layout_fits_one_entry_per_rank() {
        assert_eq!(entry_offset(0), LIST_OFFSET);
        assert_eq!(list_words(3), entry_offset(3));
    }
}

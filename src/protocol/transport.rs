//! What the lock protocol needs from the world: "the table window and the wake-up channel".
//!
//! [`Transport`] is the only thing [`LockClient`](super::LockClient) talks to. The protocol
//! owns this abstraction and the table layout it carries; the transports in
//! [`crate::transport`] implement it: MPI one-sided communication, and an in-process
//! simulation for the model checks.

use std::time::Instant;

use super::list::EpochAccess;
use super::SLOT_WORDS;
use crate::error::Result;

/// The table window and the wake-up channel, from one rank's point of view.
pub trait Transport {
    /// This rank's index, `0..size()`.
    fn rank(&self) -> usize;

    /// Number of ranks sharing the table.
    fn size(&self) -> usize;

    /// One epoch on the table, atomic with respect to every other rank's epochs: write `mine`
    /// into this rank's slot, take a ticket if `take_ticket` (fetch-and-increment the ticket
    /// counter), and read every *other* rank's slot into `table` (`size() * SLOT_WORDS` words,
    /// rank `r`'s slot at `r * SLOT_WORDS`; this rank's own entry is left unspecified).
    ///
    /// Returns the ticket taken, or [`NO_TICKET`](super::NO_TICKET) when `take_ticket` is false.
    fn exchange(
        &mut self,
        mine: &[u64; SLOT_WORDS],
        take_ticket: bool,
        table: &mut [u64],
    ) -> Result<u64>;

    /// One exclusive epoch on the table, atomic with respect to every other rank's epochs,
    /// that reads before it writes: `body` reads through the [`EpochAccess`] it is lent (each
    /// read complete when it returns) and stages writes, which reach the window after every
    /// read and before the epoch ends. Used by the handoff algorithm's
    /// [`decided_epoch`](super::list::decided_epoch); `body` runs exactly once per epoch.
    ///
    /// Over MPI: `MPI_Win_lock(EXCLUSIVE)`; per read `MPI_Fetch_and_op` (the ticket) and
    /// `MPI_Get`, then `MPI_Win_flush`; the staged `MPI_Put`s; `MPI_Win_unlock`.
    fn transact(&mut self, body: &mut dyn FnMut(&mut dyn EpochAccess) -> Result<()>) -> Result<()>;

    /// Send one wake-up to rank `to`. Never blocks waiting for the receiver.
    fn send_wakeup(&mut self, to: usize) -> Result<()>;

    /// Consume one wake-up addressed to this rank, blocking until one arrives or `deadline`
    /// passes. Returns `false` on timeout (nothing consumed).
    fn wait_wakeup(&mut self, deadline: Option<Instant>) -> Result<bool>;

    /// Collective teardown. `sent[r]` is the number of wake-ups this rank sent to `r` over the
    /// transport's life and `received` the number it consumed. When `drain` is set, every
    /// wake-up still addressed to this rank is consumed (exact accounting: the transport learns
    /// how many were sent to it in total). Then it checks for anything left over.
    fn shutdown(&mut self, sent: &[u64], received: u64, drain: bool) -> Result<Drained>;
}

/// What [`Transport::shutdown`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drained {
    /// Stale wake-ups consumed at teardown (sent but never needed; harmless).
    pub drained: u64,
    /// Wake-ups still pending after the drain: must be 0.
    pub leftover: u64,
}

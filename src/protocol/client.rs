//! The protocol driver: one rank's side of the lock, over any [`Transport`].

use std::time::Instant;

use tracing::field::Empty;

use super::list::{self, Entry};
use super::{
    blocks_with, handoff, Algorithm, Drained, Faults, Request, Slot, State, Transport, NO_TICKET,
    SLOT_WORDS,
};
use crate::error::{ensure_free, Error, Result};
use crate::range::{ByteRange, LockMode};

/// Counters kept by a [`LockClient`]; cheap, always on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Ranges granted.
    pub acquisitions: u64,
    /// Requests given up (failed `try_lock`, timeout, error).
    pub abandoned: u64,
    /// Failed grant attempts followed by another attempt.
    pub retries: u64,
    /// The most retries one request needed.
    pub max_retries: u64,
    /// Table epochs performed.
    pub epochs: u64,
    /// Words (8 bytes each) moved between this rank and the table window, read and written
    /// (the ticket's fetch-and-add counts as one): the layout's cost per epoch.
    pub words: u64,
    /// Times this rank blocked for a wake-up.
    pub waits: u64,
    /// Wake-ups sent.
    pub wakeups_sent: u64,
    /// Wake-ups consumed while waiting.
    pub wakeups_received: u64,
}

/// Which conflicting waiters a leaving rank wakes.
#[derive(Debug, Clone, Copy)]
enum Wake {
    /// Those older than the given ticket (a retreat from a ticketless first attempt).
    OlderThan(u64),
    /// Those that nothing else blocks (a release or a give-up).
    Unblocked,
}

/// How long a request may wait for its range ([`LockClient::request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Not at all: take the range if nothing blocks it now (`try_lock`).
    Never,
    /// Until this instant (`lock_timeout`).
    Until(Instant),
    /// As long as it takes (`lock`).
    Forever,
}

impl Patience {
    fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Which conflicting waiters a release (or a request that gives up) wakes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WakePolicy {
    /// Only the waiters that nothing else blocks in the releasing epoch's view: a waiter that
    /// something else still blocks would only fail again, and its remaining blocker wakes it
    /// later (`docs/protocol.md`, "No lost wake-up"). The default.
    #[default]
    Unblocked,
    /// Every conflicting waiter, as the 2005 algorithm does: correct too, with more wake-ups
    /// and retry epochs. For comparisons.
    AllConflicting,
}

/// One rank's handle on a byte-range lock service: the protocol of `docs/protocol.md` run over
/// a [`Transport`]. Implements [`RangeLock`](crate::lock::RangeLock).
///
/// Creating and shutting down the transport are collective; so is [`LockClient::shutdown`],
/// which every rank must call at the same point. Dropping a client instead (an early return
/// on an error) releases what it holds, which involves no other rank, so that no peer waits
/// for the range, and leaves the transport without its collective teardown (for the MPI
/// transport, see [`crate::sys`], "Lifetime rules").
#[derive(Debug)]
pub struct LockClient<T: Transport> {
    transport: T,
    rank: usize,
    held: Option<(ByteRange, LockMode)>,
    /// Other ranks' slots as read in the last epoch.
    table: Vec<u64>,
    /// Wake-ups sent to each rank, for exact accounting at shutdown.
    sent: Vec<u64>,
    received: u64,
    last_ticket: Option<u64>,
    stats: Stats,
    wake_policy: WakePolicy,
    algorithm: Algorithm,
    /// Handoff: grant messages still to come for requests that failed after being granted
    /// (an error path); the next waits skip that many messages.
    stale_grants: u64,
    faults: Faults,
    /// Set when a transport failure may have left this rank's slot non-idle.
    broken: Option<String>,
    shut_down: bool,
}

impl<T: Transport> LockClient<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        let size = transport.size();
        LockClient {
            rank: transport.rank(),
            transport,
            held: None,
            table: vec![0; size * SLOT_WORDS],
            sent: vec![0; size],
            received: 0,
            last_ticket: None,
            stats: Stats::default(),
            wake_policy: WakePolicy::default(),
            algorithm: Algorithm::default(),
            stale_grants: 0,
            faults: Faults::default(),
            broken: None,
            shut_down: false,
        }
    }

    /// Wakes waiters by `policy` from now on.
    pub fn with_wake_policy(mut self, policy: WakePolicy) -> Self {
        self.wake_policy = policy;
        self
    }

    /// Runs `algorithm` from now on (call before the first request; every rank of a service
    /// must run the same one).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The algorithm this client runs.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Runs a deliberately broken protocol variant (the model checks' negative controls).
    #[cfg(feature = "testing")]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The range and mode currently held, if any.
    pub fn held(&self) -> Option<(ByteRange, LockMode)> {
        self.held
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The ticket of the most recent request (its arrival order among all requests).
    pub fn last_ticket(&self) -> Option<u64> {
        self.last_ticket
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Release anything held, then tear down collectively: every wake-up still addressed to
    /// this rank is consumed. Returns what the drain found (`leftover` must be 0).
    ///
    /// # Errors
    /// Transport errors; the release error if releasing failed.
    pub fn shutdown(mut self) -> Result<Drained> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<Drained> {
        if self.shut_down {
            return Ok(Drained::default());
        }
        // Release before marking the client shut down: release refuses a shut-down client.
        let released = if self.held.is_some() {
            self.release()
        } else {
            Ok(())
        };
        self.shut_down = true;
        let drained =
            self.transport
                .shutdown(&self.sent, self.received, !self.faults.skip_drain)?;
        released.map(|()| drained)
    }

    fn usable(&self) -> Result<()> {
        if self.shut_down {
            return Err(Error::Poisoned("the lock service was shut down".into()));
        }
        match &self.broken {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// One table epoch: publish `slot`, read the others. Returns the ticket if one was taken.
    fn exchange(&mut self, slot: Slot, take_ticket: bool) -> Result<u64> {
        self.stats.epochs += 1;
        self.stats.words += super::exchange_words(self.table.len() / SLOT_WORDS, take_ticket);
        self.transport
            .exchange(&slot.encode(), take_ticket, &mut self.table)
    }

    fn others(&self) -> impl Iterator<Item = (usize, Slot)> + '_ {
        let me = self.rank;
        self.table
            .chunks_exact(SLOT_WORDS)
            .enumerate()
            .filter(move |(r, _)| *r != me)
            .map(|(r, w)| (r, Slot::decode(w)))
    }

    /// Whether anything in the last epoch's view keeps `me` from being granted.
    fn blocked(&self, me: &Request) -> bool {
        !self.faults.ignore_conflicts
            && self.others().any(|(_, s)| blocks_with(me, &s, self.faults))
    }

    /// Send a wake-up to every rank whose slot, in the last epoch's view, is WAITING for a
    /// range that conflicts with `me` and is selected by `which`. Returns how many were woken.
    fn wake(&mut self, me: &Request, which: Wake) -> Result<u64> {
        let waiting_for_me =
            |s: &Slot| s.state == State::Waiting && s.conflicts_with(me.range, me.mode);
        // Only for the injected fault `wake_oldest_only`; no scan otherwise.
        let oldest = if self.faults.wake_oldest_only {
            self.others()
                .filter(|(_, s)| waiting_for_me(s))
                .map(|(_, s)| s.ticket)
                .min()
        } else {
            None
        };
        let mut woken = 0;
        for (r, words) in self.table.chunks_exact(SLOT_WORDS).enumerate() {
            let s = Slot::decode(words);
            if r == self.rank || !waiting_for_me(&s) {
                continue;
            }
            let wanted = match (which, oldest) {
                (Wake::OlderThan(ticket), _) => s.ticket < ticket,
                (Wake::Unblocked, Some(oldest)) => s.ticket == oldest,
                (Wake::Unblocked, None) => {
                    self.wake_policy == WakePolicy::AllConflicting || !self.still_blocked(r, &s)
                }
            };
            if wanted {
                self.transport.send_wakeup(r)?;
                self.sent[r] += 1;
                woken += 1;
            }
        }
        self.stats.wakeups_sent += woken;
        Ok(woken)
    }

    /// Whether the waiting slot `w` of rank `waiter` is blocked by some slot other than its
    /// own and this rank's, in the last epoch's view. Such a waiter need not be woken when
    /// this rank leaves: its remaining blocker wakes it when it stops blocking it (see
    /// `docs/protocol.md`, "No lost wake-up").
    fn still_blocked(&self, waiter: usize, w: &Slot) -> bool {
        let Ok(range) = ByteRange::new(w.start, w.end) else {
            return false;
        };
        let req = Request {
            range,
            mode: w.mode,
            ticket: w.ticket,
        };
        self.others()
            .any(|(r, s)| r != waiter && blocks_with(&req, &s, self.faults))
    }

    /// Clear this rank's slot and wake the conflicting waiters nothing else blocks: used both
    /// to release a held range and to give up a request (a waiter may have blocked on our
    /// ACTIVE or older slot).
    fn clear_and_wake(&mut self, me: &Request, wake: bool) -> Result<u64> {
        self.exchange(Slot::IDLE, false)?;
        if wake {
            self.wake(me, Wake::Unblocked)
        } else {
            Ok(0)
        }
    }

    /// Requests `range` in `mode`, waiting as `patience` allows. Returns whether it was
    /// granted; a request that gives up (or fails) leaves nothing held and no other rank
    /// waiting because of it. This is what [`RangeLock`](crate::lock::RangeLock)'s `lock`,
    /// `try_lock` and `lock_timeout` do.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`] if a range is held; [`Error::Poisoned`] after a failure that may
    /// have left this rank's slot published, or after shutdown; transport errors.
    pub fn request(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        patience: Patience,
    ) -> Result<bool> {
        self.usable()?;
        ensure_free(self.held, range)?;
        let span = tracing::debug_span!(
            "acquire",
            rank = self.rank,
            %range,
            %mode,
            ticket = Empty,
            retries = Empty,
            wait_us = Empty,
            granted = Empty
        );
        let _entered = span.enter();
        // Reading the clock costs as much as a shared-memory epoch on some machines: only when
        // the span is recorded.
        let started = (!span.is_disabled()).then(Instant::now);
        let mut ticket = NO_TICKET;
        let outcome = match self.algorithm {
            Algorithm::Tr2005 => self.acquire_loop(range, mode, patience, &mut ticket),
            Algorithm::Handoff => self.handoff_acquire(range, mode, patience, &mut ticket),
        };
        let retries = match &outcome {
            Ok((_, retries)) => *retries,
            Err(_) => 0,
        };
        span.record("ticket", ticket);
        span.record("retries", retries);
        if let Some(started) = started {
            span.record("wait_us", started.elapsed().as_micros() as u64);
        }
        match outcome {
            Ok((true, retries)) => {
                self.held = Some((range, mode));
                self.stats.acquisitions += 1;
                self.stats.max_retries = self.stats.max_retries.max(retries);
                span.record("granted", true);
                tracing::debug!("granted");
                Ok(true)
            }
            Ok((false, _)) => {
                self.stats.abandoned += 1;
                span.record("granted", false);
                tracing::debug!("gave up");
                Ok(false)
            }
            Err(e) => {
                // Our slot may still say ACTIVE or WAITING: clear it and wake whoever waits on
                // it, so that our failure strands nobody. If even that fails, refuse further use.
                self.stats.abandoned += 1;
                let me = Request {
                    range,
                    mode,
                    ticket,
                };
                let cleared = match self.algorithm {
                    Algorithm::Tr2005 => self.clear_and_wake(&me, true).map(|_| ()),
                    Algorithm::Handoff => self.withdraw(&me, false).map(|granted| {
                        // Its grant message is still to come: not for a later request.
                        self.stale_grants += u64::from(granted);
                    }),
                };
                if let Err(e2) = cleared {
                    self.broken = Some(format!(
                        "acquire failed ({e}) and clearing the slot failed too ({e2})"
                    ));
                }
                tracing::warn!(error = %e, "acquire failed");
                Err(e)
            }
        }
    }

    /// The protocol's acquire loop. Returns (granted, retries); on `Ok((false, _))` the slot has
    /// been cleared and conflicting waiters woken.
    fn acquire_loop(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        patience: Patience,
        ticket: &mut u64,
    ) -> Result<(bool, u64)> {
        let mut retries = 0;
        loop {
            // Attempt: publish ACTIVE, read the others (taking a ticket on the first attempt).
            let first = *ticket == NO_TICKET;
            let taken = self.exchange(Slot::request(State::Active, range, mode, *ticket), first)?;
            if first {
                *ticket = taken;
                self.last_ticket = Some(taken);
            }
            let me = Request {
                range,
                mode,
                ticket: *ticket,
            };
            if !self.blocked(&me) {
                return Ok((true, retries));
            }
            let expired = match patience {
                Patience::Never => true,
                Patience::Until(d) => Instant::now() >= d,
                Patience::Forever => false,
            };
            if expired {
                self.clear_and_wake(&me, true)?;
                return Ok((false, retries));
            }
            // Retreat: publish WAITING, read the others again.
            self.exchange(Slot::request(State::Waiting, range, mode, me.ticket), false)?;
            if first && !self.faults.skip_retreat_wakeups {
                // Our ticketless ACTIVE slot may have made an older waiter block on us; we now
                // defer to it, so it must retry.
                self.wake(&me, Wake::OlderThan(me.ticket))?;
            }
            if self.blocked(&me) {
                self.stats.waits += 1;
                if !self.transport.wait_wakeup(patience.deadline())? {
                    self.clear_and_wake(&me, true)?;
                    return Ok((false, retries));
                }
                self.received += 1;
                self.stats.wakeups_received += 1;
            }
            retries += 1;
            self.stats.retries += 1;
        }
    }

    /// One decided epoch on the request list ([`list::decided_epoch`]). Returns the ticket.
    fn transact(
        &mut self,
        take_ticket: bool,
        decide: &mut dyn FnMut(u64, &mut Vec<Entry>),
    ) -> Result<u64> {
        self.stats.epochs += 1;
        let done = list::decided_epoch(&mut self.transport, take_ticket, decide)?;
        self.stats.words += done.words;
        Ok(done.ticket)
    }

    /// Handoff: send each granted rank its "you hold it" message.
    fn send_grants(&mut self, granted: &[usize]) -> Result<u64> {
        if self.faults.lose_grant_message {
            return Ok(0);
        }
        for &r in granted {
            self.transport.send_wakeup(r)?;
            self.sent[r] += 1;
        }
        let n = granted.len() as u64;
        self.stats.wakeups_sent += n;
        Ok(n)
    }

    /// Handoff: wait for this rank's grant message until `deadline`. Returns whether it came.
    fn receive_grant(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            if !self.transport.wait_wakeup(deadline)? {
                return Ok(false);
            }
            self.received += 1;
            self.stats.wakeups_received += 1;
            if self.stale_grants == 0 {
                return Ok(true);
            }
            self.stale_grants -= 1;
        }
    }

    /// Handoff acquire: take the ticket and decide in one epoch; if blocked, wait for the
    /// grant, which arrives with the range already held. Returns (granted, retries = 0).
    fn handoff_acquire(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        patience: Patience,
        ticket: &mut u64,
    ) -> Result<(bool, u64)> {
        #[derive(Clone, Copy, PartialEq)]
        enum Decided {
            Held,
            Refused,
            Waiting,
        }
        let (rank, faults) = (self.rank, self.faults);
        let mut decided = Decided::Refused;
        let taken = self.transact(true, &mut |t, list| {
            let me = Request {
                range,
                mode,
                ticket: t,
            };
            // A request of this rank still listed could only be left by a failure, which
            // makes the client unusable; never list two.
            handoff::remove(list, rank);
            let state = if handoff::admissible(&me, rank, list, faults) {
                decided = Decided::Held;
                State::Active
            } else if patience == Patience::Never {
                // A failed try_lock publishes nothing.
                decided = Decided::Refused;
                return;
            } else {
                decided = Decided::Waiting;
                State::Waiting
            };
            list.push(Entry {
                rank,
                slot: Slot::request(state, range, mode, t),
            });
        })?;
        *ticket = taken;
        self.last_ticket = Some(taken);
        match decided {
            Decided::Held => return Ok((true, 0)),
            Decided::Refused => return Ok((false, 0)),
            Decided::Waiting => {}
        }
        self.stats.waits += 1;
        if self.receive_grant(patience.deadline())? {
            return Ok((true, 0));
        }
        // Timed out: withdraw, unless a grant is already on its way; then it is ours.
        let me = Request {
            range,
            mode,
            ticket: taken,
        };
        if self.withdraw(&me, true)? {
            if !self.receive_grant(None)? {
                return Err(Error::Poisoned(
                    "a granted waiter's grant message never arrived".into(),
                ));
            }
            return Ok((true, 0));
        }
        Ok((false, 0))
    }

    /// Handoff: in one epoch, read this rank's slot; if a releaser has already granted it (its
    /// slot is ACTIVE with `me`'s ticket) and `keep` is set, change nothing and return true.
    /// Otherwise clear the slot, grant the waiters that unblocks and send their messages;
    /// returns whether the slot had been granted.
    fn withdraw(&mut self, me: &Request, keep: bool) -> Result<bool> {
        let (rank, faults) = (self.rank, self.faults);
        let mut was_granted = false;
        let mut granted = Vec::new();
        let me = *me;
        self.transact(false, &mut |_, list| {
            was_granted = handoff::own(list, rank)
                .is_some_and(|own| own.state == State::Active && own.ticket == me.ticket)
                && !faults.timeout_ignores_grant;
            if was_granted && keep {
                return;
            }
            handoff::remove(list, rank);
            granted = handoff::grant_waiters(list, (me.range, me.mode), faults);
        })?;
        self.send_grants(&granted)?;
        Ok(was_granted)
    }

    /// Handoff release: clear this rank's slot and grant, in the same epoch, the waiters that
    /// unblocks; then send each its message. Returns how many were granted.
    fn leave_and_grant(&mut self, me: &Request) -> Result<u64> {
        let (rank, faults) = (self.rank, self.faults);
        let mut granted = Vec::new();
        let me = *me;
        self.transact(false, &mut |_, list| {
            handoff::remove(list, rank);
            granted = handoff::grant_waiters(list, (me.range, me.mode), faults);
        })?;
        self.send_grants(&granted)
    }

    /// Releases the range held, waking the waiters it unblocks.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if nothing is held; [`Error::Poisoned`] as for
    /// [`LockClient::request`]; transport errors (the service is unusable afterwards).
    pub fn release(&mut self) -> Result<()> {
        self.usable()?;
        let (range, mode) = self.held.ok_or(Error::NotHeld)?;
        let span =
            tracing::debug_span!("release", rank = self.rank, %range, %mode, wakeups = Empty);
        let _entered = span.enter();
        // Forget the range first: if the epoch fails, retrying the release is not meaningful.
        self.held = None;
        let me = Request {
            range,
            mode,
            ticket: NO_TICKET,
        };
        let outcome = match self.algorithm {
            Algorithm::Tr2005 => self.clear_and_wake(&me, !self.faults.skip_release_wakeups),
            Algorithm::Handoff => self.leave_and_grant(&me),
        };
        match outcome {
            Ok(woken) => {
                span.record("wakeups", woken);
                Ok(())
            }
            Err(e) => {
                self.broken = Some(format!("release failed: {e}"));
                Err(e)
            }
        }
    }
}

impl<T: Transport> Drop for LockClient<T> {
    /// Releases what is held; never the collective teardown (see [`LockClient`]).
    fn drop(&mut self) {
        if self.shut_down || self.held.is_none() || self.broken.is_some() {
            return;
        }
        if let Err(e) = self.release() {
            tracing::error!(error = %e, "releasing a byte range on drop failed");
        }
    }
}

//! The in-process simulation of the table window and the wake-up channel.
//!
//! Simulated ranks are threads. The table is a `Vec<u64>` behind one mutex (an exclusive
//! epoch is one critical section), and each rank's mailbox is a counter of pending
//! (content-free) wake-ups behind a mutex and a condition variable. Everything is built from
//! `crate::sync` (src/sync.rs), so the same code runs on real threads, under loom and under shuttle.

use std::time::Instant;

use crate::error::Error;
use crate::error::Result;
use crate::protocol::list::EpochAccess;
use crate::protocol::{
    slot_offset, window_words, Drained, Transport, NO_TICKET, SLOT_WORDS, TICKET_WORD,
};
use crate::sync::{self, thread, Arc, Condvar, Mutex};

#[derive(Debug, Default)]
struct Mailbox {
    pending: Mutex<u64>,
    arrived: Condvar,
}

#[derive(Debug, Default)]
struct Teardown {
    /// Ranks that have entered shutdown, and that have finished draining.
    entered: usize,
    drained: usize,
    /// Wake-ups sent to each rank, summed over all senders.
    sent_to: Vec<u64>,
}

#[derive(Debug)]
struct World {
    size: usize,
    table: Mutex<Vec<u64>>,
    mailboxes: Vec<Mailbox>,
    teardown: Mutex<Teardown>,
    teardown_cv: Condvar,
}

impl World {
    /// Waits until `counter` (just advanced by the caller) has counted every rank; the last
    /// rank to arrive wakes the others. Only the last needs to: nobody waits for anything
    /// else, and waking everyone at every arrival made a barrier of P ranks cost O(P^2)
    /// wake-ups (minutes per execution at 4,096 simulated ranks under shuttle).
    fn wait_for_all<'a>(
        &self,
        mut td: sync::MutexGuard<'a, Teardown>,
        counter: fn(&Teardown) -> usize,
    ) -> sync::MutexGuard<'a, Teardown> {
        if counter(&td) >= self.size {
            self.teardown_cv.notify_all();
        }
        while counter(&td) < self.size {
            td = self.teardown_cv.wait(td).unwrap_or_else(|p| p.into_inner());
        }
        td
    }
}

/// One simulated rank's transport. Create a set with [`world`].
#[derive(Debug)]
pub struct SimTransport {
    world: Arc<World>,
    rank: usize,
}

/// Transports for `size` simulated ranks sharing one table.
pub fn world(size: usize) -> Vec<SimTransport> {
    let world = Arc::new(World {
        size,
        table: Mutex::new(vec![0; window_words(size)]),
        mailboxes: (0..size).map(|_| Mailbox::default()).collect(),
        teardown: Mutex::new(Teardown {
            sent_to: vec![0; size],
            ..Teardown::default()
        }),
        teardown_cv: Condvar::new(),
    });
    (0..size)
        .map(|rank| SimTransport {
            world: world.clone(),
            rank,
        })
        .collect()
}

/// Like [`run_ranks`], with `shards` independent worlds (one table and wake-up channel each,
/// as for a [`Sharded`](crate::lock::Sharded) lock): `body` gets each rank's transport of
/// every world, in world order.
pub fn run_ranks_sharded<F, R>(size: usize, shards: usize, body: F) -> Vec<R>
where
    F: Fn(Vec<SimTransport>) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let mut worlds: Vec<std::vec::IntoIter<SimTransport>> =
        (0..shards).map(|_| world(size).into_iter()).collect();
    let per_rank: Vec<Vec<SimTransport>> = (0..size)
        .map(|_| worlds.iter_mut().filter_map(Iterator::next).collect())
        .collect();
    let body = Arc::new(body);
    let handles: Vec<_> = per_rank
        .into_iter()
        .map(|ts| {
            let body = body.clone();
            thread::spawn(move || body(ts))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
        .collect()
}

/// [`EpochAccess`] inside the table's critical section: reads copy out at once, writes are
/// applied when the body is done (after every read, as over MPI).
struct SimAccess<'a> {
    table: &'a mut Vec<u64>,
    staged: Vec<(usize, Vec<u64>)>,
}

impl SimAccess<'_> {
    fn check(&self, at: usize, len: usize) -> Result<()> {
        if at
            .checked_add(len)
            .is_some_and(|end| end <= self.table.len())
        {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{len} word(s) at {at} do not fit the simulated table of {} words",
                self.table.len()
            )))
        }
    }
}

impl EpochAccess for SimAccess<'_> {
    fn read(&mut self, take_ticket: bool, at: usize, buf: &mut [u64]) -> Result<u64> {
        self.check(at, buf.len())?;
        let ticket = if take_ticket {
            let t = self.table[TICKET_WORD];
            self.table[TICKET_WORD] = t + 1;
            t
        } else {
            NO_TICKET
        };
        buf.copy_from_slice(&self.table[at..at + buf.len()]);
        Ok(ticket)
    }

    fn write(&mut self, at: usize, words: &[u64]) -> Result<()> {
        self.check(at, words.len())?;
        self.staged.push((at, words.to_vec()));
        Ok(())
    }
}

/// Run `body` on `size` simulated ranks, one thread each, and return their results in rank
/// order. A panicking rank panics the caller.
pub fn run_ranks<F, R>(size: usize, body: F) -> Vec<R>
where
    F: Fn(SimTransport) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    run_ranks_sharded(size, 1, move |mut ts| body(ts.remove(0)))
}

impl Transport for SimTransport {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.world.size
    }

    fn exchange(
        &mut self,
        mine: &[u64; SLOT_WORDS],
        take_ticket: bool,
        table: &mut [u64],
    ) -> Result<u64> {
        let mut shared = sync::lock(&self.world.table);
        let at = slot_offset(self.rank);
        shared[at..at + SLOT_WORDS].copy_from_slice(mine);
        let ticket = if take_ticket {
            let t = shared[TICKET_WORD];
            shared[TICKET_WORD] = t + 1;
            t
        } else {
            NO_TICKET
        };
        table.copy_from_slice(&shared[slot_offset(0)..slot_offset(self.world.size)]);
        Ok(ticket)
    }

    fn transact(&mut self, body: &mut dyn FnMut(&mut dyn EpochAccess) -> Result<()>) -> Result<()> {
        let mut shared = sync::lock(&self.world.table);
        let mut access = SimAccess {
            table: &mut shared,
            staged: Vec::new(),
        };
        body(&mut access)?;
        let SimAccess { table, staged } = access;
        for (at, words) in staged {
            table[at..at + words.len()].copy_from_slice(&words);
        }
        Ok(())
    }

    fn send_wakeup(&mut self, to: usize) -> Result<()> {
        let mailbox = &self.world.mailboxes[to];
        *sync::lock(&mailbox.pending) += 1;
        mailbox.arrived.notify_one();
        Ok(())
    }

    fn wait_wakeup(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let mailbox = &self.world.mailboxes[self.rank];
        let mut pending = sync::lock(&mailbox.pending);
        loop {
            if *pending > 0 {
                *pending -= 1;
                return Ok(true);
            }
            let (guard, timed_out) = sync::wait_until(&mailbox.arrived, pending, deadline);
            pending = guard;
            if timed_out && *pending == 0 {
                return Ok(false);
            }
        }
    }

    fn shutdown(&mut self, sent: &[u64], received: u64, drain: bool) -> Result<Drained> {
        let world = &self.world;
        // Phase 1: publish what we sent; wait for everyone.
        let mut td = sync::lock(&world.teardown);
        for (total, mine) in td.sent_to.iter_mut().zip(sent) {
            *total += mine;
        }
        td.entered += 1;
        let td = world.wait_for_all(td, |t| t.entered);
        let owed = td.sent_to[self.rank].saturating_sub(received);
        drop(td);
        // Every send has completed (senders are past phase 1), so what we are owed is queued.
        let mut drained = 0;
        if drain {
            let mut pending = sync::lock(&world.mailboxes[self.rank].pending);
            drained = owed.min(*pending);
            *pending -= drained;
        }
        // Phase 2: wait until everyone drained, then look for leftovers.
        let mut td = sync::lock(&world.teardown);
        td.drained += 1;
        drop(world.wait_for_all(td, |t| t.drained));
        let leftover = *sync::lock(&world.mailboxes[self.rank].pending);
        Ok(Drained { drained, leftover })
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lock::RangeLock;
    use crate::protocol::LockClient;
    use crate::range::{ByteRange, LockMode};
    use crate::Error;

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    #[test]
    fn uncontended_lock_is_one_epoch_each_way() {
        let mut c = LockClient::new(world(1).remove(0));
        c.lock(r(0, 10), LockMode::Exclusive).unwrap();
        c.unlock().unwrap();
        assert_eq!(c.stats().epochs, 2);
        assert!(matches!(c.unlock(), Err(Error::NotHeld)));
    }

    #[test]
    fn second_range_is_an_error_not_a_deadlock() {
        let mut ts = world(1);
        let mut c = LockClient::new(ts.remove(0));
        let g = c.acquire(r(0, 10), LockMode::Shared).unwrap();
        drop(g);
        c.lock(r(0, 10), LockMode::Shared).unwrap();
        let err = c.lock(r(20, 30), LockMode::Exclusive).unwrap_err();
        assert!(matches!(err, Error::AlreadyHeld { .. }), "{err}");
        assert!(c.held().is_some());
    }

    #[test]
    fn try_and_timeout_give_up_cleanly() {
        let results = run_ranks(2, |t| {
            let me = t.rank();
            let mut c = LockClient::new(t);
            let bar = r(0, 100);
            if me == 0 {
                c.lock(bar, LockMode::Exclusive).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                c.unlock().unwrap();
                (true, true, c.shutdown().unwrap())
            } else {
                std::thread::sleep(Duration::from_millis(50));
                let tried = c.try_lock(bar, LockMode::Shared).unwrap();
                let timed = c
                    .lock_timeout(bar, LockMode::Shared, Duration::from_millis(20))
                    .unwrap();
                // Eventually it gets the range.
                c.lock(bar, LockMode::Shared).unwrap();
                c.unlock().unwrap();
                (tried, timed, c.shutdown().unwrap())
            }
        });
        assert!(!results[1].0, "try_lock must fail while rank 0 holds");
        assert!(
            !results[1].1,
            "lock_timeout must time out while rank 0 holds"
        );
        for (_, _, drained) in &results {
            assert_eq!(drained.leftover, 0);
        }
    }

    #[test]
    fn dropping_a_holding_client_releases() {
        // The drop releases (no other rank is involved) but skips the collective teardown,
        // which the other rank would otherwise wait in: so both ranks drop here.
        let results = run_ranks(2, |t| {
            let me = t.rank();
            let mut c = LockClient::new(t);
            if me == 0 {
                c.lock(r(0, 10), LockMode::Exclusive).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                drop(c);
                true
            } else {
                std::thread::sleep(Duration::from_millis(10));
                c.lock(r(5, 6), LockMode::Exclusive).unwrap();
                c.unlock().unwrap();
                drop(c);
                true
            }
        });
        assert!(results.into_iter().all(|ok| ok));
    }
}

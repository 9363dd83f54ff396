//! The MPI one-sided transport: the lock table in a window on the home rank, wake-ups as
//! zero-byte messages on a private communicator.
//!
//! * Window: `table_words(P)` u64 words on the home rank (0 elsewhere): the ticket counter
//!   then one [`SLOT_WORDS`]-word slot per rank (see [`crate::protocol`]).
//! * An exchange is one passive-target **exclusive** epoch on the home rank: `MPI_Put` of
//!   this rank's slot, `MPI_Fetch_and_op(SUM, 1)` on the ticket counter when a ticket is
//!   taken, and two `MPI_Get`s for the slots before and after this rank's own (a put and a
//!   get of overlapping locations in one epoch would be erroneous).
//! * Wake-ups: zero-byte messages with tag [`WAKE_TAG`] on a duplicate of the user's
//!   communicator, so they can never match the application's receives.
//!
//! * A decided epoch ([`Transport::transact`], the handoff algorithm's request list): the same
//!   exclusive epoch with the ticket's `MPI_Fetch_and_op` and an `MPI_Get` of the list's
//!   head, completed by `MPI_Win_flush` (a second get and flush only when more requests are
//!   live than the head holds), then one `MPI_Put` per word run the protocol decided to
//!   write.
//!
//! Progress: with Open MPI's `osc sm` the home rank need not enter MPI for others' epochs to
//! complete; with `osc pt2pt` (and `ucx`) it must. See `docs/protocol.md`, "Progress".

use std::time::{Duration, Instant};

use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, Rank};
use mpi::traits::CommunicatorCollectives;

use crate::error::{Error, Result};
use crate::protocol::list::EpochAccess;
use crate::protocol::{
    slot_offset, window_words, Drained, Transport, NO_TICKET, SLOT_WORDS, TICKET_WORD,
};
use crate::sys::{Epoch, LockKind, Op, OwnedComm, Window};

/// Tag of wake-up messages on the service's private communicator.
pub const WAKE_TAG: i32 = 0x6272;

/// How long a waiter polls for its wake-up flat out before it yields its core between polls
/// (`sched_yield`): short waits (an uncontended hand-over takes a few microseconds) are not
/// slowed down, long ones (a holder doing file I/O) leave the core to whoever can use it.
/// Measured on 2 cores, GlusterFS, 2 ranks sieving the same extent: yielding cut the time of
/// `bench sieve` by a third; see `docs/protocol.md`, "Waiting".
const SPIN: Duration = Duration::from_micros(20);

/// How long shutdown keeps probing for unaccounted wake-ups after the drain.
const LEFTOVER_PROBE: Duration = Duration::from_millis(2);

/// One rank's side of the MPI table window and wake-up channel.
///
/// [`Transport::shutdown`] frees the window and the communicator (collective). Dropped without
/// it, for instance on an error path, the transport leaves both to MPI without a collective
/// call (see [`crate::sys`], "Lifetime rules").
#[derive(Debug)]
pub struct RmaTransport {
    /// The window and the communicator, until shutdown frees them.
    live: Option<Live>,
    home: Rank,
    rank: usize,
    size: usize,
}

impl RmaTransport {
    /// Creates the table window on `home` and the private communicator, collectively over
    /// `comm`; see [`RmaLock::open`](crate::lock::RmaLock).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `home` is not a rank of `comm`; MPI errors.
    pub fn new(comm: &impl Communicator, home: Rank) -> Result<Self> {
        let size = comm.size();
        if !(0..size).contains(&home) {
            return Err(Error::InvalidArgument(format!(
                "home rank {home} is not a rank of the communicator (0..{size})"
            )));
        }
        let comm = OwnedComm::duplicate(comm)?;
        let rank = comm.rank();
        let size = size as usize;
        let words = if rank == home { window_words(size) } else { 0 };
        let window = Window::allocate(comm.comm(), words)?;
        tracing::debug!(
            home,
            ranks = size,
            table_words = words,
            "lock service created"
        );
        Ok(RmaTransport {
            live: Some(Live { window, comm }),
            home,
            rank: rank as usize,
            size,
        })
    }

    /// The rank that holds the table.
    pub fn home(&self) -> Rank {
        self.home
    }

    fn live(&self) -> Result<&Live> {
        self.live
            .as_ref()
            .ok_or_else(|| Error::Poisoned("the lock service was shut down".into()))
    }
}

/// What the transport frees at shutdown.
#[derive(Debug)]
struct Live {
    // Field order is drop order: the window before its communicator.
    window: Window,
    comm: OwnedComm,
}

impl Transport for RmaTransport {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn exchange(
        &mut self,
        mine: &[u64; SLOT_WORDS],
        take_ticket: bool,
        table: &mut [u64],
    ) -> Result<u64> {
        let me = self.rank;
        let (before, rest) = table.split_at_mut(me * SLOT_WORDS);
        let after = &mut rest[SLOT_WORDS..];
        let one = 1u64;
        let mut ticket = NO_TICKET;
        self.live()?
            .window
            .with_lock(self.home, LockKind::Exclusive, |e| {
                e.put(mine, slot_offset(me))?;
                if take_ticket {
                    e.fetch_and_op(&one, &mut ticket, TICKET_WORD, Op::Sum)?;
                }
                if !before.is_empty() {
                    e.get(before, slot_offset(0))?;
                }
                if !after.is_empty() {
                    e.get(after, slot_offset(me + 1))?;
                }
                Ok(())
            })?;
        Ok(ticket)
    }

    fn transact(&mut self, body: &mut dyn FnMut(&mut dyn EpochAccess) -> Result<()>) -> Result<()> {
        // The staged puts' buffer outlives the epoch, as MPI requires. Allocated before the
        // epoch (room for what an epoch usually writes: an entry or two and the count), so
        // that the lock is held for the epoch's work only.
        let mut staged = Staged::default();
        let room = Staged {
            words: Vec::with_capacity(16),
            puts: Vec::with_capacity(4),
        };
        let live = self.live()?;
        live.window.with_lock(self.home, LockKind::Exclusive, |e| {
            let mut access = RmaAccess {
                epoch: e,
                staged: room,
            };
            body(&mut access)?;
            staged = access.staged;
            let staged = &staged;
            for &(at, from, len) in &staged.puts {
                e.put(&staged.words[from..from + len], at)?;
            }
            Ok(())
        })
    }

    fn send_wakeup(&mut self, to: usize) -> Result<()> {
        // A zero-byte standard send is delivered eagerly by every MPI we know of: it does not
        // wait for the receive to be posted.
        let empty: [u8; 0] = [];
        self.live()?
            .comm
            .comm()
            .process_at_rank(to as Rank)
            .send_with_tag(&empty[..], WAKE_TAG);
        Ok(())
    }

    fn wait_wakeup(&mut self, deadline: Option<Instant>) -> Result<bool> {
        // Not a blocking receive: Open MPI's spins flat out (unless `mpi_yield_when_idle` is
        // set), and a waiter's core is often what the lock holder needs, for the file
        // system's client daemon (GlusterFS, any FUSE file system) or for another rank on an
        // oversubscribed node. Probing also drives MPI's progress, as the receive would.
        let comm = self.live()?.comm.comm();
        let started = Instant::now();
        loop {
            if comm
                .any_process()
                .immediate_probe_with_tag(WAKE_TAG)
                .is_some()
            {
                receive_one(comm);
                return Ok(true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            if now.duration_since(started) < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn shutdown(&mut self, sent: &[u64], received: u64, drain: bool) -> Result<Drained> {
        let live = self
            .live
            .take()
            .ok_or_else(|| Error::Poisoned("the lock service was shut down already".into()))?;
        let drained = drain_wakeups(&live, self.size, sent, received, drain);
        // Every rank is here (the drain ends with a barrier): free together, window first.
        let Live { window, comm } = live;
        let freed = window.free().and_then(|()| comm.free());
        let drained = drained?;
        freed.map(|()| drained)
    }
}

/// Writes staged by [`RmaAccess::write`]: `(window offset, start in words, length)`.
#[derive(Debug, Default)]
struct Staged {
    words: Vec<u64>,
    puts: Vec<(usize, usize, usize)>,
}

/// [`EpochAccess`] over an open exclusive epoch: each read is a flushed `MPI_Get` (with the
/// ticket's `MPI_Fetch_and_op`); writes wait in [`Staged`] for the end of the epoch, so that
/// they are ordered after every read.
struct RmaAccess<'x, 'w, 'b> {
    epoch: &'x mut Epoch<'w, 'b>,
    staged: Staged,
}

impl EpochAccess for RmaAccess<'_, '_, '_> {
    fn read(&mut self, take_ticket: bool, at: usize, buf: &mut [u64]) -> Result<u64> {
        let one = 1u64;
        let mut ticket = NO_TICKET;
        self.epoch.flushed(|e| {
            if take_ticket {
                e.fetch_and_op(&one, &mut ticket, TICKET_WORD, Op::Sum)?;
            }
            e.get(buf, at)
        })?;
        Ok(ticket)
    }

    fn write(&mut self, at: usize, words: &[u64]) -> Result<()> {
        let from = self.staged.words.len();
        self.staged.words.extend_from_slice(words);
        self.staged.puts.push((at, from, words.len()));
        Ok(())
    }
}

/// The collective drain of [`Transport::shutdown`].
fn drain_wakeups(
    live: &Live,
    size: usize,
    sent: &[u64],
    received: u64,
    drain: bool,
) -> Result<Drained> {
    let comm = live.comm.comm();
    if sent.len() != size {
        return Err(Error::InvalidArgument(format!(
            "wake-up accounting has {} entries for {size} ranks",
            sent.len(),
        )));
    }
    // Exact accounting: after the all-to-all every rank knows how many wake-ups were sent
    // to it in total. No rank sends after entering shutdown, so the rest are all in flight
    // or queued, and a blocking receive of exactly that many consumes them.
    let mut sent_to_me = vec![0u64; size];
    comm.all_to_all_into(sent, &mut sent_to_me[..]);
    let owed = sent_to_me.iter().sum::<u64>().saturating_sub(received);
    let mut drained = 0;
    if drain {
        for _ in 0..owed {
            receive_one(comm);
        }
        drained = owed;
    }
    comm.barrier();
    // Anything still arriving now was not accounted for: count (and consume) it.
    let mut leftover = 0;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < LEFTOVER_PROBE {
        if comm
            .any_process()
            .immediate_probe_with_tag(WAKE_TAG)
            .is_some()
        {
            receive_one(comm);
            leftover += 1;
            quiet_since = Instant::now();
        }
    }
    if leftover > 0 {
        tracing::error!(leftover, "unaccounted wake-up messages at shutdown");
    }
    Ok(Drained { drained, leftover })
}

fn receive_one<C: Communicator>(comm: &C) {
    let mut empty: [u8; 0] = [];
    comm.any_process()
        .receive_into_with_tag(&mut empty[..], WAKE_TAG);
}

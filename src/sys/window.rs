//! Windows of `u64` words and passive-target epochs on them.
//!
//! # Why epochs are closures
//!
//! An RMA operation keeps using its origin buffer until the epoch is flushed or unlocked: a
//! put may still read its source, a get may still write its destination. A guard object
//! returned by `lock` cannot protect those buffers: safe code may `std::mem::forget` the guard,
//! which ends every borrow it carries while MPI still holds the pointers. So an epoch is a
//! scope, as in `std::thread::scope` and rsmpi's `request::scope`:
//! [`Window::with_lock`] locks, runs a closure that receives the [`Epoch`], and unlocks before
//! it returns, also when the closure fails or panics. Every buffer handed to an operation is
//! borrowed for a lifetime `'b` that outlives the whole call, so the borrow checker guarantees
//! the buffers live until the unlock and that a get's destination is not read before it.
//!
//! To use data inside the epoch (read, then write), issue the read in
//! [`Epoch::flushed`]: its buffers are borrowed only for that inner scope, which ends with
//! `MPI_Win_flush`.
//!
//! If `MPI_Win_unlock` or `MPI_Win_flush` fails while operations are outstanding, MPI may
//! still access the caller's buffers and there is no sound way to return: the process logs
//! the error and aborts.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::ptr;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::ffi;
use mpi::topology::{Communicator, Rank};

use super::{check, errors_return, free_or_abandon};
use crate::error::{Error, Result};

/// Bytes per window word; the window's displacement unit.
const WORD_BYTES: usize = std::mem::size_of::<u64>();

/// The kind of passive-target lock an epoch takes on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// `MPI_LOCK_EXCLUSIVE`: no other rank's epoch on the target overlaps this one.
    Exclusive,
    /// `MPI_LOCK_SHARED`: may overlap other shared epochs on the target.
    Shared,
}

impl LockKind {
    fn raw(self) -> c_int {
        match self {
            LockKind::Exclusive => ffi::MPI_LOCK_EXCLUSIVE as c_int,
            LockKind::Shared => ffi::MPI_LOCK_SHARED as c_int,
        }
    }
}

/// A predefined reduction for [`Epoch::accumulate`] and [`Epoch::fetch_and_op`], applied to
/// `u64` words. (rsmpi exposes no `MPI_REPLACE` or `MPI_NO_OP`: use [`Epoch::put`] to replace
/// and [`Epoch::atomic_read`] to read atomically.)
///
/// Beware [`Op::Max`] and [`Op::Min`] with values of 2^63 and more: MPICH 4.0.2 (Debian 12)
/// orders `MPI_UINT64_T` as signed in them, in `MPI_Accumulate`, `MPI_Fetch_and_op` and
/// `MPI_Reduce_local` alike (`brlock check rma` tests this as `unsigned_minmax`). Open MPI 4.1
/// is correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `MPI_SUM` (wrapping).
    Sum,
    /// `MPI_PROD`.
    Prod,
    /// `MPI_MAX`.
    Max,
    /// `MPI_MIN`.
    Min,
    /// `MPI_BAND`.
    BitAnd,
    /// `MPI_BOR`.
    BitOr,
    /// `MPI_BXOR`.
    BitXor,
}

impl Op {
    fn raw(self) -> ffi::MPI_Op {
        // SAFETY: reading immutable extern statics that rsmpi's C shim initialises from the
        // MPI header constants; they are never written.
        unsafe {
            match self {
                Op::Sum => ffi::RSMPI_SUM,
                Op::Prod => ffi::RSMPI_PROD,
                Op::Max => ffi::RSMPI_MAX,
                Op::Min => ffi::RSMPI_MIN,
                Op::BitAnd => ffi::RSMPI_BAND,
                Op::BitOr => ffi::RSMPI_BOR,
                Op::BitXor => ffi::RSMPI_BXOR,
            }
        }
    }
}

/// `MPI_UINT64_T`.
fn word_type() -> ffi::MPI_Datatype {
    // SAFETY: reading an immutable extern static initialised by rsmpi's C shim.
    unsafe { ffi::RSMPI_UINT64_T }
}

/// An MPI window of `u64` words on every rank of a communicator (`MPI_Win_allocate`,
/// displacement unit 8), zero-initialised, with `MPI_ERRORS_RETURN`.
///
/// Every rank's size is known locally, so an out-of-bounds operation is rejected with
/// [`Error::InvalidArgument`] before MPI sees it. Data moves only inside passive-target epochs
/// ([`Window::with_lock`]).
///
/// Freeing is collective: every rank must call [`Window::free`] at the same point of the
/// program, before the communicator it was created on is freed and before MPI is finalized.
/// Dropping the window instead does not free it (the other ranks may never reach the call)
/// and records it in [`abandoned`](super::abandoned); see the module's lifetime rules. Neither `Send` nor `Sync`: MPI runs with `MPI_THREAD_FUNNELED`.
pub struct Window {
    raw: ffi::MPI_Win,
    rank: Rank,
    /// Size in words of every rank's part, indexed by rank.
    words: Vec<usize>,
    /// Targets with an epoch open from this process (locking one twice is erroneous in MPI).
    open: RefCell<Vec<Rank>>,
    freed: bool,
    _not_send: PhantomData<*const ()>,
}

impl Window {
    /// Allocates a window with `local_words` zeroed words on this rank (collective over
    /// `comm`; ranks may pass different sizes, including 0).
    ///
    /// Sizes are exchanged first, and every rank validates all of them, so an invalid size
    /// fails identically on every rank without a half-made window. The memory is zeroed under
    /// an exclusive lock on this rank's own part and the ranks then synchronise, so the zeros
    /// are in the window (public copy) before any rank can access it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if some rank's size does not fit an `MPI_Aint` in bytes;
    /// [`Error::Mpi`] if a call fails here or initialisation failed on another rank (if
    /// `comm` uses `MPI_ERRORS_ARE_FATAL`, as `MPI_COMM_WORLD` does, a failing allocation
    /// aborts instead; pass an [`OwnedComm`](super::OwnedComm) to get errors).
    ///
    /// MPI 3.1 §5.7 `MPI_Allgather`, §11.2.2 `MPI_Win_allocate`, §8.3.2
    /// `MPI_Win_set_errhandler`, §11.5.3 `MPI_Win_lock`/`MPI_Win_unlock`, §5.9.6
    /// `MPI_Allreduce`, §11.7 (memory model).
    pub fn allocate(comm: &impl Communicator, local_words: usize) -> Result<Window> {
        let rank = comm.rank();
        let mine = u64::try_from(local_words).unwrap_or(u64::MAX);
        let mut all = vec![0u64; usize::try_from(comm.size()).unwrap_or(0)];
        comm.all_gather_into(&mine, &mut all[..]);
        let mut words = Vec::with_capacity(all.len());
        for (r, &w) in all.iter().enumerate() {
            match usize::try_from(w)
                .ok()
                .and_then(|w| w.checked_mul(WORD_BYTES))
                .and_then(|b| ffi::MPI_Aint::try_from(b).ok())
            {
                Some(_) => words.push(w as usize),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "rank {r} asked for a window of {w} words, more than MPI can address"
                    )))
                }
            }
        }
        // Validated above for every rank, this one included.
        let bytes = ffi::MPI_Aint::try_from(local_words * WORD_BYTES).unwrap_or(0);
        let disp_unit = WORD_BYTES as c_int;

        let mut base: *mut u8 = ptr::null_mut();
        // SAFETY: reading immutable extern statics initialised by rsmpi's C shim.
        let (info, mut raw) = unsafe { (ffi::RSMPI_INFO_NULL, ffi::RSMPI_WIN_NULL) };
        // SAFETY: `comm.as_raw()` is a live communicator borrowed for the call. `baseptr` is,
        // as the standard requires, the address of a pointer variable, which MPI sets to the
        // start of `bytes` bytes of window memory; `raw` is a valid out-pointer.
        check("MPI_Win_allocate", unsafe {
            ffi::MPI_Win_allocate(
                bytes,
                disp_unit,
                info,
                comm.as_raw(),
                ptr::addr_of_mut!(base).cast::<c_void>(),
                &mut raw,
            )
        })?;
        let window = Window {
            raw,
            rank,
            words,
            open: RefCell::new(Vec::new()),
            freed: false,
            _not_send: PhantomData,
        };

        // SAFETY: `window.raw` is the live window just created; the handler is predefined.
        let init = check("MPI_Win_set_errhandler", unsafe {
            ffi::MPI_Win_set_errhandler(window.raw, errors_return())
        })
        .and_then(|()| window.zero_local(base, local_words));

        // All ranks agree on the outcome; this also orders every rank's zeroing (completed by
        // its unlock) before any rank's first epoch, which can only start after this call.
        let ok_here = c_int::from(init.is_ok());
        let mut ok_everywhere: c_int = 0;
        comm.all_reduce_into(&ok_here, &mut ok_everywhere, SystemOperation::min());
        if ok_everywhere == 0 {
            // Every rank knows and frees the window together; the error to report is the
            // first one.
            let freed = window.free();
            init?;
            freed?;
            return Err(Error::Mpi {
                call: "MPI_Win_allocate",
                code: ffi::MPI_ERR_OTHER as c_int,
                message: "window initialisation failed on another rank".into(),
            });
        }
        Ok(window)
    }

    /// Zeroes this rank's `words` words at `base` inside an exclusive self-epoch, which
    /// publishes the stores to the window's public copy at the unlock (MPI 3.1 §11.7).
    fn zero_local(&self, base: *mut u8, words: usize) -> Result<()> {
        if words == 0 {
            return Ok(());
        }
        // SAFETY: the window is live and this process has no epoch open on it yet.
        check("MPI_Win_lock", unsafe {
            ffi::MPI_Win_lock(LockKind::Exclusive.raw(), self.rank, 0, self.raw)
        })?;
        // SAFETY: MPI_Win_allocate succeeded with `words * 8` bytes, so `base` points to that
        // many writable bytes owned by the window until it is freed; bytes need no alignment.
        // No other rank can access them yet (see `allocate`), and this process holds the only
        // epoch on them.
        unsafe { ptr::write_bytes(base, 0, words * WORD_BYTES) };
        // SAFETY: closes the epoch opened above on the same live window.
        check("MPI_Win_unlock", unsafe {
            ffi::MPI_Win_unlock(self.rank, self.raw)
        })
    }

    /// This process's rank in the window's group (the communicator's, at allocation).
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// Number of ranks sharing the window (the communicator's size, at allocation).
    pub fn size(&self) -> Rank {
        // The rank count came from the communicator, whose size is a `Rank`.
        self.words.len() as Rank
    }

    /// Size in words of `target`'s part of the window, or `None` if there is no such rank
    /// (exchanged at allocation).
    pub fn words(&self, target: Rank) -> Option<usize> {
        usize::try_from(target)
            .ok()
            .and_then(|t| self.words.get(t).copied())
    }

    /// Runs `f` inside a passive-target epoch on `target` with a lock of `kind`, then unlocks.
    ///
    /// The lock is released when `f` returns (with the result of `f`, or of the unlock if `f`
    /// succeeded and the unlock failed), and also if `f` panics. All operations issued in `f`
    /// are complete, at the origin and at the target, when this returns; the buffers they
    /// borrowed (for `'b`) can be used again only then.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `target` is not a rank of the window or this process
    /// already has an epoch open on it; [`Error::Mpi`] if locking or unlocking fails; any
    /// error of `f`.
    ///
    /// # Aborts
    /// If the unlock fails after operations were issued (see the module documentation).
    ///
    /// MPI 3.1 §11.5.3, `MPI_Win_lock` / `MPI_Win_unlock`.
    pub fn with_lock<'b, R>(
        &self,
        target: Rank,
        kind: LockKind,
        f: impl FnOnce(&mut Epoch<'_, 'b>) -> Result<R>,
    ) -> Result<R> {
        if self.words(target).is_none() {
            return Err(Error::InvalidArgument(format!(
                "window target rank {target} is not in 0..{}",
                self.size()
            )));
        }
        if self.open.borrow().contains(&target) {
            return Err(Error::InvalidArgument(format!(
                "an epoch on window target rank {target} is already open in this process"
            )));
        }
        // SAFETY: the window is live (borrowed for the call) and this process has no epoch
        // open on `target` (checked above).
        check("MPI_Win_lock", unsafe {
            ffi::MPI_Win_lock(kind.raw(), target, 0, self.raw)
        })?;
        self.open.borrow_mut().push(target);
        let issued = Cell::new(false);
        let completion = Completion {
            win: self,
            target,
            step: Step::Unlock,
            issued: &issued,
        };
        let mut epoch = Epoch {
            win: self,
            target,
            issued: &issued,
            _buffers: PhantomData,
        };
        let out = f(&mut epoch);
        let done = completion.finish();
        self.open.borrow_mut().retain(|&t| t != target);
        let out = out?;
        done?;
        Ok(out)
    }

    /// Validates `len` words at `disp` on `target` (already known to be a rank) and converts
    /// them for MPI.
    fn extent(&self, target: Rank, disp: usize, len: usize) -> Result<(c_int, ffi::MPI_Aint)> {
        let size = self.words(target).unwrap_or(0);
        let fits = disp.checked_add(len).is_some_and(|end| end <= size);
        if !fits {
            return Err(Error::InvalidArgument(format!(
                "{len} word(s) at displacement {disp} do not fit rank {target}'s window of \
                 {size} words"
            )));
        }
        let count = c_int::try_from(len).map_err(|_| {
            Error::InvalidArgument(format!("{len} words exceed one MPI operation's count"))
        })?;
        // `disp <= size` and `size * 8` fits an MPI_Aint (checked at allocation).
        let disp = ffi::MPI_Aint::try_from(disp).unwrap_or(0);
        Ok((count, disp))
    }

    /// Frees the window (collective), reporting failure.
    ///
    /// # Errors
    /// [`Error::Mpi`] if `MPI_Win_free` fails.
    ///
    /// MPI 3.1 §11.2.5, `MPI_Win_free`.
    pub fn free(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if self.freed {
            return Ok(());
        }
        self.freed = true;
        // SAFETY: `raw` is the live window this object owns, freed at most once thanks to
        // `freed`. No epoch is open: epochs borrow the window and end before `with_lock`
        // returns, and the callers (`free`, `drop`) have the window by value or `&mut`.
        check("MPI_Win_free", unsafe { ffi::MPI_Win_free(&mut self.raw) })
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("rank", &self.rank)
            .field("words", &self.words)
            .finish()
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if !self.freed {
            let ranks = i32::try_from(self.words.len()).unwrap_or(i32::MAX);
            free_or_abandon(&"a window", ranks, || self.release());
        }
    }
}

/// Which call completes a scope.
#[derive(Clone, Copy)]
enum Step {
    Unlock,
    Flush,
}

/// Completes the operations of a scope (unlock or flush) exactly once: by `finish`, or on
/// drop if the scope's closure panicked.
struct Completion<'w> {
    win: &'w Window,
    target: Rank,
    step: Step,
    issued: &'w Cell<bool>,
}

impl Completion<'_> {
    fn finish(self) -> Result<()> {
        let result = self.run();
        std::mem::forget(self);
        result
    }

    /// Runs the MPI call; aborts if it fails while operations may still be outstanding.
    fn run(&self) -> Result<()> {
        let (call, code) = match self.step {
            // SAFETY: the epoch on `target` was opened by `with_lock` on this live window and
            // is closed exactly once, here.
            Step::Unlock => ("MPI_Win_unlock", unsafe {
                ffi::MPI_Win_unlock(self.target, self.win.raw)
            }),
            // SAFETY: called inside the open epoch on `target` of this live window.
            Step::Flush => ("MPI_Win_flush", unsafe {
                ffi::MPI_Win_flush(self.target, self.win.raw)
            }),
        };
        let result = check(call, code);
        match &result {
            Ok(()) => self.issued.set(false),
            Err(e) if self.issued.get() => {
                tracing::error!(
                    "{e}; RMA operations may still use caller buffers, aborting the process"
                );
                std::process::abort();
            }
            Err(_) => {}
        }
        result
    }
}

impl Drop for Completion<'_> {
    fn drop(&mut self) {
        // Only reached when the scope's closure panicked: complete before the caller's
        // buffers are released by unwinding.
        if let Err(e) = self.run() {
            tracing::error!("completing an epoch while unwinding: {e}");
        }
        if let Step::Unlock = self.step {
            self.win.open.borrow_mut().retain(|&t| t != self.target);
        }
    }
}

/// An open passive-target epoch on one target of a [`Window`], lent to the closure of
/// [`Window::with_lock`] (or [`Epoch::flushed`]).
///
/// Operations are non-blocking: each borrows its buffers for `'b`, which outlives the scope
/// that completes them. Displacements and lengths are in words; an operation outside the
/// target's part of the window fails with [`Error::InvalidArgument`] and is not issued.
/// Operations of one epoch on the same word are not ordered with respect to each other,
/// except accumulates ([`Epoch::accumulate`], [`Epoch::fetch_and_op`]) among themselves; use
/// [`Epoch::flush`] in between to order them.
pub struct Epoch<'w, 'b> {
    win: &'w Window,
    target: Rank,
    /// Whether operations may be outstanding since the last completion.
    issued: &'w Cell<bool>,
    /// The buffers of issued operations are borrowed for `'b` (invariant through `&mut`).
    _buffers: PhantomData<&'b mut [u64]>,
}

impl<'w, 'b> Epoch<'w, 'b> {
    /// The rank whose part of the window this epoch accesses.
    pub fn target(&self) -> Rank {
        self.target
    }

    /// Writes `src` to the target's words `disp..disp + src.len()`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if out of bounds; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §11.3.1, `MPI_Put`.
    pub fn put(&mut self, src: &'b [u64], disp: usize) -> Result<()> {
        let (count, disp) = self.win.extent(self.target, disp, src.len())?;
        self.issued.set(true);
        // SAFETY: inside an open epoch on `target` of a live window; the target range was
        // bounds-checked. `src` holds `count` words and stays borrowed (unmodified, alive)
        // for `'b`, which outlives the scope whose flush/unlock completes this put.
        check("MPI_Put", unsafe {
            ffi::MPI_Put(
                src.as_ptr().cast::<c_void>(),
                count,
                word_type(),
                self.target,
                disp,
                count,
                word_type(),
                self.win.raw,
            )
        })
    }

    /// Reads the target's words `disp..disp + dst.len()` into `dst`, which holds the data
    /// once the scope has completed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if out of bounds; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §11.3.2, `MPI_Get`.
    pub fn get(&mut self, dst: &'b mut [u64], disp: usize) -> Result<()> {
        let (count, disp) = self.win.extent(self.target, disp, dst.len())?;
        self.issued.set(true);
        // SAFETY: inside an open epoch on `target` of a live window; the target range was
        // bounds-checked. `dst` has room for `count` words and stays exclusively borrowed for
        // `'b`, which outlives the scope whose flush/unlock completes this get, so nothing
        // else reads or writes it meanwhile.
        check("MPI_Get", unsafe {
            ffi::MPI_Get(
                dst.as_mut_ptr().cast::<c_void>(),
                count,
                word_type(),
                self.target,
                disp,
                count,
                word_type(),
                self.win.raw,
            )
        })
    }

    /// Atomically combines `*operand` into the target's word `disp` with `op`, and stores
    /// the word's previous value in `result` (available once the scope has completed).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if out of bounds; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §11.3.4, `MPI_Fetch_and_op`.
    pub fn fetch_and_op(
        &mut self,
        operand: &'b u64,
        result: &'b mut u64,
        disp: usize,
        op: Op,
    ) -> Result<()> {
        let (_, disp) = self.win.extent(self.target, disp, 1)?;
        self.issued.set(true);
        // SAFETY: inside an open epoch on `target` of a live window; the target word was
        // bounds-checked. `operand` and `result` are single words borrowed for `'b` (shared
        // and exclusive respectively), which outlives the scope that completes the operation.
        check("MPI_Fetch_and_op", unsafe {
            ffi::MPI_Fetch_and_op(
                ptr::from_ref(operand).cast::<c_void>(),
                ptr::from_mut(result).cast::<c_void>(),
                word_type(),
                self.target,
                disp,
                op.raw(),
                self.win.raw,
            )
        })
    }

    /// Atomically reads the target's word `disp` into `result` (available once the scope has
    /// completed): a [`fetch_and_op`](Epoch::fetch_and_op) adding 0.
    ///
    /// # Errors
    /// As [`Epoch::fetch_and_op`].
    ///
    /// MPI 3.1 §11.3.4, `MPI_Fetch_and_op` with `MPI_SUM` and operand 0.
    pub fn atomic_read(&mut self, result: &'b mut u64, disp: usize) -> Result<()> {
        static ZERO: u64 = 0;
        self.fetch_and_op(&ZERO, result, disp, Op::Sum)
    }

    /// Atomically combines `src` element-wise into the target's words
    /// `disp..disp + src.len()` with `op`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if out of bounds; [`Error::Mpi`] if MPI fails.
    ///
    /// MPI 3.1 §11.3.4, `MPI_Accumulate`.
    pub fn accumulate(&mut self, src: &'b [u64], disp: usize, op: Op) -> Result<()> {
        let (count, disp) = self.win.extent(self.target, disp, src.len())?;
        self.issued.set(true);
        // SAFETY: as for `put`: open epoch, bounds-checked range, `src` borrowed for `'b`.
        check("MPI_Accumulate", unsafe {
            ffi::MPI_Accumulate(
                src.as_ptr().cast::<c_void>(),
                count,
                word_type(),
                self.target,
                disp,
                count,
                word_type(),
                op.raw(),
                self.win.raw,
            )
        })
    }

    /// Completes every operation issued so far in this epoch, at the origin and at the
    /// target, so that later operations are ordered after them. Buffers stay borrowed until
    /// the epoch ends; to use a result inside the epoch, see [`Epoch::flushed`].
    ///
    /// # Errors
    /// [`Error::Mpi`] if MPI fails.
    ///
    /// # Aborts
    /// If the flush fails while operations are outstanding.
    ///
    /// MPI 3.1 §11.5.4, `MPI_Win_flush`.
    pub fn flush(&mut self) -> Result<()> {
        Completion {
            win: self.win,
            target: self.target,
            step: Step::Flush,
            issued: self.issued,
        }
        .finish()
    }

    /// Runs `f` on the same epoch with buffers borrowed only for `'c`, then flushes: when this
    /// returns, the operations issued in `f` are complete and their buffers can be used, while
    /// the epoch (and its lock) continues.
    ///
    /// ```no_run
    /// # use brlock::sys::{Window, LockKind};
    /// # fn f(win: &Window) -> brlock::Result<()> {
    /// let (mut old, mut new) = ([0u64], [0u64]);
    /// win.with_lock(0, LockKind::Exclusive, |epoch| {
    ///     epoch.flushed(|e| e.get(&mut old, 0))?;
    ///     new[0] = old[0] + 1; // the get has completed
    ///     epoch.put(&new, 0)
    /// })?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Any error of `f` (the flush still happens), else [`Error::Mpi`] if the flush fails.
    ///
    /// # Aborts
    /// If the flush fails while operations are outstanding.
    ///
    /// MPI 3.1 §11.5.4, `MPI_Win_flush`.
    pub fn flushed<'c, R>(&mut self, f: impl FnOnce(&mut Epoch<'_, 'c>) -> Result<R>) -> Result<R> {
        let completion = Completion {
            win: self.win,
            target: self.target,
            step: Step::Flush,
            issued: self.issued,
        };
        let mut inner = Epoch {
            win: self.win,
            target: self.target,
            issued: self.issued,
            _buffers: PhantomData,
        };
        let out = f(&mut inner);
        let done = completion.finish();
        let out = out?;
        done?;
        Ok(out)
    }
}

//! The bookkeeping behind the intercepted calls, in safe Rust: which files are tracked, their
//! shared pointer (brlock's one-sided counter, in etypes of the current view) and their etype
//! size, and the offset arithmetic of every shared-pointer access. The boundary
//! ([`crate::boundary`]) turns C arguments into these calls and forwards the data access to
//! the MPI library.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use brlock::collective::agree_result;
use brlock::io::append::SharedPointer;
use brlock::sys::OwnedComm;
use brlock::{Error, Result};

use crate::atomic::Atomic;
use crate::boundary::Sendable;

/// What the library keeps for one open file.
#[derive(Debug)]
pub struct Tracked {
    /// The shared file pointer, in etypes of the current view.
    pointer: SharedPointer,
    /// Bytes per etype of the current view (1 until `MPI_File_set_view`).
    etype: u64,
    /// Atomic mode: off, or brlock's atomic file doing the data accesses.
    atomic: Atomic,
}

/// A tracked file, shared between the calls that use it.
pub type Handle = Arc<Mutex<Sendable<Tracked>>>;

/// Every tracked file, by the address of its `MPI_File` handle.
static FILES: Mutex<Option<HashMap<usize, Handle>>> = Mutex::new(None);

fn files() -> MutexGuard<'static, Option<HashMap<usize, Handle>>> {
    FILES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tracked file `key`, if the library tracks it (it does not for files opened while it was
/// off, or whose pointer could not be made).
pub fn lookup(key: usize) -> Option<Handle> {
    files().as_ref().and_then(|m| m.get(&key).cloned())
}

/// Locks a tracked file for one call.
pub fn lock(handle: &Handle) -> MutexGuard<'_, Sendable<Tracked>> {
    handle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts tracking file `key` after the MPI library opened it (collective over `comm`, a
/// duplicate of the file's communicator that the pointer takes over): the pointer starts at
/// rank 0's `start` (in bytes: the view is the default one). `opened` is this rank's outcome
/// of the MPI library's open; if it failed on any rank, nothing is tracked and every rank
/// gets [`Error::Collective`]. `read_only`: the file was opened `MPI_MODE_RDONLY` (atomic
/// mode then reads through a read-only descriptor and refuses writes).
///
/// # Errors
/// [`Error::Collective`] on every rank if a rank's open failed or the pointer could not be
/// made; MPI errors.
pub fn track(
    key: usize,
    comm: OwnedComm,
    start: u64,
    opened: Result<()>,
    path: std::path::PathBuf,
    read_only: bool,
) -> Result<()> {
    let pointer = SharedPointer::open(comm, start, opened)?;
    tracing::debug!(start, "shared file pointer in a one-sided counter");
    let handle = Arc::new(Mutex::new(Sendable(Tracked {
        pointer,
        etype: 1,
        atomic: Atomic::new(path, read_only),
    })));
    files().get_or_insert_with(HashMap::new).insert(key, handle);
    Ok(())
}

/// Stops tracking file `key` and frees its pointer (collective over the file's ranks); a file
/// that is not tracked is left alone.
///
/// # Errors
/// MPI errors of freeing the window.
pub fn untrack(key: usize) -> Result<()> {
    let Some(handle) = files().as_mut().and_then(|m| m.remove(&key)) else {
        return Ok(());
    };
    let tracked = match Arc::try_unwrap(handle) {
        Ok(m) => m.into_inner().unwrap_or_else(PoisonError::into_inner).0,
        // Another thread is inside a call on this file while it is being closed: erroneous
        // in MPI; leak the window rather than free it under that call.
        Err(_) => {
            return Err(Error::InvalidArgument(
                "the file is closed while another call on it is running".into(),
            ))
        }
    };
    let closed = tracked.atomic.close();
    let freed = tracked.pointer.free();
    closed.and(freed)
}

impl Tracked {
    /// The file's atomic-mode state.
    pub fn atomic(&mut self) -> &mut Atomic {
        &mut self.atomic
    }

    /// Whether atomic mode is on: data accesses go through brlock, not the MPI library.
    pub fn atomic_on(&self) -> bool {
        self.atomic.on()
    }

    /// `MPI_File_set_atomicity` (collective): see [`Atomic::set_atomicity`].
    ///
    /// # Errors
    /// As [`Atomic::set_atomicity`].
    pub fn set_atomicity(&mut self, on: bool, ok: Result<()>) -> Result<()> {
        self.atomic.set_atomicity(self.pointer.comm(), on, ok)
    }

    /// The etypes `bytes` bytes of data make under the current view.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `bytes` is negative or not a whole number of etypes.
    pub fn etypes(&self, bytes: i64) -> Result<u64> {
        let bytes = u64::try_from(bytes)
            .map_err(|_| Error::InvalidArgument(format!("a negative data size ({bytes} bytes)")))?;
        if bytes % self.etype != 0 {
            return Err(Error::InvalidArgument(format!(
                "{bytes} bytes of data are not a whole number of etypes of {} bytes",
                self.etype
            )));
        }
        Ok(bytes / self.etype)
    }

    /// Reserves `bytes` bytes at the shared pointer (independent: one fetch-and-add) and
    /// returns their offset in etypes, for the explicit-offset access.
    ///
    /// # Errors
    /// As [`Tracked::etypes`]; MPI errors; an offset past `MPI_Offset`.
    pub fn reserve(&self, bytes: i64) -> Result<i64> {
        let n = self.etypes(bytes)?;
        to_offset(self.pointer.fetch_add(n)?)
    }

    /// Reserves every rank's `bytes` back to back in rank order (collective) and returns this
    /// rank's offset in etypes. A rank whose `bytes` is not valid takes part with nothing and
    /// gets its own error; the others go on.
    ///
    /// # Errors
    /// As [`Tracked::etypes`], on this rank; [`Error::Collective`] on every rank if the
    /// reservation failed.
    pub fn reserve_ordered(&self, bytes: i64) -> Result<i64> {
        let n = self.etypes(bytes);
        let offset = self.pointer.reserve_ordered(*n.as_ref().unwrap_or(&0))?;
        n?;
        to_offset(offset)
    }

    /// The shared pointer, in etypes (independent).
    ///
    /// # Errors
    /// MPI errors; a pointer past `MPI_Offset`.
    pub fn position(&self) -> Result<i64> {
        to_offset(self.pointer.get()?)
    }

    /// A new view took effect on every rank (collective; `ok` is this rank's outcome of the MPI
    /// library's `set_view`): records its etype size and resets the pointer to 0, as MPI
    /// requires. If the view failed on any rank, nothing changes.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank's `set_view` failed or the reset did.
    pub fn view_changed(&mut self, ok: Result<u64>) -> Result<()> {
        let etype = agree_result(self.pointer.comm().comm(), "MPI_File_set_view", ok)?;
        self.pointer.set(0)?;
        self.etype = etype.max(1);
        Ok(())
    }

    /// Moves the pointer (collective, `MPI_File_seek_shared`): to `target`, this rank's idea
    /// of the new position in etypes (every rank passes the same arguments, so rank 0's is
    /// used); `end` is the position of the end of file in etypes, asked for `MPI_SEEK_END`.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if a rank's target is invalid (negative) or the
    /// move failed.
    pub fn seek(&self, target: Seek) -> Result<()> {
        let here = match target {
            Seek::Cur(_) => Some(self.pointer.get()),
            _ => None,
        };
        let value = match (target, here) {
            (Seek::Set(off), _) => Ok(off),
            (Seek::Cur(off), Some(here)) => here.and_then(|h| {
                i64::try_from(h)
                    .ok()
                    .and_then(|h| h.checked_add(off))
                    .ok_or_else(|| Error::InvalidArgument("the shared pointer overflows".into()))
            }),
            (Seek::End(end), _) => end,
            (Seek::Cur(_), None) => unreachable!("the pointer was read for MPI_SEEK_CUR"),
        }
        .and_then(|v| {
            u64::try_from(v).map_err(|_| {
                Error::InvalidArgument(format!("seeking the shared pointer to {v} etypes"))
            })
        });
        let value = agree_result(self.pointer.comm().comm(), "MPI_File_seek_shared", value)?;
        self.pointer.set(value)
    }
}

/// Where [`Tracked::seek`] moves the pointer, in etypes.
#[derive(Debug)]
pub enum Seek {
    /// `MPI_SEEK_SET`: to this offset.
    Set(i64),
    /// `MPI_SEEK_CUR`: by this much.
    Cur(i64),
    /// `MPI_SEEK_END`: to this offset past the end of file (computed by the caller), or the
    /// error of asking.
    End(Result<i64>),
}

fn to_offset(etypes: u64) -> Result<i64> {
    i64::try_from(etypes)
        .map_err(|_| Error::InvalidArgument("the shared pointer passes MPI_Offset".into()))
}

//! What the ranks of a communicator agree on: settings every rank must pass identically, one
//! outcome for a step that may fail on some ranks only, and a value (a path) that one rank
//! chooses for all. Public, so that programs built on the library, the checks and the `brlock`
//! binary use the same few helpers instead of writing their own.
//!
//! The rule they serve: a rank that fails in a collective step must not simply return, or the
//! others wait for it forever in the step's next collective call. Each helper is itself one or
//! two collective calls that every rank makes whatever happened to it, after which every rank
//! knows whether the step failed anywhere.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, Rank};

use crate::error::{CollectiveFailure, Error, Result};

/// What a collective run (a check, a benchmark, `collect`) gives each rank.
#[derive(Debug)]
pub struct Outcome<R> {
    /// Whether this rank should report success (its exit status). Negative controls pass when
    /// they run to the end, whatever they find: their report says what they found.
    pub passed: bool,
    /// The report, on rank 0 only.
    pub report: Option<R>,
    /// Failures of this rank in steps every rank left together (a write that failed during
    /// a benchmark): to be reported on this rank; the run has not passed then.
    pub errors: Vec<Error>,
}

impl<R> Outcome<R> {
    /// An outcome without a report (ranks other than 0).
    pub fn quiet(passed: bool) -> Outcome<R> {
        Outcome {
            passed,
            report: None,
            errors: Vec::new(),
        }
    }

    /// The outcome with `report`.
    pub fn reported(passed: bool, report: R) -> Outcome<R> {
        Outcome {
            passed,
            report: Some(report),
            errors: Vec::new(),
        }
    }
}

/// Checks that every rank of `comm` passed the same `flag` (collective: one `MPI_Allreduce`
/// of the number of ranks that passed `true`) and returns it.
///
/// # Errors
/// [`Error::InvalidArgument`] on every rank if the ranks disagree, naming `what` (e.g.
/// `"atomic mode"`) and how many ranks asked for it; the caller then changes nothing.
pub fn agree_on_flag(comm: &impl Communicator, flag: bool, what: &str) -> Result<bool> {
    let mine = i32::from(flag);
    let mut on = 0i32;
    comm.all_reduce_into(&mine, &mut on, SystemOperation::sum());
    let ranks = comm.size();
    match on {
        0 => Ok(false),
        n if n == ranks => Ok(true),
        n => Err(Error::InvalidArgument(format!(
            "ranks disagree on {what}: {n} of {ranks} ranks asked for it on, the others off \
             (this rank: {}); nothing was changed",
            if flag { "on" } else { "off" }
        ))),
    }
}

/// Collective: every rank that failed (its `local` is an error) and that error's message, in
/// rank order; empty if no rank failed. One `MPI_Allgather` when nothing failed; two more
/// (the messages' lengths and bytes) when something did.
fn gather_failures(comm: &impl Communicator, local: Option<&Error>) -> Vec<(i32, String)> {
    gather_messages(comm, local.map(Error::to_string))
}

/// Collective: every rank's `message`, for the ranks that have one, in rank order (one
/// `MPI_Allgather` when no rank has one, two more when some do).
pub(crate) fn gather_messages(
    comm: &impl Communicator,
    message: Option<String>,
) -> Vec<(i32, String)> {
    let size = usize::try_from(comm.size()).unwrap_or(0);
    // Longer messages are cut (at a character boundary): they are for one line.
    let mine = message
        .as_deref()
        .map(|m| cut(m, MAX_MESSAGE))
        .unwrap_or_default();
    // Message length plus one, 0 for "no message": one gather tells who and how long.
    let tag = match message {
        Some(_) => i32::try_from(mine.len() + 1).unwrap_or(i32::MAX),
        None => 0,
    };
    let mut tags = vec![0i32; size];
    comm.all_gather_into(&tag, &mut tags[..]);
    if tags.iter().all(|&t| t == 0) {
        return Vec::new();
    }
    let counts: Vec<i32> = tags.iter().map(|&t| (t - 1).max(0)).collect();
    let displs: Vec<i32> = counts
        .iter()
        .scan(0i32, |at, &c| {
            let here = *at;
            *at = at.saturating_add(c);
            Some(here)
        })
        .collect();
    let total = counts.iter().map(|&c| c as usize).sum::<usize>();
    let mut bytes = vec![0u8; total];
    let sent = mine.as_bytes();
    let sent = &sent[..counts[usize::try_from(comm.rank()).unwrap_or(0)] as usize];
    {
        let mut partition = PartitionMut::new(&mut bytes[..], &counts[..], &displs[..]);
        comm.all_gather_varcount_into(sent, &mut partition);
    }
    tags.iter()
        .enumerate()
        .filter(|(_, &t)| t > 0)
        .map(|(r, _)| {
            let (at, len) = (displs[r] as usize, counts[r] as usize);
            let text = String::from_utf8_lossy(&bytes[at..at + len]).into_owned();
            (i32::try_from(r).unwrap_or(i32::MAX), text)
        })
        .collect()
}

/// The longest message [`gather_messages`] passes on, in bytes.
const MAX_MESSAGE: usize = 4096;

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The error every rank returns from step `op` in which `failures` failed; `local` is this
/// rank's own error. When every rank failed with one and the same collective failure (an
/// inner step already agreed on), that failure is returned as it is.
fn collective_error(op: &'static str, failures: Vec<(i32, String)>, local: Option<Error>) -> Error {
    if let Some(Error::Collective(inner)) = &local {
        let message = inner.to_string();
        if failures.iter().all(|(_, m)| *m == message) {
            return local.unwrap_or_else(|| unreachable!("matched just above"));
        }
    }
    Error::Collective(CollectiveFailure {
        op,
        failures,
        local: local.map(Box::new),
    })
}

/// What to do with the private communicator `comm` of a handle whose collective construction
/// failed with `err`: an error every rank returned together ([`Error::Collective`]) lets every
/// rank free it together; any other error may be this rank's alone, so the communicator is
/// dropped without the collective call (see [`crate::sys`], "Lifetime rules"). Returns `err`.
pub(crate) fn free_after(comm: crate::sys::OwnedComm, err: Error) -> Error {
    if err.is_collective() {
        if let Err(e) = comm.free() {
            tracing::error!(error = %e, "freeing a communicator after a failed open");
        }
    }
    err
}

/// Collective: every rank learns whether some rank's `outcome` of step `op` is an error, so
/// that no rank goes on to the next collective call alone. If some rank failed, every rank
/// returns [`Error::Collective`] naming the failed ranks and their errors (a failing rank's
/// own error in it); `None` means "this rank took no part in the step".
///
/// # Errors
/// As described.
pub fn agree_outcome<T>(
    comm: &impl Communicator,
    op: &'static str,
    outcome: Option<Result<T>>,
) -> Result<Option<T>> {
    let failures = gather_failures(comm, outcome.as_ref().and_then(|o| o.as_ref().err()));
    match outcome {
        Some(Err(e)) => Err(collective_error(op, failures, Some(e))),
        _ if !failures.is_empty() => Err(collective_error(op, failures, None)),
        Some(Ok(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// [`agree_outcome`] for a step every rank takes part in.
///
/// # Errors
/// [`Error::Collective`] on every rank if some rank failed.
pub fn agree_result<T>(
    comm: &impl Communicator,
    op: &'static str,
    outcome: Result<T>,
) -> Result<T> {
    let failures = gather_failures(comm, outcome.as_ref().err());
    match outcome {
        Err(e) => Err(collective_error(op, failures, Some(e))),
        Ok(_) if !failures.is_empty() => Err(collective_error(op, failures, None)),
        Ok(v) => Ok(v),
    }
}

/// Collective: rank `root` runs `choose` (creating a temporary file, say) and every rank
/// returns the path it produced. Every rank passes the same `root` and `op` (named in errors).
///
/// # Errors
/// [`Error::Collective`] on every rank if `choose` failed on `root`.
pub fn path_from(
    comm: &impl Communicator,
    root: Rank,
    op: &'static str,
    choose: impl FnOnce() -> Result<PathBuf>,
) -> Result<PathBuf> {
    let chosen = (comm.rank() == root).then(choose);
    let root = comm.process_at_rank(root);
    let chosen = agree_outcome(comm, op, chosen)?;
    let mut bytes = chosen
        .as_ref()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .unwrap_or_default();
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    bytes.resize(usize::try_from(len).unwrap_or(0), 0);
    root.broadcast_into(&mut bytes[..]);
    Ok(chosen.unwrap_or_else(|| PathBuf::from(OsStr::from_bytes(&bytes))))
}

/// The path `rank` uses when the ranks are split across two clients of one file system: odd
/// ranks use `alt` when there is one (the same file through a second mount, as a second
/// compute node would see it), every other rank `main`. Local: no communication.
pub fn split_path<'a>(rank: i32, main: &'a Path, alt: Option<&'a Path>) -> &'a Path {
    match alt {
        Some(alt) if rank % 2 == 1 => alt,
        _ => main,
    }
}

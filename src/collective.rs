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
use mpi::topology::{Communicator, Rank};

use crate::error::{Error, Result};

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

/// Collective: the ranks whose `failed` is true, as "1, 3", or `None` if no rank failed (one
/// `MPI_Allgather`).
fn failed_ranks(comm: &impl Communicator, failed: bool) -> Option<String> {
    let mut all = vec![0i32; usize::try_from(comm.size()).unwrap_or(0)];
    comm.all_gather_into(&i32::from(failed), &mut all[..]);
    let ranks: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|&(_, &f)| f != 0)
        .map(|(r, _)| r.to_string())
        .collect();
    (!ranks.is_empty()).then(|| ranks.join(", "))
}

/// Collective: every rank learns whether some rank's `outcome` of step `op` is an error, so
/// that no rank goes on to the next collective call alone. A rank that failed returns its own
/// error, the others [`Error::PeerFailed`] naming the failed ranks; `None` means "this rank
/// took no part in the step".
///
/// # Errors
/// As described.
pub fn agree_outcome<T>(
    comm: &impl Communicator,
    op: &'static str,
    outcome: Option<Result<T>>,
) -> Result<Option<T>> {
    let peers = failed_ranks(comm, matches!(outcome, Some(Err(_))));
    match (outcome, peers) {
        (Some(Err(e)), _) => Err(e),
        (_, Some(ranks)) => Err(Error::PeerFailed { op, ranks }),
        (Some(Ok(v)), None) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}

/// [`agree_outcome`] for a step every rank takes part in.
///
/// # Errors
/// This rank's error, or [`Error::PeerFailed`] if another rank failed.
pub fn agree_result<T>(
    comm: &impl Communicator,
    op: &'static str,
    outcome: Result<T>,
) -> Result<T> {
    let peers = failed_ranks(comm, outcome.is_err());
    match (outcome, peers) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(ranks)) => Err(Error::PeerFailed { op, ranks }),
        (Ok(v), None) => Ok(v),
    }
}

/// Collective: rank `root` runs `choose` (creating a temporary file, say) and every rank
/// returns the path it produced. Every rank passes the same `root` and `op` (named in errors).
///
/// # Errors
/// On `root`, the error of `choose`; on the others [`Error::PeerFailed`] naming `root`.
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

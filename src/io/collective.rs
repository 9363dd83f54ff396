//! Agreement checks: collective settings that every rank must pass identically, and
//! collective steps whose failure on one rank must end the step on every rank.

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::Communicator;

use crate::error::{Error, Result};

/// Checks that every rank of `comm` passed the same `flag` (collective: one `MPI_Allreduce`
/// of the number of ranks that passed `true`) and returns it.
///
/// # Errors
/// [`Error::InvalidArgument`] on every rank if the ranks disagree, naming `what` (e.g.
/// `"atomic mode"`) and how many ranks asked for it; the caller then changes nothing.
pub(crate) fn agree_on_flag(comm: &impl Communicator, flag: bool, what: &str) -> Result<bool> {
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
pub(crate) fn agree_outcome<T>(
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
pub(crate) fn agree_result<T>(
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

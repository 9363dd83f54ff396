//! Agreement checks for collective settings that every rank must pass identically.

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

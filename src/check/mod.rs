//! Checks and benchmarks that do not trust what they exercise: the judges behind `brlock check`
//! and `brlock bench`, written once in the library so that the command line only parses and
//! prints, and so that other programs (a C API test, a user's own harness) can run them too.
//!
//! * [`verify`]: the bypass computation and an in-process observer of holders;
//! * [`workload`]: the request streams (patterns and modes) of the lock checks;
//! * [`stamp`]: the exclusion checker that stamps every holder's cells in a window of its own,
//!   and the acquisition loop that drives any [`RangeLock`](crate::RangeLock) under it;
//! * [`lock`]: `check lock`, and the lock backends it and `bench lock` compare;
//! * [`rma`]: `check rma`, the MPI library's one-sided operations;
//! * [`files`]: the file backends that the I/O checks and benchmarks compare, opened alike;
//! * [`atomicity`], [`noncontig`]: `check atomicity` and `check noncontig`;
//! * [`demo`]: `brlock demo`;
//! * [`bench`](mod@bench): `bench lock`, `bench atomic`, `bench sieve` and `bench append`.
//!
//! Every check has a negative control (a backend that takes no lock, or a deliberately broken
//! variant behind the `testing` feature) that shows it can fail.
//!
//! Every check and benchmark is a [`Check`], run in three steps that every rank of the
//! communicator takes together: [`Check::validate`] (the settings, before anything
//! collective), [`Check::prepare`] (opening files: a failure is agreed, so every rank can
//! return), [`Run::run`] (the work; rank 0 gets the report, `serde::Serialize` and
//! `Display`).
//!
//! A run keeps its ranks in step when one fails: the work between two collective calls is
//! local, its outcome is agreed at the next one ([`agree_result`](crate::collective::agree_result),
//! which also synchronises like the barrier it replaces), and what the run opened is closed
//! on every rank whatever happened ([`files::closing`]). `docs/failures.md` has the rule.

pub mod atomicity;
pub mod bench;
pub mod demo;
pub mod files;
pub mod lock;
pub mod noncontig;
pub mod rma;
pub mod stamp;
pub mod verify;
pub mod workload;

use mpi::topology::Communicator;

pub use crate::collective::Outcome;
use crate::error::Result;

/// A collective check or benchmark: what it does, before it runs.
pub trait Check: Sized {
    /// What rank 0 learns.
    type Report: serde::Serialize + std::fmt::Display;
    /// The check with what it opened, ready to run.
    type Prepared: Run<Report = Self::Report>;

    /// Checks the settings against each other and the job's size, before anything collective
    /// happens: the same answer on every rank.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] naming what is wrong.
    fn validate(&self, ranks: i32) -> Result<()> {
        let _ = ranks;
        Ok(())
    }

    /// The most memory one rank allocates for the run in a job of `ranks` ranks, in bytes,
    /// computed from the settings alone (rank 0's share when it gathers everyone's results),
    /// and the settings it grows with (`--stride x --count`): [`admit`] compares it with the
    /// machine's memory before anything is allocated.
    fn memory(&self, ranks: i32) -> (u128, &'static str) {
        let _ = ranks;
        (0, "")
    }

    /// Collective: opens what the check needs (files, directories) before any window exists.
    ///
    /// # Errors
    /// Agreed by every rank ([`crate::Error::Collective`], naming the failing ranks and their
    /// errors), so that every rank can return; [`crate::Error::InvalidArgument`] as for
    /// [`Check::validate`].
    fn prepare<C: Communicator>(self, comm: &C) -> Result<Self::Prepared>;
}

/// Collective: refuses `check` before it runs if its settings are invalid
/// ([`Check::validate`], the same answer on every rank) or if it would take more memory on a
/// rank ([`Check::memory`]) than this node can give each of its ranks
/// ([`host::available_memory`](crate::host::available_memory) divided by
/// [`host::local_ranks`](crate::host::local_ranks)). The memory is agreed on (nodes differ):
/// every rank returns the refusal together.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming what is wrong, on every rank.
pub fn admit<C: Communicator>(check: &impl Check, comm: &C) -> Result<()> {
    check.validate(comm.size())?;
    let (bytes, settings) = check.memory(comm.size());
    let fits = fits_in_memory(bytes, settings);
    match crate::collective::agree_result(comm, "check the memory", fits) {
        Err(crate::Error::Collective(failure)) => {
            let (rank, message) = failure.failures.first().cloned().unwrap_or_default();
            let message = message
                .strip_prefix("invalid argument: ")
                .unwrap_or(&message);
            Err(crate::Error::InvalidArgument(format!(
                "{message} (rank {rank})"
            )))
        }
        other => other,
    }
}

/// Whether `bytes` fit in this node's share of memory per rank.
fn fits_in_memory(bytes: u128, settings: &str) -> Result<()> {
    let Some(available) = crate::host::available_memory() else {
        return Ok(());
    };
    let ranks = crate::host::local_ranks();
    let share = u128::from(available / ranks);
    if bytes <= share {
        return Ok(());
    }
    use crate::host::human_bytes;
    Err(crate::Error::InvalidArgument(format!(
        "{settings} need {} of memory on a rank, more than this node's {} available leave \
         each of its {ranks} rank(s) ({}); reduce them",
        human_bytes(bytes),
        human_bytes(u128::from(available)),
        human_bytes(share),
    )))
}

/// A prepared [`Check`].
pub trait Run {
    /// What rank 0 learns.
    type Report;

    /// Collective: does the work on every rank of `comm`.
    ///
    /// # Errors
    /// An I/O or lock error of any rank is agreed: every rank returns
    /// [`crate::Error::Collective`] together, after closing what the check opened, so the
    /// program can report it once and end normally. Any other error (an MPI failure inside a
    /// one-sided epoch, say) is this rank's alone, and other ranks may be waiting for it in a
    /// collective call: a program that gets one must end the job (`MPI_Abort`,
    /// [`Runtime::finish`](crate::runtime::Runtime::finish)) rather than return.
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<Self::Report>>;
}

/// The MPI library's name and version, for reports; see [`crate::sys::library_name`].
pub fn mpi_library() -> String {
    crate::sys::library_name()
}

/// The Open MPI one-sided component requested through `OMPI_MCA_osc` (which `mpirun --mca
/// osc X` also sets), if any, for reports.
pub fn requested_osc() -> Option<String> {
    std::env::var("OMPI_MCA_osc").ok().filter(|s| !s.is_empty())
}

/// A directory a check creates for its files (a default lock file, the demo's counters, a
/// benchmark's run), removed with everything in it when dropped; a failure to remove it is
/// logged, not returned.
#[derive(Debug)]
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// Creates `parent/<prefix>-<pid>-<nanoseconds>`.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the directory if it cannot be created.
    pub fn create_in(parent: &std::path::Path, prefix: &str) -> crate::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| crate::Error::Io {
            op: "create directory",
            path: path.display().to_string(),
            source,
        })?;
        Ok(TempDir { path })
    }

    /// [`TempDir::create_in`] the system's temporary directory.
    ///
    /// # Errors
    /// As [`TempDir::create_in`].
    pub fn create(prefix: &str) -> crate::Result<TempDir> {
        TempDir::create_in(&std::env::temp_dir(), prefix)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not remove a check's temporary directory");
        }
    }
}

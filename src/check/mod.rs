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

    /// Collective: opens what the check needs (files, directories) before any window exists.
    ///
    /// # Errors
    /// Agreed by every rank: the failing rank's own error and
    /// [`crate::Error::PeerFailed`] on the others, so that every rank can return;
    /// [`crate::Error::InvalidArgument`] as for [`Check::validate`].
    fn prepare<C: Communicator>(self, comm: &C) -> Result<Self::Prepared>;
}

/// A prepared [`Check`].
pub trait Run {
    /// What rank 0 learns.
    type Report;

    /// Collective: does the work on every rank of `comm`.
    ///
    /// # Errors
    /// I/O, lock and MPI errors, on the rank where they happened: other ranks may be waiting
    /// for it in a collective call, so a program that gets one must end the job
    /// (`MPI_Abort`) rather than return.
    fn run<C: Communicator>(self, comm: &C) -> Result<Outcome<Self::Report>>;
}

/// The MPI library's name and version, for reports: the first line of its description
/// (MPICH's runs over many lines) up to the first comma, with runs of whitespace made single
/// spaces (`Open MPI v4.1.4`).
pub fn mpi_library() -> String {
    let version = crate::sys::library_version();
    let first = version.lines().next().unwrap_or_default();
    // Open MPI's first line goes on with ", package: ..., ident: ...": keep the name.
    let name = first.split(',').next().unwrap_or_default();
    name.split_whitespace().collect::<Vec<_>>().join(" ")
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

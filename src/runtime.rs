//! MPI initialisation for Rust programs, and what can be told about the launcher.
//!
//! A Rust program may let the library own MPI: it creates one [`Runtime`] first and drops it
//! last; dropping it finalizes MPI, so every [`OwnedComm`](crate::sys::OwnedComm),
//! [`Window`](crate::sys::Window) and lock built on them must be freed before. Nothing else in
//! the library needs a `Runtime`: every constructor takes a communicator, so a program that
//! initialises MPI itself (or a C caller, through [`crate::sys::BorrowedComm`]) uses the same
//! API. The library only emits `tracing` events and never prints; installing a subscriber is
//! the program's business (the `brlock` binary prefixes every line with the rank).

use std::fmt;

use mpi::environment::Universe;
use mpi::topology::{Communicator, Rank, SimpleCommunicator};
use mpi::Threading;

use crate::error::{Error, Result};
use crate::sys;

/// The MPI environment of this process: rsmpi's `Universe` and the world communicator.
///
/// MPI is initialised by [`Runtime::init`] and finalized when the `Runtime` is dropped, so it
/// must be the last MPI object dropped: free windows and communicators first.
pub struct Runtime {
    // Field order is drop order: the world handle (a no-op to drop) before the universe,
    // whose drop calls MPI_Finalize.
    world: SimpleCommunicator,
    threading: Threading,
    launcher: Option<&'static str>,
    _universe: Universe,
}

impl Runtime {
    /// Initialises MPI asking for `MPI_THREAD_FUNNELED` (MPI is called from the main thread
    /// only; `MPI_THREAD_MULTIPLE` is not requested because Open MPI's `osc pt2pt` refuses
    /// it). The level actually granted is [`Runtime::thread_level`].
    ///
    /// Without a launcher (no `mpirun`), MPI starts a single-rank "singleton" job.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if MPI is already initialised in this process (there can be
    /// only one `Runtime`), or was initialised and finalized before.
    ///
    /// MPI 3.1 §12.4.3, `MPI_Init_thread`.
    pub fn init() -> Result<Runtime> {
        // Before MPI_Init: an Open MPI singleton sets PMIx variables in our environment.
        let launcher = detect_launcher();
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "MPI is already initialised in this process; create one Runtime only".into(),
                )
            })?;
        Ok(Runtime {
            world: universe.world(),
            threading,
            launcher,
            _universe: universe,
        })
    }

    /// The world communicator (`MPI_COMM_WORLD`, errors are fatal on it).
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// This process's rank in the world.
    pub fn rank(&self) -> Rank {
        self.world.rank()
    }

    /// Number of processes in the world.
    pub fn size(&self) -> Rank {
        self.world.size()
    }

    /// The thread support level MPI granted, as its C name (e.g. `MPI_THREAD_FUNNELED`).
    pub fn thread_level(&self) -> &'static str {
        match self.threading {
            Threading::Single => "MPI_THREAD_SINGLE",
            Threading::Funneled => "MPI_THREAD_FUNNELED",
            Threading::Serialized => "MPI_THREAD_SERIALIZED",
            Threading::Multiple => "MPI_THREAD_MULTIPLE",
        }
    }

    /// The launcher detected (by [`detect_launcher`]) before MPI was initialised, or `None`
    /// for a singleton.
    pub fn launcher(&self) -> Option<&'static str> {
        self.launcher
    }

    /// The MPI library's description of itself; see [`sys::library_version`].
    pub fn library_version(&self) -> String {
        sys::library_version()
    }

    /// The MPI standard version implemented, `(version, subversion)`; see
    /// [`sys::standard_version`].
    pub fn standard_version(&self) -> (i32, i32) {
        sys::standard_version()
    }

    /// Terminates the whole job with `code` (`MPI_Abort` on the world communicator). For a
    /// rank that failed inside a collective operation, where returning would leave the other
    /// ranks waiting forever.
    pub fn abort(&self, code: i32) -> ! {
        sys::abort(&self.world, code)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .field("thread_level", &self.thread_level())
            .finish()
    }
}

/// The process launcher this process appears to run under, from the variables launchers set
/// in the environment, or `None` (started directly: an MPI singleton). Meaningful before MPI
/// is initialised only: an Open MPI singleton sets PMIx variables during `MPI_Init`.
///
/// Recognised: `"mpirun (Open MPI)"` (`OMPI_COMM_WORLD_SIZE`), `"hydra (MPICH)"`
/// (`PMI_RANK`/`PMI_SIZE`), `"pmix"` (`PMIX_RANK`), `"slurm"` (`SLURM_PROCID`).
pub fn detect_launcher() -> Option<&'static str> {
    let set = |name: &str| std::env::var_os(name).is_some();
    if set("OMPI_COMM_WORLD_SIZE") {
        Some("mpirun (Open MPI)")
    } else if set("PMI_RANK") || set("PMI_SIZE") {
        Some("hydra (MPICH)")
    } else if set("PMIX_RANK") {
        Some("pmix")
    } else if set("SLURM_PROCID") {
        Some("slurm")
    } else {
        None
    }
}

/// Why this process, started without a launcher, cannot become an MPI singleton, when that can
/// be told before initialising MPI (where a failure would print a page of diagnostics and exit,
/// or worse). `None` when launched by a launcher or when nothing is known to be wrong.
///
/// Known case: Open MPI needs `ssh` or `rsh` on `PATH` (its `plm_rsh_agent`) to start even a
/// singleton, although it never uses it; an empty `OMPI_MCA_plm_rsh_agent` lifts that.
pub fn singleton_problem() -> Option<String> {
    if detect_launcher().is_some() || !sys::library_version().starts_with("Open MPI") {
        return None;
    }
    let agent_configured = ["OMPI_MCA_plm_rsh_agent", "OMPI_MCA_orte_rsh_agent"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
        || mca_param_files().any(|text| {
            text.lines().any(|line| {
                let line = line.trim_start();
                line.starts_with("plm_rsh_agent") || line.starts_with("orte_rsh_agent")
            })
        });
    if agent_configured || ["ssh", "rsh"].iter().any(|p| on_path(p)) {
        return None;
    }
    Some(
        "started without mpirun, Open MPI needs `ssh` or `rsh` on PATH even for a single \
         process: install openssh-client, or set OMPI_MCA_plm_rsh_agent= (empty) in the \
         environment, or launch with `mpirun -n N brlock ...`"
            .into(),
    )
}

/// The contents of the Open MPI MCA parameter files that exist (system-wide and per user).
fn mca_param_files() -> impl Iterator<Item = String> {
    let home = std::env::var_os("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".openmpi/mca-params.conf"));
    [
        Some(std::path::PathBuf::from(
            "/etc/openmpi/openmpi-mca-params.conf",
        )),
        home,
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| std::fs::read_to_string(p).ok())
}

/// Whether a file `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

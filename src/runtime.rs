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
/// must be the last MPI object dropped: close files and lock services, free windows and
/// communicators first.
///
/// # Failure
///
/// `MPI_Finalize` is collective: a rank that finalizes while another waits for it in a
/// collective call hangs the job. So dropping the `Runtime` does not finalize, but ends the
/// whole job at once (`MPI_Abort`, after one error line) when this rank is known to be off the
/// common path: it is unwinding from a panic, or it dropped a communicator, window or file
/// without its collective free ([`sys::abandoned`], what an early return on an error does to an
/// [`AtomicFile`](crate::io::AtomicFile) or a lock service). An error this rank returns from
/// `main` without any of that is invisible here: pass it to [`Runtime::finish`], which ends the
/// job for an error of this rank alone and finalizes for one every rank shares
/// ([`Error::Collective`]). The line goes to the installed `tracing` subscriber, or straight to
/// stderr if there is none: the job is about to end and nothing else would explain why.
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
    /// The size of the world is compared with the number of processes the launcher says it
    /// started ([`launched_size`]): a program built against one MPI and started by another
    /// MPI's launcher (Open MPI's `mpirun` for an MPICH build, MPICH's `mpirun.mpich` for an
    /// Open MPI build) runs as that many separate one-rank jobs, which would each write the
    /// same files as "rank 0 of 1". Setting `BRLOCK_SKIP_LAUNCHER_CHECK=1` skips the
    /// comparison (for launchers that set these variables for other reasons).
    ///
    /// # Errors
    /// [`Error::Launcher`] on such a mismatch, naming the MPI the program was built for and
    /// the launcher; [`Error::InvalidArgument`] if MPI is already initialised in this
    /// process (there can be only one `Runtime`), or was initialised and finalized before.
    ///
    /// MPI 3.1 §12.4.3, `MPI_Init_thread`.
    pub fn init() -> Result<Runtime> {
        // Before MPI_Init: an Open MPI singleton sets PMIx variables in our environment.
        let launcher = detect_launcher();
        let launched = launched_size();
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "MPI is already initialised in this process; create one Runtime only".into(),
                )
            })?;
        let rt = Runtime {
            world: universe.world(),
            threading,
            launcher,
            _universe: universe,
        };
        let skip = std::env::var_os("BRLOCK_SKIP_LAUNCHER_CHECK").is_some_and(|v| v == "1");
        if let Some(launched) = launched.filter(|_| !skip) {
            if let Some(problem) = launched.mismatch(rt.size()) {
                // Every process is a singleton here: finalizing it waits for nobody.
                drop(rt);
                return Err(Error::Launcher(problem));
            }
        }
        Ok(rt)
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

    /// Ends the program's use of MPI with its `result`: an error of this rank alone, with
    /// several ranks, may leave the others waiting for this one, so it ends the whole job
    /// (one error line naming the rank and the error, then `MPI_Abort` with code 1); anything
    /// else (success, an error every rank returned together, a single rank) finalizes MPI
    /// and returns `result` for `main` to report.
    ///
    /// # Errors
    /// `result`'s error.
    pub fn finish<T>(self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if self.size() > 1 && !e.is_collective() {
                self.end_job(&format!("{e}"));
            }
        }
        drop(self);
        result
    }

    /// One error line (`rank R: ending the job: why`), then `MPI_Abort`.
    fn end_job(&self, why: &str) -> ! {
        let line = format!("rank {}: ending the job: {why}", self.rank());
        if tracing::dispatcher::has_been_set() {
            tracing::error!("{line}");
        } else {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr().lock(),
                format!("brlock: {line}\n").as_bytes(),
            );
        }
        self.abort(1)
    }
}

impl Drop for Runtime {
    /// Finalizes MPI (the universe, dropped after this), unless this rank is off the common
    /// path: see [`Runtime`], "Failure".
    fn drop(&mut self) {
        if self.size() <= 1 {
            return;
        }
        if std::thread::panicking() {
            self.end_job("it panicked");
        }
        let abandoned = sys::abandoned();
        if let Some(first) = abandoned.first() {
            self.end_job(&format!(
                "{first}{} dropped without its collective free (an early return on an error?); \
                 the other ranks may be waiting in it",
                match abandoned.len() {
                    1 => String::new(),
                    n => format!(" and {} more handles", n - 1),
                }
            ));
        }
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

/// What a launcher's environment says about the job this process belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// The launcher, as users know it (`Open MPI's mpirun`).
    pub launcher: &'static str,
    /// The variable that told the number of processes.
    pub variable: &'static str,
    /// How many processes it started.
    pub size: i32,
    /// This process's rank among them, if the launcher says.
    pub rank: Option<i32>,
}

impl Launched {
    /// The one-line refusal when MPI's world has `world` ranks but the launcher started
    /// [`Launched::size`] processes, or `None` when they agree.
    pub fn mismatch(&self, world: Rank) -> Option<String> {
        if world == self.size {
            return None;
        }
        Some(format!(
            "built against {built} but started by {launcher} ({var}={size}), while {built} \
             sees {world} process(es): each would run alone as rank 0; start it with the \
             mpirun of {built}, or rebuild against the MPI of this launcher",
            built = sys::library_name(),
            launcher = self.launcher,
            size = self.size,
            var = self.variable,
        ))
    }
}

/// The number of processes the launcher says it started, from the variables launchers set
/// (Open MPI's `OMPI_COMM_WORLD_SIZE`, then `PMI_SIZE` of MPICH's hydra and other PMI
/// launchers, then Slurm's `SLURM_STEP_NUM_TASKS`, which `srun` sets for a job step but not
/// for the batch script itself), or `None` without a launcher. Read it before MPI is
/// initialised.
pub fn launched_size() -> Option<Launched> {
    launched_size_in(|name| std::env::var(name).ok())
}

/// [`launched_size`] over any environment.
fn launched_size_in(var: impl Fn(&str) -> Option<String>) -> Option<Launched> {
    let number = |name: &str| var(name).and_then(|v| v.trim().parse::<i32>().ok());
    [
        (
            "Open MPI's mpirun",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_RANK",
        ),
        (
            "a PMI launcher (MPICH's hydra, mpirun.mpich)",
            "PMI_SIZE",
            "PMI_RANK",
        ),
        ("Slurm's srun", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),
    ]
    .into_iter()
    .find_map(|(launcher, size_var, rank_var)| {
        let size = number(size_var).filter(|&n| n > 0)?;
        Some(Launched {
            launcher,
            variable: size_var,
            size,
            rank: number(rank_var),
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_the_launchers_size() {
        assert_eq!(launched_size_in(env(&[])), None);
        let hydra = launched_size_in(env(&[("PMI_SIZE", "4"), ("PMI_RANK", "2")])).unwrap();
        assert_eq!(
            (hydra.size, hydra.rank, hydra.variable),
            (4, Some(2), "PMI_SIZE")
        );
        // Open MPI's variables win over Slurm's, which mpirun inside an allocation inherits.
        let ompi = launched_size_in(env(&[
            ("SLURM_STEP_NUM_TASKS", "8"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
        ]))
        .unwrap();
        assert_eq!((ompi.size, ompi.rank), (2, None));
        // A batch script has SLURM_NTASKS and SLURM_PROCID but no step: a singleton.
        assert_eq!(
            launched_size_in(env(&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")])),
            None
        );
        assert_eq!(launched_size_in(env(&[("PMI_SIZE", "many")])), None);
    }

    #[test]
    fn a_mismatch_is_one_line() {
        let l = launched_size_in(env(&[("PMI_SIZE", "4")])).unwrap();
        assert_eq!(l.mismatch(4), None);
        let line = l.mismatch(1).unwrap();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("PMI_SIZE=4") && line.contains("hydra"),
            "{line}"
        );
    }
}

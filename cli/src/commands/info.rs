//! `brlock info`: what MPI this is and how it was started.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::args::Json;
use crate::output::{emit, emit_json};
use brlock::check::{mpi_library, requested_osc};
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    output: Json,
}

/// The facts `brlock info` reports.
#[derive(Debug, Serialize)]
struct Info {
    /// `MPI_Get_library_version`, trimmed.
    mpi_library: String,
    /// `MPI_Get_version` as `"major.minor"`.
    mpi_version: String,
    /// Ranks in the world.
    ranks: i32,
    /// Thread level granted (`MPI_THREAD_FUNNELED` was requested).
    thread_level: &'static str,
    /// `OMPI_MCA_osc`, if set.
    osc: Option<String>,
    /// The launcher, guessed from its environment variables; `None` for a singleton.
    launcher_detected: Option<&'static str>,
}

/// Prints the MPI facts on rank 0; other ranks print nothing.
///
/// # Errors
/// If stdout cannot be written.
pub fn run(rt: &Runtime, args: &InfoArgs) -> Result<ExitCode> {
    if rt.rank() != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let (major, minor) = rt.standard_version();
    let info = Info {
        mpi_library: rt.library_version(),
        mpi_version: format!("{major}.{minor}"),
        ranks: rt.size(),
        thread_level: rt.thread_level(),
        osc: requested_osc(),
        launcher_detected: rt.launcher(),
    };
    if args.output.json {
        emit_json(&info)?;
    } else {
        emit(&format!(
            "MPI library:   {}\nMPI standard:  {}\nthread level:  {} (requested MPI_THREAD_FUNNELED)\n\
             ranks:         {}\nosc component: {}\nlauncher:      {}",
            mpi_library(),
            info.mpi_version,
            info.thread_level,
            info.ranks,
            info.osc.as_deref().unwrap_or("(library default)"),
            info.launcher_detected.unwrap_or("none (singleton)"),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

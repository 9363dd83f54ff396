//! The file backends that the I/O checks and benchmarks compare, opened alike, and what their
//! reports say about the file.
//!
//! * [`FileBackend::Rma`]: [`AtomicFile`] over the one-sided lock service;
//! * [`FileBackend::Mpiio`]: the MPI library's MPI-IO ([`MpiIoFile`]; ROMIO under Open MPI's
//!   `--mca io romio321`, which honours atomic mode with fcntl locks);
//! * [`FileBackend::None`]: [`AtomicFile`] over [`NoLock`](crate::NoLock): the negative
//!   control, which excludes nothing.

use std::path::{Path, PathBuf};

use mpi::collective::CommunicatorCollectives;
use mpi::topology::Communicator;
use serde::Serialize;

use super::{mpi_library, requested_osc};
use crate::choice::choice;
use crate::collective::{agree_result, path_from};
use crate::error::{Error, Result};
use crate::io::mpiio::MpiIoFile;
use crate::io::{AtomicFile, Coherence, OpenOptions, ParallelFile};

choice! {
    /// How the I/O checks and benchmarks reach the file.
    pub enum FileBackend {
        /// POSIX I/O with atomic mode and sieving over the one-sided lock service.
        Rma = "rma",
        /// MPI-IO (`MPI_File_set_atomicity`); pick ROMIO with `mpirun --mca io romio321`.
        Mpiio = "mpiio",
        /// POSIX I/O over a lock that excludes nothing: the negative control (`nonatomic`).
        None = "none",
    }
    aliases { None = "nonatomic" }
}

/// A file opened through one of the backends, with what reports say about it.
pub struct Opened<F> {
    /// The file.
    pub file: F,
    /// Its file system type (`unknown` if it cannot be told).
    pub fs_type: String,
    /// The coherence strategy, for the lock-based backend.
    pub coherence: Option<Coherence>,
    /// The MPI-IO implementation, for MPI-IO.
    pub io_component: Option<String>,
}

/// Opens `path` as an [`AtomicFile`] over the one-sided lock service (collective).
///
/// # Errors
/// As [`AtomicFile::open`].
pub fn open_rma(
    comm: &impl Communicator,
    path: &Path,
    options: &OpenOptions,
) -> Result<Opened<AtomicFile>> {
    let f = AtomicFile::open(comm, path, options)?;
    Ok(Opened {
        fs_type: f.fs_type().to_string(),
        coherence: Some(f.coherence()),
        io_component: None,
        file: f,
    })
}

/// Opens `path` with MPI-IO, passing `hints` (collective).
///
/// # Errors
/// As [`MpiIoFile::open`].
pub fn open_mpiio(
    comm: &impl Communicator,
    path: &Path,
    hints: &[(&str, &str)],
) -> Result<Opened<MpiIoFile>> {
    let f = MpiIoFile::open(comm, path, hints)?;
    Ok(Opened {
        fs_type: crate::host::fs_type(path).unwrap_or_else(|_| "unknown".into()),
        coherence: None,
        io_component: Some(f.implementation().to_string()),
        file: f,
    })
}

/// Opens `path` through `backend` (collective); MPI-IO gets `hints`.
///
/// # Errors
/// As [`AtomicFile::open`] and [`MpiIoFile::open`].
pub fn open_backend(
    comm: &impl Communicator,
    path: &Path,
    backend: FileBackend,
    options: &OpenOptions,
    hints: &[(&str, &str)],
) -> Result<Opened<Box<dyn ParallelFile>>> {
    Ok(match backend {
        FileBackend::Rma => open_rma(comm, path, options)?.boxed(),
        FileBackend::Mpiio => open_mpiio(comm, path, hints)?.boxed(),
        FileBackend::None => {
            let f = AtomicFile::open_unlocked(comm, path, options)?;
            Opened {
                fs_type: f.fs_type().to_string(),
                coherence: None,
                io_component: None,
                file: Box::new(f),
            }
        }
    })
}

impl<F: ParallelFile + 'static> Opened<F> {
    /// The same, with the file boxed.
    pub fn boxed(self) -> Opened<Box<dyn ParallelFile>> {
        self.map(|f| Box::new(f) as Box<dyn ParallelFile>)
    }
}

impl<F> Opened<F> {
    /// The same, with the file replaced by `f(file)`.
    pub fn map<G>(self, f: impl FnOnce(F) -> G) -> Opened<G> {
        Opened {
            file: f(self.file),
            fs_type: self.fs_type,
            coherence: self.coherence,
            io_component: self.io_component,
        }
    }
}

/// Collective: rank 0 writes `initial` at offset 0, then every rank [`settle`]s.
///
/// # Errors
/// [`Error::Collective`] on every rank if a rank's write or sync failed.
pub fn lay_out(
    comm: &impl Communicator,
    file: &mut (impl ParallelFile + ?Sized),
    initial: &[u8],
) -> Result<()> {
    let written = if comm.rank() == 0 {
        file.write_at(0, initial)
    } else {
        Ok(())
    };
    agree_result(comm, "lay out the file", written)?;
    settle(comm, file)
}

/// Collective: sync, agree (every rank is past its sync: a barrier), sync, agree: makes every
/// rank's writes visible to every rank (the MPI-IO recipe outside atomic mode).
///
/// # Errors
/// [`Error::Collective`] on every rank if a rank's sync failed.
pub fn settle(comm: &impl Communicator, file: &mut (impl ParallelFile + ?Sized)) -> Result<()> {
    agree_result(comm, "sync", file.sync())?;
    agree_result(comm, "sync", file.sync())
}

/// Collective: runs `body` on the open `file`, then closes the file on every rank, whatever
/// `body` returned, and returns the first error. `body` keeps the ranks in step: its errors
/// are agreed ([`Error::Collective`], returned by every rank together), so every rank reaches
/// the close. An error of one rank alone would leave the others waiting elsewhere: then the
/// file is dropped without the collective close, and the job ends when the
/// [`Runtime`](crate::runtime::Runtime) is dropped, rather than hang.
///
/// # Errors
/// `body`'s error, else [`Error::Collective`] if the close failed on some rank.
pub fn closing<T>(
    comm: &impl Communicator,
    mut file: Box<dyn ParallelFile>,
    body: impl FnOnce(&mut dyn ParallelFile) -> Result<T>,
) -> Result<T> {
    let out = body(file.as_mut());
    if matches!(&out, Err(e) if !e.is_collective()) {
        return out;
    }
    let closed = agree_result(comm, "close", file.close());
    let out = out?;
    closed.map(|()| out)
}

/// What an I/O benchmark ran on, as its report says it.
#[derive(Debug, Serialize)]
pub struct Setting {
    /// The file (of even ranks).
    pub file: String,
    /// The file through the second client (odd ranks).
    pub alt_file: Option<String>,
    /// The file system type.
    pub fs_type: String,
    /// The coherence strategy (lock-based backends).
    pub coherence: Option<Coherence>,
    /// The MPI-IO implementation (MPI-IO).
    pub io_component: Option<String>,
    /// The MPI library.
    pub mpi_library: String,
    /// `OMPI_MCA_osc`.
    pub osc: Option<String>,
}

impl Setting {
    /// The setting of a run on `shared` (odd ranks through `alt`) with what `opened` says.
    pub fn new<F>(shared: &SharedFile, alt: Option<&Path>, opened: &Opened<F>) -> Setting {
        Setting {
            file: shared.shown.clone(),
            alt_file: alt.map(|p| p.display().to_string()),
            fs_type: opened.fs_type.clone(),
            coherence: opened.coherence,
            io_component: opened.io_component.clone(),
            mpi_library: mpi_library(),
            osc: requested_osc(),
        }
    }
}

/// The file an I/O benchmark works on: the one the user named, or a temporary one rank 0
/// created and told the others about.
#[derive(Debug)]
pub struct SharedFile {
    /// The path of even ranks (and of all ranks without an alternative path).
    pub path: PathBuf,
    /// The path as reports show it.
    pub shown: String,
    /// Whether rank 0 created it (and removes it in [`SharedFile::remove`]).
    temporary: bool,
}

impl SharedFile {
    /// `file` if given; otherwise rank 0 creates `brlock-bench-<what>.<pid>.<nanos>` in the
    /// temporary directory and every rank learns its path. Collective.
    ///
    /// # Errors
    /// [`Error::Collective`] on every rank if rank 0 cannot create the file.
    pub fn resolve(
        comm: &impl Communicator,
        file: Option<&Path>,
        what: &str,
    ) -> Result<SharedFile> {
        if let Some(f) = file {
            return Ok(SharedFile {
                path: f.to_path_buf(),
                shown: f.display().to_string(),
                temporary: false,
            });
        }
        let path = path_from(comm, 0, "create the temporary file", || {
            let p = std::env::temp_dir().join(format!(
                "brlock-bench-{what}.{}.{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ));
            std::fs::File::create(&p).map_err(|source| Error::Io {
                op: "create",
                path: p.display().to_string(),
                source,
            })?;
            Ok(p)
        })?;
        Ok(SharedFile {
            shown: path.display().to_string(),
            path,
            temporary: true,
        })
    }

    /// The path `rank` opens: odd ranks use `alt` if given.
    pub fn path_for(&self, rank: i32, alt: Option<&Path>) -> PathBuf {
        crate::collective::split_path(rank, &self.path, alt).to_path_buf()
    }

    /// Collective: after every rank closed the file, rank 0 removes a temporary one (a failure
    /// is only logged).
    pub fn remove(&self, comm: &impl Communicator) {
        comm.barrier();
        if self.temporary && comm.rank() == 0 {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.shown, error = %e, "cannot remove the temporary file");
            }
        }
    }
}

//! The caller's MPI: its communicator handles (C and Fortran), and the check that the process
//! runs under the MPI library this library was built for.

use std::os::raw::c_int;

use brlock::sys::BorrowedComm;
use brlock::Error;
use mpi::ffi;

/// The MPI library this library was built for (`Open MPI 4.1.4`, `MPICH 4.0.2`), recorded
/// by `build.rs`; empty when the build could not tell.
pub(crate) const BUILT_FOR: &str = env!("BRLOCK_BUILT_FOR_MPI");

/// `Ok` if the MPI library of this process is of the family this library was built for.
///
/// Asks only `MPI_Get_library_version`, which takes no MPI handle, so it is safe to call
/// under another MPI's ABI (where the handles this library was compiled with mean nothing).
///
/// # Errors
/// [`Error::Launcher`] naming both libraries.
pub(crate) fn ensure_built_for_this_mpi() -> Result<(), Error> {
    let family = BUILT_FOR.split(' ').next().unwrap_or_default();
    let family = if family == "Open" { "Open MPI" } else { family };
    if family.is_empty() {
        return Ok(());
    }
    let running = running_library();
    if running.contains(family) {
        return Ok(());
    }
    Err(Error::Launcher(format!(
        "libbrlock was built for {BUILT_FOR} but this process runs {running}: rebuild \
         libbrlock against this MPI (MPICC=... cargo build) or build the program with the \
         mpicc of {BUILT_FOR}"
    )))
}

/// The running MPI library's name and version (`Open MPI v4.1.4`, `MPICH Version: 4.0.2`).
///
/// Asks only `MPI_Get_library_version`, whose buffer in [`brlock::sys::library_version`] is
/// larger than any implementation's constant, so it is sound under another MPI's ABI too.
fn running_library() -> String {
    brlock::sys::library_name()
}

/// The caller's C communicator, after checking the MPI library.
///
/// # Errors
/// [`Error::Launcher`] under another MPI; as [`BorrowedComm::from_raw`].
///
/// # Safety
/// `comm` is `MPI_COMM_NULL` or a live communicator of this process that stays live while the
/// result is used.
pub(crate) unsafe fn borrow(comm: ffi::MPI_Comm) -> Result<BorrowedComm, Error> {
    ensure_built_for_this_mpi()?;
    // SAFETY: the caller's promise about `comm`, passed on.
    unsafe { BorrowedComm::from_raw(comm) }
}

/// The caller's Fortran communicator (an `MPI_Fint`, `comm%MPI_VAL` of `type(MPI_Comm)`),
/// converted with `MPI_Comm_f2c` once MPI is known to be running.
///
/// # Errors
/// As [`borrow`].
///
/// # Safety
/// `comm` is a Fortran handle of a live communicator of this process (or of
/// `MPI_COMM_NULL`) that stays live while the result is used.
pub(crate) unsafe fn borrow_fortran(comm: c_int) -> Result<BorrowedComm, Error> {
    ensure_built_for_this_mpi()?;
    let mut initialized: c_int = 0;
    // SAFETY: a valid out-pointer; MPI_Initialized may be called at any time.
    unsafe { ffi::MPI_Initialized(&mut initialized) };
    if initialized == 0 {
        return Err(Error::InvalidArgument(
            "MPI is not initialised: the caller owns MPI and must initialise it first".into(),
        ));
    }
    // SAFETY: MPI is initialised; f2c only looks the Fortran handle up in MPI's table.
    let raw = unsafe { ffi::RSMPI_Comm_f2c(comm) };
    // SAFETY: `raw` is the C handle of the caller's live communicator (its promise).
    unsafe { BorrowedComm::from_raw(raw) }
}

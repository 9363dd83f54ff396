//! The C API of brlock (installed as `libbrlock.so` / `libbrlock.a` with `brlock.h` and
//! `brlock.pc` by `scripts/install.sh`): the lock service, shared appends and atomic files
//! for C, C++ and Fortran MPI programs. `docs/c-api.md` documents every function.
//!
//! Every entry point is a thin wrapper over the Rust library: it turns C arguments into Rust
//! values (an `MPI_Comm` into a [`brlock::sys::BorrowedComm`], offsets and lengths into a
//! [`brlock::ByteRange`]), calls the library and turns the outcome into an `int` status. The
//! caller owns MPI: nothing here initialises or finalises it.
//!
//! This crate and the library's `sys` module are the only places with `unsafe` code: here,
//! only where C hands over pointers and handles, each block saying why it is sound.

use std::os::raw::c_int;

pub mod append;
mod args;
pub mod atomic;
pub mod lock;
mod mpi;
pub mod status;

pub use append::*;
pub use atomic::*;
pub use lock::*;
pub use status::*;

/// The version of the library, as `MAJOR * 10000 + MINOR * 100 + PATCH`.
#[no_mangle]
pub extern "C" fn brlock_version() -> c_int {
    let part = |s: &str| s.parse::<c_int>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The MPI library this libbrlock was built for, as a static string (`"Open MPI 4.1.4"`,
/// `"MPICH 4.0.2"`; empty if the build could not tell). A program running under another MPI
/// gets `BRLOCK_ERR_WRONG_MPI` from every open. Local, callable without MPI.
#[no_mangle]
pub extern "C" fn brlock_built_for_mpi() -> *const std::os::raw::c_char {
    concat!(env!("BRLOCK_BUILT_FOR_MPI"), "\0").as_ptr().cast()
}

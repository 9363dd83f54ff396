//! The C API of brlock (`libbrlock_capi.so` / `.a` for now): the lock service, shared appends
//! and atomic files for C, C++ and Fortran MPI programs.
//!
//! Every entry point is a thin wrapper over the Rust library: it turns C arguments into Rust
//! values (an `MPI_Comm` into a [`brlock::sys::BorrowedComm`], offsets and lengths into a
//! [`brlock::ByteRange`]), calls the library and turns the outcome into an `int` status. The
//! caller owns MPI: nothing here initialises or finalises it.
//!
//! This crate and the library's `sys` module are the only places with `unsafe` code: here,
//! only where C hands over pointers and handles, each block saying why it is sound.

use std::os::raw::c_int;

/// The version of the library, as `MAJOR * 10000 + MINOR * 100 + PATCH`.
#[no_mangle]
pub extern "C" fn brlock_version() -> c_int {
    let part = |s: &str| s.parse::<c_int>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

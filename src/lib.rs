//! # brlock
//!
//! Byte-range locks for MPI programs that do not rely on the file system's own locking, and
//! the MPI-IO-style I/O built on them.
//!
//! The crate is layered; `unsafe` MPI calls live in one module, the protocol knows no MPI:
//!
//! * [`range`], [`error`]: byte ranges, lock modes, the error type.
//! * [`protocol`]: the lock algorithm (Thakur, Ross and Latham, EuroPVM/MPI 2005, extended
//!   with shared locks, tickets for bounded waiting, try-lock and timeouts). No MPI inside:
//!   it is written once against the [`transport::Transport`] abstraction.
//! * [`transport`]: implementations of that abstraction: MPI one-sided communication
//!   ([`transport::rma`]) and an in-process simulation ([`transport::sim`]) used by the model
//!   checks.
//! * [`lock`]: the one trait every byte-range lock implements, and its RAII guard.
//! * [`fcntl`]: the same trait over the kernel's `fcntl` record locks (POSIX and Linux
//!   open-file-description locks), the baseline the one-sided service is compared with.
//! * [`io`]: file I/O over the locks: atomic mode, noncontiguous access, data sieving,
//!   shared-file appends.
//! * [`sys`]: the only module with `unsafe` code: a small safe layer over `mpi::ffi`.
//! * [`runtime`]: MPI initialisation and rank-prefixed `tracing` output.
//! * [`verify`], [`workload`]: checks that do not trust the lock (bypass computation, an
//!   in-process observer) and the request streams of `brlock check` and `brlock bench`.
//!
//! See `docs/protocol.md` for the protocol and its correctness argument.

pub mod error;
pub mod fcntl;
pub mod io;
pub mod lock;
pub mod protocol;
pub mod range;
pub mod runtime;
pub(crate) mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;
pub mod verify;
pub mod workload;

pub use error::{Error, Result};
pub use lock::{NoLock, RangeGuard, RangeLock};
pub use range::{ByteRange, LockMode, RangeError};

//! # brlock
//!
//! Byte-range locks for MPI programs that do not rely on the file system's own locking, and
//! the MPI-IO-style I/O built on them. `docs/architecture.md` describes the layers and what
//! each may import; from the bottom up:
//!
//! * [`range`], [`pieces`], [`view`], [`error`], [`choice`]: byte ranges and lock modes,
//!   noncontiguous piece lists, MPI file views as byte maps, the error type, named choices.
//! * [`sys`]: the only module with `unsafe` code, a small safe layer over `mpi::ffi`
//!   (windows, epochs, communicators, MPI-IO, one `statx`).
//! * [`protocol`]: the lock algorithms (the default hands a released range directly to its
//!   waiters over a list of live requests; Thakur, Ross and Latham's of EuroPVM/MPI 2005 is
//!   the other), with shared locks, tickets for bounded waiting, try-lock and timeouts,
//!   written once against their own [`protocol::Transport`] abstraction. No MPI inside.
//! * [`transport`]: implementations of that abstraction: MPI one-sided communication
//!   ([`transport::rma`]) and, with the `testing` feature, an in-process simulation used by
//!   the model checks.
//! * [`lock`]: the one trait every byte-range lock implements ([`RangeLock`]), its RAII guard,
//!   and the locks: the MPI one-sided service ([`RmaLock`]), sharded over several home ranks
//!   ([`lock::Sharded`]), and the kernel's `fcntl` locks ([`FcntlLock`]).
//! * [`collective`]: what ranks agree on (one outcome for all, a path chosen by rank 0).
//! * [`io`]: file I/O over the locks: atomic mode, coherence across client caches, data
//!   sieving, shared-file appends and the `collect` engine.
//! * [`check`]: the checks and benchmarks of `brlock check` and `brlock bench`.
//! * [`runtime`], [`host`]: MPI initialisation for Rust programs, facts about the machine.
//!
//! The crate builds without any command-line or logging-setup dependency; the `brlock`
//! binary (package `brlock-cli`) and the C API (package `brlock-capi`) are built on it. See
//! `docs/protocol.md` for the protocol and its correctness argument.

pub mod check;
pub mod choice;
pub mod collective;
pub mod error;
pub mod host;
pub mod io;
pub mod lock;
pub mod pieces;
pub mod protocol;
pub mod range;
pub mod runtime;
#[cfg(feature = "testing")]
pub(crate) mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;
pub mod view;

pub use error::{Error, Result};
pub use lock::{FcntlKind, FcntlLock, NoLock, RangeGuard, RangeLock, RmaLock};
pub use pieces::{Piece, Pieces};
pub use range::{ByteRange, LockMode, RangeError};

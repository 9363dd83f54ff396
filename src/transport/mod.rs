//! Implementations of the protocol's [`Transport`](crate::protocol::Transport): "the table
//! window and the wake-up channel".
//!
//! * [`rma::RmaTransport`]: the table in an MPI window on the home rank, updated in
//!   passive-target exclusive epochs; wake-ups are zero-byte messages on a private
//!   communicator.
//! * `sim::SimTransport` (feature `testing`): the table behind a mutex and wake-ups as
//!   counters behind condition variables, in one process; built on `crate::sync`
//!   (`src/sync.rs`) so that loom and shuttle can drive it.
//!
//! A new transport implements [`Transport`](crate::protocol::Transport) here; the protocol
//! itself does not change.

pub mod rma;
#[cfg(feature = "testing")]
pub mod sim;

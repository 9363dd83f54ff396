//! The benchmarks of `brlock bench`. Each measures what it is named after and checks, in the
//! same run, that what it measured was correct (the exclusion checker stays on, every record
//! and block is verified): a broken implementation fails instead of looking fast.
//!
//! * [`lock`]: lock+unlock latency and throughput against the raw epoch pair, for the
//!   one-sided service and the kernel's fcntl locks;
//! * [`atomic`]: overlapping 4 KiB accesses in atomic mode against plain I/O and MPI-IO;
//! * [`sieve`]: strided writes sieved, piece by piece, and through MPI-IO;
//! * [`append`]: one-sided appends against flock per batch and one file per record;
//! * `layout` (feature `testing`): bytes per epoch of each algorithm's table layout as the
//!   number of ranks grows, on the simulation.
//!
//! Each report records what it ran on (MPI library, one-sided component, file system).

pub mod append;
pub mod atomic;
#[cfg(feature = "testing")]
pub mod layout;
pub mod lock;
pub mod sieve;

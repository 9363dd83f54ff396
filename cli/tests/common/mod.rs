//! The workspace's test helpers, and jobs that run this package's `brlock` binary.
#![allow(dead_code, unused_imports)]

pub use brlock_testkit::*;

/// A job of `ranks` ranks running the `brlock` binary built with these tests.
pub fn brlock(ranks: usize) -> MpiRun {
    MpiRun::new(ranks, env!("CARGO_BIN_EXE_brlock"))
}

//! The workspace's test helpers, and jobs that run this package's `brlock` binary.
#![allow(dead_code, unused_imports)]

pub use brlock_testkit::*;

/// The `brlock` binary under test: the one built with these tests, or `$BRLOCK_TEST_BINARY`
/// (another build, to show that a test fails on it: say the commit before a fix).
pub fn binary() -> String {
    std::env::var("BRLOCK_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_brlock").into())
}

/// A job of `ranks` ranks running the `brlock` binary under test ([`binary`]).
pub fn brlock(ranks: usize) -> MpiRun {
    MpiRun::new(ranks, binary())
}

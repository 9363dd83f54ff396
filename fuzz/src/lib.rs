//! The fuzz targets of brlock, as plain functions of the fuzzer's bytes.
//!
//! Each target turns the bytes into structured input with [`arbitrary::Unstructured`], calls
//! the real library code and checks, with `assert!`, what its documentation promises: no
//! panic on any input, and the invariants and equivalences listed in each module. A failed
//! assertion or a panic is a crash for libFuzzer (`fuzz_targets/`, run by `scripts/fuzz.sh`);
//! `tests/replay.rs` runs the same functions on the committed corpus and on seeded
//! pseudo-random bytes under a plain `cargo test`. `docs/fuzzing.md` describes the targets.

pub mod config;
pub mod gen;
pub mod ranges;
pub mod records;
pub mod sieve;

use arbitrary::Unstructured;

/// Runs `target` on `data`; running out of bytes early is not a failure.
fn run(data: &[u8], target: fn(&mut Unstructured<'_>) -> arbitrary::Result<()>) {
    let mut u = Unstructured::new(data);
    // `Err` only means the input ended before the target had all it wanted.
    let _ = target(&mut u);
}

/// Byte ranges and piece lists: [`ranges`].
pub fn ranges_and_pieces(data: &[u8]) {
    run(data, ranges::target);
}

/// The sieving planner and sieved I/O against piece-by-piece I/O: [`sieve`].
pub fn sieve_plan_and_io(data: &[u8]) {
    run(data, sieve::target);
}

/// The append record verifier and the `collect` index: [`records`].
pub fn records_and_index(data: &[u8]) {
    run(data, records::target);
}

/// Check and benchmark configurations and named choices: [`config`].
pub fn config_validation(data: &[u8]) {
    run(data, config::target);
}

//! libFuzzer entry point of [`brlock_fuzz::config_validation`]; the checks live in the library crate so that
//! `tests/replay.rs` can run them without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brlock_fuzz::config_validation(data));

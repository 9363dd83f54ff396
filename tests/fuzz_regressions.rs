//! Inputs the fuzz targets (`fuzz/`, `docs/fuzzing.md`) found crashing, each checked through
//! the public API here so that it stays fixed without libFuzzer. The fuzzer's own input is
//! also kept in `fuzz/corpus/<target>/`, which every fuzz run replays first.

use brlock::check::atomicity::AtomicityCheck;
use brlock::check::files::FileBackend;
use brlock::check::Check;
use brlock::Error;

fn atomicity(ints: u64, noncontig: bool) -> AtomicityCheck {
    AtomicityCheck {
        file: "unused".into(),
        alt_file: None,
        backend: FileBackend::Rma,
        noncontig,
        iters: 1,
        ints,
        coherence: None,
        sieve_buffer: None,
        grow: false,
    }
}

/// `config_validation`, crash-340efdc5: `ints * 4` overflowed in the layout of a contiguous
/// access (a panic with overflow checks; without them a wrapped, tiny access was accepted
/// and the run then asked for `ints` ints of memory).
#[test]
fn atomicity_validate_refuses_ints_whose_bytes_overflow() {
    for ints in [u64::MAX / 4 + 1, u64::MAX, 1 << 62] {
        assert!(
            matches!(
                atomicity(ints, false).validate(4),
                Err(Error::InvalidArgument(_))
            ),
            "{ints} ints"
        );
    }
    assert!(atomicity(10_000, false).validate(4).is_ok());
}

/// `config_validation`, oom-94f31f2e: validating a noncontiguous access built it first, one
/// piece per int, before any bound: `--ints` near 2^60 asked for exabytes of memory and
/// aborted. The region's size is now checked before anything is built.
#[test]
fn atomicity_validate_bounds_the_region_before_building_pieces() {
    for ints in [1 << 40, (1 << 60) - 1, (1 << 27) + 1] {
        assert!(
            matches!(
                atomicity(ints, true).validate(4),
                Err(Error::InvalidArgument(_))
            ),
            "{ints} ints"
        );
    }
    // The command line's largest --ints still passes, both ways.
    assert!(atomicity(100_000_000, true).validate(4).is_ok());
    assert!(atomicity(100_000_000, false).validate(4).is_ok());
}

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

/// `config_validation`, crash-4e826094: the memory estimate of `bench sieve` added the
/// extent (`--stride x --count`, up to 2^128 - 2^65 + 1 in u128) to twice the payload and the
/// buffers, and the sum passed `u128::MAX`: a panic with overflow checks, and without them a
/// wrapped, small estimate that the memory check would have let through. It saturates now.
#[test]
fn sieve_memory_estimate_saturates_instead_of_overflowing() {
    use brlock::check::bench::sieve::{SieveBench, SieveMethod};
    let bench = SieveBench {
        method: SieveMethod::Sieve,
        file: None,
        alt_file: None,
        block: u64::MAX,
        stride: u64::MAX,
        count: u64::MAX,
        reps: 1,
        coherence: None,
    };
    let (bytes, settings) = bench.memory(4);
    assert_eq!(bytes, u128::MAX, "{settings}");
    let small = SieveBench {
        block: 16,
        stride: 64,
        count: 1000,
        ..bench
    };
    assert!(small.memory(4).0 < 1 << 30);
}

/// `config_validation`, crash-4bd3d268: `--grow`'s bound computed `iters x ints x 4` in u128,
/// which overflows for both near `u64::MAX`. It saturates now, and such a run is refused.
#[test]
fn atomicity_grow_bound_saturates_instead_of_overflowing() {
    let mut check = atomicity(u64::MAX, false);
    check.iters = u64::MAX;
    check.grow = true;
    assert!(matches!(check.validate(4), Err(Error::InvalidArgument(_))));
}

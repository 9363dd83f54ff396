//! The fuzz targets without libFuzzer: every committed corpus file (`corpus/<target>/`), then
//! seeded pseudo-random inputs. `cargo test` in `fuzz/` runs this on any toolchain; it is the
//! fallback driver where libFuzzer cannot run, and a quick check that the targets still
//! accept their corpus after a change. `BRLOCK_FUZZ_REPLAY_INPUTS` sets the number of random
//! inputs per target (default 2000).

use std::path::Path;

use brlock_fuzz::gen::Bytes;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("ranges_and_pieces", brlock_fuzz::ranges_and_pieces),
    ("sieve_plan_and_io", brlock_fuzz::sieve_plan_and_io),
    ("records_and_index", brlock_fuzz::records_and_index),
    ("config_validation", brlock_fuzz::config_validation),
];

fn corpus(name: &str, target: Target) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("read corpus file");
            eprintln!("{name}: {}", path.display());
            target(&data);
            n += 1;
        }
    }
    n
}

fn random(name: &str, target: Target) {
    let inputs: u64 = std::env::var("BRLOCK_FUZZ_REPLAY_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut bytes = Bytes::new(0xF022 ^ name.len() as u64);
    for i in 0..inputs {
        let len = (bytes.next_u64() % 512) as usize;
        let data = bytes.take(len);
        let run = std::panic::catch_unwind(|| target(&data));
        if run.is_err() {
            panic!("{name}: random input {i} fails: {data:02x?}");
        }
    }
}

#[test]
fn corpus_and_random_inputs() {
    for &(name, target) in TARGETS {
        let n = corpus(name, target);
        eprintln!("{name}: {n} corpus inputs");
        random(name, target);
    }
}

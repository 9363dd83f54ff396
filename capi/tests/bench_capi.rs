//! The C-API benchmark (`examples/bench_capi.rs`) runs and reports both APIs for both
//! patterns. Its numbers are measured, never asserted: see docs/c-api.md, "Benchmark".

use std::time::Duration;

use brlock_testkit::{example, MpiRun};

#[test]
fn bench_capi_reports_both_apis_for_both_patterns() {
    let exe = example(env!("CARGO_MANIFEST_DIR"), "bench_capi");
    let out = MpiRun::new(2, exe)
        .args(["50", "3"])
        .timeout(Duration::from_secs(120))
        .run();
    assert!(out.success(), "{}", out.failure_message());
    let lines = out.rank_lines(0);
    for pattern in ["same", "disjoint"] {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("\"pattern\":\"{pattern}\"")))
            .unwrap_or_else(|| panic!("no {pattern} line:\n{}", out.describe()));
        let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for key in ["rust_us", "c_us", "ratio"] {
            assert!(
                json[key].as_f64().is_some_and(|v| v > 0.0),
                "{key} in {json}"
            );
        }
    }
}

#!/usr/bin/env bash
# The full test suite, as CI runs it (.ci/run) on a fresh Debian machine:
#   setup      scripts/setup.sh (installs Open MPI, MPICH, libclang-dev, pkg-config if missing)
#   fmt        cargo fmt --all -- --check
#   clippy     cargo clippy --all-targets -- -D warnings
#   doc        cargo doc --workspace --no-deps, warnings are errors
#   test       cargo test (every test of every workspace package, against Open MPI; the MPI-IO
#              interposition library's tests, mpiio/tests/, run here under ompio and ROMIO)
#   loom       model checks: every interleaving of small worlds (tests/model_loom.rs)
#   shuttle    model checks: random schedules of up to 1000 ranks (tests/model_shuttle.rs)
#   fuzz-replay  the fuzz targets (fuzz/) without libFuzzer: their corpus, crash inputs
#              included, then seeded random inputs (docs/fuzzing.md)
#   mpich      the crate built against MPICH, the MPICH-compatible window tests, the
#              MPICH build refusing Open MPI's mpirun (the wrong launcher), and the C API's
#              exclusion check and error codes against its MPICH build (mpich-capi), and the
#              MPI-IO interposition library's tests against MPICH (mpich-mpiio)
# Stops at the first failing stage and names it. The last line on success sums the counts of
# every `cargo test` run: "summary: N passed, 0 failed, M skipped".
#
# Usage: scripts/test.sh [--quick]
#   --quick   skip the model checks and the MPICH leg
# Environment:
#   BRLOCK_STAGE_TIMEOUT   seconds one stage may take before it is killed (default 1800;
#                          applies when stdin is not a terminal, as in CI)
#   BRLOCK_MPIRUN, RUST_LOG, ... are passed through to the tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

# A fresh shell may not have rustup's directory on PATH yet.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

stage_timeout=${BRLOCK_STAGE_TIMEOUT:-1800}
log=$(mktemp "${TMPDIR:-/tmp}/brlock-test.XXXXXX")
trap 'rm -f "$log"' EXIT

now() { date +%s%N; }
seconds_since() {
    local d=$(($(now) - $1))
    printf '%d.%d s' $((d / 1000000000)) $((d / 100000000 % 10))
}

suite_start=$(now)
stages=()
add_stage() { stages+=("$1"); }

add_stage setup
add_stage fmt
add_stage clippy
add_stage doc
add_stage test
if ((!quick)); then
    add_stage loom
    add_stage shuttle
    add_stage fuzz-replay
    add_stage mpich-build
    add_stage mpich-test
    add_stage mpich-launcher
    add_stage mpich-capi
    add_stage mpich-mpiio
fi

# Runs one stage: a banner, the command (output teed to the log for the summary), the time.
n=0
run_stage() {
    local name=$1
    shift
    n=$((n + 1))
    local start
    start=$(now)
    echo "==> [$n/${#stages[@]}] $name: $*"
    local rc=0
    if [[ -t 0 ]]; then
        # Interactive: no time limit, so that Ctrl-C reaches every process of the stage
        # (`timeout` would run them in a process group of their own).
        "$@" 2>&1 | tee -a "$log" || rc=$?
    else
        timeout -k 30 "$stage_timeout" "$@" 2>&1 | tee -a "$log" || rc=$?
    fi
    if ((rc != 0)); then
        local why="exit status $rc"
        if ((rc == 124)); then
            why="timed out after ${stage_timeout} s"
        fi
        echo "test.sh: FAILED at stage '$name' ($why) after $(seconds_since "$start"); total $(seconds_since "$suite_start")" >&2
        exit "$rc"
    fi
    echo "<== [$n/${#stages[@]}] $name ok in $(seconds_since "$start")"
}

for stage in "${stages[@]}"; do
    case "$stage" in
        setup) run_stage setup scripts/setup.sh ;;
        fmt) run_stage fmt cargo fmt --all -- --check ;;
        clippy) run_stage clippy cargo clippy --all-targets -- -D warnings ;;
        doc) run_stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps ;;
        test) run_stage test cargo test --no-fail-fast ;;
        loom)
            run_stage loom env RUSTFLAGS="--cfg loom" \
                cargo test --release --target-dir target/loom -p brlock --test model_loom
            ;;
        shuttle)
            run_stage shuttle env RUSTFLAGS="--cfg shuttle" \
                cargo test --release --target-dir target/shuttle -p brlock --test model_shuttle
            ;;
        fuzz-replay)
            run_stage fuzz-replay cargo test --release --manifest-path fuzz/Cargo.toml \
                --target-dir target/fuzz
            ;;
        mpich-build)
            run_stage mpich-build env MPICC=mpicc.mpich cargo build --target-dir target/mpich
            ;;
        mpich-test)
            run_stage mpich-test env BRLOCK_MPIRUN=mpirun.mpich MPICC=mpicc.mpich \
                cargo test --target-dir target/mpich -p brlock-cli --test window two_ranks
            ;;
        mpich-launcher)
            run_stage mpich-launcher env BRLOCK_MPIRUN=mpirun.mpich MPICC=mpicc.mpich \
                cargo test --target-dir target/mpich -p brlock-cli --test failures the_wrong_launcher
            ;;
        mpich-capi)
            run_stage mpich-capi env BRLOCK_MPIRUN=mpirun.mpich MPICC=mpicc.mpich \
                cargo test --target-dir target/mpich -p brlock-capi --test c_lock --test c_errors
            ;;
        mpich-mpiio)
            run_stage mpich-mpiio env BRLOCK_MPIRUN=mpirun.mpich MPICC=mpicc.mpich \
                cargo test --target-dir target/mpich -p brlock-mpiio
            ;;
    esac
done

# Sum "test result: ok. 12 passed; 0 failed; 1 ignored; ..." over every cargo test run.
read -r passed failed ignored < <(
    awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed;?$/) p += $i
            if ($(i + 1) ~ /^failed;?$/) f += $i
            if ($(i + 1) ~ /^ignored;?$/) s += $i
        }
    } END { print p + 0, f + 0, s + 0 }' "$log"
)
echo "all ${#stages[@]} stages passed in $(seconds_since "$suite_start")$( ((quick)) && echo ' (--quick: no model checks, no MPICH)')"
echo "summary: $passed passed, $failed failed, $ignored skipped"

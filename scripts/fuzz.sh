#!/usr/bin/env bash
# Runs brlock's fuzz targets (fuzz/, cargo-fuzz over libFuzzer) for a bounded time each, one
# after another (libFuzzer takes a core), and fails at the first crash. docs/fuzzing.md says
# what each target checks.
#
# Usage: scripts/fuzz.sh [--seconds N] [TARGET...]
#   --seconds N   how long each target runs (libFuzzer's -max_total_time); default 60
#   TARGET        ranges_and_pieces, sieve_plan_and_io, records_and_index, config_validation
#                 (default: all four)
# Environment:
#   BRLOCK_FUZZ_ARGS   extra libFuzzer flags, e.g. "-max_len=8192"
#
# * Installs cargo-fuzz if it is missing (`cargo install cargo-fuzz --locked`, and says how
#   long that took: about 50 s on a 2-core machine).
# * Builds with the machine's stable toolchain: cargo-fuzz passes nightly-only flags
#   (-Zsanitizer=address, coverage instrumentation), which RUSTC_BOOTSTRAP=1 lets a stable
#   rustc accept. libfuzzer-sys compiles libFuzzer itself, so a C++ compiler is needed.
# * Each target's corpus is fuzz/corpus/<target>: the committed seeds (seed-*) and past crash
#   inputs (crash-*), which every run replays first, plus what the fuzzer adds (ignored by
#   git). Crash inputs go to fuzz/artifacts/<target>/; the log of each run to
#   fuzz/target/fuzz-logs/<target>.log.
# * Prints one line per target ("<target>: clean for N s, R runs, ...") and, on a crash, one
#   line naming the target and the artifact, then exits 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

all_targets=(ranges_and_pieces sieve_plan_and_io records_and_index config_validation)
seconds=60
targets=()
while (($#)); do
    case "$1" in
        --seconds)
            [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || {
                echo "fuzz.sh: --seconds needs a positive whole number" >&2
                exit 2
            }
            seconds=$2
            shift 2
            ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*)
            echo "fuzz.sh: unknown option '$1' (try --help)" >&2
            exit 2
            ;;
        *)
            if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
                echo "fuzz.sh: unknown target '$1' (targets: ${all_targets[*]})" >&2
                exit 2
            fi
            targets+=("$1")
            shift
            ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

# A fresh shell may not have rustup's directory on PATH yet.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz.sh: libfuzzer-sys needs a C++ compiler (c++ or clang++); apt-get install g++" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    start=$(date +%s)
    if ! cargo install cargo-fuzz --locked >/dev/null 2>fuzz-install.log; then
        echo "fuzz.sh: installing cargo-fuzz failed (see fuzz-install.log)" >&2
        exit 1
    fi
    rm -f fuzz-install.log
    echo "fuzz.sh: installed $(cargo fuzz --version) in $(($(date +%s) - start)) s"
fi

export RUSTC_BOOTSTRAP=1
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"

start=$(date +%s)
# `cargo fuzz build` builds one target, or every target when given none.
build=("${targets[@]}")
((${#targets[@]} == ${#all_targets[@]})) && build=("")
: >"$logs/build.log"
for t in "${build[@]}"; do
    if ! cargo fuzz build ${t:+"$t"} >>"$logs/build.log" 2>&1; then
        echo "fuzz.sh: building ${t:-the fuzz targets} failed: $(grep -m1 '^error' "$logs/build.log" || tail -n1 "$logs/build.log") (log: $logs/build.log)" >&2
        exit 1
    fi
done
echo "fuzz.sh: built ${targets[*]} in $(($(date +%s) - start)) s; ${seconds} s each"

for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    before=$(ls -1 "$artifacts")
    log=$logs/$t.log
    status=0
    # -timeout: one input running longer than 20 s is a hang, reported as a crash. The outer
    # timeout only guards against a fuzzer that does not stop by itself.
    # shellcheck disable=SC2086
    timeout --kill-after=30 $((seconds + 300)) \
        cargo fuzz run "$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        ${BRLOCK_FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    new=$(comm -13 <(echo "$before") <(ls -1 "$artifacts") | head -n1)
    if ((status != 0)) || [[ -n $new ]]; then
        # The panic's location and message (the line after it), or the sanitizer's verdict.
        reason=$(awk '/panicked at/ { getline msg; print $0 " " msg; exit }
            /ERROR: (libFuzzer|AddressSanitizer)/ { print; exit }' "$log" | sed -E 's/^thread [^ ]+ \([0-9]+\) //')
        if [[ -n $new ]]; then
            echo "fuzz.sh: $t crashed: $artifacts/$new (${reason:-see $log}); reproduce with RUSTC_BOOTSTRAP=1 cargo fuzz run $t $artifacts/$new" >&2
        else
            echo "fuzz.sh: $t failed with status $status and no artifact (${reason:-see $log})" >&2
        fi
        exit 1
    fi
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo "?")
    echo "$t: clean for $seconds s, $runs runs, coverage $cov edges, corpus $(find "$corpus" -type f | wc -l) inputs"
done

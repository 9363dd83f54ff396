#!/usr/bin/env bash
# The demo: 4 MPI ranks lock overlapping byte ranges of one file (in a temporary directory),
# write under their locks, and rank 0 prints an integrity check of the file.
#
# Usage: scripts/demo.sh [ARGS...]   (ARGS go to `brlock demo`; see `brlock demo --help`)
# Environment:
#   BRLOCK_MPIRUN   launcher (default mpirun, i.e. Open MPI); BRLOCK_DEMO_RANKS (default 4)
#   RUST_LOG        log filter of the ranks (e.g. RUST_LOG=debug); log lines are rank-prefixed
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

scripts/setup.sh
cargo build --release --bin brlock

launcher=${BRLOCK_MPIRUN:-mpirun}
ranks=${BRLOCK_DEMO_RANKS:-4}
launch=("$launcher")
if "$launcher" --version 2>/dev/null | grep -q 'Open MPI'; then
    # Open MPI refuses root without these; more ranks than cores needs --oversubscribe, and
    # ranks that busy-poll on an oversubscribed machine must yield or they starve each other.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    launch+=(--oversubscribe)
    if ((ranks > $(nproc))); then
        launch+=(--mca mpi_yield_when_idle 1)
    fi
fi

set -x
exec "${launch[@]}" -n "$ranks" target/release/brlock demo "$@"

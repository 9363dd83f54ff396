#!/usr/bin/env bash
# Installs what building and testing brlock needs on a Debian machine, idempotently:
#   Open MPI (openmpi-bin libopenmpi-dev)  - the default MPI (`mpicc`, `mpirun`)
#   MPICH    (mpich libmpich-dev)          - second MPI (`mpicc.mpich`, `mpirun.mpich`)
#   libclang-dev                           - bindgen (mpi-sys) loads libclang at build time
#   pkg-config                             - fallback MPI probe of mpi-sys; building the C
#                                            API's tests and examples against brlock.pc
#   gfortran                               - Open MPI's mpifort, for the Fortran module and
#                                            examples of the C API (capi/)
#   openssh-client                         - Open MPI's launcher refuses to start (even for
#                                            one node, even a singleton) without ssh or rsh
#   iproute2                               - `ip netns`, `tc`: scripts/cluster.sh's hosts
#   util-linux, mount                      - `unshare -m`, `mount --bind`: the MPI-IO
#                                            interposition tests put odd ranks on the second
#                                            GlusterFS client (mpiio/tests/)
#   python3-mpi4py                         - mpi4py (for Open MPI) under /usr/bin/python3: the
#                                            interposition library's Python test
#   python3-h5py-mpi                       - h5py's MPI-IO driver (for Open MPI): the
#                                            interposition library's HDF5 atomic-mode test
# and checks that a Rust toolchain (cargo) is on PATH.
#
# When everything is present it only looks (dpkg status, files, alternatives) and takes a
# few milliseconds; `apt-get update` runs only when something is missing. Without root and
# without passwordless sudo it prints the exact command to run and exits 1.
#
# Usage: scripts/setup.sh [--check]
#   --check   only report; never install or change anything (exit 1 if something is missing)
# Environment:
#   BRLOCK_SETUP_PRETEND_MISSING="pkg ..."  treat these packages as missing (to test this script)
set -euo pipefail

PACKAGES=(openmpi-bin libopenmpi-dev mpich libmpich-dev libclang-dev pkg-config gfortran openssh-client iproute2 util-linux mount python3-mpi4py python3-h5py-mpi)
OPENMPI_MPIRUN=/usr/bin/mpirun.openmpi
OPENMPI_MPICC=/usr/bin/mpicc.openmpi

start_ns=$(date +%s%N)
check_only=0
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

elapsed() {
    local now_ns
    now_ns=$(date +%s%N)
    printf '%d.%02d s' $(((now_ns - start_ns) / 1000000000)) $(((now_ns - start_ns) / 10000000 % 100))
}

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

# A file that proves each package is really usable, beyond its dpkg status.
# Globs are expanded by `compgen -G` so that any multiarch triplet or LLVM version matches.
probe_for() {
    case "$1" in
        openmpi-bin) echo "$OPENMPI_MPIRUN" ;;
        libopenmpi-dev) echo "/usr/lib/*/openmpi/include/mpi.h" ;;
        mpich) echo "/usr/bin/mpirun.mpich" ;;
        libmpich-dev) echo "/usr/include/*/mpich/mpi.h" ;;
        libclang-dev) echo "/usr/lib/llvm-*/lib/libclang.so" ;;
        gfortran) echo "/usr/bin/gfortran" ;;
        pkg-config) echo "/usr/bin/pkg-config" ;;
        openssh-client) echo "/usr/bin/ssh" ;;
        iproute2) echo "/sbin/ip" ;;
        util-linux) echo "/usr/bin/unshare" ;;
        mount) echo "/usr/bin/mount" ;;
        python3-mpi4py) echo "/usr/lib/python3/dist-packages/mpi4py/__init__.py" ;;
        python3-h5py-mpi) echo "/usr/lib/python3/dist-packages/h5py/_debian_h5py_mpi/__init__.py" ;;
        *) echo "/nonexistent" ;;
    esac
}

pretend_missing=" ${BRLOCK_SETUP_PRETEND_MISSING:-} "

# --- 1. which packages are missing? ---------------------------------------------------------
command -v dpkg-query >/dev/null 2>&1 || die "this script supports Debian/Ubuntu (dpkg, apt-get) only; install Open MPI, MPICH, libclang and pkg-config by hand"

declare -A status=()
# dpkg-query exits 1 when some package is unknown to dpkg; its output still lists the others.
while read -r pkg st; do
    status[$pkg]=$st
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ "${status[$pkg]:-}" != "ii" ]] ||
        ! compgen -G "$(probe_for "$pkg")" >/dev/null ||
        [[ "$pretend_missing" == *" $pkg "* ]]; then
        missing+=("$pkg")
    fi
done

# --- 2. how would we run privileged commands? -----------------------------------------------
SUDO=()
can_sudo=1
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo)
    else
        can_sudo=0
    fi
fi

# --- 3. install -------------------------------------------------------------------------------
did=()
if ((${#missing[@]} > 0)); then
    install_cmd="sudo apt-get install -y --no-install-recommends ${missing[*]}"
    if ((check_only)); then
        echo "setup.sh: missing: ${missing[*]}" >&2
        echo "setup.sh: to install them run:  sudo apt-get update && $install_cmd" >&2
        exit 1
    fi
    if ((!can_sudo)); then
        echo "setup.sh: missing packages: ${missing[*]}" >&2
        echo "setup.sh: not root and no passwordless sudo; please run:" >&2
        echo "    sudo apt-get update && $install_cmd" >&2
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
    log=$(mktemp "${TMPDIR:-/tmp}/brlock-setup-apt.XXXXXX")
    apt_opts=(-y -qq -o DPkg::Lock::Timeout=300)
    echo "setup.sh: installing ${missing[*]} (apt log: $log) ..."
    ok=0
    for attempt in 1 2 3; do
        if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >>"$log" 2>&1 &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
                install --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
            ok=1
            break
        fi
        echo "setup.sh: apt-get failed (attempt $attempt of 3)" >&2
        sleep $((attempt * 5))
    done
    if ((!ok)); then
        tail -n 30 "$log" >&2
        die "could not install ${missing[*]} (full log: $log)"
    fi
    did+=("installed ${missing[*]}")
fi

# --- 4. Debian's alternatives: plain `mpicc` / `mpirun` must stay Open MPI --------------------
# Installing MPICH registers it as an alternative with a lower priority, so in auto mode
# Open MPI wins; a machine set by hand to MPICH is put back to Open MPI explicitly.
if command -v update-alternatives >/dev/null 2>&1; then
    for pair in "mpi:$OPENMPI_MPICC" "mpirun:$OPENMPI_MPIRUN"; do
        name=${pair%%:*}
        want=${pair#*:}
        current=$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')
        if [[ "$current" != "$want" ]]; then
            if ((check_only || !can_sudo)); then
                echo "setup.sh: '$name' points at '${current:-nothing}', not Open MPI; run:" >&2
                echo "    sudo update-alternatives --set $name $want" >&2
                exit 1
            fi
            "${SUDO[@]}" update-alternatives --set "$name" "$want" >/dev/null
            did+=("set alternative $name -> $want")
        fi
    done
fi
mpirun_version=$(mpirun --version 2>/dev/null | head -n 1 || true)
[[ "$mpirun_version" == *"Open MPI"* ]] ||
    die "'mpirun' on PATH is not Open MPI (it says: '${mpirun_version:-nothing}'); brlock's tests expect Open MPI as mpirun"

# --- 5. Rust ----------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        die "cargo is installed in ~/.cargo/bin but not on PATH; run:  . \"\$HOME/.cargo/env\""
    fi
    die "no Rust toolchain: cargo is not on PATH (install Rust with rustup, then re-run)"
fi
notes=()
cargo fmt --version >/dev/null 2>&1 || notes+=("rustfmt missing (rustup component add rustfmt)")
cargo clippy --version >/dev/null 2>&1 || notes+=("clippy missing (rustup component add clippy)")

# --- summary ----------------------------------------------------------------------------------
summary="all present"
if ((${#did[@]} > 0)); then
    summary=$(
        IFS=';'
        echo "${did[*]}"
    )
    summary=${summary//;/; }
fi
note_text=""
if ((${#notes[@]} > 0)); then
    note_text=" [note: ${notes[*]}]"
fi
echo "setup: ${summary} (${mpirun_version}, $(mpirun.mpich --version 2>/dev/null | sed -n 's/^ *Version: *//p' | sed 's/^/MPICH /'), $(cargo --version | cut -d' ' -f1-2)) in $(elapsed)${note_text}"

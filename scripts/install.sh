#!/usr/bin/env bash
# Builds the C API (package brlock-capi) and installs it under a prefix:
#   PREFIX/lib/libbrlock.so.0.V.P, libbrlock.so.0, libbrlock.so, libbrlock.a
#   PREFIX/include/brlock.h
#   PREFIX/include/brlock.mod, PREFIX/lib/libbrlock_fortran.a (with --fortran)
#   PREFIX/lib/pkgconfig/brlock.pc
#   PREFIX/lib/libbrlock-mpiio.so (with --mpiio: the MPI-IO interposition library, package
#                                  brlock-mpiio, docs/mpiio.md)
# after which `mpicc prog.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs
# brlock)` builds a program against it.
#
# Usage: scripts/install.sh --prefix DIR [--debug] [--target-dir DIR] [--fortran] [--mpiio]
#   --prefix DIR      where to install (required)
#   --debug           install the debug build (default: release)
#   --target-dir DIR  cargo's target directory (default: target; the MPICH build uses its own,
#                     e.g. MPICC=mpicc.mpich scripts/install.sh --target-dir target/mpich ...)
#   --fortran         also compile the Fortran module `brlock` (capi/fortran/brlock.f90) with
#                     $MPIFORT (default mpifort): link Fortran programs with
#                     PREFIX/lib/libbrlock_fortran.a and the flags of brlock.pc
#   --mpiio           also build and install the MPI-IO interposition library
#                     (mpirun -x LD_PRELOAD=PREFIX/lib/libbrlock-mpiio.so ./prog), for the
#                     same MPI as the C API ($MPICC)
# Environment:
#   MPICC     the MPI compiler wrapper to build against (default mpicc: Open MPI; mpicc.mpich
#             for MPICH), as for the Rust crate
#   MPIFORT   the MPI Fortran wrapper for --fortran
set -euo pipefail

die() {
    echo "install.sh: $*" >&2
    exit 1
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

prefix=
profile=release
target_dir=target
fortran=0
mpiio=0
while (($#)); do
    case "$1" in
        --prefix) prefix=${2:-} && shift ;;
        --debug) profile=debug ;;
        --target-dir) target_dir=${2:-} && shift ;;
        --fortran) fortran=1 ;;
        --mpiio) mpiio=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ -n "$prefix" ]] || die "--prefix DIR is required (try --help)"
[[ -n "$target_dir" ]] || die "--target-dir needs a directory"

build=(cargo build --quiet -p brlock-capi --target-dir "$target_dir")
((mpiio)) && build+=(-p brlock-mpiio)
[[ "$profile" == release ]] && build+=(--release)
"${build[@]}" || die "cargo build of brlock-capi failed"

out="$target_dir/$profile"
[[ -f "$out/libbrlock_capi.so" && -f "$out/libbrlock_capi.a" ]] ||
    die "the build left no libbrlock_capi.so/.a in $out"

version=$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)
major=${version%%.*}
mpicc=${MPICC:-mpicc}
mpi=$(printf '#include <mpi.h>\n' | "$mpicc" -E -dM -x c - 2>/dev/null |
    awk '/define OMPI_MAJOR_VERSION /{a=$3} /define OMPI_MINOR_VERSION /{b=$3}
         /define OMPI_RELEASE_VERSION /{c=$3} /define MPICH_VERSION /{m=$3}
         END { if (a != "") print "Open MPI " a "." b "." c; else if (m != "") { gsub(/"/, "", m); print "MPICH " m } }')

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include" || die "cannot create directories under $prefix"
prefix=$(cd "$prefix" && pwd)
install -m 0755 "$out/libbrlock_capi.so" "$prefix/lib/libbrlock.so.$version"
ln -sf "libbrlock.so.$version" "$prefix/lib/libbrlock.so.$major"
ln -sf "libbrlock.so.$major" "$prefix/lib/libbrlock.so"
install -m 0644 "$out/libbrlock_capi.a" "$prefix/lib/libbrlock.a"
install -m 0644 capi/include/brlock.h "$prefix/include/brlock.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MPI@|${mpi:-an unknown MPI}|g" \
    capi/brlock.pc.in >"$prefix/lib/pkgconfig/brlock.pc"

if ((mpiio)); then
    [[ -f "$out/libbrlock_mpiio.so" ]] || die "the build left no libbrlock_mpiio.so in $out"
    install -m 0755 "$out/libbrlock_mpiio.so" "$prefix/lib/libbrlock-mpiio.so"
fi

if ((fortran)); then
    mpifort=${MPIFORT:-mpifort}
    command -v "$mpifort" >/dev/null || die "--fortran: no $mpifort (install gfortran and the MPI's Fortran wrapper: scripts/setup.sh)"
    src=$PWD/capi/fortran/brlock.f90
    (cd "$prefix/include" && "$mpifort" -c "$src" -o brlock_fortran.o &&
        ar rcs "$prefix/lib/libbrlock_fortran.a" brlock_fortran.o && rm -f brlock_fortran.o) ||
        die "compiling the Fortran module failed"
fi
echo "$prefix"

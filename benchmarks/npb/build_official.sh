#!/usr/bin/env bash
# Build NASA's official NPB 3.4 MPI code (EP, CG, MG, FT, IS) to compare pympc's kernels with.
#
#   NPB_SRC=/path/to/NPB3.4-MPI benchmarks/npb/build_official.sh [CLASSES]   (default: S W A)
#
# NPB is on no package registry: get NPB 3.4 from NASA (https://www.nas.nasa.gov/software/npb.html)
# or the GitHub mirror mbdevpl/nas-parallel-benchmarks (its NPB3.4-MPI/ directory), and point
# NPB_SRC at the NPB3.4-MPI directory. The build goes to $NPB_BUILD (default
# ~/.cache/pympc-npb), never into this repository, and is never committed. Compilers: Debian's
# gfortran with MPICH's wrappers (mpif90.mpich, mpicc.mpich); gfortran 10 and later need
# -fallow-argument-mismatch for NPB's MPI calls. Binaries: $NPB_BUILD/bin/<kernel>.<class>.x
set -euo pipefail

die() { printf 'build_official: error: %s\n' "$*" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SRC=${NPB_SRC:-}
[ -n "$SRC" ] || die "NPB_SRC is not set. NPB is on no package registry: download NPB 3.4 from NASA
  (https://www.nas.nasa.gov/software/npb.html) or clone the mirror github.com/mbdevpl/nas-parallel-benchmarks,
  then run: NPB_SRC=/path/to/NPB3.4-MPI $0"
[ -f "$SRC/config/make.def.template" ] && [ -f "$SRC/EP/ep.f" ] \
    || die "NPB_SRC=$SRC is not an NPB3.4-MPI directory (no config/make.def.template or EP/ep.f)"
BUILD=${NPB_BUILD:-${XDG_CACHE_HOME:-$HOME/.cache}/pympc-npb}
case "$(realpath -m "$BUILD")/" in
    "$REPO"/*) die "NPB_BUILD=$BUILD is inside the repository: the official code is never built or kept there" ;;
esac
MPIFC=${MPIFC:-mpif90.mpich}
MPICC=${MPICC:-mpicc.mpich}
for c in "$MPIFC" "$MPICC" make; do
    command -v "$c" >/dev/null || die "$c not found (Debian: apt-get install gfortran mpich libmpich-dev make)"
done
CLASSES=${*:-S W A}

mkdir -p "$BUILD"
rm -rf "$BUILD/src"
cp -r "$SRC" "$BUILD/src"
FFLAGS="-O3 -march=native"
if "$MPIFC" --version 2>/dev/null | grep -q 'GNU Fortran' && \
   [ "$("$MPIFC" -dumpversion | cut -d. -f1)" -ge 10 ]; then
    FFLAGS="$FFLAGS -fallow-argument-mismatch"
fi
cat > "$BUILD/src/config/make.def" <<EOF
# written by pympc's benchmarks/npb/build_official.sh
MPIFC = $MPIFC
FLINK = \$(MPIFC)
FFLAGS = $FFLAGS
FLINKFLAGS = \$(FFLAGS)
MPICC = $MPICC
CLINK = \$(MPICC)
CFLAGS = -O3 -march=native
CLINKFLAGS = \$(CFLAGS)
CC = gcc -g
BINDIR = $BUILD/bin
RAND = randi8
EOF
mkdir -p "$BUILD/bin"
for cls in $CLASSES; do
    for k in ep cg mg ft is; do
        printf 'building %s class %s ... ' "$k" "$cls"
        if make -C "$BUILD/src" "$k" CLASS="$cls" > "$BUILD/build-$k.$cls.log" 2>&1; then
            echo "ok"
        else
            echo "FAILED (log: $BUILD/build-$k.$cls.log)"; exit 1
        fi
    done
done
echo "official NPB binaries in $BUILD/bin"
ls "$BUILD/bin"

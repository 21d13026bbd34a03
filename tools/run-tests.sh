#!/bin/bash
# Installs what is missing, builds dynae-mpi from scratch in build-tests/ and runs the whole test
# suite. Usage: tools/run-tests.sh [extra ctest arguments]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="${DY_BUILD_DIR:-$top/build-tests}"
"$top/tools/install-deps.sh"
rm -rf "$build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
# Open MPI refuses to run as root unless told; tests oversubscribe the cores on purpose.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"

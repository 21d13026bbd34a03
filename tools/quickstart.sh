#!/bin/bash
# From a fresh clone: installs the packages, builds dynae-mpi, generates the three-well example
# data and trains on it with 2 ranks. Results land in results/three-well/ (see inputs/three-well.toml).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ranks="${DY_RANKS:-2}"
"$top/tools/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$top/build" -j "$(nproc)"
data="$top/inputs/three-well.h5"
[ -f "$data" ] || /usr/bin/python3 "$top/tools/gen_three_well.py" --out "$data"
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -n "$ranks" "$top/build/dynae-mpi" "$top/inputs/three-well.toml" "$@"
/usr/bin/python3 "$top/tools/evaluate.py" "$top/results/three-well/results.h5" "$data:/truth"

#!/bin/bash
# Installs the Debian 12 packages dynae-mpi needs to build, test and run its tools.
# Needs root (or sudo). Packages already present are left alone.
set -euo pipefail
packages=(build-essential cmake pkg-config
          libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
          libscalapack-openmpi-dev petsc-dev libopenblas-dev
          python3 python3-numpy python3-h5py python3-matplotlib python3-torch
          python3-mdanalysis python3-mdtraj
          slurmctld slurmd slurm-client munge libsimgrid-dev simgrid
          valgrind clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

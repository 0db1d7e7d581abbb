#!/usr/bin/env bash
# What bench/compare needs beyond distopt itself: the peers' Debian packages (PyTorch,
# OpenBLAS, OpenMPI; bench/peers/install.sh) and the MPI peer binary. The plots are SVG written
# with the Python standard library, so nothing else is installed. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/peers/install.sh"
make -s -C "$here/peers" mpi_allreduce

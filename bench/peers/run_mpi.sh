#!/usr/bin/env bash
# MPI_Allreduce peer with OpenMPI's default transports (here: pml ob1, btl vader = shared
# memory) and again with TCP over loopback only (pml ob1, btl self,tcp). Prints one JSON line
# per transport, tagged with "transport".
# usage: bench/peers/run_mpi.sh [NP] [mpi_allreduce args]   (NP default 2;
#        args default --floats 1048576,4194304,16777216)
set -euo pipefail
cd "$(dirname "$0")"
NP=${1:-2}; shift || true
(($# > 0)) || set -- --floats 1048576,4194304,16777216
make -s mpi_allreduce
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np "$NP")
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"${MPIRUN[@]}" ./mpi_allreduce --tag default "$@" | tail -n 1
"${MPIRUN[@]}" --mca pml ob1 --mca btl self,tcp ./mpi_allreduce --tag tcp "$@" | tail -n 1

#!/usr/bin/env bash
# Every peer with the settings of the comparison, one JSON line each (progress on stderr).
# usage: bench/peers/run_all.sh [OUT.jsonl]   (also appends the lines to OUT.jsonl if given)
set -euo pipefail
cd "$(dirname "$0")"
bash ./install.sh >&2
out=${1:-/dev/null}
emit() { tail -n 1 | tee -a "$out"; }
./torch_mlp.py --mode single --batch 64 --max-epochs 15 --stop-at-target | emit
./torch_mlp.py --mode ddp --world 4 --batch 64 --max-epochs 15 --stop-at-target | emit
for w in 2 4; do
  ./torch_allreduce.py --world "$w" --floats 1048576,4194304,16777216 | emit
done
for w in 2 4; do
  ./run_mpi.sh "$w" --floats 1048576,4194304,16777216 | tee -a "$out"
done

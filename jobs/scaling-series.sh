#!/bin/bash
# Submits a strong or weak scaling series: one jobs/scaling.slurm job per node count, then a job
# that runs after all of them and merges their tables into one table and plot.
#
#   jobs/scaling-series.sh strong 1,2,4,8 [sbatch options ...]
#   jobs/scaling-series.sh weak   1,2,4,8 --ntasks-per-node=32 --partition=compute
#
# Results: results/scaling/<mode>-<ranks>.json per job, results/scaling/<mode>.json and .png.
set -euo pipefail
mode=${1:?usage: jobs/scaling-series.sh strong|weak NODES[,NODES...] [sbatch options]}
nodes=${2:?usage: jobs/scaling-series.sh strong|weak NODES[,NODES...] [sbatch options]}
shift 2
case $mode in strong|weak) ;; *) echo "mode must be strong or weak, not $mode" >&2; exit 2 ;; esac
out=${OUT:-results/scaling}
ids=()
for n in ${nodes//,/ }; do
  ids+=("$(sbatch --parsable --nodes="$n" --export=ALL,MODE="$mode",OUT="$out" "$@" jobs/scaling.slurm)")
  echo "submitted $mode point on $n node(s): job ${ids[-1]}"
done
deps=$(IFS=:; echo "${ids[*]}")
sbatch --parsable --dependency=afterok:"$deps" --nodes=1 --ntasks=1 --time=00:10:00 \
       --job-name=dynae-scaling-merge --output="dynae-scaling-merge-%j.out" \
       --wrap "${DY_PYTHON:-python3} tools/scaling.py --collect $out/$mode-*.json --json $out/$mode.json --plot $out/$mode.png"

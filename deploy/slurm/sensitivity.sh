#!/usr/bin/env bash
# Measure a model's sensitivity on a Slurm cluster: one importance-matrix job, a job array of
# `quantmix sensitivity --shard auto` tasks (each measures every N-th tensor), and a merge job that
# joins the shards into one sensitivity.json (+ .md and heatmap). Each job waits for the one before
# (afterok); the script returns once everything is submitted, or waits with WAIT=1.
#
#   MODEL=model.gguf OUT=/shared/run SHARDS=16 deploy/slurm/sensitivity.sh
#
# Settings (environment):
#   MODEL     the GGUF to measure (on storage every node sees)             (required)
#   OUT       output folder on shared storage                              (required)
#   SHARDS    number of array tasks                                        (default 8)
#   CPUS      cores per task                                               (default 4)
#   MEM       memory per task (sbatch --mem; a shard needs the model + its reference pass, not more
#             with more shards)                                            (default 8G)
#   QUANTMIX  the quantmix binary                                          (default: quantmix on PATH)
#   CALIBRATION  calibration files (space-separated; default: the shipped set), for both steps
#   SENS_ARGS extra `quantmix sensitivity` settings (--ctx, --chunks, --types …)
#   IMATRIX_CHUNKS  chunks of 512 tokens for the importance matrix        (default 16, as sensitivity)
#   SBATCH_ARGS     extra sbatch options for every job (--partition, --account, --time …)
#   WAIT=1    block until the merge job has finished (its exit status is the script's)
# Result: $OUT/sensitivity.json, then `quantmix quantize MODEL --sensitivity $OUT/sensitivity.json --budget …`.
set -euo pipefail
: "${MODEL:?set MODEL to the GGUF to measure}"
: "${OUT:?set OUT to an output folder on shared storage}"
SHARDS="${SHARDS:-8}"; CPUS="${CPUS:-4}"; MEM="${MEM:-8G}"
QUANTMIX="${QUANTMIX:-$(command -v quantmix || true)}"
[ -x "$QUANTMIX" ] || { echo "set QUANTMIX to the quantmix binary" >&2; exit 2; }
CAL_ARGS=""; [ -n "${CALIBRATION:-}" ] && CAL_ARGS="--calibration $CALIBRATION"
SENS_ARGS="${SENS_ARGS:-}"; IMATRIX_CHUNKS="${IMATRIX_CHUNKS:-16}"; SBATCH_ARGS="${SBATCH_ARGS:-}"
mkdir -p "$OUT/logs"
MODEL="$(realpath "$MODEL")"; OUT="$(realpath "$OUT")"; QUANTMIX="$(realpath "$QUANTMIX")"
# The imatrix is collected once and given to every shard (each shard would otherwise collect its own).
# shellcheck disable=SC2086
im=$(sbatch --parsable $SBATCH_ARGS --job-name=qm-imatrix --cpus-per-task="$CPUS" --mem="$MEM" \
  --output="$OUT/logs/imatrix.log" \
  --wrap="'$QUANTMIX' imatrix '$MODEL' -o '$OUT/sensitivity.imatrix.gguf' --chunks $IMATRIX_CHUNKS --threads $CPUS --quiet $CAL_ARGS")
# shellcheck disable=SC2086
arr=$(sbatch --parsable $SBATCH_ARGS --job-name=qm-sens --array="1-$SHARDS" --dependency="afterok:$im" \
  --cpus-per-task="$CPUS" --mem="$MEM" --output="$OUT/logs/shard-%a.log" \
  --wrap="'$QUANTMIX' sensitivity '$MODEL' -o \"$OUT/shard-\${SLURM_ARRAY_TASK_ID}.json\" --imatrix '$OUT/sensitivity.imatrix.gguf' --shard auto --threads $CPUS --quiet $CAL_ARGS $SENS_ARGS")
shards=""
for i in $(seq 1 "$SHARDS"); do shards="$shards '$OUT/shard-$i.json'"; done
wait_flag=""; [ "${WAIT:-0}" = 1 ] && wait_flag="--wait"
echo "submitted: imatrix $im, shards $arr (1-$SHARDS), merge follows" >&2
# shellcheck disable=SC2086
sbatch --parsable $wait_flag $SBATCH_ARGS --job-name=qm-merge --dependency="afterok:$arr" --cpus-per-task=1 --mem=2G \
  --output="$OUT/logs/merge.log" \
  --wrap="'$QUANTMIX' sensitivity --merge $shards -o '$OUT/sensitivity.json'"

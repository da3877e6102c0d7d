#!/usr/bin/env bash
# Benchmark (issue #14, quantized sources): plans measured on a Q8_0 copy of SmolLM2's continuous F16
# source (exact activations on / off), applied to the F16 source, against the plan measured on the F16
# source itself; mean KLD against the F16 source on the held-out text. Run
# tests/tools/bench_measurement.sh first (it makes the source, the preset sizes and the F16 plans).
#
#   tests/tools/bench_quantized_source.sh      (prints file, bytes, KLD, its standard error)
set -euo pipefail
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
cd "$(dirname "$0")/../.."; cargo build --release -q; QM="$PWD/target/release/quantmix"
B="$CACHE/bench/measurement/smollm2-noisy-f16"
SRC="$CACHE/bench/smollm2-noisy-f16.gguf"
W="${OUT:-$CACHE/bench/quantized-source}"; mkdir -p "$W"
[ -s $W/q8.gguf ] || $QM quantize $SRC --type Q8_0 -o $W/q8.gguf -q > /dev/null
for ex in on off; do
  [ -s $W/s-$ex.json ] || /usr/bin/time -f "%e s" -o $W/time-$ex $QM sensitivity $W/q8.gguf -o $W/s-$ex.json --exact-activations $ex -q > /dev/null
  for P in Q4_K_M Q2_K; do
    budget=$(stat -c %s $B/$P.gguf)
    $QM plan $W/q8.gguf --sensitivity $W/s-$ex.json --budget $budget -o $W/plan-$ex-$P.toml 2> /dev/null
    # the same per-tensor types, quantized from the F16 source with the F16 source's imatrix
    $QM quantize --recipe $W/plan-$ex-$P.toml --imatrix $B/mode-default/sensitivity.imatrix.gguf $SRC -o $W/f16-plan-$ex-$P.gguf -q > /dev/null
  done
done
$QM eval $SRC $W/f16-plan-{on,off}-{Q4_K_M,Q2_K}.gguf $B/mode-default/plan-{Q4_K_M,Q2_K}.gguf --reference $SRC --text "$PWD/tests/data/eval.txt" --no-speed --json -q > $W/eval.json
python3 - $W/eval.json <<'PY'
import json,sys
for r in json.load(open(sys.argv[1])):
    print(r["file"].split("/")[-2:], r["bytes"], r["kld_mean"], r["kld_mean_err"])
PY

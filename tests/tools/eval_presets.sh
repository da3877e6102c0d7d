#!/usr/bin/env bash
# The README's "Evaluate" picture and table: SmolLM2-135M-Instruct (the Q4_1 GGUF .ci/setup installs)
# quantized by quantmix with llama-quantize's presets Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K and with
# `quantize --budget` at the Q3_K_M file's size (measured allocation), then `quantmix eval` over all of them with the Q4_1 source as the reference
# (every file is requantized from it, so KLD measures what quantization lost), on the held-out text
# tests/data/eval.txt (never calibration text), drawing docs/eval-smollm2.svg and .png.
#
#   tests/tools/eval_presets.sh    (env: CHUNKS=8 THREADS=2 OUT=$QUANTMIX_CACHE/eval-presets QUANTMIX=binary)
#
# Prints the exact eval command, then its table. Takes ~7 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
OUT="${OUT:-$CACHE/eval-presets}"
CHUNKS="${CHUNKS:-8}"
THREADS="${THREADS:-2}"
SRC="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -s "$SRC" ] || { echo "run .ci/setup first (needs $SRC)" >&2; exit 1; }
QM="${QUANTMIX:-}"   # a quantmix binary to use instead of building target/release/quantmix
if [ -z "$QM" ]; then cargo build --release -q; QM="$PWD/target/release/quantmix"; fi
mkdir -p "$OUT" docs

q() { # quantize, quietly unless it fails
  local out="$1"; shift
  "$QM" quantize "$SRC" -o "$out" --threads "$THREADS" -q "$@" >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
}
files=()
for p in Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K; do
  f="$OUT/smollm2-$p.gguf"
  q "$f" --preset "$p"
  files+=("$f")
done
# Measured allocation at the size of the Q3_K_M file (the one-command flow; its measurement is cached).
f="$OUT/smollm2-budget-Q3_K_M-size.gguf"
q "$f" --budget "$(stat -c %s "$OUT/smollm2-Q3_K_M.gguf")"
files+=("$f")

args=(eval "$SRC" "${files[@]}" --reference "$SRC" --chunks "$CHUNKS" --threads "$THREADS")
echo "\$ quantmix ${args[*]//$CACHE/\$QUANTMIX_CACHE} --plot docs/eval-smollm2.svg"
"$QM" "${args[@]}" -q --plot docs/eval-smollm2.svg

#!/usr/bin/env bash
# The sha256 of every output quantmix writes for the fixtures, one line each, so that two builds can be
# compared byte for byte (a refactor must not change a single output byte):
#
#   tests/tools/output_hashes.sh QUANTMIX_BINARY OUT_DIR > hashes.txt
#   tests/tools/compare_builds.sh [BASE_REV]      (builds BASE_REV and the work tree, diffs their hashes)
#
# Covered: quantize with every llama-quantize preset, the hybrid recipe and --type on the synth12 fixture
# (and on SmolLM2 when .ci/setup has fetched it), with and without an importance matrix; the dry-run
# plans as JSON; `recipe --preset`; imatrix collection; sensitivity (small settings) → plan → quantize
# with the plan, and a recipe `[budget]`. Sidecars are hashed with their run time removed and floats to 10 digits.
set -euo pipefail
QM="$(realpath "$1")"
OUT="$2"
cd "$(dirname "$0")/../.."
ROOT="$PWD"
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
SYNTH="$ROOT/fixtures/presets/synth12-llama-f16.gguf"
SMOL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
PRESETS="Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q8_0 Q4_0 Q5_1"

# A sidecar without what differs from run to run: the time, and the last bits of the round-trip
# errors (float sums whose order the thread count may change); 10 significant digits are kept.
NORM='
import json, sys
def r(x):
    if isinstance(x, float): return float("%.10g" % x)
    if isinstance(x, list): return [r(v) for v in x]
    if isinstance(x, dict): return {k: r(v) for k, v in x.items()}
    return x
d = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin); d.pop("seconds", None)
print(json.dumps(r(d), sort_keys=True))'
norm_json() { python3 -c "$NORM" "$1"; }
hash_file() { printf '%s  %s\n' "$(sha256sum < "$1" | cut -c1-64)" "$2"; }
hash_text() { printf '%s  %s\n' "$(sha256sum | cut -c1-64)" "$1"; }

run_model() {
  local model="$1" tag="$2" im="${3:-}"
  local d="$OUT/$tag"; mkdir -p "$d"
  local imargs=()
  [ -n "$im" ] && imargs=(--imatrix "$im")
  for p in $PRESETS; do
    "$QM" quantize "$model" -o "$d/$p.gguf" --preset "$p" --quiet "${imargs[@]}" > /dev/null
    hash_file "$d/$p.gguf" "$tag/$p.gguf"
    norm_json "$d/$p.quantmap.json" | sed "s#$d#OUT#g" | hash_text "$tag/$p.quantmap.json"
    "$QM" quantize "$model" --preset "$p" --dry-run --json --quiet "${imargs[@]}" | python3 -c "$NORM" | hash_text "$tag/$p.dry-run.json"
  done
  "$QM" quantize "$model" -o "$d/hybrid.gguf" --recipe tests/data/mixed-recipe.toml --quiet "${imargs[@]}" > /dev/null
  hash_file "$d/hybrid.gguf" "$tag/hybrid.gguf"
  for t in Q4_K Q8_0 F16; do
    "$QM" quantize "$model" -o "$d/pure-$t.gguf" --type "$t" --quiet "${imargs[@]}" > /dev/null
    hash_file "$d/pure-$t.gguf" "$tag/pure-$t.gguf"
  done
  "$QM" recipe --preset Q4_K_M "$model" -o "$d/q4km.toml" > /dev/null 2>&1
  hash_file "$d/q4km.toml" "$tag/recipe-q4km.toml"
}

# synth12: imatrix, presets without and with it, sensitivity → plan → quantize, [budget] recipe.
S="$OUT/synth12"; mkdir -p "$S"
"$QM" imatrix "$SYNTH" -o "$S/imatrix.gguf" --chunks 2 --quiet > /dev/null 2>&1
hash_file "$S/imatrix.gguf" "synth12/imatrix.gguf"
run_model "$SYNTH" synth12
run_model "$SYNTH" synth12-imatrix "$S/imatrix.gguf"
"$QM" sensitivity "$SYNTH" -o "$S/sens.json" --ctx 32 --chunks 2 --types Q2_K,Q4_K,Q8_0 --imatrix-chunks 2 --quiet > /dev/null 2>&1
sed "s#$S#OUT#g" "$S/sens.json" | hash_text "synth12/sens.json"
hash_file "$S/sens.imatrix.gguf" "synth12/sens.imatrix.gguf"
hash_file "$S/sens.md" "synth12/sens.md"
(cd "$S" && "$QM" plan "$SYNTH" --sensitivity sens.json --budget 9MB -o plan.toml > /dev/null 2>&1)
hash_file "$S/plan.toml" "synth12/plan.toml"
(cd "$S" && "$QM" plan "$SYNTH" --sensitivity sens.json --budget 4.5bpw -o plan-bpw.toml > /dev/null 2>&1)
hash_file "$S/plan-bpw.toml" "synth12/plan-bpw.toml"
(cd "$S" && "$QM" quantize "$SYNTH" --recipe plan.toml -o planned.gguf --quiet > /dev/null)
hash_file "$S/planned.gguf" "synth12/planned.gguf"
printf '[budget]\nsize = "8MB"\nsensitivity = "sens.json"\n\n[[rule]]\nrole = "attn_v"\ntype = "Q8_0"\n' > "$S/budget.toml"
(cd "$S" && "$QM" quantize "$SYNTH" --recipe budget.toml -o budget.gguf --quiet > /dev/null 2>&1)
hash_file "$S/budget.gguf" "synth12/budget.gguf"

if [ -s "$SMOL" ]; then
  run_model "$SMOL" smollm2
fi

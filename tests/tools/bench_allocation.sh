#!/usr/bin/env bash
# Benchmark (issue #6 acceptance): sensitivity-driven allocation vs llama.cpp's presets, with and
# without an importance matrix, at the presets' file sizes, measured as mean KL-divergence against
# the F16 source on held-out text (tests/data/eval.txt; never the calibration text).
#
#   tests/tools/bench_allocation.sh [SOURCE_F16.gguf]      (default: SmolLM2 noisy F16, made here)
#
# Steps: (1) the continuous F16 source: SmolLM2's Q4_1 weights plus uniform noise over each quant cell
# (tests/tools/make_noisy_f16.py); (2) llama-imatrix on the default calibration set (calibration/*.txt,
# joined as quantmix joins them); (3) llama-quantize PRESET with and without that imatrix;
# (4) quantmix sensitivity (default calibration) → quantmix plan --budget <preset file size> →
# quantmix quantize; (5) llama-perplexity --kl-divergence of every file against the F16 source
# (ctx 512, all chunks of the eval text), and quantmix eval's own figures for the same files when
# `quantmix eval` is available. llama.cpp's tools are built from the PyPI sdist by
# tests/tools/build_llama_cpp.sh. Results: $OUT/results.md and $OUT/results.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
OUT="${OUT:-$CACHE/bench/allocation}"
PRESETS="${PRESETS:-Q4_K_M Q2_K}"
THREADS="${THREADS:-2}"
# Extra flags for quantmix sensitivity (precision vs time), e.g. "--ctx 128 --chunks 2 --imatrix-chunks 0".
SENS_ARGS="${SENS_ARGS:-}"
PY="$CACHE/venv/bin/python"
mkdir -p "$OUT"
BIN="$(tests/tools/build_llama_cpp.sh)"
cargo build --release -q
QM="$PWD/target/release/quantmix"
EVAL_TEXT="$PWD/tests/data/eval.txt"

SRC="${1:-}"
if [ -z "$SRC" ]; then
  SRC="$CACHE/bench/smollm2-noisy-f16.gguf"
  [ -s "$SRC" ] || "$PY" tests/tools/make_noisy_f16.py "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$SRC"
fi
name="$(basename "$SRC" .gguf)"
W="$OUT/$name"; mkdir -p "$W"

# (2) llama-imatrix on the same calibration text quantmix uses by default.
CALIB="$W/calibration.txt"
"$QM" imatrix --print-calibration > "$CALIB" 2>/dev/null || "$PY" - "$CALIB" <<'PY'
import sys, glob
files = sorted(glob.glob("calibration/*.txt"))
open(sys.argv[1], "w").write("\n\n".join(open(f).read() for f in files))
PY
[ -s "$W/llama.imatrix.gguf" ] || "$BIN/llama-imatrix" -m "$SRC" -f "$CALIB" -o "$W/llama.imatrix.gguf" -c 512 -t "$THREADS" > "$W/llama-imatrix.log" 2>&1

# (3) the presets. llama-quantize refuses some (IQ2_M, IQ2_XS, …) without an importance matrix
# wherever their types land: such a preset has no plain file, and its budget is the imatrix file's
# size (the same types).
for P in $PRESETS; do
  if [ ! -s "$W/$P.gguf" ] && [ ! -e "$W/$P.refused" ]; then
    "$BIN/llama-quantize" "$SRC" "$W/$P.gguf" "$P" "$THREADS" > "$W/quantize-$P.log" 2>&1 \
      || { rm -f "$W/$P.gguf"; touch "$W/$P.refused"; echo "llama-quantize refuses $P without an importance matrix" >&2; }
  fi
  [ -s "$W/$P-imatrix.gguf" ] || "$BIN/llama-quantize" --imatrix "$W/llama.imatrix.gguf" "$SRC" "$W/$P-imatrix.gguf" "$P" "$THREADS" > "$W/quantize-$P-imatrix.log" 2>&1
done

# (4) quantmix: measure once, plan per budget.
if [ ! -s "$W/sensitivity.json" ]; then
  /usr/bin/time -v "$QM" sensitivity "$SRC" -o "$W/sensitivity.json" --threads "$THREADS" $SENS_ARGS > "$W/sensitivity.log" 2> "$W/sensitivity.err" \
    || { cat "$W/sensitivity.err" >&2; exit 1; }
fi
for P in $PRESETS; do
  if [ -s "$W/$P.gguf" ]; then budget=$(stat -c %s "$W/$P.gguf"); else budget=$(stat -c %s "$W/$P-imatrix.gguf"); fi
  "$QM" plan "$SRC" --sensitivity "$W/sensitivity.json" --budget "$budget" -o "$W/plan-$P.toml" 2> "$W/plan-$P.log"
  "$QM" quantize --recipe "$W/plan-$P.toml" "$SRC" -o "$W/quantmix-$P.gguf" --quiet --threads "$THREADS" > /dev/null
done

# (5) KLD against the F16 source on the held-out eval text, by llama.cpp. Its tools log through an
# asynchronous thread that sometimes loses the last lines at exit (rc 0, no "Final estimate" / no
# KLD summary): a log without the line this script parses is run again (up to 3 times).
run_until() {  # run_until LOG PATTERN CMD...: CMD > LOG until LOG holds PATTERN
  local log="$1" pat="$2"; shift 2
  grep -Eq "$pat" "$log" 2>/dev/null && return 0
  for _ in 1 2 3; do
    "$@" > "$log" 2>&1 || true
    grep -Eq "$pat" "$log" && return 0
    echo "$log: no '$pat' (llama.cpp's log lost its last lines?), running again" >&2
  done
  echo "$log: still no '$pat' after 3 runs" >&2; return 1
}
[ -s "$W/base.kld" ] && grep -q "Final estimate" "$W/ppl-base.log" 2>/dev/null \
  || run_until "$W/ppl-base.log" "Final estimate" "$BIN/llama-perplexity" -m "$SRC" -f "$EVAL_TEXT" -c 512 -t "$THREADS" --kl-divergence-base "$W/base.kld"
files=()
for P in $PRESETS; do
  [ -s "$W/$P.gguf" ] && files+=("$P")
  files+=("$P-imatrix" "quantmix-$P")
done
for f in "${files[@]}"; do
  run_until "$W/kld-$f.log" "Mean +KLD:" "$BIN/llama-perplexity" -m "$W/$f.gguf" -c 512 -t "$THREADS" --kl-divergence-base "$W/base.kld" --kl-divergence
done
# (6) The picture: size vs mean KLD against the F16 source for every file, measured by quantmix eval
# (held-out text, PLOT_CHUNKS chunks of 512; throughput not measured), Pareto front drawn.
if [ "${PLOT:-1}" = 1 ] && [ ! -s "$W/pareto.svg" ]; then
  pf=(); for f in "${files[@]}"; do pf+=("$W/$f.gguf"); done
  "$QM" eval "$SRC" "${pf[@]}" --reference "$SRC" --text "$EVAL_TEXT" --chunks "${PLOT_CHUNKS:-6}" --no-speed \
    --threads "$THREADS" --quiet --plot "$W/pareto.svg" > "$W/eval-table.txt" 2> "$W/eval.log" || cat "$W/eval.log" >&2
fi
"$PY" - "$W" $PRESETS <<'PY'
import json, os, re, sys
w, presets = sys.argv[1], sys.argv[2:]
def kld(f):
    t = open(os.path.join(w, f"kld-{f}.log")).read()
    m = re.search(r"Mean\s+KLD:\s+([0-9.eE+-]+)\s+±\s+([0-9.eE+-]+)", t)
    p = re.search(r"Same top p:\s+([0-9.]+)\s+±", t)
    return float(m.group(1)), float(m.group(2)), (float(p.group(1)) if p else None)
rows, res = [], {}
for P in presets:
    has_plain = os.path.exists(os.path.join(w, P + ".gguf"))
    imat, ours = kld(f"{P}-imatrix"), kld(f"quantmix-{P}")
    plain = kld(P) if has_plain else None
    size = lambda f: os.path.getsize(os.path.join(w, f + ".gguf"))
    budget = size(P) if has_plain else size(f"{P}-imatrix")
    res[P] = {"budget_bytes": budget,
              "plain": {"bytes": size(P), "kld": plain[0], "kld_err": plain[1]} if plain else None,
              "imatrix": {"bytes": size(f"{P}-imatrix"), "kld": imat[0], "kld_err": imat[1]},
              "quantmix": {"bytes": size(f"quantmix-{P}"), "kld": ours[0], "kld_err": ours[1]},
              "ratio_vs_plain": ours[0] / plain[0] if plain else None, "ratio_vs_imatrix": ours[0] / imat[0]}
    plain_s = f"{plain[0]:.4f} ± {plain[1]:.4f}" if plain else "refused without imatrix"
    ratio_s = f"{ours[0]/plain[0]:.2f}" if plain else "—"
    rows.append(f"| {P} | {budget:,} | {plain_s} | {imat[0]:.4f} ± {imat[1]:.4f} | "
                f"{size(f'quantmix-{P}'):,} | {ours[0]:.4f} ± {ours[1]:.4f} | {ratio_s} | {ours[0]/imat[0]:.2f} |")
md = ["| preset | preset bytes | KLD plain | KLD imatrix (llama-imatrix) | quantmix bytes | KLD quantmix | ÷ plain | ÷ imatrix |",
      "|---|---|---|---|---|---|---|---|"] + rows
open(os.path.join(w, "results.md"), "w").write("\n".join(md) + "\n")
json.dump(res, open(os.path.join(w, "results.json"), "w"), indent=1)
print("\n".join(md))
PY

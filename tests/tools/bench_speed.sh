#!/usr/bin/env bash
# Benchmark (issue #13): prompt processing and generation of quantmix against llama.cpp's
# llama-bench built natively (tests/tools/build_llama_cpp.sh: -DGGML_NATIVE=ON, its AVX-512/VNNI
# kernels and weight repacking) on the same files, at 1 and 2 threads, with `quantmix bench model
# --against`. The files:
#  - SmolLM2-135M Q8_0 (quantized from the noisy F16 source of the other benchmarks),
#  - a 4-layer 1024-wide qwen3 with a 32 000-token vocabulary (make_synth_model.py) as llama.cpp's
#    Q4_K_M (Q4_K + Q6_K) and Q2_K presets (PRESETS="Q4_K_M Q2_K"; any llama.cpp preset
#    quantmix makes without an importance matrix, e.g. PRESETS="Q4_K_M Q2_K Q5_K_M Q6_K IQ4_XS
#    IQ3_S" for the other kernels).
#
#   tests/tools/bench_speed.sh            (THREADS="1 2" PP=512 TG=128 REPS=3 by default)
#
# Results: $OUT/speed-<threads>t.json and speed.md, with the load average before and after each
# run. Quote ratios from a quiet machine: under load llama.cpp's threads degrade more than ours.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
OUT="${OUT:-$CACHE/bench/speed}"
THREADS="${THREADS:-1 2}"
PP="${PP:-512}"; TG="${TG:-128}"; REPS="${REPS:-3}"
PY="$CACHE/venv/bin/python"
cargo build --release -q
QM="$PWD/target/release/quantmix"
BENCH="$(tests/tools/build_llama_cpp.sh llama-bench)/llama-bench"
mkdir -p "$OUT"

SMOL="$CACHE/bench/smollm2-noisy-f16.gguf"
[ -s "$SMOL" ] || "$PY" tests/tools/make_noisy_f16.py "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL"
[ -s "$OUT/smollm2-q8_0.gguf" ] || "$QM" quantize "$SMOL" --type Q8_0 -o "$OUT/smollm2-q8_0.gguf" --quiet > /dev/null
Q3="$OUT/qwen3-4x1024-f16.gguf"
[ -s "$Q3" ] || "$PY" tests/tools/make_synth_model.py qwen3 "$Q3" --n-embd 1024 --n-layer 4 --n-head 8 \
  --n-head-kv 4 --head-dim 128 --n-ff 3072 --pad-vocab 32000 --seed 13 > /dev/null
files=("$OUT/smollm2-q8_0.gguf")
for P in ${PRESETS:-Q4_K_M Q2_K}; do
  [ -s "$OUT/qwen3-${P,,}.gguf" ] || "$QM" quantize "$Q3" --preset "$P" -o "$OUT/qwen3-${P,,}.gguf" --quiet > /dev/null
  files+=("$OUT/qwen3-${P,,}.gguf")
done

for T in $THREADS; do
  cut -d' ' -f1-3 /proc/loadavg > "$OUT/load-before-${T}t"
  "$QM" bench model "${files[@]}" --against "$BENCH" --threads "$T" --pp "$PP" --tg "$TG" --reps "$REPS" \
    --json --quiet > "$OUT/speed-${T}t.json"
  cut -d' ' -f1-3 /proc/loadavg > "$OUT/load-after-${T}t"
done

"$PY" - "$OUT" "$THREADS" <<'PY'
import json, os, sys
out, threads = sys.argv[1], sys.argv[2].split()
runs = {t: json.load(open(os.path.join(out, f"speed-{t}t.json"))) for t in threads}
first = runs[threads[0]]
hdr = "| file | test | " + " | ".join(f"{t} thread{'s' if t != '1' else ''}: quantmix t/s | llama-bench t/s | ratio" for t in threads) + " |"
md = [hdr, "|---|---|" + "---|---|---|" * len(threads)]
for i, row in enumerate(first["rows"]):
    cells = [os.path.basename(row["file"]), row["test"]]
    for t in threads:
        r = runs[t]["rows"][i]
        cells += [f"{r['ours_tokens_per_s']:.1f}", f"{r['llama_bench_tokens_per_s']:.1f} ± {r['llama_bench_stddev']:.1f}", f"{r['ratio']:.2f}"]
    md.append("| " + " | ".join(cells) + " |")
md.append("")
for t in threads:
    lb = [open(os.path.join(out, f"load-{w}-{t}t")).read().split()[0] for w in ("before", "after")]
    md.append(f"{t} thread(s): load average {lb[0]} → {lb[1]}; llama-bench build {runs[t]['llama_bench_build']}, "
              f"pp {runs[t]['pp_tokens']}, tg {runs[t]['tg_tokens']}, {runs[t]['reps']} repetitions.")
open(os.path.join(out, "speed.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY

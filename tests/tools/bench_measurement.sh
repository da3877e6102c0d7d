#!/usr/bin/env bash
# Benchmark (issue #14): the cost of the sensitivity measurement against its quality. For one source
# model, every measuring mode in $MODES is run in full (imatrix included, timed, peak memory), then
#  - Spearman's rank correlation of its ΔKLD with the exhaustive run's, over every (tensor, candidate)
#    pair and within each tensor (mean over tensors),
#  - a plan at the size of llama.cpp's preset files ($PRESETS; made by `quantmix quantize --preset`,
#    which reproduces llama-quantize byte for byte), quantized, and its mean KL-divergence against
#    the source on the held-out text (tests/data/eval.txt, never calibration text) by quantmix eval.
#
#   tests/tools/bench_measurement.sh [SOURCE.gguf]   (default: SmolLM2 noisy F16, as bench_allocation.sh)
#
# MODES: space-separated; `exhaustive` (every candidate), `default` (no flag: what a user gets) or a
# comma-separated anchor list for --predict-from (e.g. `Q3_K`, `Q3_K,Q6_K`).
# Results: $OUT/<source>/measurement.md and measurement.json. Quote times from an idle machine (the
# load average is recorded with each run).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
OUT="${OUT:-$CACHE/bench/measurement}"
PRESETS="${PRESETS:-Q4_K_M Q2_K}"
MODES="${MODES:-exhaustive default}"
THREADS="${THREADS:-2}"
EVAL_CHUNKS="${EVAL_CHUNKS:-0}"   # 0: every chunk of the eval text
PY="$CACHE/venv/bin/python"
cargo build --release -q
QM="$PWD/target/release/quantmix"
EVAL_TEXT="$PWD/tests/data/eval.txt"

SRC="${1:-}"
if [ -z "$SRC" ]; then
  SRC="$CACHE/bench/smollm2-noisy-f16.gguf"
  mkdir -p "$(dirname "$SRC")"
  [ -s "$SRC" ] || "$PY" tests/tools/make_noisy_f16.py "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$SRC"
fi
name="$(basename "$SRC" .gguf)"
W="$OUT/$name"; mkdir -p "$W"

for P in $PRESETS; do
  [ -s "$W/$P.gguf" ] || "$QM" quantize "$SRC" --preset "$P" -o "$W/$P.gguf" --quiet --threads "$THREADS" > /dev/null
done

files=()
for M in $MODES; do
  D="$W/mode-${M//,/+}"; mkdir -p "$D"
  case "$M" in
    exhaustive) flags=(--exhaustive) ;;
    default) flags=() ;;
    *) flags=(--predict-from "$M") ;;
  esac
  if [ ! -s "$D/sensitivity.json" ]; then
    cut -d' ' -f1-3 /proc/loadavg > "$D/load-before"
    /usr/bin/time -f "%e %M" -o "$D/time" "$QM" sensitivity "$SRC" -o "$D/sensitivity.json" --threads "$THREADS" \
      "${flags[@]}" > "$D/sensitivity.log" 2> "$D/sensitivity.err" || { cat "$D/sensitivity.err" >&2; exit 1; }
    cut -d' ' -f1-3 /proc/loadavg > "$D/load-after"
  fi
  for P in $PRESETS; do
    budget=$(stat -c %s "$W/$P.gguf")
    if [ ! -s "$D/plan-$P.gguf" ]; then
      "$QM" plan "$SRC" --sensitivity "$D/sensitivity.json" --budget "$budget" -o "$D/plan-$P.toml" 2> "$D/plan-$P.log"
      "$QM" quantize --recipe "$D/plan-$P.toml" "$SRC" -o "$D/plan-$P.gguf" --quiet --threads "$THREADS" > /dev/null
    fi
    files+=("$D/plan-$P.gguf")
  done
done
for P in $PRESETS; do files+=("$W/$P.gguf"); done

chunk_args=(); [ "$EVAL_CHUNKS" = 0 ] || chunk_args=(--chunks "$EVAL_CHUNKS")
"$QM" eval "$SRC" "${files[@]}" --reference "$SRC" --text "$EVAL_TEXT" --no-speed --json --quiet \
  --threads "$THREADS" "${chunk_args[@]}" > "$W/eval.json"

"$PY" - "$W" "$MODES" "$PRESETS" <<'PY'
import json, os, sys
import numpy as np
w, modes, presets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def ranks(v):
    v = np.asarray(v, dtype=float)
    order = v.argsort(kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    # ties: average ranks
    _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts)); np.add.at(sums, inv, r)
    return (sums / counts)[inv]

def spearman(a, b):
    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])

def load(mode):
    d = os.path.join(w, "mode-" + mode.replace(",", "+"))
    s = json.load(open(os.path.join(d, "sensitivity.json")))
    kld = {(t["name"], c["type"]): c["kld"] for t in s["tensors"] for c in t["candidates"] if c["kld"] > 0 or c.get("predicted")}
    secs, rss = open(os.path.join(d, "time")).read().split()
    load = [open(os.path.join(d, f)).read().split()[0] for f in ("load-before", "load-after")]
    return d, kld, float(secs), int(rss) // 1024, load

ev = {os.path.relpath(r["file"], w): r for r in json.load(open(os.path.join(w, "eval.json")))}
base = load("exhaustive") if "exhaustive" in modes else None
res, rows = {}, []
for m in modes:
    d, kld, secs, rss, ld = load(m)
    r = {"seconds": secs, "peak_mib": rss, "load_before_after": ld}
    if base:
        keys = sorted(set(kld) & set(base[1]))
        r["spearman_all"] = spearman([kld[k] for k in keys], [base[1][k] for k in keys])
        by_t = {}
        for k in keys:
            by_t.setdefault(k[0], []).append(k)
        within = [spearman([kld[k] for k in ks], [base[1][k] for k in ks]) for ks in by_t.values()]
        within = [x for x in within if x == x]
        r["spearman_within_tensor"] = float(np.mean(within)) if within else float("nan")
        r["time_vs_exhaustive"] = secs / base[2]
    for p in presets:
        e = ev[os.path.relpath(os.path.join(d, f"plan-{p}.gguf"), w)]
        r[p] = {"bytes": e["bytes"], "kld": e["kld_mean"], "kld_err": e["kld_mean_err"]}
        if base:
            b = ev[os.path.relpath(os.path.join(base[0], f"plan-{p}.gguf"), w)]
            r[p]["kld_vs_exhaustive"] = e["kld_mean"] / b["kld_mean"]
    res[m] = r
for p in presets:
    e = ev[p + ".gguf"]
    res["preset " + p] = {"bytes": e["bytes"], "kld": e["kld_mean"], "kld_err": e["kld_mean_err"]}

hdr = "| mode | time (s) | peak MiB | load | ÷ exhaustive time | Spearman all | Spearman within tensor | " + \
      " | ".join(f"KLD at {p} size (÷ exhaustive)" for p in presets) + " |"
md = [hdr, "|" + "---|" * (6 + len(presets) + 1)]
for m in modes:
    r = res[m]
    cells = [m, f"{r['seconds']:.0f}", str(r["peak_mib"]), "→".join(r["load_before_after"]),
             f"{r.get('time_vs_exhaustive', float('nan')):.2f}", f"{r.get('spearman_all', float('nan')):.3f}",
             f"{r.get('spearman_within_tensor', float('nan')):.3f}"]
    cells += [f"{r[p]['kld']:.5f} ± {r[p]['kld_err']:.5f} ({r[p].get('kld_vs_exhaustive', float('nan')):.3f})" for p in presets]
    md.append("| " + " | ".join(cells) + " |")
md.append("")
md.append("Presets (llama.cpp's files, no imatrix): " + ", ".join(
    f"{p} {res['preset ' + p]['bytes']:,} bytes KLD {res['preset ' + p]['kld']:.5f}" for p in presets))
open(os.path.join(w, "measurement.md"), "w").write("\n".join(md) + "\n")
json.dump(res, open(os.path.join(w, "measurement.json"), "w"), indent=1)
print("\n".join(md))
PY

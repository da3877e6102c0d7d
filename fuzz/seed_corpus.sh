#!/usr/bin/env bash
# Seeds fuzz/corpus/gguf_reader with small GGUF files and truncations of them:
#  - fixtures/golden/ggml-quants.gguf whole, and the first bytes of the other fixtures (their headers:
#    metadata incl. a 1024-token vocabulary, tensor infos, the start of the data);
#  - SmolLM2's header (a 49k-token vocabulary) when .ci/setup installed it;
#  - tiny files written by gguf-py (the venv .ci/setup makes): every metadata value type, nested and
#    empty arrays, a custom alignment, F32/F16/Q8_0 tensors;
#  - each also cut at a few lengths (section boundaries the fuzzer then finds on its own).
#   usage: fuzz/seed_corpus.sh [CORPUS_DIR]   (default fuzz/corpus/gguf_reader)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
OUT="${1:-fuzz/corpus/gguf_reader}"
mkdir -p "$OUT"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

cp fixtures/golden/ggml-quants.gguf "$tmp/golden.gguf"
head -c 300000 fixtures/presets/synth12-llama-f16.gguf > "$tmp/synth12-head.gguf"
head -c 300000 fixtures/golden/extra-quants.gguf > "$tmp/extra-head.gguf"
[ -s "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] &&
  head -c 300000 "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" > "$tmp/smollm2-head.gguf"

if [ -x "$CACHE/venv/bin/python" ]; then
  "$CACHE/venv/bin/python" - "$tmp" <<'PY'
import sys, numpy as np, gguf
d = sys.argv[1]
def write(name, fill, alignment=None):
    w = gguf.GGUFWriter(f"{d}/{name}", "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    fill(w)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
def all_types(w):
    w.add_uint8("t.u8", 7); w.add_int8("t.i8", -7); w.add_uint16("t.u16", 700); w.add_int16("t.i16", -700)
    w.add_uint32("t.u32", 70000); w.add_int32("t.i32", -70000); w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 1 << 40); w.add_int64("t.i64", -(1 << 40)); w.add_float64("t.f64", 2.25)
    w.add_bool("t.bool", True); w.add_string("t.str", "héllo")
    w.add_array("t.arr_i32", [1, 2, 3]); w.add_array("t.arr_str", ["a", "bc", ""]); w.add_array("t.arr_empty", [])
    w.add_array("t.arr_nested", [[1, 2], [3]]); w.add_array("t.arr_f", [0.5, 1.5])
    w.add_tensor("a", np.arange(8, dtype=np.float32))
def tensors(w):
    w.add_tensor("f32", np.ones((2, 3), dtype=np.float32))
    w.add_tensor("f16", np.ones((4, 32), dtype=np.float16))
    w.add_tensor("q8", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
write("types.gguf", all_types)
write("tensors.gguf", tensors)
write("align64.gguf", tensors, alignment=64)
write("empty-tensor.gguf", lambda w: w.add_tensor("empty", np.zeros((0,), dtype=np.float32)))
write("notensors.gguf", lambda w: w.add_string("general.name", "x"))
PY
fi

for f in "$tmp"/*.gguf; do
  b="$(basename "$f" .gguf)"
  cp "$f" "$OUT/$b.gguf"
  n=$(stat -c %s "$f")
  for cut in 4 8 24 40 64 200 1000 4000 20000; do
    [ "$cut" -lt "$n" ] && head -c "$cut" "$f" > "$OUT/$b-cut$cut.gguf"
  done
  head -c $((n - 1)) "$f" > "$OUT/$b-cut-1.gguf"
done
ls "$OUT" | wc -l

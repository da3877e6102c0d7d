#!/usr/bin/env python3
"""Add llama-quantize's choices for presets to a fixtures/presets/*-presets.json reference.

usage: preset_reference.py SRC.gguf REF.json PRESET [PRESET ...]

For each PRESET, quantizes SRC with llama.cpp's own `llama_model_quantize` (through
tests/tools/llama_quantize.py: PyPI llama-cpp-python 0.3.36, no imatrix) and records, as the
existing entries do, `file_bytes`, each tensor's `types` name and `sha256` (first 16 hex digits
of the tensor data's SHA-256). Entries already in REF.json for other presets are kept as they are.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import gguf
from gguf import GGUFReader

# gguf-py 0.19.0 predates GGML_TYPE_Q2_0 (id 42: blocks of 64 values in 18 bytes) and cannot read
# a file holding it; teach its enum and size table that one type.
_Q = gguf.GGMLQuantizationType
if 42 not in [int(v) for v in _Q]:
    def _missing(cls, value):
        if value == 42:
            m = int.__new__(cls, 42)
            m._name_, m._value_ = "Q2_0", 42
            cls._value2member_map_[42] = m
            gguf.GGML_QUANT_SIZES[m] = (64, 18)
            return m
        return None
    _Q._missing_ = classmethod(_missing)


def entry(path):
    r = GGUFReader(path)
    types, sha = {}, {}
    for t in r.tensors:
        types[t.name] = t.tensor_type.name
        sha[t.name] = hashlib.sha256(bytes(t.data.tobytes())).hexdigest()[:16]
    return {"file_bytes": os.path.getsize(path), "sha256": dict(sorted(sha.items())), "types": dict(sorted(types.items()))}


def main():
    src, ref, presets = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = json.load(open(ref))
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_quantize.py")
    with tempfile.TemporaryDirectory() as d:
        for p in presets:
            out = os.path.join(d, f"{p}.gguf")
            subprocess.run([sys.executable, tool, src, out, p], check=True, stdout=subprocess.DEVNULL)
            data[p] = entry(out)
            print(p, data[p]["file_bytes"], file=sys.stderr)
    with open(ref, "w") as f:
        json.dump(dict(sorted(data.items())), f, indent=1)


if __name__ == "__main__":
    main()

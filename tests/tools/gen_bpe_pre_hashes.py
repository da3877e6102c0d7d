#!/usr/bin/env python3
"""Extract the BPE pre-tokenizer decision table of llama.cpp's HF converter.

The converter encodes a fixed check text with the model's tokenizer, hashes
str(token_ids) with sha256 and looks the hash up to choose `tokenizer.ggml.pre`.
This script reads the check text and the (hash, name) pairs out of the
reference converter source and writes them as JSON data for quantmix
(src/convert/bpe_pre_hashes.json). Later entries win, as in the converter,
whose checks are a chain of independent `if`s.

usage: gen_bpe_pre_hashes.py LLAMA_CPP_DIR > src/convert/bpe_pre_hashes.json
"""
import ast
import json
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
src = (root / "conversion" / "base.py").read_text(encoding="utf-8")
start = src.index("def get_vocab_base_pre")
end = src.index("Marker: End get_vocab_base_pre")
body = src[start:end]

m = re.search(r"^\s*chktxt = (.*)$", body, re.M)
chktxt = ast.literal_eval(m.group(1))
table = {}
for h, name in re.findall(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"', body):
    table.pop(h, None)
    table[h] = name
version = "llama.cpp 0c1e570 (llama-cpp-python 0.3.36 vendor)"
json.dump({"source": version, "chktxt": chktxt, "hashes": table}, sys.stdout, ensure_ascii=False, indent=1)
sys.stdout.write("\n")

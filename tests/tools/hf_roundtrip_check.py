#!/usr/bin/env python3
"""llama.cpp runs a quantmix-converted GGUF like the original.

usage: hf_roundtrip_check.py ORIGINAL.gguf CONVERTED.gguf

Both models tokenize a fixed text (the tokenizer metadata must give the same
ids) and evaluate it; prints one JSON line with the token count, whether the
tokens agree, the top-1 agreement of the next-token logits and the largest
absolute logit difference.
"""
import json
import sys

import numpy as np
from llama_cpp import Llama

TEXT = ("The quick brown fox jumps over the lazy dog. In 1492, Columbus sailed the ocean blue; "
        "3.14159 is pi, and 'twas brillig.\n\n<|im_start|>user\nHello!<|im_end|>")


def run(path):
    m = Llama(model_path=path, n_ctx=256, logits_all=True, verbose=False, n_threads=2, seed=0)
    toks = m.tokenize(TEXT.encode(), add_bos=True, special=True)
    m.eval(toks)
    return toks, np.array(m.scores[: len(toks)], dtype=np.float64)


a_toks, a = run(sys.argv[1])
b_toks, b = run(sys.argv[2])
same = a_toks == b_toks
n = min(len(a), len(b))
top1 = float(np.mean(np.argmax(a[:n], 1) == np.argmax(b[:n], 1)))
print(json.dumps({"n_tokens": len(a_toks), "same_tokens": same, "top1_agree": top1,
                  "max_abs_diff": float(np.max(np.abs(a[:n] - b[:n])))}))

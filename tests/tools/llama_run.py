#!/usr/bin/env python3
"""Load a GGUF with llama.cpp (PyPI llama-cpp-python) and evaluate a short prompt.

usage: llama_run.py MODEL.gguf
Prints one JSON object: {"n_tokens", "finite", "top": [token ids of the argmax at each position]}
and exits 0 when llama.cpp loaded the file and every logit is finite."""
import json
import sys

import numpy as np
from llama_cpp import Llama

PROMPT = "The quick brown fox jumps over the lazy dog. In 1905, Albert Einstein published"


def main() -> int:
    llm = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=2, logits_all=True, verbose=False)
    toks = llm.tokenize(PROMPT.encode(), add_bos=True)
    llm.eval(toks)
    logits = np.array(llm.scores[: len(toks)], dtype=np.float32)
    finite = bool(np.isfinite(logits).all())
    print(json.dumps({"n_tokens": len(toks), "finite": finite, "top": logits.argmax(axis=1).tolist()}))
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())

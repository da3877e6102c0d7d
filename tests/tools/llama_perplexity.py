#!/usr/bin/env python3
"""llama.cpp's perplexity of a GGUF on a text, computed the way llama-perplexity does it, through
llama-cpp-python (the same llama.cpp build as the golden data).

usage:
  llama_perplexity.py ppl MODEL.gguf TEXT.txt N_CTX N_CHUNKS OUT.json
  llama_perplexity.py quantize IN.gguf OUT.gguf TYPE          (TYPE: q8_0, q4_0, ...; requantizes)

`ppl`: the text is tokenized whole (add_special=True, parse_special=False, as common_tokenize), cut
into N_CHUNKS chunks of N_CTX tokens (all chunks when N_CHUNKS <= 0); each chunk is evaluated from an
empty KV cache with its first token replaced by BOS when the vocabulary adds BOS; the positions
N_CTX/2 .. N_CTX-2 are scored (NLL from log-softmax, max in f32, sum of exp in f64). Writes JSON:
ppl, ppl_err (llama-perplexity's final "+/-"), count, n_chunks, n_ctx, n_tokens, tokens_sha (first
16 hex of sha256 of the token ids as little-endian u32) and argmax: for every scored position the id
of llama.cpp's most likely next token.
"""
import ctypes
import hashlib
import json
import math
import sys

import numpy as np

import llama_cpp


def ppl(model, text_path, n_ctx, n_chunks, out_path):
    with open(text_path, "rb") as f:
        text = f.read()
    llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                          n_threads=2, n_threads_batch=2, verbose=False)
    tokens = llm.tokenize(text, add_bos=True, special=False)
    if len(tokens) < 2 * n_ctx:
        raise SystemExit(f"text has {len(tokens)} tokens, need {2 * n_ctx}")
    add_bos = llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model))
    bos = llm.token_bos()
    max_chunks = len(tokens) // n_ctx
    n_chunks = max_chunks if n_chunks <= 0 else min(n_chunks, max_chunks)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    argmax = []
    for c in range(n_chunks):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        batch = list(chunk)
        if add_bos:
            batch[0] = bos
        llm.reset()
        llm.eval(batch)
        logits = np.asarray(llm.scores[:n_ctx], dtype=np.float32)
        for j in range(first, n_ctx - 1):
            row = logits[j]
            m = np.float32(row.max())
            s = float(np.exp(row - m, dtype=np.float32).astype(np.float64).sum())
            v = -(float(row[chunk[j + 1]] - m) - math.log(s))
            nll += v
            nll2 += v * v
            count += 1
            argmax.append(int(np.argmax(row)))
    mean = nll / count
    p = math.exp(mean)
    var = nll2 / count - mean * mean
    err = math.sqrt(var / (count - 1)) * p if var > 0 else 0.0
    sha = hashlib.sha256(np.asarray(tokens, dtype="<u4").tobytes()).hexdigest()[:16]
    out = {"ppl": p, "ppl_err": err, "count": count, "n_chunks": n_chunks, "n_ctx": n_ctx,
           "n_tokens": len(tokens), "tokens_sha": sha, "add_bos": bool(add_bos), "argmax": argmax}
    with open(out_path, "w") as f:
        json.dump(out, f)


def quantize(src, dst, ty):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + ty.upper())
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed: {rc}")


def main():
    llama_cpp.llama_backend_init()
    if sys.argv[1] == "ppl":
        ppl(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "quantize":
        quantize(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

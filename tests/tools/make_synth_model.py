#!/usr/bin/env python3
"""Write a small synthetic GGUF model of a given architecture, with llama.cpp's metadata keys and
tensor names, random F16 weights (F32 norms) from a fixed seed, logits peaked by a large output
scale, and a byte-level BPE vocabulary (GPT-2 byte alphabet, merges learned on a text).

usage: make_synth_model.py ARCH OUT.gguf [--vocab-text TEXT] [--seed N] [--n-embd N] [--n-layer N]
                           [--n-head N] [--n-head-kv N] [--head-dim N] [--n-ff N] [--n-vocab N]
                           [--sliding-window N] [--final-softcap X] [--attn-softcap X] [--tied]
                           [--rope-base X] [--bos] [--pad-vocab N] [--spread X]
                           [--n-expert N] [--n-expert-used K] [--n-ff-exp N] [--router-scale X]
                           [--rope-dim N] [--rope-factors] [--rope-orig-ctx N] [--rope-attn-factor X]
ARCH: llama, qwen3, qwen3moe, gemma2, gemma3 or phi3.

phi3 (llama.cpp's LLM_ARCH_PHI3 loader): a fused `attn_qkv` (rows q, then k, then v) and a fused
`ffn_up` of 2·n_ff rows (gate first, then up: ggml_swiglu's order) with no `ffn_gate`; head_dim is
n_embd / n_head (the loader's `attn_output` shape; --head-dim must agree if given). --rope-dim N
writes `phi3.rope.dimension_count` (a partial rotary dimension, N < head_dim), --rope-factors the
LongRoPE tensors `rope_factors_long.weight` and `rope_factors_short.weight` (F32, rope_dim/2 values
each, ≥ 1), --rope-orig-ctx `rope.scaling.original_context_length` (llama.cpp uses the long factors
when its context is larger), --rope-attn-factor `rope.scaling.attn_factor`. These options
are refused for other architectures. (No `output.bias`: llama.cpp's phi3 loader does not read one and
refuses a file that has it.)

Experts: qwen3moe always has them (default 8 experts, 2 used), llama when --n-expert N > 0
(Mixtral-style: `llama.expert_count`, the experts' hidden size is --n-ff). Each layer then has an F32
router `ffn_gate_inp` (N rows, scaled by --router-scale: larger values give more peaked routing) and
F16 `ffn_{gate,up,down}_exps` (ne = [n_embd, n_ff_exp, N], [n_ff_exp, n_embd, N]) instead of the dense
feed-forward; qwen3moe writes `expert_feed_forward_length` = --n-ff-exp (default --n-ff).

--pad-vocab N pads the vocabulary to N tokens with ones no text produces (`<pad_i>`), so that the
output matrix has a real model's size (a 1.5B-class fixture: 151 936 as Qwen2). --spread X scales every
weight matrix by its own factor exp(X·z), z ~ N(0, 1) from a second generator: tensors then differ in
how much they move the residual stream, as a real model's do (their sensitivities are not all equal).
Both default to off and then change no byte.

The same arguments write the same bytes. Needs the PyPI packages `gguf` and `numpy` (the venv of
.ci/setup).
"""
import argparse
import collections
import re
import sys

import numpy as np
import gguf


def bytes_to_unicode():
    """GPT-2's byte alphabet: printable bytes stand for themselves, the others are shifted to 256+."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_bpe(text, n_merges):
    """Merges learned greedily on `text` (most frequent pair first, ties by the pair's text)."""
    enc = bytes_to_unicode()
    words = collections.Counter(re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", text))
    corpus = {tuple(enc[b] for b in w.encode("utf-8")): c for w, c in words.items()}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in corpus.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new = {}
        for w, c in corpus.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        corpus = new
    return [enc[b] for b in range(256)], merges


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", choices=["llama", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"])
    ap.add_argument("out")
    ap.add_argument("--vocab-text", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-head-kv", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=None, help="default 128 (phi3: n_embd / n_head)")
    ap.add_argument("--n-ff", type=int, default=512)
    ap.add_argument("--n-vocab", type=int, default=1024)
    ap.add_argument("--sliding-window", type=int, default=0)
    ap.add_argument("--final-softcap", type=float, default=0.0, help="<arch>.final_logit_softcapping")
    ap.add_argument("--attn-softcap", type=float, default=0.0, help="<arch>.attn_logit_softcapping")
    ap.add_argument("--rope-base", type=float, default=1000000.0)
    ap.add_argument("--logit-scale", type=float, default=4.0)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--bos", action="store_true", help="add_bos_token = true")
    ap.add_argument("--pad-vocab", type=int, default=0)
    ap.add_argument("--spread", type=float, default=0.0)
    ap.add_argument("--n-expert", type=int, default=None, help="experts per layer (qwen3moe default 8)")
    ap.add_argument("--n-expert-used", type=int, default=2)
    ap.add_argument("--n-ff-exp", type=int, default=0, help="an expert's hidden size (default --n-ff)")
    ap.add_argument("--router-scale", type=float, default=1.0)
    ap.add_argument("--rope-dim", type=int, default=0, help="phi3: <arch>.rope.dimension_count")
    ap.add_argument("--rope-factors", action="store_true", help="phi3: LongRoPE long/short factor tensors")
    ap.add_argument("--rope-orig-ctx", type=int, default=0, help="phi3: rope.scaling.original_context_length")
    ap.add_argument("--rope-attn-factor", type=float, default=0.0, help="phi3: rope.scaling.attn_factor")
    a = ap.parse_args()
    phi3 = a.arch == "phi3"
    if not phi3 and (a.rope_dim or a.rope_factors or a.rope_orig_ctx or a.rope_attn_factor):
        raise SystemExit("--rope-dim, --rope-factors, --rope-orig-ctx, --rope-attn-factor: phi3 only")
    if phi3:
        if a.n_embd % a.n_head:
            raise SystemExit("phi3: --n-embd must be a multiple of --n-head")
        if a.head_dim is not None and a.head_dim != a.n_embd // a.n_head:
            raise SystemExit("phi3: head_dim is n_embd / n_head")
        a.head_dim = a.n_embd // a.n_head
    elif a.head_dim is None:
        a.head_dim = 128
    rope_dim = a.rope_dim or a.head_dim
    if phi3 and (rope_dim > a.head_dim or rope_dim % 2):
        raise SystemExit("phi3: --rope-dim must be even and at most head_dim")
    n_expert = a.n_expert if a.n_expert is not None else (8 if a.arch == "qwen3moe" else 0)
    if a.arch == "qwen3moe" and n_expert < 1:
        raise SystemExit("qwen3moe needs --n-expert >= 1")
    if n_expert and a.arch not in ("llama", "qwen3moe"):
        raise SystemExit("--n-expert: only llama and qwen3moe have experts")
    n_ff_exp = a.n_ff_exp or a.n_ff
    rng = np.random.default_rng(a.seed)

    text = open(a.vocab_text, encoding="utf-8").read() if a.vocab_text else "the quick brown fox " * 50
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if phi3:
        # llama.cpp's vocabulary loader sets attributes on these by name when general.name says phi3.
        specials += ["<s>", "</s>", "<unk>"]
    base, merges = learn_bpe(text, a.n_vocab - 256 - len(specials))
    tokens = base + [l + r for l, r in merges] + specials
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(specials)) + [gguf.TokenType.CONTROL] * len(specials)
    pads = [f"<pad_{i}>" for i in range(max(0, a.pad_vocab - len(tokens)))]
    tokens += pads
    types += [gguf.TokenType.NORMAL] * len(pads)
    n_vocab = len(tokens)
    eot = tokens.index("<|endoftext|>")

    arch, E, H, HKV, D, F = a.arch, a.n_embd, a.n_head, a.n_head_kv, a.head_dim, a.n_ff
    w = gguf.GGUFWriter(a.out, arch)
    w.add_string("general.name", f"synthetic {arch}")
    w.add_uint32(f"{arch}.context_length", 4096)
    w.add_uint32(f"{arch}.embedding_length", E)
    w.add_uint32(f"{arch}.block_count", a.n_layer)
    w.add_uint32(f"{arch}.feed_forward_length", F)
    w.add_uint32(f"{arch}.attention.head_count", H)
    w.add_uint32(f"{arch}.attention.head_count_kv", HKV)
    w.add_uint32(f"{arch}.attention.key_length", D)
    w.add_uint32(f"{arch}.attention.value_length", D)
    w.add_float32(f"{arch}.rope.freq_base", a.rope_base)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    if n_expert:
        w.add_uint32(f"{arch}.expert_count", n_expert)
        w.add_uint32(f"{arch}.expert_used_count", a.n_expert_used)
        if arch == "qwen3moe":
            w.add_uint32(f"{arch}.expert_feed_forward_length", n_ff_exp)
    if a.sliding_window:
        w.add_uint32(f"{arch}.attention.sliding_window", a.sliding_window)
    if a.attn_softcap:
        w.add_float32(f"{arch}.attn_logit_softcapping", a.attn_softcap)
    if a.final_softcap:
        w.add_float32(f"{arch}.final_logit_softcapping", a.final_softcap)
    if a.rope_dim:
        w.add_uint32(f"{arch}.rope.dimension_count", a.rope_dim)
    if a.rope_orig_ctx:
        w.add_uint32(f"{arch}.rope.scaling.original_context_length", a.rope_orig_ctx)
    if a.rope_attn_factor:
        w.add_float32(f"{arch}.rope.scaling.attn_factor", a.rope_attn_factor)
    w.add_uint32("general.file_type", 1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{l} {r}" for l, r in merges])
    w.add_uint32("tokenizer.ggml.bos_token_id", eot)
    w.add_uint32("tokenizer.ggml.eos_token_id", eot)
    w.add_bool("tokenizer.ggml.add_bos_token", a.bos)

    spread_rng = np.random.default_rng(a.seed + 1_000_003)

    def mat(rows, cols, std):
        if a.spread:
            std *= float(np.exp(a.spread * spread_rng.standard_normal()))
        # Big matrices are drawn in row blocks (the generator fills in order, so the numbers are
        # those of one draw) to keep memory small for 1.5B-class shapes.
        if rows * cols > 1 << 24:
            out = np.empty((rows, cols), dtype=np.float16)
            step = max(1, (1 << 22) // cols)
            for r in range(0, rows, step):
                out[r:r + step] = (rng.standard_normal((min(step, rows - r), cols)) * std).astype(np.float16)
            return out
        return (rng.standard_normal((rows, cols)) * std).astype(np.float16)

    def norm(n, spread=0.2):
        return (1.0 + spread * rng.standard_normal(n)).astype(np.float32)

    # Tied: the embeddings are the output matrix, scaled for the same logit spread.
    w.add_tensor("token_embd.weight", mat(n_vocab, E, a.logit_scale / np.sqrt(E) if a.tied else 1.0))
    w.add_tensor("output_norm.weight", norm(E))
    if not a.tied:
        w.add_tensor("output.weight", mat(n_vocab, E, a.logit_scale / np.sqrt(E)))
    if a.rope_factors:
        # LongRoPE: per-frequency divisors ≥ 1, growing towards the low frequencies; the long ones larger.
        ramp = np.linspace(0.0, 1.0, rope_dim // 2)
        w.add_tensor("rope_factors_short.weight", (1.0 + 0.5 * ramp + 0.1 * rng.random(rope_dim // 2)).astype(np.float32))
        w.add_tensor("rope_factors_long.weight", (1.0 + 8.0 * ramp ** 2 + rng.random(rope_dim // 2)).astype(np.float32))
    for i in range(a.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(E))
        if phi3:
            w.add_tensor(p + "attn_qkv.weight", mat((H + 2 * HKV) * D, E, 1 / np.sqrt(E)))
        else:
            w.add_tensor(p + "attn_q.weight", mat(H * D, E, 1 / np.sqrt(E)))
            w.add_tensor(p + "attn_k.weight", mat(HKV * D, E, 1 / np.sqrt(E)))
            w.add_tensor(p + "attn_v.weight", mat(HKV * D, E, 1 / np.sqrt(E)))
        w.add_tensor(p + "attn_output.weight", mat(E, H * D, 1 / np.sqrt(H * D)))
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            # Q/K norms with a spread of gains: some heads attend sharply.
            w.add_tensor(p + "attn_q_norm.weight", norm(D, 0.5))
            w.add_tensor(p + "attn_k_norm.weight", norm(D, 0.5))
        w.add_tensor(p + "ffn_norm.weight", norm(E))
        if n_expert:
            X, FX = n_expert, n_ff_exp
            w.add_tensor(p + "ffn_gate_inp.weight",
                         (rng.standard_normal((X, E)) * (a.router_scale / np.sqrt(E))).astype(np.float32))
            w.add_tensor(p + "ffn_gate_exps.weight", np.stack([mat(FX, E, 1 / np.sqrt(E)) for _ in range(X)]))
            w.add_tensor(p + "ffn_up_exps.weight", np.stack([mat(FX, E, 1 / np.sqrt(E)) for _ in range(X)]))
            w.add_tensor(p + "ffn_down_exps.weight", np.stack([mat(E, FX, 1 / np.sqrt(FX)) for _ in range(X)]))
        elif phi3:
            w.add_tensor(p + "ffn_up.weight", mat(2 * F, E, 1 / np.sqrt(E)))
            w.add_tensor(p + "ffn_down.weight", mat(E, F, 1 / np.sqrt(F)))
        else:
            w.add_tensor(p + "ffn_gate.weight", mat(F, E, 1 / np.sqrt(E)))
            w.add_tensor(p + "ffn_up.weight", mat(F, E, 1 / np.sqrt(E)))
            w.add_tensor(p + "ffn_down.weight", mat(E, F, 1 / np.sqrt(F)))
        if arch in ("gemma2", "gemma3"):
            w.add_tensor(p + "post_attention_norm.weight", norm(E))
            w.add_tensor(p + "post_ffw_norm.weight", norm(E))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

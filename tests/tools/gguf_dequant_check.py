#!/usr/bin/env python3
"""Independent dequantization check with gguf-py (PyPI `gguf`).

usage: gguf_dequant_check.py QUANTIZED.gguf REFERENCE_F32.gguf
REFERENCE_F32 holds, for every tensor of QUANTIZED, quantmix's own dequantization as F32. gguf-py's
numpy dequantizer must agree with it on every tensor (max |diff| <= 1e-6 * max |value|).
Exit 0 when all agree."""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> int:
    q, ref = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    refs = {t.name: t for t in ref.tensors}
    bad = 0
    types = set()
    for t in q.tensors:
        types.add(t.tensor_type.name)
        ours = np.asarray(refs[t.name].data, dtype=np.float32).reshape(-1)
        theirs = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(-1)
        scale = max(float(np.abs(theirs).max()), 1e-30)
        diff = float(np.abs(ours - theirs).max())
        if ours.shape != theirs.shape or diff > 1e-6 * scale:
            print(f"{t.name} ({t.tensor_type.name}): max diff {diff} (scale {scale})", file=sys.stderr)
            bad += 1
    print(f"gguf-py dequantized {len(q.tensors)} tensors ({', '.join(sorted(types))}); {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Independent check with gguf-py (PyPI `gguf`): FILE must have the same metadata values and the same
tensor names, shapes, types and bytes as REFERENCE (any GGUF). Exit 0 when equal, 1 with a message."""
import sys

import numpy as np
from gguf import GGUFReader


def fields(r):
    out = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        v = f.contents()
        out[f.name] = v
    return out


def main() -> int:
    a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    fa, fb = fields(a), fields(b)
    if list(fa) != list(fb):
        print(f"metadata keys differ: {set(fa) ^ set(fb)}", file=sys.stderr)
        return 1
    for k in fa:
        if fa[k] != fb[k]:
            print(f"metadata {k} differs", file=sys.stderr)
            return 1
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    if list(ta) != list(tb):
        print("tensor lists differ", file=sys.stderr)
        return 1
    for n, t in ta.items():
        u = tb[n]
        if t.tensor_type != u.tensor_type or list(t.shape) != list(u.shape):
            print(f"tensor {n}: type/shape differ", file=sys.stderr)
            return 1
        if not np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(u.data).view(np.uint8)):
            print(f"tensor {n}: bytes differ", file=sys.stderr)
            return 1
    print(f"gguf-py: {len(fa)} metadata keys and {len(ta)} tensors equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())

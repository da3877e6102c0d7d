#!/usr/bin/env python3
"""Benchmark tooling: which candidate types are worth measuring (issue 15's default candidate set).

For each tensor of one or more `quantmix sensitivity --exhaustive` files, a candidate is on the
tensor's size/ΔKLD front when no other candidate of that tensor is at most as large and strictly
less damaging, and on its convex front when it is a vertex of the lower convex hull of (bytes,
ΔKLD) up to the least damaging candidate (what an allocator minimising ΔKLD + λ·bytes can pick for
some λ). Prints, per type, the share of the tensors measured with it that have it on each front.

usage: front_types.py SENSITIVITY.json [...]
"""
import json
import sys
from collections import Counter


def main() -> int:
    measured, front, hull = Counter(), Counter(), Counter()
    for path in sys.argv[1:]:
        t = json.load(open(path))
        for x in t["tensors"]:
            cands = [(c["bytes"], c["kld"], c["type"]) for c in x["candidates"] if not c.get("predicted")]
            # one entry per type (a fallback can map two candidates to one type)
            seen = {}
            for b, k, ty in cands:
                if ty not in seen or (b, k) < seen[ty]:
                    seen[ty] = (b, k)
            for ty, (b, k) in seen.items():
                measured[ty] += 1
                dominated = any(b2 <= b and k2 < k for ty2, (b2, k2) in seen.items() if ty2 != ty)
                if not dominated:
                    front[ty] += 1
            # the lower convex hull of (bytes, kld): what a Lagrangian allocator (minimise
            # kld + λ·bytes for some λ ≥ 0) can pick for this tensor
            pts = sorted((b, k, ty) for ty, (b, k) in seen.items())
            h = []
            for p in pts:
                if h and p[0] == h[-1][0]:
                    if p[1] >= h[-1][1]:
                        continue
                    h.pop()
                while len(h) >= 2 and (h[-1][0] - h[-2][0]) * (p[1] - h[-2][1]) - (h[-1][1] - h[-2][1]) * (p[0] - h[-2][0]) <= 0:
                    h.pop()
                h.append(p)
            # keep the decreasing part (past the minimum, more bytes never helps)
            kmin = min(range(len(h)), key=lambda i: h[i][1])
            for b, k, ty in h[: kmin + 1]:
                hull[ty] += 1
    print(f"| type | tensors | on the front | on the convex front |")
    print("|---|---|---|---|")
    for ty in sorted(measured, key=lambda t: (-hull[t] / measured[t], -front[t] / measured[t])):
        print(f"| {ty} | {measured[ty]} | {front[ty] / measured[ty]:.0%} | {hull[ty] / measured[ty]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

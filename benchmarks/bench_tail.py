#!/usr/bin/env python
"""The error tail of near-exact (and fast) LocScale against exact mode, voxel by voxel.

CC to exact hides the worst voxels. This prints, for each case, the distribution of |mode − exact| at the masked
voxels in units of the in-mask RMS of exact mode: median, 99th and 99.9th percentile, maximum and the fraction
above 5 %, with the run's wall time.

    nice python benchmarks/bench_tail.py                          # EMD-3488 at w = 21 and 24, 256³, 400³
    nice python benchmarks/bench_tail.py --cases bundled --strides 4,3,2 --windows 21

Exact mode over every masked voxel is run for EMD-3488; for the 256³ and 400³ cases (1 M and 4 M voxels; exact
would take 2 and > 20 min) exact values come from exact mode on a seeded random sample of masked voxels
(``--sample``, default 20 000) whose windows lie inside the box: exact mode at a voxel reads only its own
window, so these are the values a full exact run gives there, and the percentiles are those of the sample
(p99.9 of 20 000 voxels rests on its 20 largest errors). Cases and inputs are benchmarks/_common.py's;
outputs under benchmarks/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["case", "window", "mode", "stride", "voxels_compared", "p50_pct", "p99_pct", "p99_9_pct", "max_pct",
           "above_5pct", "cc_vs_exact", "seconds"]


def sample_mask(mask: np.ndarray, n: int | None, w: int, seed: int = 0) -> np.ndarray:
    """`mask` itself (n None) or n of its voxels drawn at random (seeded) among those whose window lies inside
    the box (the padding level, the mean outside the mask, depends on the mask; these windows never read it)."""
    if n is None:
        return mask
    c = w // 2
    inside = np.zeros(mask.shape, dtype=bool)
    inside[tuple(slice(c, s - (w - 1 - c)) for s in mask.shape)] = True
    idx = np.flatnonzero(mask & inside)
    if n >= len(idx):
        return mask & inside
    pick = np.random.default_rng(seed).choice(idx, size=n, replace=False)
    out = np.zeros(mask.shape, dtype=bool)
    out.flat[pick] = True
    return out


def tail(values: np.ndarray, exact: np.ndarray, rms: float) -> dict:
    e = np.abs(values.astype(np.float64) - exact.astype(np.float64)) / rms
    return {"p50_pct": 100 * np.percentile(e, 50), "p99_pct": 100 * np.percentile(e, 99),
            "p99_9_pct": 100 * np.percentile(e, 99.9), "max_pct": 100 * e.max(),
            "above_5pct": f"{100 * np.mean(e > 0.05):.2f} %",
            "cc_vs_exact": float(np.corrcoef(values, exact)[0, 1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="bundled,256,400", help="comma-separated: bundled, 160, 256, 400")
    ap.add_argument("--windows", default=None, help="bundled only: comma-separated windows (default 21,24)")
    ap.add_argument("--modes", default="near-exact,fast")
    ap.add_argument("--strides", default=None, help="comma-separated strides (default: each mode's default)")
    ap.add_argument("--sample", type=int, default=20000, help="exact voxels per large case (bundled: all)")
    args = ap.parse_args(argv)
    from locscale.scaling import local_scale
    from locscale.scaling.near_exact import default_stride

    print(f"# {C.machine_note()}")
    rows = []
    for name in args.cases.split(","):
        case = C.CASES[name]()
        emap, model, mask = case.load()
        windows = [int(w) for w in (args.windows or "21,24").split(",")] if name == "bundled" else [case.window]
        for w in windows:
            sample = sample_mask(mask, None if name == "bundled" else args.sample, w)
            t0 = time.perf_counter()
            exact = local_scale(emap, model, w, mask=sample, mode="exact", progress=False)[sample]
            t_exact = time.perf_counter() - t0
            rms = float(np.sqrt(np.mean(exact.astype(np.float64) ** 2)))
            rows.append({"case": case.name, "window": w, "mode": "exact", "voxels_compared": int(sample.sum()),
                         "seconds": round(t_exact, 2)})
            for mode in args.modes.split(","):
                strides = [None] if args.strides is None else [int(s) for s in args.strides.split(",")]
                for stride in strides:
                    t0 = time.perf_counter()
                    out = local_scale(emap, model, w, mask=mask, mode=mode, stride=stride, progress=False)
                    sec = time.perf_counter() - t0
                    rows.append({"case": case.name, "window": w, "mode": mode,
                                 "stride": stride or default_stride(w, mode), "voxels_compared": int(sample.sum()),
                                 "seconds": round(sec, 2), **tail(out[sample], exact, rms)})
                    print(C.table(rows[-1:], COLUMNS), flush=True)
    print()
    print(C.table(rows, COLUMNS))
    path = C.write_tsv("tail.tsv", rows, COLUMNS)
    print(f"# wrote {path}; errors in % of exact mode's in-mask RMS; seconds = the scaling call (exact: on the "
          "compared voxels only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Where near-exact's error tail comes from, and what does not remove it (EMD-3488; docs/benchmarks.md).

Near-exact computes shell 0 and every shell contribution C_s exactly at every voxel and interpolates the other
shells' scale factors k_s from exact values on a node grid of stride t, so its error at a voxel is
Σ_s (k̃_s − k_s)·C_s. This script computes exact mode's factors at every masked voxel and on the full node
lattice of stride t (with one ring of nodes beyond the mask's bounding box, for cubic stencils) and prints the
error tail, as bench_tail.py does (in % of exact mode's in-mask RMS), of:

* the factors interpolated trilinearly (near-exact itself), by tricubic Catmull-Rom, by cubic B-spline, and
  trilinearly in log k;
* trilinear with the factors of shell 1, shells 1–2 or 1–3 exact at every voxel (what an exact per-voxel term
  for the lowest shells would buy);
* exact mode with every voxel's factors taken from the window one voxel away along x, y or z, or (1, 1, 1):
  how much exact's own factors change from one voxel to the next;
* exact evaluation of the 1 / 2 / 5 % of voxels an error indicator ranks worst (the spread of the factors over
  the voxel's cell corners times |C_s|), beside the same share of the truly worst voxels.

    nice python benchmarks/bench_tail_sources.py                    # w = 21, t = 4 (~1 min)
    nice python benchmarks/bench_tail_sources.py --windows 21,24 --strides 4,3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from bench_tail import shell_terms, voxel_factors  # noqa: E402

COLUMNS = ["case", "window", "stride", "variant", "p50_pct", "p99_pct", "p99_9_pct", "max_pct", "above_5pct"]


def catmull_rom(grid: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Tricubic Catmull-Rom interpolation of `grid` at continuous indices `pos` (3, n), 1 ≤ pos ≤ shape − 3."""
    i0 = np.floor(pos).astype(int)
    f = pos - i0

    def weights(x):
        return np.stack([((-0.5 * x + 1.0) * x - 0.5) * x, (1.5 * x - 2.5) * x * x + 1.0,
                         ((-1.5 * x + 2.0) * x + 0.5) * x, (0.5 * x - 0.5) * x * x])

    wx, wy, wz = weights(f[0]), weights(f[1]), weights(f[2])
    out = np.zeros(pos.shape[1])
    for a in range(4):
        for b in range(4):
            for c in range(4):
                out += wx[a] * wy[b] * wz[c] * grid[i0[0] + a - 1, i0[1] + b - 1, i0[2] + c - 1]
    return out


def tail(values: np.ndarray, exact: np.ndarray, rms: float) -> dict:
    e = np.abs(values - exact) / rms
    return {"p50_pct": round(100 * np.percentile(e, 50), 2), "p99_pct": round(100 * np.percentile(e, 99), 2),
            "p99_9_pct": round(100 * np.percentile(e, 99.9), 2), "max_pct": round(100 * e.max(), 2),
            "above_5pct": f"{100 * np.mean(e > 0.05):.2f} %"}


def main(argv=None) -> int:
    import scipy.ndimage as ndi

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", default="21")
    ap.add_argument("--strides", default="4")
    args = ap.parse_args(argv)
    print(f"# {C.machine_note()}")
    case = C.CASES["bundled"]()
    emap, model, mask = case.load()
    emap, model = emap.astype(np.float32), model.astype(np.float32)
    vox = np.argwhere(mask)
    lo = vox.min(axis=0)
    q = vox - lo
    rows = []
    for w in (int(x) for x in args.windows.split(",")):
        dc, terms = shell_terms(emap, model, w, mask)
        kx = voxel_factors(emap, model, w, mask, vox)[1:]          # s ≥ 1, every voxel's own
        exact = dc + np.einsum("sn,sn->n", kx, terms)
        rms = float(np.sqrt(np.mean(exact ** 2)))

        def row(stride, variant, k, exact=exact, dc=dc, terms=terms, rms=rms, w=w):
            rows.append({"case": case.name, "window": w, "stride": stride, "variant": variant,
                         **tail(dc + np.einsum("sn,sn->n", k, terms), exact, rms)})
            print(C.table(rows[-1:], COLUMNS), flush=True)

        for shift in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)):
            row("–", f"exact, factors of the window {shift} away",
                voxel_factors(emap, model, w, mask, vox + np.array(shift))[1:])
        for t in (int(x) for x in args.strides.split(",")):
            shape = (q.max(axis=0) // t) + 4                           # nodes j = −1 … (ext−1)//t + 2
            j = np.stack(np.meshgrid(*[np.arange(n) - 1 for n in shape], indexing="ij"), -1).reshape(-1, 3)
            grid = voxel_factors(emap, model, w, mask, lo + j * t)[1:].reshape(-1, *shape)
            pos = (q / t + 1).T

            def interp(g, order, prefilter=False, pos=pos):
                return np.stack([ndi.map_coordinates(x, pos, order=order, mode="nearest", prefilter=prefilter)
                                 for x in g])

            k1 = interp(grid, 1)
            row(t, "trilinear k (near-exact)", k1)
            row(t, "tricubic Catmull-Rom k", np.stack([catmull_rom(x, pos) for x in grid]))
            row(t, "cubic B-spline k", interp(grid, 3, True))
            row(t, "trilinear log k", np.exp(interp(np.log(np.maximum(grid, 1e-12)), 1)))
            for n_exact in (1, 2, 3):
                k = k1.copy()
                k[:n_exact] = kx[:n_exact]
                row(t, "trilinear, shell 1 exact at every voxel" if n_exact == 1
                    else f"trilinear, shells 1–{n_exact} exact at every voxel", k)
            # error indicator: spread of each shell's factor over the cell's 8 corners, times |C_s|
            cell = (q // t + 1).T
            corners = np.stack([grid[:, cell[0] + a, cell[1] + b, cell[2] + c]
                                for a in (0, 1) for b in (0, 1) for c in (0, 1)])
            indicator = ((corners.max(axis=0) - corners.min(axis=0)) * np.abs(terms)).sum(axis=0)
            err = np.abs(dc + np.einsum("sn,sn->n", k1, terms) - exact)
            for share in (0.01, 0.02, 0.05):
                m = int(share * len(err))
                for label, rank in (("indicator", indicator), ("truly worst", err)):
                    k = k1.copy()
                    worst = np.argsort(rank)[::-1][:m]
                    k[:, worst] = kx[:, worst]
                    row(t, f"trilinear, exact at the {100 * share:g} % {label}", k)
    print()
    print(C.table(rows, COLUMNS))
    path = C.write_tsv("tail_sources.tsv", rows, COLUMNS)
    print(f"# wrote {path}; errors in % of exact mode's in-mask RMS over all masked voxels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

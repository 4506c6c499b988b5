#!/usr/bin/env python
"""The error tail of near-exact (and fast) LocScale against exact mode, voxel by voxel.

CC to exact hides the worst voxels. This prints, for each case, the distribution of |mode − exact| at the masked
voxels in units of the in-mask RMS of exact mode: median, 99th and 99.9th percentile, maximum and the fraction
above 5 %, with the run's wall time.

Two reference rows (``--references``, EMD-3488 only) put the tail in scale: the same errors for exact mode
itself with its scale factors taken from the window one voxel further along x (exact's own sensitivity to where
a window sits: the factor fields change from one voxel to the next by about what near-exact's interpolation
misses), and, at even w, exact mode with the other centre convention (the window x−w/2+1 … x+w/2 instead of
x−w/2 … x+w/2−1; computed as exact mode on the map reversed along every axis).

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


def voxel_factors(emap, model, w: int, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Exact mode's scale factors (S, n) of the windows around the voxels `points` (n, 3; anywhere up to 2w
    outside the box: the maps are padded with their solvent level, as exact mode pads them)."""
    from locscale.padding import solvent_level
    from locscale.scaling.backends import get_backend
    from locscale.scaling.schemes import power_floor, shell_factors

    fill_m, fill_r = solvent_level(emap, mask), solvent_level(model, mask)
    pad = 3 * w
    pm = np.pad(emap.astype(np.float32), pad, constant_values=fill_m)
    pr = np.pad(model.astype(np.float32), pad, constant_values=fill_r)
    p_map, p_model = get_backend(None).shell_powers(pm, pr, np.asarray(points) - w // 2 + pad, w, False)
    return shell_factors(p_model, p_map, "power", power_floor(emap, w)).T


def shell_terms(emap, model, w: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At the masked voxels (C order): shell 0's exact term k_0·C_0 (n,) and the other shells' contributions
    C_s (S−1, n), so that exact mode's output is dc + Σ_s k_s·C_s with every voxel's own factors k_s (s ≥ 1).
    Near-exact's pieces at stride 1."""
    from locscale import shells
    from locscale.padding import pad_for_window, solvent_level
    from locscale.scaling.backends import get_backend
    from locscale.scaling.grid import box_crop, node_plan
    from locscale.scaling.near_exact import dc_term, shell_kernels
    from locscale.scaling.schemes import power_floor

    backend = get_backend(None)
    plan = node_plan(mask, 1)
    crop = box_crop(pad_for_window(emap, w, value=solvent_level(emap, mask)), plan, w)
    crop_r = box_crop(pad_for_window(model, w, value=solvent_level(model, mask)), plan, w)
    sel, ext, c = plan.mask_local, plan.ext, shells.centre_index(w)
    c0, c0_model = backend.box_means(crop, w, ext, sel), backend.box_means(crop_r, w, ext, sel)
    conv = backend.shell_convolver(crop, ext, sel)
    kern = shell_kernels(w)
    terms = np.empty((kern.shape[0] - 1, int(sel.sum())))
    rest = crop[c:, c:, c:][:ext[0], :ext[1], :ext[2]][sel] - c0.astype(np.float64)
    for s in range(1, kern.shape[0] - 1):
        terms[s - 1] = conv(kern[s])
        rest -= terms[s - 1]
    terms[-1] = rest
    return dc_term(c0, c0_model, power_floor(emap, w), w).astype(np.float64), terms


def shifted_factor_values(emap, model, w: int, mask: np.ndarray, shift=(1, 0, 0)) -> np.ndarray:
    """Exact mode's output at the masked voxels with every voxel's scale factors (s ≥ 1) taken from the window
    of the voxel `shift` away; the shell contributions C_s and shell 0 from its own window."""
    dc, terms = shell_terms(emap, model, w, mask)
    k = voxel_factors(emap, model, w, mask, np.argwhere(mask) + np.asarray(shift))
    return dc + np.einsum("sn,sn->n", k[1:], terms)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="bundled,256,400", help="comma-separated: bundled, 160, 256, 400")
    ap.add_argument("--windows", default=None, help="bundled only: comma-separated windows (default 21,24)")
    ap.add_argument("--modes", default="near-exact,fast")
    ap.add_argument("--strides", default=None, help="comma-separated strides (default: each mode's default)")
    ap.add_argument("--sample", type=int, default=20000, help="exact voxels per large case (bundled: all)")
    ap.add_argument("--references", action="store_true",
                    help="EMD-3488: add exact mode's own sensitivity rows (module docstring)")
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
            if args.references and name == "bundled":
                refs = [("exact, factors 1 voxel away", shifted_factor_values(emap, model, w, mask))]
                if w % 2 == 0:
                    flip = (slice(None, None, -1),) * 3
                    other = local_scale(emap[flip], model[flip], w, mask=mask[flip], mode="exact",
                                        progress=False)[flip]
                    refs.append(("exact, other centre", other[mask]))
                for label, values in refs:
                    rows.append({"case": case.name, "window": w, "mode": label, "voxels_compared": int(mask.sum()),
                                 **tail(values, exact, rms)})
                    print(C.table(rows[-1:], COLUMNS), flush=True)
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

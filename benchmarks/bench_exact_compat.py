#!/usr/bin/env python
"""Exact and LocScale-2 compatibility mode on the bundled map, against LocScale 2.4.1.

    nice python benchmarks/bench_exact_compat.py        # ~3 min with LocScale 2, ~1 min without

EMD-3488 (100³, 1.05 Å), LocScale 2's model map and FDR mask (../shared/data; else our model map and a 3 Å
envelope), window 24. Prints for each run: process wall time, time of the scaling call, voxels/s, peak memory;
µs/voxel of exact mode against the FFT-only floor (the two window transforms per voxel with exact mode's FFT
call, nothing else) measured in the same run; LocScale 2.4.1 on the same inputs (`-mm -ma -wn 24`) and as
documented (`-mc 5me2.pdb -res 3.2 --skip_refine`): the speed ratio and the in-mask CC between its output and
our compat mode (target ≥ 0.999) and exact mode. Writes benchmarks/out/exact_compat.tsv.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["run", "wall_s", "compute_s", "peak_MB", "voxels_per_s", "us_per_voxel", "x_fft_floor",
           "cc_vs_locscale2", "cc_vs_exact", "locscale2_wall_over_ours"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-locscale2", action="store_true")
    args = ap.parse_args(argv)
    case = C.case_bundled()
    emap, model, mask = case.load()
    n = int(mask.sum())
    print(f"# {case.name}: {case.note}; window {case.window}, {n:,} masked voxels")
    print(f"# {C.machine_note()}")
    runs = [C.run_mode(case, "fft-floor"), C.run_mode(case, "exact"), C.run_mode(case, "compat")]
    for r in runs:
        if not r.ok:
            print(f"# {r.label}: {r.message}")
    floor = runs[0].compute_s if runs[0].ok else math.nan
    ls2 = []
    if not args.no_locscale2:
        ls2 = [C.run_locscale2(case), C.run_locscale2(case, end_to_end=True)]
        for r in ls2:
            if not r.ok:
                print(f"# {r.label}: {r.message}")
    ref_ls2 = C.load_output(ls2[0]) if ls2 and ls2[0].ok else None
    exact_out = C.load_output(runs[1]) if runs[1].ok else None
    rows = []
    for r in runs + ls2:
        if not r.ok:
            continue
        out = C.load_output(r)
        t = r.compute_s if r.compute_s is not None else r.wall_s
        row = {"run": r.label if r.label != "fft-floor" else "FFT floor (2 window rfftn per voxel)",
               "wall_s": round(r.wall_s, 2), "compute_s": None if r.compute_s is None else round(r.compute_s, 3),
               "peak_MB": round(r.peak_mb), "voxels_per_s": round(n / t), "us_per_voxel": round(1e6 * t / n, 1),
               "x_fft_floor": round(t / floor, 2) if r.compute_s is not None else None,
               "cc_vs_locscale2": None if out is None or ref_ls2 is None else round(C.cc(out, ref_ls2, mask), 6),
               "cc_vs_exact": None if out is None or exact_out is None else round(C.cc(out, exact_out, mask), 6)}
        if ls2 and ls2[0].ok and r.label in ("exact", "compat"):
            row["locscale2_wall_over_ours"] = round(ls2[0].wall_s / r.wall_s, 2)
        rows.append(row)
    print(C.table(rows, COLUMNS))
    print(f"# wrote {C.write_tsv('exact_compat.tsv', rows, COLUMNS)}")
    print("# locscale2_wall_over_ours: LocScale 2 (same inputs) process wall time / ours, both whole processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

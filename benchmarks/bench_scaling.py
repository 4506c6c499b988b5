#!/usr/bin/env python
"""How the time of each mode grows with the number of masked voxels and with the window.

    nice python benchmarks/bench_scaling.py                 # both sweeps on the bundled map, ~3 min
    nice python benchmarks/bench_scaling.py --sweep voxels  # masks of growing radius around 5me2
    nice python benchmarks/bench_scaling.py --sweep window  # LocScale 2's mask, w = 12 … 40

Masked-voxel sweep: EMD-3488 with 5me2 envelope masks of growing radius (and no mask: all 10⁶ voxels), window
24. Window sweep: EMD-3488 with the bundled case's mask. Every run is its own process (time of the scaling call,
peak memory); CC = in-mask correlation with exact mode at the same settings. Exact mode is skipped above
--exact-max-voxels (its time is linear in the voxel count: the table shows the trend). Writes
benchmarks/out/scaling_voxels.tsv and scaling_window.tsv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["sweep", "window", "masked_voxels", "mode", "stride", "compute_s", "wall_s", "peak_MB",
           "us_per_voxel", "cc_vs_exact"]


def _run_set(case, modes, window, sweep, exact_max, rows):
    import numpy as np

    from locscale.scaling.near_exact import default_stride

    mask = case.load()[2]
    n = int(mask.sum())
    exact_out = None
    for mode in modes:
        if mode == "exact" and n > exact_max:
            print(f"# exact skipped at {n:,} voxels (> --exact-max-voxels)")
            continue
        r = C.run_mode(case, mode, window)
        if not r.ok:
            print(f"# {mode} w={window} n={n}: {r.message}")
            continue
        out = C.load_output(r)
        if mode == "exact":
            exact_out = out
        rows.append({"sweep": sweep, "window": window, "masked_voxels": n, "mode": mode,
                     "stride": default_stride(window, mode) if mode in ("near-exact", "fast") else None,
                     "compute_s": round(r.compute_s, 3), "wall_s": round(r.wall_s, 2), "peak_MB": round(r.peak_mb),
                     "us_per_voxel": round(1e6 * r.compute_s / n, 1),
                     "cc_vs_exact": None if exact_out is None else round(C.cc(out, exact_out, mask), 5)})
        print(C.table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
        del out
    np.asarray(0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", choices=["voxels", "window", "both"], default="both")
    ap.add_argument("--modes", default="exact,near-exact,fast")
    ap.add_argument("--radii", default="1,2,4,8,16", help="envelope radii (Å) of the masked-voxel sweep")
    ap.add_argument("--windows", default="12,16,20,24,32,40")
    ap.add_argument("--exact-max-voxels", type=int, default=1_100_000)
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    base = C.case_bundled()
    print(f"# {base.name}: {base.note}")
    print(f"# {C.machine_note()}")
    print(C.table([], COLUMNS))
    rows: list[dict] = []
    if args.sweep in ("voxels", "both"):
        import numpy as np

        from locscale.mapio import read_map
        from locscale.models import envelope_mask, read_model

        emap = read_map(C.EXAMPLE / "emd_3488.mrc")
        st = read_model(C.EXAMPLE / "5me2.pdb")
        for r in [float(x) for x in args.radii.split(",") if x]:
            case = C.with_mask(base, envelope_mask(st, emap, r), f"envelope_{r:g}A")
            _run_set(case, modes, 24, "voxels", args.exact_max_voxels, rows)
        case = C.with_mask(base, np.ones(emap.shape, dtype=bool), "all_voxels")
        _run_set(case, modes, 24, "voxels", args.exact_max_voxels, rows)
    if args.sweep in ("window", "both"):
        for w in [int(x) for x in args.windows.split(",") if x]:
            _run_set(base, modes, w, "window", args.exact_max_voxels, rows)
    print()
    print(C.table(rows, COLUMNS))
    for sweep in ("voxels", "window"):
        sel = [r for r in rows if r["sweep"] == sweep]
        if sel:
            print(f"# wrote {C.write_tsv(f'scaling_{sweep}.tsv', sel, COLUMNS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

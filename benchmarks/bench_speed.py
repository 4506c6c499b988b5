#!/usr/bin/env python
"""Speed, memory and agreement of every LocScale mode against LocScale 2.4.1 (docs/benchmarks.md).

    nice python benchmarks/bench_speed.py --case bundled            # ~2 min
    nice python benchmarks/bench_speed.py --case 160                # ~10 min (LocScale 2 alone ~8 min)
    nice python benchmarks/bench_speed.py --case 256 --no-locscale2 # 256³ phantom (LocScale 2 needs > 40 GB)

Each mode runs in its own process (wall time of the whole process, time of the scaling call, peak resident
memory). LocScale 2.4.1 is run on the same map, model map, mask and window (`-mm -ma -wn`), and with
`--end-to-end` also as documented (`-mc MODEL -res D --skip_refine`). Ratios = LocScale 2 process wall time /
our process wall time, and LocScale 2 peak memory / ours, measured in this run. CC = Pearson correlation inside
the mask against exact mode (reused from benchmarks/out/runs/ when an earlier run computed it: exact mode is
deterministic). Prints a markdown table; writes benchmarks/out/speed_<case>.tsv.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["case", "run", "stride", "window", "masked_voxels", "wall_s", "compute_s", "peak_MB", "voxels_per_s",
           "cc_vs_exact", "cc_vs_locscale2", "speedup_vs_locscale2", "memory_ratio_vs_locscale2"]


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(C.CASES), default="bundled")
    ap.add_argument("--modes", default="tapered,exact,compat,near-exact,fast,gpu",
                    help="comma-separated: tapered (the default mode), exact, compat, near-exact, fast, gpu "
                         "(gpu-exact and gpu-near-exact "
                         "when torch sees a CUDA GPU)")
    ap.add_argument("--no-locscale2", action="store_true", help="do not run LocScale 2.4.1")
    ap.add_argument("--end-to-end", action="store_true", help="also run LocScale 2's documented -mc call")
    ap.add_argument("--reuse-exact", action="store_true",
                    help="take exact mode's output (and time) from an earlier run instead of running it")
    args = ap.parse_args(argv)

    case = C.CASES[args.case]()
    emap, model, mask = case.load()
    n_vox = int(mask.sum())
    print(f"# {case.name}: {case.note}; {emap.shape[0]}³ at {case.apix:.4f} Å, window {case.window} voxels "
          f"({case.window * case.apix:.1f} Å), {n_vox:,} masked voxels")
    print(f"# {C.machine_note()}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    runs: list[tuple[C.Run, dict]] = []
    exact_cache = C.OUT / "runs" / f"{C.run_tag(case, 'exact')}.npy"

    for mode in modes:
        if mode == "gpu":
            if not gpu_available():
                print("# gpu: skipped (torch with a CUDA GPU not available in this Python)")
                continue
            for gm in ("gpu-exact", "gpu-near-exact"):
                runs.append((C.run_mode(case, gm, device="cuda"), {}))
            continue
        if mode == "exact" and args.reuse_exact and exact_cache.exists():
            print(f"# exact: reusing {exact_cache}")
            continue
        r = C.run_mode(case, mode)
        extra = {}
        if mode in ("near-exact", "fast"):
            from locscale.scaling.near_exact import default_stride

            extra["stride"] = default_stride(case.window, mode)
        runs.append((r, extra))
        if not r.ok:
            print(f"# {mode}: failed or unavailable: {r.message}")

    ls2: C.Run | None = None
    ls2_runs = []
    if not args.no_locscale2:
        ls2 = C.run_locscale2(case)
        ls2_runs.append(ls2)
        if args.end_to_end:
            ls2_runs.append(C.run_locscale2(case, end_to_end=True))
        for r in ls2_runs:
            if not r.ok:
                print(f"# {r.label}: {r.message}")

    exact_out = None
    for r, _ in runs:
        if r.label == "exact" and r.ok:
            exact_out = C.load_output(r)
    if exact_out is None and exact_cache.exists():
        import numpy as np

        exact_out = np.load(exact_cache)
    ls2_out = C.load_output(ls2) if ls2 is not None and ls2.ok else None

    rows = []
    for r, extra in runs + [(x, {}) for x in ls2_runs]:
        if not r.ok:
            continue
        out = C.load_output(r)
        row = {"case": case.name, "run": r.label, "stride": extra.get("stride"), "window": case.window,
               "masked_voxels": n_vox, "wall_s": round(r.wall_s, 2),
               "compute_s": None if r.compute_s is None else round(r.compute_s, 3),
               "peak_MB": round(r.peak_mb), "cc_vs_exact": C.cc(out, exact_out, mask),
               "cc_vs_locscale2": C.cc(out, ls2_out, mask)}
        t = r.compute_s if r.compute_s is not None else r.wall_s
        row["voxels_per_s"] = round(n_vox / t) if r.ok and t > 0 else None
        if ls2 is not None and ls2.ok and r.ok:
            row["speedup_vs_locscale2"] = round(ls2.wall_s / r.wall_s, 1)
            row["memory_ratio_vs_locscale2"] = round(ls2.peak_mb / r.peak_mb, 1)
        for k in ("cc_vs_exact", "cc_vs_locscale2"):
            if isinstance(row[k], float) and not math.isnan(row[k]):
                row[k] = round(row[k], 5)
        rows.append(row)
    print(C.table(rows, COLUMNS))
    path = C.write_tsv(f"speed_{case.npz.parent.name}.tsv", rows, COLUMNS)
    print(f"# wrote {path}")
    print("# speedup = LocScale 2 process wall time / ours (both whole processes: start-up, I/O, scaling); "
          "compute_s = our scaling call alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())

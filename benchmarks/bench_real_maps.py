"""The default refinement cycle on the real maps available here, from three starting B-factors each, and how much
of the B floor is the global target's (the README's "Real maps" tables).

    python benchmarks/bench_real_maps.py                         # 3 maps x 3 starts, then the floor vs target blur
    python benchmarks/bench_real_maps.py --maps emd2566 --starts deposited --target-blur 0,25,50,75

Maps: the EMD-2566 and EMD-5778 crops of tests/data/ and the bundled EMD-3488. Each run is the real workflow with
the default config (config/config.yaml's settings, the dataset swapped in; ``initial_b`` 20 or 120 for the uniform
starts), at most 6 cycles. For every map it prints the per-cycle table, the final model's B at the floor, and the
mean-B difference and per-atom correlation of the final models started from different B. ``--target-blur`` then
refines (the workflow's engine and B placement) against each map's cycle-0 global target blurred by each B
(a less sharpened target) and prints the fraction of atoms the target asks to put at or below the B floor.
Outputs go to benchmarks/out/real_maps/ (gitignored); a finished run folder is reused (delete it to recompute).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import yaml
from _common import EXAMPLE, OUT, REPO, machine_note, run_workflow

DATA = REPO / "tests" / "data"
MAPS = {
    "emd2566": {"map": DATA / "emd2566_crop.mrc", "model": DATA / "emd2566_crop_3j6b_chain9.pdb", "resolution": 3.2},
    "emd5778": {"map": DATA / "emd5778_crop.ccp4", "model": DATA / "emd5778_crop_model.pdb", "resolution": 3.4},
    "emd3488": {"map": EXAMPLE / "emd_3488.mrc", "model": EXAMPLE / "5me2.pdb", "resolution": 3.2},
}
STARTS = {"deposited": None, "b20": 20.0, "b120": 120.0}
COLUMNS = ["cycle", "cc_mask", "fsc_average", "b_mean", "b_min", "b_max", "b_below_floor_pct", "b_model_raise",
           "sharpness_b_vs_global", "engine_fsc_average_target", "flags", "convergence", "final"]


def run(name: str, start: str, cores: int) -> Path:
    workdir = OUT / "real_maps" / f"{name}_{start}"
    results = workdir / "results" / name
    if not list(results.glob("summary_upto_*.tsv")):
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        ds = {k: str(v) if isinstance(v, Path) else v for k, v in MAPS[name].items()}
        if STARTS[start] is not None:
            ds["initial_b"] = STARTS[start]
        cfg["datasets"] = {name: ds}
        run_workflow(workdir, cfg, cores, f"{name}/{start}")
    return results


def final_b(results: Path) -> np.ndarray:
    from locscale.models import b_factors

    return b_factors(gemmi.read_structure(str(results / "final" / "model.cif")))


def floor_vs_target(name: str, results: Path, blurs: list[float], cores: int) -> None:
    """Refine against the cycle-0 target blurred by each B: the fraction of atoms it asks to put at the floor."""
    from locscale.cycle.b_level import place_refined_b
    from locscale.cycle.defaults import with_schema_defaults
    from locscale.engines import make_engine
    from locscale.global_sharpen import apply_bfactor
    from locscale.mapio import read_map, write_map

    cfg = yaml.safe_load((results.parent.parent / "config.yaml").read_text())
    engine = make_engine(with_schema_defaults("refine", cfg.get("refine")))
    target = read_map(results / "cycle_00" / "target.mrc")
    work = OUT / "real_maps" / f"{name}_target_blur"
    work.mkdir(parents=True, exist_ok=True)
    for blur in blurs:
        path = work / f"target_blur{blur:g}.mrc"
        write_map(path, target.like(apply_bfactor(target.data, target.apix, blur)), label=f"target blurred by {blur}")
        res = engine.run(results / "cycle_00" / "model.cif", MAPS[name]["resolution"], work / f"refine_{blur:g}",
                         target_map=path, threads=cores)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, rec = place_refined_b(gemmi.read_structure(str(res.model)))
        print(f"{name}: target blurred by {blur:g} Å²: {rec['b_below_floor_pct']:.2f} % of the atoms at or below the "
              f"floor (lowest {rec['b_lowest_reference']:.1f} Å², raise {rec['b_model_raise']:.1f} Å², reference "
              f"mean B {rec['b_mean_reference']:.1f} Å²)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", default=",".join(MAPS), help=f"any of {', '.join(MAPS)}")
    ap.add_argument("--starts", default=",".join(STARTS), help=f"any of {', '.join(STARTS)}")
    ap.add_argument("--target-blur", default="", help="comma-separated B (Å²) to blur each map's global target by")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    print(f"# {machine_note()}")
    pd.set_option("display.width", 250)
    for name in args.maps.split(","):
        finals = {}
        for start in args.starts.split(","):
            results = run(name, start, args.cores)
            t = pd.read_csv(sorted(results.glob("summary_upto_*.tsv"))[-1], sep="\t")
            print(f"\n{name}, start {start}:\n" + t[[c for c in COLUMNS if c in t]].to_string(index=False))
            b = final_b(results)
            print(f"final/: mean B {b.mean():.2f} Å²; {np.count_nonzero(b <= 0.51)} of {b.size} atoms at the floor")
            finals[start] = b
        names = list(finals)
        for i, a in enumerate(names):
            for other in names[i + 1:]:
                print(f"{name}: {a} vs {other}: mean B {finals[a].mean() - finals[other].mean():+.2f} Å², "
                      f"correlation {np.corrcoef(finals[a], finals[other])[0, 1]:.4f}")
        if args.target_blur:
            floor_vs_target(name, run(name, names[0], args.cores),
                            [float(b) for b in args.target_blur.split(",")], args.cores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

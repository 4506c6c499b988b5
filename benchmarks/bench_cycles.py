"""Refinement cycles judged against a known truth: which map should the B-factors be refined against?

Builds realistic phantoms (docs/design.md "Phantoms with a known truth": the truth keeps the atoms' own B variation; the
data add a global B and half-map noise), runs the real Snakemake workflow on each of them and on the bundled EMD-3488
example once per design (``refine.b_target`` and ``refine.b_level``), forced to a fixed number of cycles, and prints per
cycle: CC to the truth of the LocScale map (phantoms), refined mean B, FSCaverage, sharpness against the global target,
the drift flags and the cycle the run hands out (results/<ds>/final/).

    python benchmarks/bench_cycles.py                       # phantoms A and B + EMD-3488, both designs, 4 cycles
    python benchmarks/bench_cycles.py --cases A --designs global --cycles 3
    python benchmarks/bench_cycles.py --cases gs,hb,trpv1,bgal,hb45 --designs global:fixed --cycles 3

The cases gs, hb, trpv1, bgal, hb45 are the realistic phantoms of benchmarks/bench_sharpening.py (truth B from the
deposited models); for them the table adds the CC to truth by region (rigid / middle / flexible thirds of the
truth B) and the last lines the input, the workflow's global target and the oracle global sharpening by region.

Phantom A: 5NI1 chains A+B (bundled), truth B = 20 + 120·(r/r_max)^1.5, global B 120, 3.5 Å, 80³ × 1.2 Å.
Phantom B: TRPV1 (3J5P chain A from ../shared/data, residues within 24 Å of its centre), truth B = 30 + 90·r/r_max,
global B 100, 3.8 Å, 72³ × 1.2 Å. Both start from initial_b 40 (uniform), as a user with an unrefined model would.
Outputs go to benchmarks/out/cycles/ (gitignored); each workflow run is its own folder and is reused when present
(delete it to recompute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from _common import run_workflow

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "cycles"
SHARED = Path(os.environ.get("LOCSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))

PHANTOMS = {
    "A": dict(model=REPO / "examples" / "emd3488" / "5ni1_updated.cif", chains="A,B", radius=None, box=80,
              apix=1.2, resolution=3.5, b_global=120, truth_b_gradient=(20, 140, 1.5), seed=11),
    "B": dict(model=SHARED / "models" / "pdb3j5p_refined_chainA.pdb", chains=None, radius=24, box=72, apix=1.2,
              resolution=3.8, b_global=100, truth_b_gradient=(30, 120, 1.0), seed=12),
}


def make_phantom_files(name: str) -> Path:
    p = PHANTOMS[name]
    outdir = OUT / f"phantom_{name}"
    if (outdir / "SIMULATED_phantom.json").exists():
        return outdir
    cmd = [sys.executable, "-m", "locscale.cli", "phantom", str(p["model"]), "-o", str(outdir), "--box",
           str(p["box"]), "--apix", str(p["apix"]), "-r", str(p["resolution"]), "--b-global", str(p["b_global"]),
           "--truth-b-gradient", *map(str, p["truth_b_gradient"]), "--seed", str(p["seed"])]
    if p["chains"]:
        cmd += ["--chains", p["chains"]]
    if p["radius"]:
        cmd += ["--radius", str(p["radius"])]
    subprocess.run(cmd, check=True)
    return outdir


def realistic_dir(case: str) -> Path | None:
    """The folder of one of bench_sharpening.py's phantoms (None for A, B and emd3488)."""
    import bench_sharpening

    return bench_sharpening.phantom_files(case) if case in bench_sharpening.PHANTOMS else None


def dataset(case: str) -> dict:
    d = realistic_dir(case)
    if d is not None:
        import bench_sharpening

        return {"half_maps": [str(d / "SIMULATED_half1.mrc"), str(d / "SIMULATED_half2.mrc")],
                "model": str(d / "SIMULATED_model.pdb"), "resolution": bench_sharpening.PHANTOMS[case].resolution,
                "initial_b": 40, "truth": str(d / "SIMULATED_truth.mrc"),
                "truth_model": str(d / "SIMULATED_model_true.pdb")}
    if case == "emd3488":
        ex = REPO / "examples" / "emd3488"
        return {"map": str(ex / "emd_3488.mrc"), "model": str(ex / "5me2.pdb"), "resolution": 3.2}
    d = make_phantom_files(case)
    return {"half_maps": [str(d / "SIMULATED_half1.mrc"), str(d / "SIMULATED_half2.mrc")],
            "model": str(d / "SIMULATED_model.pdb"), "resolution": PHANTOMS[case]["resolution"], "initial_b": 40,
            "truth": str(d / "SIMULATED_truth.mrc"), "truth_model": str(d / "SIMULATED_model_true.pdb")}


def run_case(case: str, design: str, cycles: int, cores: int, restrained: bool = True) -> pd.DataFrame:
    """Run `case` with `design` = B_TARGET[:B_LEVEL] (refine.b_target, refine.b_level; level default fixed);
    `restrained`: refine.restrained (the design table in docs/science.md was measured unrestrained: --unrestrained)."""
    b_target, _, b_level = design.partition(":")
    b_level = b_level or "fixed"
    design = f"{b_target}:{b_level}"
    # unrestrained runs keep the folder names of the measurement in docs/science.md (benchmarks/out/cycles is reused)
    workdir = OUT / f"{case}_{b_target}-{b_level}_{cycles}{'_restrained' if restrained else ''}"
    workdir.mkdir(parents=True, exist_ok=True)
    table = workdir / "results" / case / f"summary_upto_{cycles:02d}.tsv"
    if not table.exists():
        cfg = {"datasets": {case: dataset(case)}, "max_cycles": cycles, "min_cycles": cycles,
               "refine": {"b_target": b_target, "b_level": b_level, "restrained": restrained}}
        run_workflow(workdir, cfg, cores, f"{case}/{design}")
    t = pd.read_csv(table, sep="\t")
    t.insert(0, "design", design)
    t.insert(0, "case", case)
    sel = yaml.safe_load((workdir / "results" / case / "final" / "selection.json").read_text())
    t["final"] = t["cycle"] == sel["cycle"]
    return t


def phantom_baselines(case: str) -> dict:
    """CC / FSCaverage to the truth of the input (half-map mean) and of the best global B sharpening (B scanned
    against the truth: an oracle no real map has), in the true model's envelope -- the workflow's own scores."""
    from locscale import metrics
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model
    from locscale.phantoms.truth import global_b_scan
    from locscale.validation.map_metrics import truth_metrics

    d = make_phantom_files(case)
    res = PHANTOMS[case]["resolution"]
    full, truth = read_map(d / "SIMULATED_full.mrc"), read_map(d / "SIMULATED_truth.mrc")
    mask = envelope_mask(read_model(d / "SIMULATED_model_true.pdb"), full, metrics.envelope_radius(res))
    scan = global_b_scan(full, truth, res, mask)
    best = scan.loc[scan["cc_mask_truth"].idxmax()]
    return {"input_cc_truth": truth_metrics(full, truth, res, mask)["cc_truth"],
            "best_global_b": float(best["bfactor_applied"]), "best_global_cc_truth": float(best["cc_mask_truth"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="A,B,emd3488", help="phantoms A, B and/or emd3488")
    ap.add_argument("--designs", default="global:fixed,global:free,locscale:fixed,locscale:free,locscale_signal:free",
                    help="designs to compare, each refine.b_target[:refine.b_level] (level default: fixed)")
    ap.add_argument("--cycles", type=int, default=4, help="cycles per run (forced: min_cycles = max_cycles)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--unrestrained", action="store_true",
                    help="refine.restrained: false, as the design table in docs/science.md was measured (before "
                         "restrained refinement became the default)")
    args = ap.parse_args(argv)
    # locscale_signal needs half maps, which the bundled EMD-3488 example does not have
    tables = [run_case(c, d, args.cycles, args.cores, not args.unrestrained) for c in args.cases.split(",")
              for d in args.designs.split(",") if not (c == "emd3488" and d.startswith("locscale_signal"))]
    t = pd.concat(tables, ignore_index=True)
    cols = [c for c in ("case", "design", "cycle", "cc_truth", "cc_truth_rigid", "cc_truth_middle",
                        "cc_truth_flexible", "fsc_average_truth", "b_mean", "fsc_average", "cc_mask", "kurtosis",
                        "sharpness_b_vs_global", "fsc_work", "fsc_test", "flags", "final")
            if c in t.columns]
    OUT.mkdir(parents=True, exist_ok=True)
    t[cols].to_csv(OUT / "cycles.tsv", sep="\t", index=False, float_format="%.4f")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        print(t[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\ntable: {OUT / 'cycles.tsv'}")
    for case in dict.fromkeys(c for c in args.cases.split(",") if realistic_dir(c) is not None):
        import bench_sharpening

        from locscale.mapio import read_map

        P = bench_sharpening.Phantom(case)
        target = read_map(OUT / f"{case}_global-fixed_{args.cycles}_restrained" / "results" / case / "cycle_00" /
                          "target.mrc")
        b, oracle = bench_sharpening.oracle(P)
        for label, s in (("input", P.score(P.full)), ("global target", P.score(target)),
                         (f"oracle global (B {b:+.0f})", oracle)):
            print(f"phantom {case}: {label}: CC to truth " + " / ".join(f"{k} {v:.4f}" for k, v in s.items()))
    for case in dict.fromkeys(c for c in args.cases.split(",") if c in PHANTOMS):
        b = phantom_baselines(case)
        print(f"phantom {case}: input CC to truth {b['input_cc_truth']:.4f}; best global sharpening (B "
              f"{b['best_global_b']:+.0f} scanned against the truth) {b['best_global_cc_truth']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

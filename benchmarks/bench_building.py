"""Automated model completion (model_completion.mode: coot) judged against a known truth.

Phantom A of bench_cycles.py (5NI1 chains A+B, truth B = 20 + 120·(r/r_max)^1.5, global B 120, 3.5 Å, half maps,
80³ × 1.2 Å; not used by the tests), with 20 % of each chain's residues removed from the handed-out model: five at
each chain end and three gaps of six residues. The real Snakemake workflow runs three cycles with the builder after
cycles 1 and 2. Printed per completion: how many removed residues came back, how many with CA within 1 Å of the
truth, their CA RMSD, and the builder's record; per cycle: CC of the LocScale map to the truth in the removed
region (within 2.5 Å of the removed residues' true atoms) and in the whole envelope (the workflow's cc_truth).

    python benchmarks/bench_building.py [--cores 2] [--trials 2] [--min-fit 0.55]

The crop and workflow numbers in docs/model-completion.md were measured with ``--min-fit 0.35`` (the default then).

The paper's claim that LocScale maps make building easier, measured with the same builder and budget:

    python benchmarks/bench_building.py --compare [--seeds 0,10,20] [--write-docs]

builds the same handed-out model (20 % removed) into (a) the original map (the half maps' average), (b) global
sharpening, both the workflow's own (cycle 0: Guinier B, FSC-weighted) and the best B by truth (an oracle a user does
not have: ``locscale.phantoms.truth.global_b_scan``, highest CC to the truth in the envelope), and (c) the
LocScale map of each
cycle of the workflow run above, with the same ``complete_model`` call (same trials, seed, refinement cycles and
``min_fit``), once per builder seed (``--seeds``, default 0, 10, 20: coot's placement trials are random, and a few
residues change between seeds, as many as between neighbouring maps). Per map, the mean and range over the seeds of:
residues kept, how many of them have CA within 1 Å of the truth, their CA RMSD, the same for the placements before the
trim (what the map let the builder place, independent of the CC threshold), CC of the map to the truth in the removed
region (what the builder saw), and CC of the built model to the true model in that region (both simulated at one B, so
it measures where the atoms are, not their B).
``--write-docs`` puts the table into docs/model-completion.md between its ``building-comparison`` markers.

Outputs go to benchmarks/out/building/ (gitignored); the workflow run and each build are reused when present
(delete to recompute).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gemmi
import numpy as np
from _common import run_workflow, write_into_doc

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "building"
sys.path.insert(0, str(BENCH))

#: removed per chain: residues at each end, gap length, number of gaps
END, GAP, N_GAPS = 5, 6, 3


def removed_residues(truth: gemmi.Structure) -> dict[str, list[int]]:
    """{chain: residue numbers removed}: END at each end and N_GAPS gaps of GAP spread over the chain."""
    out = {}
    for ch in truth[0]:
        nums = [r.seqid.num for r in ch if r.het_flag == "A"]
        if len(nums) < 4 * END:
            continue
        inner = nums[END:-END]
        starts = [inner[int(len(inner) * (k + 1) / (N_GAPS + 1)) - GAP // 2] for k in range(N_GAPS)]
        gaps = [n for s in starts for n in range(s, s + GAP) if n in inner]
        out[ch.name] = sorted(set(nums[:END] + nums[-END:] + gaps))
    return out


def make_inputs(phantom: Path) -> tuple[Path, Path, dict]:
    truth = gemmi.read_structure(str(phantom / "SIMULATED_model_true.pdb"))
    model = gemmi.read_structure(str(phantom / "SIMULATED_model.pdb"))
    removed = removed_residues(truth)
    fasta = []
    for ch in truth[0]:
        residues = [r for r in ch if r.het_flag == "A"]
        nums = [r.seqid.num for r in residues]
        if nums != list(range(nums[0], nums[-1] + 1)):
            raise SystemExit(f"chain {ch.name} of the truth has internal gaps; this benchmark needs whole chains")
        fasta.append(f">{ch.name}\n{gemmi.one_letter_code([r.name for r in residues])}\n")
    for ch in model[0]:
        for i in reversed(range(len(ch))):
            if ch[i].seqid.num in removed.get(ch.name, []) and ch[i].het_flag == "A":
                del ch[i]
    OUT.mkdir(parents=True, exist_ok=True)
    model.setup_entities()
    model.make_mmcif_document().write_file(str(OUT / "model_removed.cif"))
    (OUT / "sequence.fasta").write_text("".join(fasta))
    return OUT / "model_removed.cif", OUT / "sequence.fasta", removed


def ca_positions(path) -> dict[tuple[str, int], np.ndarray]:
    st = gemmi.read_structure(str(path))
    return {(ch.name, r.seqid.num): np.array(r["CA"][0].pos.tolist()) for ch in st[0] for r in ch
            if r.find_atom("CA", "*")}


def run_cycles(args) -> tuple[Path, Path, Path, Path, dict]:
    """The phantom, its handed-out model and sequence, and the three-cycle workflow run (reused when present).
    Returns (phantom folder, workflow results folder, model, fasta, removed)."""
    from bench_cycles import PHANTOMS, make_phantom_files

    phantom = make_phantom_files("A")
    model, fasta, removed = make_inputs(phantom)
    n_removed = sum(len(v) for v in removed.values())
    n_total = sum(1 for ch in gemmi.read_structure(str(phantom / "SIMULATED_model_true.pdb"))[0] for r in ch
                  if r.het_flag == "A")
    print(f"removed {n_removed} of {n_total} residues ({100 * n_removed / n_total:.0f} %): "
          + "; ".join(f"{c}: {v}" for c, v in removed.items()), flush=True)
    workdir = OUT / (f"run_trials{args.trials}" + ("" if args.min_fit is None else f"_minfit{args.min_fit:g}"))
    workdir.mkdir(parents=True, exist_ok=True)
    table = workdir / "results" / "A" / "summary_upto_03.tsv"
    if not table.exists():
        cfg = {"datasets": {"A": {"half_maps": [str(phantom / "SIMULATED_half1.mrc"),
                                                str(phantom / "SIMULATED_half2.mrc")],
                                  "model": str(model), "resolution": PHANTOMS["A"]["resolution"], "initial_b": 40,
                                  "truth": str(phantom / "SIMULATED_truth.mrc"),
                                  "truth_model": str(phantom / "SIMULATED_model_true.pdb")}},
               "max_cycles": 3, "min_cycles": 3,
               "model_completion": {"mode": "coot", "after_cycles": [1, 2], "sequence": str(fasta),
                                    "coot": {"trials": args.trials,
                                             **({} if args.min_fit is None else {"min_fit": args.min_fit})}}}
        run_workflow(workdir, cfg, args.cores, "workflow")
    return phantom, workdir / "results" / "A", model, fasta, removed


def region_masks(phantom: Path, removed: dict, resolution: float):
    """(truth map, removed region: within 2.5 Å of the removed residues' true atoms, the true model's envelope)."""
    from locscale import metrics
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model

    truth_map = read_map(phantom / "SIMULATED_truth.mrc")
    st = read_model(phantom / "SIMULATED_model_true.pdb")
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if ch[i].seqid.num not in removed.get(ch.name, []):
                del ch[i]
    region = envelope_mask(st, truth_map, 2.5) > 0
    env = envelope_mask(read_model(phantom / "SIMULATED_model_true.pdb"), truth_map,
                        metrics.envelope_radius(resolution)) > 0
    return truth_map, region, env


def placement(positions: dict, truth_ca: dict, keys: list) -> dict:
    """Of the removed residues `keys`: how many `positions` has, how many within 1 Å of the truth, CA RMSD."""
    dist = [float(np.linalg.norm(positions[k] - truth_ca[k])) for k in keys if k in positions]
    return {"n": len(dist), "within_1A": int(sum(d <= 1.0 for d in dist)),
            "rmsd": float(np.sqrt(np.mean(np.square(dist)))) if dist else float("nan")}


def report_cycles(args) -> int:
    """The workflow's own completion over its cycles (the printout of the default mode)."""
    import pandas as pd
    from bench_cycles import PHANTOMS

    phantom, results, _, _, removed = run_cycles(args)
    n_removed = sum(len(v) for v in removed.values())
    truth_ca = ca_positions(phantom / "SIMULATED_model_true.pdb")
    keys = [(c, n) for c, v in removed.items() for n in v]
    for c in (1, 2):
        d = results / f"cycle_{c:02d}"
        p = placement(ca_positions(d / "built_model.cif"), truth_ca, keys)
        rec = json.loads((d / "completion_coot.json").read_text())
        print(f"completion after cycle {c}: {p['n']}/{n_removed} removed residues present, {p['within_1A']} with "
              f"CA within 1 Å of the truth, CA RMSD {p['rmsd']:.2f} Å; builder: built {rec['residues_built']}, "
              f"trimmed {rec['residues_trimmed']}, refused {len(rec['refused'])}, mean CC "
              f"{rec['built_fit_mean']:.3f}, {rec['seconds']['total']:.0f} s")
    from locscale.mapio import read_map

    truth_map, region, env = region_masks(phantom, removed, PHANTOMS["A"]["resolution"])
    summary = pd.read_csv(results / "summary_upto_03.tsv", sep="\t")
    for c in (1, 2, 3):
        m = read_map(results / f"cycle_{c:02d}" / "locscale.mrc")
        cc_region = float(np.corrcoef(m.data[region], truth_map.data[region])[0, 1])
        cc_env = float(np.corrcoef(m.data[env], truth_map.data[env])[0, 1])
        row = summary[summary.cycle == c].iloc[0]
        print(f"cycle {c}: CC to truth in the removed region {cc_region:.3f} ({int(region.sum())} voxels), "
              f"in the envelope {cc_env:.3f} (cycle table cc_truth {row.get('cc_truth', float('nan')):.3f}); "
              f"residues_built {row.get('residues_built')}")
    return 0


#: the one B both the built and the true model are simulated with for the model CC (Å²)
MODEL_CC_B = 40.0


def comparison_maps(phantom: Path, results: Path, resolution: float, truth_map, env) -> dict[str, Path]:
    """{label: map file} of the maps compared (written under OUT/compare/maps)."""
    from locscale.global_sharpen import global_sharpen
    from locscale.mapio import read_map, write_map
    from locscale.phantoms.truth import global_b_scan

    d = OUT / "compare" / "maps"
    d.mkdir(parents=True, exist_ok=True)
    original = d / "original.mrc"
    best = d / "global_best_by_truth.mrc"
    if not (original.exists() and best.exists()):
        h1, h2 = read_map(phantom / "SIMULATED_half1.mrc"), read_map(phantom / "SIMULATED_half2.mrc")
        full = h1.like(0.5 * (h1.data + h2.data))
        scan = global_b_scan(full, truth_map, resolution, env)
        b = float(scan.loc[scan["cc_mask_truth"].idxmax(), "bfactor_applied"])
        g, _ = global_sharpen(full, resolution, bfactor=b)
        write_map(original, full, label="half-map average")
        write_map(best, g, label=f"global sharpening B {b:g} (best CC to truth)")
        (d / "global_best_b.txt").write_text(f"{b:g}\n")
    b = float((d / "global_best_b.txt").read_text())
    g0 = json.loads((results / "cycle_00" / "global_sharpen.json").read_text())
    maps = {"(a) original (half-map average)": original,
            f"(b) global, workflow's (Guinier B {-g0['bfactor_applied']:.0f}, FSC-weighted)":
                results / "cycle_00" / "target.mrc",
            f"(b) global, best B by truth ({-b:.0f}; oracle)": best}
    for c in (1, 2, 3):
        maps[f"(c) LocScale, cycle {c}"] = results / f"cycle_{c:02d}" / "locscale.mrc"
    return maps


def model_cc(model_path: Path, truth_model: Path, truth_map, region, resolution: float) -> float:
    """CC in `region` of the two models' maps, both simulated with B = MODEL_CC_B on the truth's grid."""
    from locscale.models import read_model
    from locscale.simulate import simulate_model_map

    sims = []
    for path in (model_path, truth_model):
        st = read_model(path)
        for ch in st[0]:
            for r in ch:
                for a in r:
                    a.b_iso = MODEL_CC_B
        sims.append(simulate_model_map(st, truth_map, resolution).data)
    return float(np.corrcoef(sims[0][region], sims[1][region])[0, 1])


def compare(args) -> int:
    """Build the same handed-out model into each map with the same budget; print (and write) the table."""
    import pandas as pd
    from bench_cycles import PHANTOMS

    from locscale.building.completion import complete_model, write_outputs
    from locscale.mapio import read_map

    phantom, results, model, fasta, removed = run_cycles(args)
    res = PHANTOMS["A"]["resolution"]
    truth_map, region, env = region_masks(phantom, removed, res)
    truth_ca = ca_positions(phantom / "SIMULATED_model_true.pdb")
    keys = [(c, n) for c, v in removed.items() for n in v]
    n_removed = len(keys)
    kw = {"trials": args.trials, **({} if args.min_fit is None else {"min_fit": args.min_fit})}
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = []
    for k, (label, map_path) in enumerate(comparison_maps(phantom, results, res, truth_map, env).items()):
        m = read_map(map_path)
        map_cc = float(np.corrcoef(m.data[region], truth_map.data[region])[0, 1])
        for seed in seeds:
            wd = OUT / "compare" / f"build_{k}_seed{seed}"
            built = wd / "built_model.cif"
            if not (wd / "completion.json").exists():
                _, rec, table = complete_model(model, map_path, fasta, wd, res, output=built, seed=seed, **kw)
                write_outputs(rec, table, wd / "completion.json", wd / "completion.tsv")
            rec = json.loads((wd / "completion.json").read_text())
            table = pd.read_csv(wd / "completion.tsv", sep="\t")
            kept = placement(ca_positions(built), truth_ca, keys)
            placed = table[table.status.isin(["built", "trimmed"])]
            before = placement({(r.chain, int(r.resnum)): np.array([r.ca_x, r.ca_y, r.ca_z])
                                for r in placed.itertuples()}, truth_ca, keys)
            rows.append({"map": label, "seed": seed,
                         "kept": kept["n"], "kept_within_1A": kept["within_1A"], "kept_ca_rmsd": kept["rmsd"],
                         "placed": before["n"], "placed_within_1A": before["within_1A"],
                         "placed_ca_rmsd": before["rmsd"], "map_cc_truth_region": map_cc,
                         "model_cc_truth_region": model_cc(built, phantom / "SIMULATED_model_true.pdb", truth_map,
                                                           region, res),
                         "seconds": rec["seconds"]["total"]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "compare" / "comparison.tsv", sep="\t", index=False)
    params = kw | {"min_fit": kw.get("min_fit", "0.55 (default)"), "seeds": seeds}

    def cell(values, fmt="{:.0f}") -> str:
        values = list(values)
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(np.mean(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"

    lines = [f"| map ({n_removed} residues removed) | kept, CA within 1 Å | kept | kept CA RMSD (Å) | "
             "placed before the trim, CA within 1 Å | map CC to truth, removed region | "
             "built model CC to true model, removed region |", "|---|---|---|---|---|---|---|"]
    for label, g in df.groupby("map", sort=False):
        lines.append(f"| {label} | {cell(g.kept_within_1A)} | {cell(g.kept)} | {cell(g.kept_ca_rmsd, '{:.2f}')} | "
                     f"{cell(g.placed_within_1A)} | {g.map_cc_truth_region.iloc[0]:.3f} | "
                     f"{cell(g.model_cc_truth_region, '{:.3f}')} |")
    text = "\n".join(lines)
    print(f"\nsame builder and budget for every map: {params}; mean (min–max) over the seeds\n\n{text}")
    if args.write_docs:
        write_into_doc("model-completion.md", "building-comparison", text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--min-fit", type=float, default=None, help="model_completion.coot.min_fit (default: the "
                    "schema's)")
    ap.add_argument("--compare", action="store_true", help="the building comparison of the original, globally "
                    "sharpened and LocScale maps (module docstring)")
    ap.add_argument("--seeds", default="0,10,20", help="with --compare: builder seeds (model_completion.coot.seed; "
                    "trial t of a build uses seed + t, so seeds 10 apart share no trial), "
                    "one build per map and seed")
    ap.add_argument("--write-docs", action="store_true", help="with --compare: write the table into "
                    "docs/model-completion.md")
    args = ap.parse_args(argv)
    return compare(args) if args.compare else report_cycles(args)


if __name__ == "__main__":
    raise SystemExit(main())

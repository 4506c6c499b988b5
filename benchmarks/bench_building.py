"""Automated model completion (model_completion.mode: coot) judged against a known truth.

Phantom A of bench_cycles.py (5NI1 chains A+B, truth B = 20 + 120·(r/r_max)^1.5, global B 120, 3.5 Å, half maps,
80³ × 1.2 Å; not used by the tests), with 20 % of each chain's residues removed from the handed-out model: five at
each chain end and three gaps of six residues. The real Snakemake workflow runs three cycles with the builder after
cycles 1 and 2. Printed per completion: how many removed residues came back, how many with CA within 1 Å of the
truth, their CA RMSD, and the builder's record; per cycle: CC of the LocScale map to the truth in the removed
region (within 2.5 Å of the removed residues' true atoms) and in the whole envelope (the workflow's cc_truth).

    python benchmarks/bench_building.py [--cores 2] [--trials 2] [--min-fit 0.55]

The numbers in config/README.md ("Model completion") were measured with ``--min-fit 0.35`` (the default then).

Outputs go to benchmarks/out/building/ (gitignored); the workflow run is reused when present (delete to recompute).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gemmi
import numpy as np
from _common import run_workflow

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--min-fit", type=float, default=None, help="model_completion.coot.min_fit (default: the "
                    "schema's)")
    args = ap.parse_args(argv)
    from bench_cycles import PHANTOMS, make_phantom_files

    from locscale import metrics
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model

    phantom = make_phantom_files("A")
    model, fasta, removed = make_inputs(phantom)
    n_removed = sum(len(v) for v in removed.values())
    n_total = sum(1 for ch in gemmi.read_structure(str(phantom / "SIMULATED_model_true.pdb"))[0] for r in ch
                  if r.het_flag == "A")
    print(f"removed {n_removed} of {n_total} residues ({100 * n_removed / n_total:.0f} %): "
          + "; ".join(f"{c}: {v}" for c, v in removed.items()), flush=True)
    workdir = OUT / (f"run_trials{args.trials}" + ("" if args.min_fit is None else f"_minfit{args.min_fit:g}"))
    workdir.mkdir(parents=True, exist_ok=True)
    res = PHANTOMS["A"]["resolution"]
    table = workdir / "results" / "A" / "summary_upto_03.tsv"
    if not table.exists():
        cfg = {"datasets": {"A": {"half_maps": [str(phantom / "SIMULATED_half1.mrc"),
                                                str(phantom / "SIMULATED_half2.mrc")],
                                  "model": str(model), "resolution": res, "initial_b": 40,
                                  "truth": str(phantom / "SIMULATED_truth.mrc"),
                                  "truth_model": str(phantom / "SIMULATED_model_true.pdb")}},
               "max_cycles": 3, "min_cycles": 3,
               "model_completion": {"mode": "coot", "after_cycles": [1, 2], "sequence": str(fasta),
                                    "coot": {"trials": args.trials,
                                             **({} if args.min_fit is None else {"min_fit": args.min_fit})}}}
        run_workflow(workdir, cfg, args.cores, "workflow")

    truth_ca = ca_positions(phantom / "SIMULATED_model_true.pdb")
    keys = [(c, n) for c, v in removed.items() for n in v]
    results = workdir / "results" / "A"
    for c in (1, 2):
        d = results / f"cycle_{c:02d}"
        built = ca_positions(d / "built_model.cif")
        dist = {k: float(np.linalg.norm(built[k] - truth_ca[k])) for k in keys if k in built}
        rec = json.loads((d / "completion_coot.json").read_text())
        within = sum(v <= 1.0 for v in dist.values())
        rmsd = float(np.sqrt(np.mean([v ** 2 for v in dist.values()]))) if dist else float("nan")
        print(f"completion after cycle {c}: {len(dist)}/{n_removed} removed residues present, {within} with CA "
              f"within 1 Å of the truth, CA RMSD {rmsd:.2f} Å; builder: built {rec['residues_built']}, trimmed "
              f"{rec['residues_trimmed']}, refused {len(rec['refused'])}, mean CC {rec['built_fit_mean']:.3f}, "
              f"{rec['seconds']['total']:.0f} s")
    truth_map = read_map(phantom / "SIMULATED_truth.mrc")
    st = read_model(phantom / "SIMULATED_model_true.pdb")
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if ch[i].seqid.num not in removed.get(ch.name, []):
                del ch[i]
    region = envelope_mask(st, truth_map, 2.5)
    env_mask = envelope_mask(read_model(phantom / "SIMULATED_model_true.pdb"), truth_map,
                             metrics.envelope_radius(res))
    import pandas as pd

    summary = pd.read_csv(table, sep="\t")
    for c in (1, 2, 3):
        m = read_map(results / f"cycle_{c:02d}" / "locscale.mrc")
        cc_region = float(np.corrcoef(m.data[region > 0], truth_map.data[region > 0])[0, 1])
        cc_env = float(np.corrcoef(m.data[env_mask > 0], truth_map.data[env_mask > 0])[0, 1])
        row = summary[summary.cycle == c].iloc[0]
        print(f"cycle {c}: CC to truth in the removed region {cc_region:.3f} ({int((region > 0).sum())} voxels), "
              f"in the envelope {cc_env:.3f} (cycle table cc_truth {row.get('cc_truth', float('nan')):.3f}); "
              f"residues_built {row.get('residues_built')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

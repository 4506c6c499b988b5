"""The paper's TRPV1 story (Jakobi et al. 2017, Fig. 4B: the model extended into LocScale density over several
cycles), reproduced on a simulated TRPV1 with the automated builder (``model_completion.mode: coot``).

Truth: chain A of 3J5P, B-refined against EMD-5778 (../shared/data/models/pdb3j5p_refined_chainA.pdb), residues
380–719 (pre-S1 linker, S1–S6, TRP helix; 3J5P has no residues 503–507 and 604–626, and neither has the truth).
Its B-factors keep the refined model's variation (the flexibility the model describes), less a global
:data:`B_SHIFT` Å² that moves into the data's global falloff (B refined against an unsharpened map include part of
that falloff), with a floor of :data:`B_FLOOR`. The half maps add a global B of :data:`B_GLOBAL` Å² and noise for a
half-map FSC of 0.143 at 3.4 Å (the paper's resolution), 80³ voxels of 1.2 Å.

Handed out: only the transmembrane part, residues 434–719 (B = initial_b 40), with the sequence of 380–719 (the
3J5P SEQRES). The real Snakemake workflow runs four cycles with the builder after cycles 1, 2 and 3 (default
settings: 10 residues per chain end per completion, 2 trials, min_fit 0.55, min_q_score 0.5). Printed per
completion: residues
added, how many of the residues the truth has came back with CA within 1 Å of the truth and their CA RMSD, and
residues built where the truth has none (the unmodelled 503–507 loop: there is no density to build into); per
cycle: CC of the LocScale map to the truth in the region to complete (within 2.5 Å of the true atoms of 380–433)
and in the whole envelope; and what ``final/model.cif`` holds (the same counts, the kept residues' movement, the
geometry against the input model's).

    python benchmarks/bench_trpv1_completion.py [--cores 2] [--cycles 4] [--min-fit 0.55]

Needs ../shared/data (or $LOCSCALE_SHARED_DATA). Outputs go to benchmarks/out/trpv1_completion/ (gitignored); the
phantom and the workflow run are reused when present (delete to recompute).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
from _common import SHARED, run_workflow
from bench_building import ca_positions, placement

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "trpv1_completion"

TRUTH_RANGE = (380, 719)
HANDED_OUT_FROM = 434
B_SHIFT, B_FLOOR, B_GLOBAL = 30.0, 10.0, 80.0
RESOLUTION, BOX, APIX, SEED = 3.4, 80, 1.2, 13


def make_phantom() -> tuple[Path, Path, Path]:
    """(phantom folder, handed-out model, FASTA)."""
    phantom = OUT / "phantom"
    model_out, fasta = OUT / "model_tm.cif", OUT / "sequence.fasta"
    if (phantom / "SIMULATED_phantom.json").exists() and model_out.exists() and fasta.exists():
        return phantom, model_out, fasta
    OUT.mkdir(parents=True, exist_ok=True)
    src = SHARED / "models" / "pdb3j5p_refined_chainA.pdb"
    if not src.exists():
        raise SystemExit(f"{src} not found: this benchmark needs ../shared/data (or LOCSCALE_SHARED_DATA)")
    st = gemmi.read_structure(str(src))
    st.setup_entities()
    st.remove_ligands_and_waters()
    lo, hi = TRUTH_RANGE
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if not lo <= ch[i].seqid.num <= hi:
                del ch[i]
        for r in ch:
            for a in r:
                a.b_iso = max(a.b_iso - B_SHIFT, B_FLOOR)
    st.setup_entities()
    truth_in = OUT / "truth_input.pdb"
    st.write_pdb(str(truth_in))
    subprocess.run([sys.executable, "-m", "locscale.cli", "phantom", str(truth_in), "-o", str(phantom), "--box",
                    str(BOX), "--apix", str(APIX), "-r", str(RESOLUTION), "--b-global", str(B_GLOBAL), "--seed",
                    str(SEED)], check=True)
    # the sequence: 3J5P's SEQRES holds residues 111–603 (503–507 included) and 627–762, not the turret 604–626;
    # the FASTA has alanines there (a 23-residue gap, longer than max_gap_residues: refused, never built)
    seqres = gemmi.read_structure(str(SHARED / "models" / "pdb3j5p_centered.pdb"))
    seqres.setup_entities()
    full = next(e.full_sequence for e in seqres.entities if e.full_sequence)
    one = gemmi.one_letter_code([s.split(",")[0] for s in full])
    seq = one[lo - 111:603 - 111 + 1] + "A" * (626 - 603) + one[627 - 134:hi - 134 + 1]
    fasta.write_text(f">A TRPV1 residues {lo}-{hi} (3J5P SEQRES; 604-626 not in it: alanines)\n{seq}\n")
    handed = gemmi.read_structure(str(phantom / "SIMULATED_model_true.pdb"))
    for ch in handed[0]:
        for i in reversed(range(len(ch))):
            if ch[i].seqid.num < HANDED_OUT_FROM:
                del ch[i]
    handed.setup_entities()
    handed.make_mmcif_document().write_file(str(model_out))
    return phantom, model_out, fasta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--min-fit", type=float, default=None, help="model_completion.coot.min_fit (default: the "
                    "schema's)")
    args = ap.parse_args(argv)
    from locscale import metrics
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model

    phantom, model, fasta = make_phantom()
    truth_path = phantom / "SIMULATED_model_true.pdb"
    truth_ca = ca_positions(truth_path)
    missing = sorted(k for k in truth_ca if k[1] < HANDED_OUT_FROM)
    print(f"truth: 3J5P chain A {TRUTH_RANGE[0]}–{TRUTH_RANGE[1]}, {len(truth_ca)} residues; handed out "
          f"{len(truth_ca) - len(missing)} ({HANDED_OUT_FROM}–{TRUTH_RANGE[1]}); to complete: {len(missing)}",
          flush=True)
    n = args.cycles
    workdir = OUT / (f"run_{n}" + ("" if args.min_fit is None else f"_minfit{args.min_fit:g}"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results" / "trpv1"
    if not (results / f"summary_upto_{n:02d}.tsv").exists():
        cfg = {"datasets": {"trpv1": {"half_maps": [str(phantom / "SIMULATED_half1.mrc"),
                                                    str(phantom / "SIMULATED_half2.mrc")],
                                      "model": str(model), "resolution": RESOLUTION, "initial_b": 40,
                                      "truth": str(phantom / "SIMULATED_truth.mrc"), "truth_model": str(truth_path)}},
               "max_cycles": n, "min_cycles": n,
               "model_completion": {"mode": "coot", "after_cycles": list(range(1, n)), "sequence": str(fasta),
                                    **({} if args.min_fit is None else {"coot": {"min_fit": args.min_fit}})}}
        run_workflow(workdir, cfg, args.cores, "workflow")

    truth_map = read_map(phantom / "SIMULATED_truth.mrc")
    st = read_model(truth_path)
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if ch[i].seqid.num >= HANDED_OUT_FROM:
                del ch[i]
    region = envelope_mask(st, truth_map, 2.5) > 0
    env = envelope_mask(read_model(truth_path), truth_map, metrics.envelope_radius(RESOLUTION)) > 0
    summary = pd.read_csv(results / f"summary_upto_{n:02d}.tsv", sep="\t")
    lines = ["| cycle | residues added by the completion after it (kept / trimmed) | of the 54 to complete: present, "
             "CA within 1 Å, CA RMSD (Å) | built where the truth has none | LocScale map CC to truth: region to "
             "complete / envelope |", "|---|---|---|---|---|"]
    for c in range(1, n + 1):
        d = results / f"cycle_{c:02d}"
        m = read_map(d / "locscale.mrc")
        cc_region = float(np.corrcoef(m.data[region], truth_map.data[region])[0, 1])
        cc_env = float(np.corrcoef(m.data[env], truth_map.data[env])[0, 1])
        row = summary[summary.cycle == c].iloc[0]
        built_txt = acc_txt = extra_txt = "–"
        if (d / "completion_coot.json").exists():
            rec = json.loads((d / "completion_coot.json").read_text())
            ca = ca_positions(d / "built_model.cif")
            p = placement(ca, truth_ca, missing)
            extra = sorted(k for k in ca if k not in truth_ca)
            built_txt = f"{rec['residues_built']} / {rec['residues_trimmed']}"
            acc_txt = f"{p['n']}, {p['within_1A']}, {p['rmsd']:.2f}"
            extra_txt = str(len(extra))
            print(f"completion after cycle {c}: kept {rec['residues_built']}, trimmed {rec['residues_trimmed']}, "
                  f"mean CC {rec['built_fit_mean']:.3f}, {rec['seconds']['total']:.0f} s; of the {len(missing)} "
                  f"to complete: {p['n']} present, {p['within_1A']} within 1 Å, CA RMSD {p['rmsd']:.2f} Å; built "
                  f"where the truth has none: {extra}", flush=True)
        print(f"cycle {c}: LocScale CC to truth in the region to complete {cc_region:.3f}, envelope {cc_env:.3f} "
              f"(cycle table cc_truth {row.get('cc_truth', float('nan')):.3f})", flush=True)
        lines.append(f"| {c} | {built_txt} | {acc_txt} | {extra_txt} | {cc_region:.3f} / {cc_env:.3f} |")
    print("\n" + "\n".join(lines))
    # what the user takes home
    sel = json.loads((results / "final" / "selection.json").read_text())
    final = ca_positions(results / "final" / "model.cif")
    p = placement(final, truth_ca, missing)
    extra = sorted(k for k in final if k not in truth_ca)
    start = ca_positions(model)
    moved = np.array([np.linalg.norm(final[k] - start[k]) for k in start if k in final])
    geometry = {c: json.loads((results / f"cycle_{c:02d}" / "model_validation.json").read_text())
                for c in (0, int(sel["cycle"]))}
    print(f"\nfinal/ holds cycle {sel['cycle']} ({sel['reason']}); of the {len(missing)} to complete: {p['n']} "
          f"present, {p['within_1A']} within 1 Å, {p['off_2A']} more than 2 Å off; built where the truth has none: "
          f"{len(extra)}; kept residues' CA moved RMS {np.sqrt(np.mean(moved ** 2)):.2f} Å (max {moved.max():.2f}); "
          "Ramachandran outliers {:.2f} → {:.2f} %, overlaps per 1000 atoms {:.1f} → {:.1f}".format(
              *(geometry[c][k] for k in ("rama_outliers_pct",) for c in (0, int(sel["cycle"]))),
              *(geometry[c][k] for k in ("atom_overlaps_per_1000_atoms",) for c in (0, int(sel["cycle"])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

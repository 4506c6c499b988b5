"""Automated model completion (model_completion.mode: coot) judged against a known truth, on phantoms of several
proteins, scoring what a user takes home: ``results/<dataset>/final/``.

    python benchmarks/bench_building.py [--proteins bgal,ard,aph1,hba] [--repeat] [--cores 2] [--write-docs]

Each protein (:data:`PROTEINS`) is cropped to one compact domain or chain, and a realistic phantom is simulated
from it (``locscale phantom --truth-b-gradient``: the truth keeps a B gradient from the centre outwards, the data
add a global B and half-map noise). About 20 % of its residues are removed from the handed-out model: four at each
chain end and pieces of a loop, a helix and a strand (a second helix where the domain has no strand), chosen by
the deposited secondary structure (:func:`choose_removed`). The real Snakemake workflow then runs three cycles
with the default coot builder after cycles 1 and 2 and the FASTA of the domain. Printed per protein:

* ``final/model.cif`` (and, for comparison, each built model): how many of the removed residues are present, with
  CA within 1 Å of the truth, more than 2 Å off, and of those how many sit within 1.5 Å of the true CA of a
  residue 1–3 positions away (out of register);
* the kept residues (those of the handed-out model): CA RMS movement from the starting model (and the largest);
* geometry of the final model against the input model's (model validation of the cycles: Ramachandran outliers,
  atom overlaps per 1000 atoms, bond RMSZ), which cycle ``final/`` holds and whether it holds the completion;
* the placement scores: of every residue the builder placed (before its trim), how many within 1 Å and more than
  2 Å off each criterion keeps: CC ≥ min_fit alone (the old rule), Q-score ≥ min_q_score, no Ramachandran or
  rotamer outlier, no bad overlap, the register scan, and all of them (what the builder keeps).

``--repeat`` runs every workflow a second time in another folder and compares ``final/model.cif`` byte for byte.
Phantoms and runs go to benchmarks/out/building/ (gitignored) and are reused when present (delete to recompute).
The phantoms need ../shared/data (5A1A, 3J5P, 5A63); 5NI1 is bundled.

The paper's claim that LocScale maps make building easier, measured with the same builder and budget:

    python benchmarks/bench_building.py --compare [--seeds 0,10,20] [--write-docs]

builds the same handed-out model (5NI1 chains A+B, phantom A of bench_cycles.py, 20 % removed: five residues at each
chain end and three six-residue gaps per chain) into (a) the original map (the half maps' average), (b) global
sharpening, both the workflow's own (cycle 0: sharpened by the data's blur, FSC-weighted) and the best B by truth
(an oracle a user does not have: ``locscale.phantoms.truth.global_b_scan``, highest CC to the truth in the
envelope), and (c) the LocScale map of each cycle of a three-cycle workflow run on that phantom, with the same
``complete_model`` call (same trials, refinement cycles and thresholds), once per builder seed (``--seeds``, default
0, 10, 20: coot's placement trials are random). Per map, the mean and range over the seeds of: residues kept, how
many of them have CA within 1 Å of the truth and more than 2 Å off, the same for the placements before the trim
(what the map let the builder place, independent of the thresholds), CC of the map to the truth in the removed
region (what the builder saw), and CC of the built model to the true model in that region (both simulated at one B,
so it measures where the atoms are, not their B). ``--write-docs`` puts the tables into docs/model-completion.md
between their markers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
from _common import SHARED, run_workflow, write_into_doc

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "building"
sys.path.insert(0, str(BENCH))

#: the proteins: source model, chain, residue range (one compact domain or chain), phantom box (voxels) and voxel
#: size (Å), half-map resolution (Å), global B (Å²), truth B gradient (centre, edge, power) and seed
PROTEINS = {
    "bgal": dict(label="β-galactosidase 5A1A, domain A 50–219", model=SHARED / "models" / "5a1a.cif", chain="A",
                 lo=50, hi=219, box=64, apix=1.2, resolution=3.2, b_global=100, truth=(20, 120, 1.5), seed=21),
    "ard": dict(label="TRPV1 3J5P, ankyrin repeats A 199–358", model=SHARED / "models" / "pdb3j5p_refined_chainA.pdb",
                chain="A", lo=199, hi=358, box=64, apix=1.2, resolution=3.4, b_global=100, truth=(30, 130, 1.0),
                seed=22),
    "aph1": dict(label="γ-secretase 5A63, APH-1 C 2–175", model=SHARED / "models" / "5a63.pdb", chain="C", lo=2,
                 hi=175, box=72, apix=1.2, resolution=3.5, b_global=120, truth=(20, 140, 1.5), seed=23),
    "hba": dict(label="haemoglobin 5NI1, α chain A 1–141", model=REPO / "examples" / "emd3488" / "5ni1_updated.cif",
                chain="A", lo=1, hi=141, box=60, apix=1.2, resolution=3.5, b_global=120, truth=(20, 140, 1.5),
                seed=24),
}
#: residues removed at each chain end; lengths of the loop, helix and strand pieces
END_RESIDUES, LOOP, HELIX, STRAND = 4, 5, 7, 5


# ---------------------------------------------------------------------- phantoms of several proteins
def secondary_structure(path: Path, chain: str, lo: int, hi: int) -> dict[int, str]:
    """{residue: H (helix) | E (strand) | - } from the deposited model's HELIX/SHEET records."""
    st = gemmi.read_structure(str(path))
    ss = {n: "-" for n in range(lo, hi + 1)}
    for h in st.helices:
        if h.start.chain_name == chain:
            for n in range(h.start.res_id.seqid.num, h.end.res_id.seqid.num + 1):
                if n in ss:
                    ss[n] = "H"
    for sheet in st.sheets:
        for strand in sheet.strands:
            if strand.start.chain_name == chain:
                for n in range(strand.start.res_id.seqid.num, strand.end.res_id.seqid.num + 1):
                    if n in ss:
                        ss[n] = "E"
    return ss


def _runs(ss: dict[int, str], kind: str) -> list[tuple[int, int]]:
    out, start, nums = [], None, sorted(ss)
    for n in nums + [None]:
        if n is not None and ss[n] == kind:
            start = n if start is None else start
        elif start is not None:
            out.append((start, (n if n is not None else nums[-1] + 1) - 1))
            start = None
    return out


def choose_removed(ss: dict[int, str], lo: int, hi: int) -> dict[str, list[int]]:
    """{piece: residues} removed: END_RESIDUES at each chain end, then a loop piece (near 30 % along the chain), a
    piece inside a helix (near 55 %), inside a strand (near 75 %; a second helix piece where there is no strand),
    and more loop or helix pieces until about 20 % are removed; every piece at least 4 residues from the others and
    8 from the chain ends."""
    n = hi - lo + 1
    target = round(0.2 * n)
    removed = {"N-terminal end": list(range(lo, lo + END_RESIDUES)),
               "C-terminal end": list(range(hi - END_RESIDUES + 1, hi + 1))}
    taken = set(removed["N-terminal end"]) | set(removed["C-terminal end"])

    def free(a, b):
        return all(m not in taken for m in range(a - 4, b + 5)) and a > lo + 8 and b < hi - 8

    def pick(kind, length, label, frac):
        cands = []
        for a, b in _runs(ss, kind):
            if kind != "-":
                a, b = a + 1, b - 1  # inside the element
            cands += [s for s in range(a, b - length + 2) if free(s, s + length - 1)]
        if not cands:
            return False
        s = min(cands, key=lambda x: abs(x - (lo + frac * n)))
        removed[label] = list(range(s, s + length))
        taken.update(removed[label])
        return True

    pick("-", LOOP, "loop", 0.3)
    pick("H", HELIX, "helix", 0.55)
    if not pick("E", STRAND, "strand", 0.75):
        pick("H", HELIX - 1, "helix 2", 0.8)
    for k in range(6):
        left = target - sum(map(len, removed.values()))
        if left <= 2:
            break
        if not (pick("-", min(6, left), f"loop {k + 2}", (0.15 + 0.37 * k) % 0.9)
                or pick("H", min(6, left), f"helix {k + 3}", (0.42 + 0.31 * k) % 0.9)):
            break
    return removed


def make_protein(name: str) -> tuple[Path, dict]:
    """The protein's phantom folder (cropped model, phantom, handed-out model, FASTA; reused) and its description."""
    from locscale.models import write_model

    p = PROTEINS[name]
    d = OUT / "proteins" / name
    d.mkdir(parents=True, exist_ok=True)
    info_path = d / "inputs.json"
    if info_path.exists():
        return d, json.loads(info_path.read_text())
    if not Path(p["model"]).exists():
        raise SystemExit(f"{p['model']} not found (set LOCSCALE_SHARED_DATA to ../shared/data)")
    st = gemmi.read_structure(str(p["model"]))
    st.setup_entities()
    while len(st) > 1:
        del st[len(st) - 1]
    for i in reversed(range(len(st[0]))):
        if st[0][i].name != p["chain"]:
            del st[0][i]
    chain = st[0][p["chain"]]
    for i in reversed(range(len(chain))):
        if not p["lo"] <= chain[i].seqid.num <= p["hi"] or chain[i].het_flag != "A":
            del chain[i]
    st.remove_hydrogens()
    st.remove_ligands_and_waters()
    st.remove_alternative_conformations()
    st.setup_entities()
    write_model(st, d / "cropped.pdb")
    cmd = [sys.executable, "-m", "locscale.cli", "phantom", str(d / "cropped.pdb"), "-o", str(d / "phantom"),
           "--box", str(p["box"]), "--apix", str(p["apix"]), "-r", str(p["resolution"]), "--b-global",
           str(p["b_global"]), "--truth-b-gradient", *map(str, p["truth"]), "--seed", str(p["seed"])]
    subprocess.run(cmd, check=True)
    truth = gemmi.read_structure(str(d / "phantom" / "SIMULATED_model_true.pdb"))
    residues = [r for r in truth[0][p["chain"]] if r.het_flag == "A"]
    if [r.seqid.num for r in residues] != list(range(p["lo"], p["hi"] + 1)):
        raise SystemExit(f"{name}: the crop has internal gaps; choose a range without them")
    removed = choose_removed(secondary_structure(p["model"], p["chain"], p["lo"], p["hi"]), p["lo"], p["hi"])
    gone = {m for v in removed.values() for m in v}
    (d / "sequence.fasta").write_text(f">{p['chain']}\n{gemmi.one_letter_code([r.name for r in residues])}\n")
    model = truth.clone()
    chain = model[0][p["chain"]]
    for i in reversed(range(len(chain))):
        if chain[i].seqid.num in gone:
            del chain[i]
    model.setup_entities()
    write_model(model, d / "model_removed.cif")
    info = {"protein": name, "label": p["label"], "chain": p["chain"], "residues": len(residues),
            "resolution": p["resolution"], "removed": removed, "n_removed": len(gone)}
    info_path.write_text(json.dumps(info, indent=1))
    return d, info


def run_protein(name: str, cores: int, tag: str = "run") -> Path:
    """The three-cycle workflow on the protein's phantom (reused when present): its results folder."""
    d, info = make_protein(name)
    ph = d / "phantom"
    workdir = OUT / tag / name
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results" / name
    if not (results / "final" / "model.cif").exists():
        cfg = {"datasets": {name: {"half_maps": [str(ph / "SIMULATED_half1.mrc"), str(ph / "SIMULATED_half2.mrc")],
                                   "model": str(d / "model_removed.cif"), "resolution": info["resolution"],
                                   "initial_b": 40, "truth": str(ph / "SIMULATED_truth.mrc"),
                                   "truth_model": str(ph / "SIMULATED_model_true.pdb")}},
               "max_cycles": 3, "min_cycles": 3,
               "model_completion": {"mode": "coot", "after_cycles": [1, 2], "sequence": str(d / "sequence.fasta")}}
        run_workflow(workdir, cfg, cores, f"{tag}/{name}")
    return results


def ca_positions(path) -> dict[tuple[str, int], np.ndarray]:
    st = gemmi.read_structure(str(path))
    return {(ch.name, r.seqid.num): np.array(r["CA"][0].pos.tolist()) for ch in st[0] for r in ch
            if r.find_atom("CA", "*")}


def placement(positions: dict, truth_ca: dict, keys: list) -> dict:
    """Of the removed residues `keys`: how many `positions` has, how many within 1 Å of the truth, more than 2 Å
    off, of those how many within 1.5 Å of the true CA of a residue 1–3 positions away (out of register), and the
    CA RMSD."""
    dist, shifted = {}, 0
    for k in keys:
        if k not in positions:
            continue
        dist[k] = float(np.linalg.norm(positions[k] - truth_ca[k]))
        if dist[k] > 2.0 and any(np.linalg.norm(positions[k] - truth_ca[(k[0], k[1] + s)]) < 1.5
                                 for s in (-3, -2, -1, 1, 2, 3) if (k[0], k[1] + s) in truth_ca):
            shifted += 1
    values = list(dist.values())
    return {"n": len(values), "within_1A": int(sum(v <= 1.0 for v in values)),
            "off_2A": int(sum(v > 2.0 for v in values)), "out_of_register": shifted,
            "rmsd": float(np.sqrt(np.mean(np.square(values)))) if values else float("nan")}


def kept_movement(positions: dict, start: dict) -> dict:
    """CA movement of the starting model's residues: RMS and largest (Å), and how many are missing."""
    d = np.array([np.linalg.norm(positions[k] - start[k]) for k in start if k in positions])
    return {"kept_ca_rms": float(np.sqrt(np.mean(d ** 2))) if len(d) else float("nan"),
            "kept_ca_max": float(d.max()) if len(d) else float("nan"),
            "kept_missing": int(sum(k not in positions for k in start))}


def _validation(results: Path, cycle: int) -> dict:
    v = json.loads((results / f"cycle_{cycle:02d}" / "model_validation.json").read_text())
    return {k: v.get(k, float("nan")) for k in ("rama_outliers_pct", "atom_overlaps_per_1000_atoms", "bond_rmsz")}


#: the placement criteria compared (column -> test on a placed residue's row of completion_coot.tsv)
CRITERIA = {
    "CC ≥ min_fit": lambda r, p: r.cc >= p["min_fit"],
    "Q-score ≥ min_q_score": lambda r, p: r.q_score >= p["min_q_score"],
    "no Ramachandran/rotamer outlier": lambda r, p: not ("Ramachandran outlier" in str(r.reason)
                                                         or "rotamer outlier" in str(r.reason)),
    "no bad overlap": lambda r, p: not (r.overlaps > 0),
    "register scan": lambda r, p: "register" not in str(r.reason),
    "all (kept by the builder)": lambda r, p: r.status == "built",
}


def placement_scores(results: Path, truth_ca: dict) -> list[dict]:
    """Every residue placed by the completions (kept or trimmed), with its distance to the truth and the
    criteria it passes."""
    import pandas as pd

    rows = []
    for cycle in (1, 2):
        d = results / f"cycle_{cycle:02d}"
        if not (d / "completion_coot.tsv").exists():
            continue
        params = json.loads((d / "completion_coot.json").read_text())["parameters"]
        table = pd.read_csv(d / "completion_coot.tsv", sep="\t")
        for r in table[table.status.isin(["built", "trimmed"])].itertuples():
            key = (r.chain, int(r.resnum))
            if not np.isfinite(r.ca_x) or key not in truth_ca:
                continue
            dist = float(np.linalg.norm(np.array([r.ca_x, r.ca_y, r.ca_z]) - truth_ca[key]))
            rows.append({"cycle": cycle, "resnum": int(r.resnum), "dist": dist,
                         **{name: bool(test(r, params)) for name, test in CRITERIA.items()}})
    return rows


def score_protein(name: str, results: Path) -> dict:
    """What final/ holds against the truth, the kept residues' movement and the geometry (module docstring)."""
    d, info = make_protein(name)
    truth_ca = ca_positions(d / "phantom" / "SIMULATED_model_true.pdb")
    start = ca_positions(d / "model_removed.cif")
    keys = sorted((info["chain"], n) for v in info["removed"].values() for n in v)
    sel = json.loads((results / "final" / "selection.json").read_text())
    final = ca_positions(results / "final" / "model.cif")
    row = {"protein": name, "label": info["label"], "residues": info["residues"], "removed": len(keys),
           "final_cycle": sel["cycle"], "holds_completion": bool(sel.get("completion", {}).get("holds_completion")),
           **placement(final, truth_ca, keys), **kept_movement(final, start),
           **{f"input_{k}": v for k, v in _validation(results, 0).items()},
           **{f"final_{k}": v for k, v in _validation(results, int(sel["cycle"])).items()},
           "sha256": hashlib.sha256((results / "final" / "model.cif").read_bytes()).hexdigest(),
           "flags": {c: f for c, f in sel["flags"].items() if f}}
    for cycle in (1, 2):
        built = results / f"cycle_{cycle:02d}" / "built_model.cif"
        if built.exists():
            p = placement(ca_positions(built), truth_ca, keys)
            row[f"built_{cycle}"] = f"{p['n']} / {p['within_1A']} / {p['off_2A']}"
    row["placements"] = placement_scores(results, truth_ca)
    return row


def proteins(args) -> int:
    """Run and score every protein (module docstring); print the tables (``--write-docs``: into
    docs/model-completion.md)."""
    import pandas as pd

    names = [n.strip() for n in args.proteins.split(",") if n.strip()]
    rows, placements = [], []
    for name in names:
        row = score_protein(name, run_protein(name, args.cores))
        if args.repeat:
            again = score_protein(name, run_protein(name, args.cores, tag="repeat"))
            row["repeat_identical"] = again["sha256"] == row["sha256"]
        placements += [{"protein": name, **p} for p in row.pop("placements")]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "sha256"}, default=str), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    df, pl = pd.DataFrame(rows), pd.DataFrame(placements)
    df.to_csv(OUT / "proteins.tsv", sep="\t", index=False)
    pl.to_csv(OUT / "placements.tsv", sep="\t", index=False)
    lines = ["| protein (residues; removed) | final/ holds | removed residues present / CA within 1 Å / > 2 Å off "
             "(out of register) | kept residues: CA moved RMS (max) | Ramachandran outliers, input → final | "
             "overlaps per 1000 atoms, input → final | two runs identical |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        holds = f"cycle {r['final_cycle']}" + (" (completed)" if r["holds_completion"] else " (not completed)")
        lines.append(
            f"| {r['label']} ({r['residues']}; {r['removed']}) | {holds} | {r['n']} / {r['within_1A']} "
            f"({100 * r['within_1A'] / r['removed']:.0f} %) / {r['off_2A']} ({100 * r['off_2A'] / r['removed']:.0f} %"
            f"; {r['out_of_register']}) | {r['kept_ca_rms']:.2f} ({r['kept_ca_max']:.2f}) Å | "
            f"{r['input_rama_outliers_pct']:.2f} → {r['final_rama_outliers_pct']:.2f} % | "
            f"{r['input_atom_overlaps_per_1000_atoms']:.1f} → {r['final_atom_overlaps_per_1000_atoms']:.1f} | "
            f"{({True: 'yes', False: 'NO'}).get(r.get('repeat_identical'), 'not run')} |")
    n, w1, off = (sum(r[k] for r in rows) for k in ("removed", "within_1A", "off_2A"))
    lines.append(f"| all ({n} removed) | | {sum(r['n'] for r in rows)} / {w1} ({100 * w1 / n:.0f} %) / {off} "
                 f"({100 * off / n:.0f} %) | | | | |")
    table = "\n".join(lines)
    good, bad = pl["dist"] <= 1.0, pl["dist"] > 2.0
    crit = [f"| criterion | placements kept within 1 Å (of {int(good.sum())}) | kept more than 2 Å off (of "
            f"{int(bad.sum())}) |", "|---|---|---|"]
    for name in CRITERIA:
        crit.append(f"| {name} | {int((pl[name] & good).sum())} | {int((pl[name] & bad).sum())} |")
    criteria = "\n".join(crit)
    print(f"\n{table}\n\nplacement criteria over {len(pl)} placements ({', '.join(names)}):\n\n{criteria}")
    if args.write_docs:
        write_into_doc("model-completion.md", "building-proteins",
                       table + "\n\nPlacement criteria, every residue the builder placed in these runs "
                       f"({len(pl)}):\n\n" + criteria)
    return 0


# ---------------------------------------------------------------------- the map comparison (--compare)
#: removed per chain of phantom A: residues at each end, gap length, number of gaps
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
    (OUT / "compare").mkdir(parents=True, exist_ok=True)
    model.setup_entities()
    model.make_mmcif_document().write_file(str(OUT / "compare" / "model_removed.cif"))
    (OUT / "compare" / "sequence.fasta").write_text("".join(fasta))
    return OUT / "compare" / "model_removed.cif", OUT / "compare" / "sequence.fasta", removed


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
    workdir = OUT / "compare" / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    table = workdir / "results" / "A" / "summary_upto_03.tsv"
    if not table.exists():
        cfg = {"datasets": {"A": {"half_maps": [str(phantom / "SIMULATED_half1.mrc"),
                                                str(phantom / "SIMULATED_half2.mrc")],
                                  "model": str(model), "resolution": PHANTOMS["A"]["resolution"], "initial_b": 40,
                                  "truth": str(phantom / "SIMULATED_truth.mrc"),
                                  "truth_model": str(phantom / "SIMULATED_model_true.pdb")}},
               "max_cycles": 3, "min_cycles": 3,
               "model_completion": {"mode": "coot", "after_cycles": [1, 2], "sequence": str(fasta)}}
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
            f"(b) global, workflow's (B {-g0['bfactor_applied']:.0f} from the data's blur, FSC-weighted)":
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
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = []
    for k, (label, map_path) in enumerate(comparison_maps(phantom, results, res, truth_map, env).items()):
        m = read_map(map_path)
        map_cc = float(np.corrcoef(m.data[region], truth_map.data[region])[0, 1])
        for seed in seeds:
            wd = OUT / "compare" / f"build_{k}_seed{seed}"
            built = wd / "built_model.cif"
            if not (wd / "completion.json").exists():
                _, rec, table = complete_model(model, map_path, fasta, wd, res, output=built, seed=seed)
                write_outputs(rec, table, wd / "completion.json", wd / "completion.tsv")
            rec = json.loads((wd / "completion.json").read_text())
            table = pd.read_csv(wd / "completion.tsv", sep="\t")
            kept = placement(ca_positions(built), truth_ca, keys)
            placed = table[table.status.isin(["built", "trimmed"])]
            before = placement({(r.chain, int(r.resnum)): np.array([r.ca_x, r.ca_y, r.ca_z])
                                for r in placed.itertuples()}, truth_ca, keys)
            rows.append({"map": label, "seed": seed, "kept": kept["n"], "kept_within_1A": kept["within_1A"],
                         "kept_off_2A": kept["off_2A"], "kept_ca_rmsd": kept["rmsd"],
                         "placed": before["n"], "placed_within_1A": before["within_1A"],
                         "placed_ca_rmsd": before["rmsd"], "map_cc_truth_region": map_cc,
                         "model_cc_truth_region": model_cc(built, phantom / "SIMULATED_model_true.pdb", truth_map,
                                                           region, res),
                         "seconds": rec["seconds"]["total"]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "compare" / "comparison.tsv", sep="\t", index=False)
    params = {"settings": "the builder's defaults", "seeds": seeds}

    def cell(values, fmt="{:.0f}") -> str:
        values = list(values)
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(np.mean(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"

    lines = [f"| map ({n_removed} residues removed) | kept, CA within 1 Å | kept, > 2 Å off | kept | "
             "kept CA RMSD (Å) | placed before the trim, CA within 1 Å | map CC to truth, removed region | "
             "built model CC to true model, removed region |", "|---|---|---|---|---|---|---|---|"]
    for label, g in df.groupby("map", sort=False):
        lines.append(f"| {label} | {cell(g.kept_within_1A)} | {cell(g.kept_off_2A)} | {cell(g.kept)} | "
                     f"{cell(g.kept_ca_rmsd, '{:.2f}')} | "
                     f"{cell(g.placed_within_1A)} | {g.map_cc_truth_region.iloc[0]:.3f} | "
                     f"{cell(g.model_cc_truth_region, '{:.3f}')} |")
    text = "\n".join(lines)
    print(f"\nsame builder and budget for every map: {params}; mean (min–max) over the seeds\n\n{text}")
    if args.write_docs:
        write_into_doc("model-completion.md", "building-comparison", text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proteins", default=",".join(PROTEINS), help="proteins to run (PROTEINS)")
    ap.add_argument("--repeat", action="store_true", help="run every workflow twice and compare final/model.cif")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--compare", action="store_true", help="the building comparison of the original, globally "
                    "sharpened and LocScale maps (module docstring)")
    ap.add_argument("--seeds", default="0,10,20", help="with --compare: builder seeds (model_completion.coot.seed; "
                    "trial t of a build uses seed + t, so seeds 10 apart share no trial), "
                    "one build per map and seed")
    ap.add_argument("--write-docs", action="store_true", help="write the table(s) into "
                    "docs/model-completion.md")
    args = ap.parse_args(argv)
    return compare(args) if args.compare else proteins(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""The hybrid reference (``locscale sharpen --hybrid``, ``sharpen.hybrid``) judged against the truth of phantoms of
several proteins, and what it costs.

Truth tables (default): for each protein a realistic phantom (truth B = 20 + 180·(r/r_max)^1.5 Å², global B 130 Å²,
half maps; the issue's setting), and three partial models of it -- a chain removed (the smallest with ≥ 40
residues), 20 % of the residues removed in gaps of 8, a compact domain of 20 % removed
(``locscale.phantoms.edits.removed_residues``). Every model (complete and partial) has its B-factors refined by
servalcat against the workflow's cycle-0 global target, as a workflow cycle would. Per partial model, CC to truth in
the removed region (voxels within 2.5 Å of its true atoms) and in the rest of the envelope for LocScale with the
partial model, the hybrid reference (pseudo-atoms at the model's median B), the global target and LocScale with the
complete model; the negative control (the same partial model on a phantom made WITHOUT the removed part:
pseudo-atoms placed in the removed region); the complete model with ``--hybrid`` against without (largest CC
difference over the regions). The acceptance criteria are checked and printed per row.

    python benchmarks/bench_hybrid.py [--cases hb,gsec,bgal,trpv1] [--kinds chain,gaps,domain]

``--compare-b`` adds the hybrid reference with the pseudo-atoms' B refined by servalcat against the same target,
the model's atoms held (``sharpen.pseudo_atom_b: refined``), against the default (the model's median B).

``hb`` (haemoglobin, 5NI1) is the protein the method was developed on; ``gsec`` (γ-secretase 5A63), ``bgal``
(β-galactosidase 5A1A) and ``trpv1`` (TRPV1 3J5P) were held out. ``--b-gradient 20,140,1.5 --b-global 120`` gives
the bench_cycles phantoms' milder setting.

Speed (``--speed``): ``locscale sharpen`` with and without ``--hybrid`` on the same inputs, in fresh processes,
alternated, ``--repeats`` times each (median wall times, ratio measured in one run): the TRPV1 tetramer (3J5P
refined, 18 636 atoms) in a 160³ box of 1.2 Å with the complete model and with one chain removed.

Needs ../shared/data (set LOCSCALE_SHARED_DATA). Outputs go to benchmarks/out/hybrid/ (gitignored); phantoms and
refined models are reused when present.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _common import SHARED, machine_note, table, write_tsv  # noqa: E402

OUT = BENCH / "out" / "hybrid"

PROTEINS = {
    "hb": dict(model=SHARED / "emd3488" / "5ni1_updated.cif", chains=None, radius=None, box=72, res=3.5, seed=21),
    "gsec": dict(model=SHARED / "models" / "5a63.pdb", chains=None, radius=24, box=72, res=3.4, seed=23),
    "bgal": dict(model=SHARED / "models" / "5a1a.cif", chains=["A", "B"], radius=26, box=76, res=3.2, seed=24),
    "trpv1": dict(model=SHARED / "models" / "pdb3j5p_refined.pdb", chains=["A", "B"], radius=26, box=72, res=3.6,
                  seed=22),
}
APIX = 1.2


def phantom_case(name: str, b_gradient, b_global: float):
    from locscale.models import read_model
    from locscale.phantoms.phantom import crop_model, make_phantom

    p = PROTEINS[name]
    if not Path(p["model"]).exists():
        raise SystemExit(f"{p['model']} not found: set LOCSCALE_SHARED_DATA to the shared data folder")
    st = crop_model(read_model(p["model"]), p["chains"], radius=p["radius"])
    return make_phantom(st, (p["box"], APIX), p["seed"], resolution=p["res"], b_global=b_global,
                        truth_b_gradient=b_gradient)


def refined(model, target_path: Path, resolution: float, workdir: Path):
    """`model` with B refined by servalcat (restrained, B only, from B = 40) against the global target (reused)."""
    from locscale.engines import make_engine
    from locscale.models import read_model, set_uniform_b, write_model

    out = workdir / "refined.cif"
    if out.exists():
        return read_model(out)
    workdir.mkdir(parents=True, exist_ok=True)
    write_model(set_uniform_b(model, 40.0), workdir / "in.cif")
    engine = make_engine({"engine": "servalcat", "restrained": True, "monlib": None, "refine_xyz": False,
                          "servalcat": {}})
    result = engine.run(workdir / "in.cif", resolution, workdir / "servalcat", target_map=target_path, threads=2)
    m = read_model(result.model)
    write_model(m, out)
    return m


def truth_tables(args) -> list[dict]:
    from locscale import hybrid
    from locscale.experiments.bench import global_target
    from locscale.experiments.partial_models import phantom_without, pseudo_atoms_in
    from locscale.mapio import write_map
    from locscale.models import envelope_mask
    from locscale.phantoms.edits import removed_residues, residue_keys, sub_structure
    from locscale.phantoms.truth import region_cc, removed_region_masks
    from locscale.sharpen import choose_window, sharpen_map
    from locscale.simulate import simulate_model_map

    b_gradient = tuple(float(v) for v in args.b_gradient.split(","))
    tag = f"b{'-'.join(f'{v:g}' for v in b_gradient)}_g{args.b_global:g}"
    rows = []
    for name in args.cases.split(","):
        t0 = time.perf_counter()
        ph = phantom_case(name, b_gradient, args.b_global)
        from locscale.experiments.bench import Bench

        bench = Bench.from_phantom(ph)
        res = bench.resolution
        full, truth = ph.full, ph.truth
        d = OUT / tag / name
        d.mkdir(parents=True, exist_ok=True)
        target, _ = global_target(ph.half1, ph.half2, res)
        write_map(d / "target.mrc", target)
        def locscale(structure, pseudo=None, full=full, res=res):
            """LocScale (near-exact, default window and mask) against `structure` (+ pseudo-atoms)."""
            w = choose_window(APIX, res).voxels
            ref = simulate_model_map(structure, full)
            if pseudo is not None:
                ref = hybrid.add_pseudo_atom_map(ref, pseudo)
                structure = hybrid.merge(structure, pseudo)
            out, _ = sharpen_map(full, ref, res, window=w, mask=envelope_mask(structure, full, 0.5 * w * APIX),
                                 mode="near-exact", progress=False)
            return out

        complete = refined(ph.structure, d / "target.mrc", res, d / "refined_complete")
        plain = locscale(complete)
        ref_c = hybrid.hybrid_reference(full, complete, res, half_maps=(ph.half1, ph.half2))
        with_pseudo = locscale(complete, ref_c.pseudo_atoms)
        for kind in args.kinds.split(","):
            try:
                removed = removed_residues(ph.structure, kind)
            except ValueError as err:
                print(f"# {name} {kind}: {err}")
                continue
            kept = set(residue_keys(ph.structure)) - removed
            part = refined(sub_structure(ph.structure, kept), d / "target.mrc", res, d / f"refined_{kind}")
            regions = removed_region_masks(ph.structure, removed, full, res)
            ref = hybrid.hybrid_reference(full, part, res, half_maps=(ph.half1, ph.half2))
            neg_ph = phantom_without(bench, removed)
            neg = hybrid.hybrid_reference(neg_ph.full, part, res, half_maps=(neg_ph.half1, neg_ph.half2))
            scores = {m: region_cc(x.data, truth, regions) for m, x in
                      (("model_only", locscale(part)), ("hybrid", locscale(part, ref.pseudo_atoms)),
                       ("global", target), ("complete", plain))}
            if args.compare_b:
                from locscale.engines import make_engine

                engine = make_engine({"engine": "servalcat", "restrained": True, "monlib": None,
                                      "refine_xyz": False, "servalcat": {}})
                pseudo_ref, rec = hybrid.refine_pseudo_atom_b(engine, part, ref.pseudo_atoms, d / "target.mrc", res,
                                                              d / f"pseudo_b_{kind}", threads=2)
                scores["hybrid_refined_b"] = region_cc(locscale(part, pseudo_ref).data, truth, regions)
            c_plain, c_hyb = region_cc(plain.data, truth, regions), region_cc(with_pseudo.data, truth, regions)
            n_in = pseudo_atoms_in(ref.pseudo_atoms, regions["removed"], full)
            n_neg = pseudo_atoms_in(neg.pseudo_atoms, regions["removed"], full)
            row = {"protein": name, "kind": kind, "residues_removed": len(removed),
                   **{f"{m}_{r}": s[f"cc_{r}"] for m, s in scores.items() for r in ("removed", "rest")},
                   "pseudo_atoms": ref.count, "pseudo_in_removed": n_in, "neg_control_in_removed": n_neg,
                   "z_threshold": ref.record["threshold"]["z"], "pseudo_b": ref.record["pseudo_atom_b"],
                   "complete_pseudo_atoms": ref_c.count,
                   "complete_max_cc_change": max(abs(c_plain[k] - c_hyb[k]) for k in c_plain)}
            row["ok_vs_complete"] = row["hybrid_removed"] >= row["complete_removed"] - 0.02
            row["ok_vs_global"] = row["hybrid_removed"] >= row["global_removed"] + 0.03
            row["ok_rest"] = row["hybrid_rest"] >= row["model_only_rest"] - 0.003
            row["ok_negative_control"] = n_neg <= 0.05 * n_in
            row["ok_complete_model"] = row["complete_max_cc_change"] <= 0.002
            rows.append(row)
            print(f"# {name} {kind}: removed {row['hybrid_removed']:.4f} (complete {row['complete_removed']:.4f}, "
                  f"global {row['global_removed']:.4f}, model-only {row['model_only_removed']:.4f}); rest "
                  f"{row['hybrid_rest']:.4f} (model-only {row['model_only_rest']:.4f}); {ref.count} pseudo-atoms, "
                  f"{n_in} in the removed region, negative control {n_neg}; "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def speed(args) -> list[dict]:
    """`locscale sharpen` with and without --hybrid, alternated in fresh processes (median wall times)."""
    from locscale.models import read_model, write_model
    from locscale.phantoms.edits import removed_residues, residue_keys, sub_structure
    from locscale.phantoms.phantom import crop_model, make_phantom

    d = OUT / "speed"
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "SIMULATED_half1.mrc").exists():
        st = crop_model(read_model(SHARED / "models" / "pdb3j5p_refined.pdb"))
        make_phantom(st, (160, APIX), 7, resolution=3.6, b_global=130.0).write(d)
    truth_model = read_model(d / "SIMULATED_model_true.pdb")
    write_model(truth_model, d / "complete.cif")
    removed = removed_residues(truth_model, "chain")
    write_model(sub_structure(truth_model, set(residue_keys(truth_model)) - removed), d / "partial.cif")
    import json

    rows = []
    for model in ("complete", "partial"):
        times: dict[str, list[float]] = {"plain": [], "hybrid": []}
        info: dict[str, dict] = {}
        for _ in range(args.repeats):
            for how in ("plain", "hybrid"):
                cmd = [sys.executable, "-m", "locscale.cli", "sharpen", "--half-maps",
                       str(d / "SIMULATED_half1.mrc"), str(d / "SIMULATED_half2.mrc"), "-m", str(d / f"{model}.cif"),
                       "-r", "3.6", "-q", "-o", str(d / f"{model}_{how}.mrc"), "--info", str(d / f"{model}_{how}.json")]
                cmd += ["--hybrid"] if how == "hybrid" else []
                t0 = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True, text=True)
                times[how].append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise SystemExit(r.stderr)
                info[how] = json.loads((d / f"{model}_{how}.json").read_text())
        plain, hyb = statistics.median(times["plain"]), statistics.median(times["hybrid"])
        rows.append({"model": model, "plain_s": plain, "hybrid_s": hyb, "ratio": hyb / plain,
                     "added_pct": 100 * (hyb / plain - 1), "pseudo_atoms": info["hybrid"]["hybrid"]["pseudo_atoms"],
                     "hybrid_reference_s": info["hybrid"]["hybrid"]["seconds"],
                     "scaling_s_plain": info["plain"]["seconds"], "scaling_s_hybrid": info["hybrid"]["seconds"],
                     "voxels_plain": info["plain"]["voxels_scaled"], "voxels_hybrid": info["hybrid"]["voxels_scaled"],
                     "repeats": args.repeats})
        print(f"# speed, {model} model: sharpen {plain:.1f} s, --hybrid {hyb:.1f} s (x{hyb / plain:.2f}); "
              f"hybrid reference {rows[-1]['hybrid_reference_s']:.1f} s, scaling {rows[-1]['scaling_s_plain']:.1f} -> "
              f"{rows[-1]['scaling_s_hybrid']:.1f} s over {rows[-1]['voxels_plain']} -> "
              f"{rows[-1]['voxels_hybrid']} voxels", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="hb,gsec,bgal,trpv1")
    ap.add_argument("--kinds", default="chain,gaps,domain")
    ap.add_argument("--b-gradient", default="20,200,1.5", help="truth B at the centre, at the edge, power")
    ap.add_argument("--b-global", type=float, default=130.0)
    ap.add_argument("--compare-b", action="store_true",
                    help="also the hybrid reference with pseudo-atom B refined by servalcat (model held)")
    ap.add_argument("--speed", action="store_true", help="time sharpen with and without --hybrid instead")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"# {machine_note()}", flush=True)
    if args.speed:
        rows = speed(args)
        print(table(rows, list(rows[0])))
        write_tsv("hybrid_speed.tsv", rows, list(rows[0]))
        return 0
    rows = truth_tables(args)
    cols = ["protein", "kind", "residues_removed", "model_only_removed", "model_only_rest", "hybrid_removed",
            "hybrid_rest", "global_removed", "global_rest", "complete_removed", "complete_rest", "pseudo_atoms",
            "pseudo_in_removed", "neg_control_in_removed", "complete_pseudo_atoms", "complete_max_cc_change"]
    if args.compare_b:
        cols += ["hybrid_refined_b_removed", "hybrid_refined_b_rest"]
    print(table(rows, cols))
    print(table(rows, ["protein", "kind", "ok_vs_complete", "ok_vs_global", "ok_rest", "ok_negative_control",
                       "ok_complete_model"]))
    write_tsv("hybrid_truth.tsv", rows, list(rows[0]))
    return 0 if all(all(v for k, v in r.items() if k.startswith("ok_")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

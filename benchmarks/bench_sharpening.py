"""LocScale against the best global sharpening, region by region, on realistic phantoms of five proteins.

Each phantom keeps the atoms' own B variation in its truth (B from the deposited model, shifted or scaled as
listed) and blurs the data only by a global B plus half-map noise; two stress cases add a local blur the atoms do
not carry. For every phantom the script builds what the workflow builds and scores it against the truth, over
the true model's envelope and in the rigid / middle / flexible thirds of the truth B
(``locscale.phantoms.truth.region_masks``):

* input: the half maps' mean;
* global target, old: FSC-weighted, sharpened by the map's Guinier B (10 Å–d);
* global target (the workflow's cycle-0 target): FSC-weighted, sharpened by the data's own blur, the 1st percentile
  of B refined against the unsharpened map (``locscale.global_sharpen.data_blur``);
* oracle global: ``global_sharpen`` low-passed at d, B scanned against the truth (best CC over the envelope);
* LocScale, old default: near-exact (the paper's eq. 2), window 7 × d, reference refined against the old target
  (what cycle 1 handed out before);
* LocScale, default: tapered, 30 Å, noise weights from the half maps, reference refined against the new target at
  the level of the unsharpened refinement less the data's blur (cycle 1 of the workflow);
* LocScale, default with the true B (the truth model as reference).

Refinement: servalcat, B only, restrained with the workflow's monomer library, from B = 40 Å² (as the workflow's
``initial_b``). ``--windows`` adds a sweep of the tapered window (20–45 Å) with the workflow's reference;
``--ablation`` switches the tapered mode's parts off one at a time (taper, soft shells, noise weights).

    python benchmarks/bench_sharpening.py                      # all phantoms, ~15 min on 2 cores
    python benchmarks/bench_sharpening.py --phantoms gs,trpv1 --windows --ablation

Needs ../shared/data for gamma-secretase, TRPV1 and beta-galactosidase (set LOCSCALE_SHARED_DATA); outputs go to
benchmarks/out/sharpening/ (gitignored) and are reused when present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "sharpening"
SHARED = Path(os.environ.get("LOCSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE = REPO / "examples" / "emd3488"
START_B = 40.0


@dataclass(frozen=True)
class PhantomSpec:
    model: Path
    chains: tuple[str, ...] | None
    resolution: float
    b_global: float
    box: int
    apix: float
    seed: int
    radius: float | None = None
    centre: tuple[float, float, float] | str | None = None  # "chains": centre of the chains' atoms
    truth_b: tuple[float, float, float] | None = (1.0, 0.0, 0.0)  # B = max(scale·B_deposited − offset, floor)
    uniform_b: float | None = None
    b_periphery: float = 0.0  # stress cases: a radial local blur 0 … b_periphery on top of the global B
    note: str = ""


PHANTOMS: dict[str, PhantomSpec] = {
    "gs": PhantomSpec(SHARED / "models" / "5a63.pdb", ("B", "C"), 3.2, 130, 72, 1.2, 21, radius=22,
                      centre=(110.6, 112.4, 129.6), truth_b=(1.0, 265.0, 15.0),
                      note="γ-secretase, chains B/C interface (PDB 5A63), truth B = deposited − 265 (≥ 15)"),
    "hb": PhantomSpec(EXAMPLE / "5ni1_updated.cif", ("A", "B"), 3.5, 120, 80, 1.2, 22, truth_b=(1.0, 0.0, 10.0),
                      note="haemoglobin α1β1 (PDB 5NI1), truth B = deposited (≥ 10)"),
    "trpv1": PhantomSpec(SHARED / "models" / "pdb3j5p_refined_chainA.pdb", None, 3.4, 100, 72, 1.2, 23, radius=24,
                         truth_b=(1.0, 30.0, 10.0),
                         note="TRPV1 chain A core (3J5P refined against EMD-5778), truth B = refined − 30 (≥ 10)"),
    "bgal": PhantomSpec(SHARED / "models" / "5a1a.cif", ("A",), 3.0, 80, 72, 1.0, 24, radius=21, centre="chains",
                        truth_b=(1.5, -15.0, 15.0),
                        note="β-galactosidase chain A core (PDB 5A1A), truth B = 1.5 × deposited + 15"),
    "hb45": PhantomSpec(EXAMPLE / "5ni1_updated.cif", ("A", "B"), 4.5, 150, 64, 1.5, 25, truth_b=(1.0, 0.0, 10.0),
                        note="haemoglobin α1β1 at 4.5 Å, global B 150"),
    "stress_gradient": PhantomSpec(EXAMPLE / "5ni1_updated.cif", ("A", "B"), 3.5, 0, 80, 1.2, 1, truth_b=None,
                                   uniform_b=20.0, b_periphery=200.0,
                                   note="STRESS: uniform truth B 20, local blur 0–200, no global B"),
    "stress_global100": PhantomSpec(EXAMPLE / "5ni1_updated.cif", ("A",), 3.5, 100, 64, 1.2, 2, truth_b=(1, 0, 0),
                                    b_periphery=150.0,
                                    note="STRESS: deposited truth B, local blur 0–150 on a global B of 100"),
}
REALISTIC = ("gs", "hb", "trpv1", "bgal", "hb45")
STRESS = ("stress_gradient", "stress_global100")


def phantom_files(name: str) -> Path:
    """The phantom's folder (SIMULATED_* files of ``PhantomResult.write``), built once."""
    from locscale.models import read_model
    from locscale.phantoms.phantom import crop_model, make_phantom

    spec = PHANTOMS[name]
    out = OUT / name / "phantom"
    if (out / "SIMULATED_phantom.json").exists():
        return out
    if not spec.model.exists():
        raise SystemExit(f"{spec.model} not found: set LOCSCALE_SHARED_DATA to the shared data folder")
    st = read_model(spec.model)
    st.setup_entities()
    centre = spec.centre
    if centre == "chains":
        centre = np.array([a.pos.tolist() for ch in st[0] if ch.name in spec.chains for r in ch for a in r]).mean(0)
    st = crop_model(st, list(spec.chains) if spec.chains else None, radius=spec.radius,
                    centre=None if centre is None else np.asarray(centre, dtype=float))
    if spec.truth_b is not None:
        scale, offset, floor = spec.truth_b
        for ch in st[0]:
            for r in ch:
                for a in r:
                    a.b_iso = max(scale * a.b_iso - offset, floor)
    ph = make_phantom(st, (spec.box, spec.apix), spec.seed, resolution=spec.resolution, b_global=spec.b_global,
                      b_periphery=spec.b_periphery, truth_b=spec.uniform_b, source=str(spec.model))
    ph.write(out)
    return out


class Phantom:
    """A phantom's maps, models and evaluation regions."""

    def __init__(self, name: str):
        from locscale import metrics
        from locscale.mapio import read_map
        from locscale.models import envelope_mask, read_model
        from locscale.phantoms.truth import region_masks

        self.name, self.spec = name, PHANTOMS[name]
        self.dir = phantom_files(name)
        self.work = OUT / name
        self.resolution = self.spec.resolution
        self.h1, self.h2 = (read_map(self.dir / f"SIMULATED_half{i}.mrc") for i in (1, 2))
        self.full = read_map(self.dir / "SIMULATED_full.mrc")
        self.truth = read_map(self.dir / "SIMULATED_truth.mrc")
        self.true_model = read_model(self.dir / "SIMULATED_model_true.pdb")
        self.info = json.loads((self.dir / "SIMULATED_phantom.json").read_text())
        self.mask = envelope_mask(self.true_model, self.full, metrics.envelope_radius(self.resolution))
        self.regions = {"envelope": self.mask, **region_masks(self.true_model, self.full, self.mask)}

    def score(self, m) -> dict:
        from locscale.metrics import pearson

        data = m if isinstance(m, np.ndarray) else m.data
        return {k: pearson(data[r], self.truth.data[r]) if r.sum() > 1 else np.nan for k, r in self.regions.items()}

    def refine(self, tag: str, target) -> object:
        """B refined (servalcat, restrained, from B = 40, coordinates fixed) against the map `target` (a path)."""
        from locscale.engines import make_engine
        from locscale.models import read_model, set_uniform_b, write_model

        out = self.work / f"refined_{tag}.cif"
        if not out.exists():
            start = self.work / "start.cif"
            write_model(set_uniform_b(read_model(self.dir / "SIMULATED_model.pdb"), START_B), start)
            engine = make_engine({"engine": "servalcat", "restrained": True, "refine_xyz": False})
            result = engine.run(start, self.resolution, self.work / f"servalcat_{tag}", target_map=target,
                                step="adp")
            write_model(read_model(result.model), out)
        return read_model(out)

    def write(self, m, stem: str) -> Path:
        from locscale.mapio import write_map

        path = self.work / f"{stem}.mrc"
        if not path.exists():
            write_map(path, m, label=f"SIMULATED benchmark map {stem}")
        return path


def locscale(P: Phantom, reference, mode: str, window_A: float | None = None, **options):
    """LocScale of the phantom's full map with a model's map as reference, as the workflow's sharpen step does
    (mask: the model envelope at half the window)."""
    from locscale.models import envelope_mask
    from locscale.sharpen import choose_window, sharpen_map
    from locscale.simulate import simulate_model_map

    win = choose_window(P.full.apix, P.resolution, None, window_A, mode)
    mask = envelope_mask(P.true_model, P.full, 0.5 * win.voxels * P.full.apix)
    ref = simulate_model_map(reference, P.full)
    out, _ = sharpen_map(P.full, ref, P.resolution, window=win.voxels, mask=mask, mode=mode,
                         half_maps=(P.h1, P.h2), progress=False, **options)
    return out, win


def workflow_maps(P: Phantom) -> dict:
    """The maps and references of the old and the new cycle 0 and cycle 1 (module docstring)."""
    from locscale.global_sharpen import data_blur, global_sharpen, guinier_bfactor
    from locscale.models import b_factors, shift_b_to_mean

    out = {}
    raw = P.refine("unsharpened", P.dir / "SIMULATED_full.mrc")
    blur = data_blur(b_factors(raw))
    b_guinier, _ = guinier_bfactor(P.full, P.resolution)
    old_target, _ = global_sharpen(P.full, P.resolution, bfactor=-b_guinier, half_maps=(P.h1, P.h2))
    new_target, _ = global_sharpen(P.full, P.resolution, bfactor=-blur["b_data"], half_maps=(P.h1, P.h2))
    old_ref = P.refine("old_target", P.write(old_target, "target_old"))
    new_ref, _ = shift_b_to_mean(P.refine("target", P.write(new_target, "target")), blur["b_mean_reference"])
    out.update(blur=blur, b_guinier=b_guinier, old_target=old_target, new_target=new_target, old_ref=old_ref,
               new_ref=new_ref)
    return out


def oracle(P: Phantom) -> tuple[float, dict]:
    from locscale.global_sharpen import global_sharpen

    best = None
    for b in np.arange(-300.0, 1.0, 10.0):
        g, _ = global_sharpen(P.full, P.resolution, bfactor=float(b))
        s = P.score(g)
        if best is None or s["envelope"] > best[1]["envelope"]:
            best = (float(b), s)
    return best


def compare(P: Phantom) -> list[dict]:
    wf = workflow_maps(P)
    rows = [{"map": "input", **P.score(P.full)},
            {"map": f"global target, old (Guinier B {wf['b_guinier']:.0f})", **P.score(wf["old_target"])},
            {"map": f"global target (data's blur {wf['blur']['b_data']:.0f})", **P.score(wf["new_target"])}]
    b, s = oracle(P)
    rows.append({"map": f"oracle global (B {b:.0f}, low-pass)", **s})
    old, win = locscale(P, wf["old_ref"], "near-exact")
    rows.append({"map": f"LocScale, old default (near-exact, {win.angstrom:.0f} Å)", **P.score(old)})
    new, win = locscale(P, wf["new_ref"], "tapered")
    rows.append({"map": f"LocScale, default (tapered, {win.angstrom:.0f} Å)", **P.score(new)})
    true, _ = locscale(P, P.true_model, "tapered")
    rows.append({"map": "LocScale, default, true B", **P.score(true)})
    old_true, _ = locscale(P, P.true_model, "near-exact")
    rows.append({"map": "LocScale, old default, true B", **P.score(old_true)})
    return rows


def windows(P: Phantom) -> list[dict]:
    ref = workflow_maps(P)["new_ref"]
    rows = []
    for wa in (20.0, 25.0, 30.0, 35.0, 40.0, 45.0):
        out, win = locscale(P, ref, "tapered", window_A=wa)
        rows.append({"map": f"tapered, window {win.voxels} ({win.angstrom:.0f} Å)", **P.score(out)})
    return rows


def ablation(P: Phantom) -> list[dict]:
    """The tapered mode with each part switched off (same window, same reference)."""
    from locscale.models import envelope_mask
    from locscale.scaling.tapered import local_scale_tapered
    from locscale.sharpen import choose_window
    from locscale.simulate import simulate_model_map

    ref = simulate_model_map(workflow_maps(P)["new_ref"], P.full).data
    win = choose_window(P.full.apix, P.resolution, mode="tapered")
    mask = envelope_mask(P.true_model, P.full, 0.5 * win.voxels * P.full.apix)
    rows = []
    for label, kw in (("all parts (default)", {}), ("no taper", {"taper": False}),
                      ("no soft shells", {"soft_shells": False}), ("no noise weights", {"noise": "none"}),
                      ("noise from the solvent", {"noise": "solvent"}),
                      ("none (= near-exact)", {"taper": False, "soft_shells": False, "noise": "none"})):
        kw = {"half_maps": (P.h1.data, P.h2.data), **kw}
        if kw.get("noise") in ("none", "solvent"):
            kw.pop("half_maps")
        out = local_scale_tapered(P.full.data, ref, win.voxels, mask, progress=False, **kw)
        rows.append({"map": f"tapered {win.angstrom:.0f} Å: {label}", **P.score(out)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phantoms", default=",".join(REALISTIC + STRESS))
    ap.add_argument("--windows", action="store_true", help="sweep the tapered window")
    ap.add_argument("--ablation", action="store_true", help="switch the tapered mode's parts off one at a time")
    ap.add_argument("--no-compare", action="store_true", help="skip the comparison table")
    args = ap.parse_args(argv)
    tables = []
    for name in args.phantoms.split(","):
        P = Phantom(name)
        print(f"# {name}: {P.spec.note}; {P.info['n_residues']} residues, truth B {P.info['truth']['b_min']:.0f}–"
              f"{P.info['truth']['b_max']:.0f}, global B {P.spec.b_global:g}, {P.resolution} Å", flush=True)
        rows = [] if args.no_compare else compare(P)
        if args.windows:
            rows += windows(P)
        if args.ablation:
            rows += ablation(P)
        t = pd.DataFrame(rows)
        t.insert(0, "phantom", name)
        print(t.to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
        tables.append(t)
    OUT.mkdir(parents=True, exist_ok=True)
    pd.concat(tables).to_csv(OUT / "sharpening.tsv", sep="\t", index=False, float_format="%.4f")
    print(f"table: {OUT / 'sharpening.tsv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

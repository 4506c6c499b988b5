"""The paper's experiments (Jakobi et al. 2017), reproduced on phantoms with a known truth (issue 4).

Every experiment runs on a :class:`Bench` -- a phantom's half maps and truth, the true model, the resolution,
one LocScale window, and two fixed masks:

* the **evaluation mask**: voxels within ``metrics.envelope_radius(d)`` of the true model's atoms; every
  truth score (``locscale.truth.truth_scores``) and every in-mask kurtosis uses it, whatever the reference;
* the **scaling mask**: voxels within half a window of the true model's atoms (LocScale's default mask), the
  same for every reference so that only the reference changes between rows.

Experiments (each returns a pandas table; ``plot_*`` draws it):

* :func:`window_sweep` -- windows from 8 voxels to ~45 Å: in-mask kurtosis, FSC and CC to truth;
* :func:`model_bias_controls` -- references with one side chain truncated to Ala, one residue mutated to Trp,
  poly-Ala, and coordinates perturbed by 1-5 Å (RMS); map values at the affected side-chain atoms relative to
  the map made with the unmodified reference;
* :func:`b_misestimation` -- uniform reference B of 0, 50, 100, 200, 300 Å² against refined/true B;
* :func:`model_completion` -- a model with residues (or a chain) removed; per cycle the CC to truth of the
  LocScale map in the unmodelled region, by distance from the model. Between cycles an optional refinement
  (``refine`` callable) and a *surrogate model builder*: removed residues whose density in the current LocScale
  map correlates with the truth at ≥ ``build_cc`` are added back (a stand-in for a person rebuilding into
  the newly interpretable density; it uses the truth, which only a phantom has).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd

from . import metrics
from .mapio import Map, atomic_output, read_map
from .records import dumps
from .truth import soft_mask, truth_scores

DEFAULT_MODE = "exact"
SIDE_CHAIN_EXCLUDE = {"N", "CA", "C", "O", "CB", "OXT"}
MAIN_CHAIN = {"N", "CA", "C", "O"}

# A tryptophan (PDB 5NI1 chain A residue 14, CC0) used as the side-chain template for "mutate to Trp" when the
# model holds no tryptophan of its own; it is superposed on the target residue's N, CA, C and CB.
_TRP_TEMPLATE = (
    ("N", 36.808, 38.888, 67.788), ("CA", 37.775, 37.785, 67.809), ("C", 37.346, 36.681, 68.775),
    ("O", 37.745, 35.525, 68.615), ("CB", 39.177, 38.271, 68.153), ("CG", 40.194, 37.247, 67.865),
    ("CD1", 40.796, 36.412, 68.760), ("CD2", 40.706, 36.905, 66.589), ("NE1", 41.675, 35.575, 68.117),
    ("CE2", 41.638, 35.854, 66.781), ("CE3", 40.477, 37.385, 65.297), ("CZ2", 42.331, 35.269, 65.731),
    ("CZ3", 41.162, 36.801, 64.242), ("CH2", 42.086, 35.751, 64.468),
)


# ---------------------------------------------------------------------- the bench
@dataclass
class Bench:
    """What every experiment needs (module docstring)."""

    half1: Map
    half2: Map
    truth: Map
    structure: gemmi.Structure  # complete true model (truth B)
    resolution: float
    window: int
    eval_mask: np.ndarray
    scale_mask: np.ndarray
    mode: str = DEFAULT_MODE
    blurred: gemmi.Structure | None = None  # true coordinates with the B of the blurred signal, when known
    info: dict = field(default_factory=dict)
    _soft: np.ndarray | None = field(default=None, repr=False)

    @property
    def full(self) -> Map:
        return self.half1.like(0.5 * (self.half1.data + self.half2.data))

    @classmethod
    def build(cls, half1: Map, half2: Map, truth: Map, structure: gemmi.Structure, resolution: float, *,
              window: int | None = None, mode: str = DEFAULT_MODE, blurred=None, info=None) -> Bench:
        from .models import envelope_mask
        from .sharpen import choose_window

        w = choose_window(half1.apix, resolution, window).voxels
        eval_mask = envelope_mask(structure, half1, metrics.envelope_radius(resolution))
        scale_mask = envelope_mask(structure, half1, 0.5 * w * half1.apix) | eval_mask
        return cls(half1, half2, truth, structure, float(resolution), w, eval_mask, scale_mask, mode, blurred,
                   dict(info or {}))

    @classmethod
    def from_phantom(cls, ph, resolution: float | None = None, **kw) -> Bench:
        """From a :class:`locscale.phantom.PhantomResult` (resolution defaults to the requested one)."""
        res = ph.info["noise"]["requested_resolution"] if resolution is None else resolution
        blurred = ph.structure.clone()
        b_global = ph.info["blur"]["b_global"]
        for a, extra in zip(_atoms(blurred), ph.delta_b, strict=True):
            a.b_iso = float(a.b_iso + extra + b_global)
        return cls.build(ph.half1, ph.half2, ph.truth, ph.structure, res, blurred=blurred, info=ph.info, **kw)

    @classmethod
    def from_dir(cls, folder: str | Path, prefix: str = "SIMULATED", resolution: float | None = None,
                 **kw) -> Bench:
        """From the files :meth:`PhantomResult.write` wrote (maps, true model, JSON)."""
        from .models import read_model

        folder = Path(folder)
        info = json.loads((folder / f"{prefix}_phantom.json").read_text())
        h1 = read_map(folder / f"{prefix}_half1.mrc")
        h2 = read_map(folder / f"{prefix}_half2.mrc")
        truth = read_map(folder / f"{prefix}_truth.mrc")
        st = read_model(folder / f"{prefix}_model_true.pdb")
        res = info["noise"]["requested_resolution"] if resolution is None else resolution
        return cls.build(h1, h2, truth, st, res, info=info, blurred=_blurred_from_info(st, info), **kw)

    def reference_structure(self, which: str, refined: gemmi.Structure | None = None) -> gemmi.Structure:
        """"truth" (true coordinates and truth B) or "refined" (`refined`, B refined against the half maps)."""
        if which == "truth":
            return self.structure
        if which == "refined":
            if refined is None:
                raise ValueError("reference 'refined' needs the refined model")
            return refined
        raise ValueError(f"unknown reference {which!r}: use 'truth' or 'refined'")

    # -- helpers used by every experiment
    def reference_map(self, structure: gemmi.Structure) -> Map:
        from .simulate import simulate_model_map

        return simulate_model_map(structure, self.half1)

    def locscale(self, reference: gemmi.Structure | Map, *, window: int | None = None, mask="scale",
                 progress: bool = False) -> Map:
        """LocScale of the full map against `reference` (a model or a model map) with the bench's mode."""
        from .sharpen import sharpen_map

        ref = reference if isinstance(reference, Map) else self.reference_map(reference)
        m = self.scale_mask if isinstance(mask, str) and mask == "scale" else mask
        out, _ = sharpen_map(self.full, ref, self.resolution, window=window or self.window, mask=m,
                             mode=self.mode, progress=progress)
        return out

    def scores(self, emap: Map) -> dict:
        if self._soft is None:
            self._soft = soft_mask(self.eval_mask)
        rec, _ = truth_scores(emap.data, self.truth, self.resolution, self.eval_mask, self._soft)
        rec["kurtosis_mask"] = metrics.excess_kurtosis(emap.data, self.eval_mask)
        return rec


def _blurred_from_info(structure: gemmi.Structure, info: dict) -> gemmi.Structure | None:
    """The true model with the B of the phantom's blurred signal, rebuilt from the phantom JSON."""
    from .phantom import b_gradient

    blur = info.get("blur")
    if not blur:
        return None
    db = b_gradient(structure, blur["b_core"], blur["b_periphery"], power=blur.get("power", 1.0),
                    chain_b=blur.get("chain_b"))
    st = structure.clone()
    for a, extra in zip(_atoms(st), db, strict=True):
        a.b_iso = float(a.b_iso + extra + blur["b_global"])
    return st


def refinement_engine(refine_config: dict, environ: dict | None = None):
    """The refinement engine of the experiments' ``refine`` section (config/experiments.yaml: ``engine``,
    default servalcat; ``restrained``, ``monlib``, ``ncycle``): B-factors only, coordinates fixed."""
    from .engines import DEFAULT_ENGINE, make_engine

    cfg = refine_config
    return make_engine({"engine": cfg.get("engine", DEFAULT_ENGINE), "restrained": cfg.get("restrained", True),
                        "monlib": cfg.get("monlib"), "refine_xyz": False,
                        "servalcat": {"ncycle": cfg.get("ncycle")}}, environ)


def global_target(half1: Map, half2: Map, resolution: float) -> tuple[Map, dict]:
    """The workflow's cycle-0 target (its fixed B-refinement target by default): the half maps' mean, sharpened
    by its Guinier B and FSC-weighted (:func:`locscale.global_sharpen.global_sharpen`)."""
    from .global_sharpen import global_sharpen

    full = half1.like(0.5 * (half1.data + half2.data))
    return global_sharpen(full, resolution, half_maps=(half1, half2))


# ---------------------------------------------------------------------- window sweep
def default_sweep_windows(apix: float, max_angstrom: float = 45.0, n: int = 10) -> list[int]:
    """About `n` windows from 8 voxels up to `max_angstrom` (geometric steps, distinct integers)."""
    top = max(9, int(round(max_angstrom / apix)))
    return sorted({int(round(v)) for v in np.geomspace(8, top, n)})


def window_sweep(bench: Bench, reference: gemmi.Structure | Map, windows: list[int] | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """LocScale with every window (same reference, same scaling and evaluation masks): in-mask kurtosis and
    truth scores per window."""
    from tqdm import tqdm

    ref = reference if isinstance(reference, Map) else bench.reference_map(reference)
    windows = windows or default_sweep_windows(bench.half1.apix)
    rows = []
    for w in tqdm(windows, desc="window sweep", disable=not progress):
        out = bench.locscale(ref, window=w)
        rows.append({"window_voxels": int(w), "window_A": w * bench.half1.apix, **bench.scores(out)})
    return pd.DataFrame(rows)


def interior_maximum(values) -> bool:
    """True when the largest value is neither the first nor the last."""
    v = np.asarray(values, dtype=float)
    i = int(np.nanargmax(v))
    return 0 < i < len(v) - 1


# ---------------------------------------------------------------------- model edits
def _atoms(structure: gemmi.Structure):
    return [a for ch in structure[0] for r in ch for a in r]


def residue_key(chain: str, res: gemmi.Residue) -> str:
    return f"{chain}/{res.name}{res.seqid.num}{res.seqid.icode.strip()}"


def _find(structure: gemmi.Structure, key: str) -> gemmi.Residue:
    chain, rest = key.split("/")
    num = int("".join(c for c in rest if c.isdigit() or c == "-"))
    for res in structure[0][chain]:
        if res.seqid.num == num:
            return res
    raise KeyError(key)


def pick_residue(structure: gemmi.Structure, names: tuple[str, ...]) -> str:
    """The residue of one of `names` (complete side chain) nearest to the model's centre, as 'A/PHE43'."""
    xyz = np.array([a.pos.tolist() for a in _atoms(structure)])
    centre = xyz.mean(axis=0)
    best, best_d = None, np.inf
    for ch in structure[0]:
        for res in ch:
            if res.name in names and res.find_atom("CB", "*") and len(res) > 5:
                ca = res.find_atom("CA", "*")
                d = np.linalg.norm(np.array(ca.pos.tolist()) - centre)
                if d < best_d:
                    best, best_d = residue_key(ch.name, res), d
    if best is None:
        raise ValueError(f"no residue of type {'/'.join(names)} with a side chain in the model")
    return best


def side_chain_positions(structure: gemmi.Structure, key: str | None = None) -> np.ndarray:
    """Positions of side-chain atoms beyond CB (of one residue, or of every residue)."""
    if key is not None:
        res = _find(structure, key)
        return np.array([a.pos.tolist() for a in res if a.name not in SIDE_CHAIN_EXCLUDE]).reshape(-1, 3)
    return np.array([a.pos.tolist() for ch in structure[0] for r in ch for a in r
                     if a.name not in SIDE_CHAIN_EXCLUDE and r.name not in ("GLY", "ALA")]).reshape(-1, 3)


def main_chain_positions(structure: gemmi.Structure) -> np.ndarray:
    return np.array([a.pos.tolist() for a in _atoms(structure) if a.name in MAIN_CHAIN]).reshape(-1, 3)


def truncate_to_ala(structure: gemmi.Structure, key: str | None = None) -> gemmi.Structure:
    """A copy with the side chain of `key` (or of every residue: poly-Ala) cut back to CB and renamed ALA
    (glycines stay glycines)."""
    st = structure.clone()
    for ch in st[0]:
        for res in ch:
            if (key is None and res.name != "GLY") or (key is not None and residue_key(ch.name, res) == key):
                for i in reversed(range(len(res))):
                    if res[i].name not in SIDE_CHAIN_EXCLUDE:
                        del res[i]
                res.name = "ALA"
    return st


def mutate_to_trp(structure: gemmi.Structure, key: str) -> tuple[gemmi.Structure, np.ndarray]:
    """A copy with residue `key` replaced by a tryptophan: the side chain of a Trp of the model (or of the
    built-in template) superposed on the residue's N, CA, C, CB. Returns (model, positions of the added atoms
    beyond CB)."""
    template = None
    for ch in structure[0]:
        for res in ch:
            if res.name == "TRP" and residue_key(ch.name, res) != key and len(res) >= 14:
                template = [(a.name, *a.pos.tolist()) for a in res]
                break
        if template:
            break
    template = template or list(_TRP_TEMPLATE)
    tpl = {name: np.array(xyz, dtype=float) for name, *xyz in template}
    st = structure.clone()
    res = _find(st, key)
    anchors = [n for n in ("N", "CA", "C", "CB") if res.find_atom(n, "*") and n in tpl]
    if len(anchors) < 3:
        raise ValueError(f"{key} lacks the backbone atoms needed to place a side chain")
    fixed = [gemmi.Position(*res.find_atom(n, "*").pos.tolist()) for n in anchors]
    moving = [gemmi.Position(*tpl[n]) for n in anchors]
    sup = gemmi.superpose_positions(fixed, moving)
    b = float(np.mean([a.b_iso for a in res]))
    for i in reversed(range(len(res))):
        if res[i].name not in SIDE_CHAIN_EXCLUDE:
            del res[i]
    added = []
    for name, xyz in tpl.items():
        if name in SIDE_CHAIN_EXCLUDE:
            continue
        a = gemmi.Atom()
        a.name = name
        a.element = gemmi.Element(name[0])
        p = gemmi.Position(sup.transform.apply(gemmi.Position(*xyz)))
        a.pos = p
        a.b_iso = b
        a.occ = 1.0
        res.add_atom(a)
        added.append(p.tolist())
    res.name = "TRP"
    return st, np.array(added)


def perturb_coordinates(structure: gemmi.Structure, rms: float, seed: int = 0) -> gemmi.Structure:
    """A copy with every atom moved by an independent Gaussian vector of RMS length `rms` Å (seeded)."""
    st = structure.clone()
    rng = np.random.default_rng(seed)
    atoms = _atoms(st)
    shifts = rng.normal(0.0, rms / np.sqrt(3.0), size=(len(atoms), 3))
    for a, d in zip(atoms, shifts, strict=True):
        a.pos = gemmi.Position(*(np.array(a.pos.tolist()) + d))
    return st


def _values_at(emap: Map, xyz: np.ndarray) -> np.ndarray:
    import scipy.ndimage as ndi

    if len(xyz) == 0:
        return np.array([])
    ijk = emap.frac_to_xyz_index(xyz)
    return ndi.map_coordinates(emap.data.astype(np.float64), ijk.T, order=1, mode="nearest")


def _far_from(xyz: np.ndarray, others: np.ndarray, distance: float) -> np.ndarray:
    """Rows of `xyz` farther than `distance` Å from every row of `others`."""
    if len(xyz) == 0 or len(others) == 0:
        return xyz
    d = np.linalg.norm(xyz[:, None, :] - others[None, :, :], axis=2).min(axis=1)
    return xyz[d > distance]


# ---------------------------------------------------------------------- model-bias controls
def model_bias_controls(bench: Bench, reference: gemmi.Structure | None = None, *, truncate: str | None = None,
                        mutate: str | None = None, perturb_rms=(1.0, 2.0, 3.0, 5.0), seed: int = 0,
                        progress: bool = False) -> pd.DataFrame:
    """Paper Fig. 3 on a phantom. `reference` (default: the true model) is the unmodified reference; the
    controls change it and LocScale is rerun with the same window and masks.

    Affected atoms: the truncated residue's true side-chain atoms beyond CB (truncate); the added Trp atoms
    beyond CB that lie > 1.5 Å from every true atom (mutate; there is no density there); every true
    side-chain atom beyond CB (poly-Ala, perturbed). For each control: mean map value at the affected atoms
    with the control reference (``value_control``) and with the unmodified one (``value_reference``), their
    ratio, the same after dividing each map by its mean value at the main-chain atoms (``ratio_main_chain``:
    removes an overall change of scale), the control map's value there relative to its own main chain
    (``control_rel_main_chain``) and the truth's (``truth_rel_main_chain``), and the control
    map's in-mask kurtosis and truth scores. `truncate`/`mutate` default to the PHE/TYR and VAL/THR/SER nearest
    the centre (paper: F→A, V→W).
    """
    from tqdm import tqdm

    ref_st = bench.structure if reference is None else reference
    truncate = truncate or pick_residue(ref_st, ("PHE", "TYR"))
    mutate = mutate or pick_residue(ref_st, ("VAL", "THR", "SER"))
    base = bench.locscale(ref_st)
    all_true = np.array([a.pos.tolist() for a in _atoms(bench.structure)])
    main = main_chain_positions(bench.structure)
    trp_model, trp_added = mutate_to_trp(ref_st, mutate)
    controls = [("truncate_to_ala", truncate, truncate_to_ala(ref_st, truncate),
                 side_chain_positions(ref_st, truncate)),
                ("mutate_to_trp", mutate, trp_model, _far_from(trp_added, all_true, 1.5)),
                ("poly_ala", "all residues", truncate_to_ala(ref_st), side_chain_positions(ref_st))]
    for r in perturb_rms:
        controls.append((f"perturb_{r:g}A", f"RMS {r:g} Å, seed {seed}", perturb_coordinates(ref_st, r, seed),
                         side_chain_positions(ref_st)))

    def rel(m: Map, xyz):
        v = _values_at(m, xyz)
        return float(np.mean(v)) if v.size else float("nan"), float(np.mean(_values_at(m, main)))

    rows = [{"control": "reference", "detail": "unmodified", "n_atoms": 0, **bench.scores(base)}]
    for name, detail, st, xyz in tqdm(controls, desc="model-bias controls", disable=not progress):
        out = bench.locscale(st)
        vc, mc = rel(out, xyz)
        vr, mr = rel(base, xyz)
        vt, mt = rel(bench.truth, xyz)
        rows.append({"control": name, "detail": detail, "n_atoms": int(len(xyz)), "value_control": vc,
                     "value_reference": vr, "ratio": vc / vr if vr else np.nan,
                     "ratio_main_chain": (vc / mc) / (vr / mr) if vr and mc and mr else np.nan,
                     "control_rel_main_chain": vc / mc if mc else np.nan,
                     "truth_rel_main_chain": vt / mt if mt else np.nan, **bench.scores(out)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- B mis-estimation
def b_misestimation(bench: Bench, uniform_b=(0.0, 50.0, 100.0, 200.0, 300.0), *,
                    refined: gemmi.Structure | None = None, progress: bool = False) -> pd.DataFrame:
    """LocScale with the true coordinates and uniform B (each value), the refined B (if given), the true blur B
    of the phantom signal (if known) and the truth B: in-mask kurtosis and truth scores."""
    from tqdm import tqdm

    from .models import set_uniform_b

    refs: list[tuple[str, gemmi.Structure]] = [(f"uniform_{b:g}", set_uniform_b(bench.structure, b))
                                                for b in uniform_b]
    if refined is not None:
        refs.append(("refined", refined))
    if bench.blurred is not None:
        refs.append(("signal_b", bench.blurred))
    refs.append(("truth_b", bench.structure))
    rows = []
    for name, st in tqdm(refs, desc="B mis-estimation", disable=not progress):
        b = np.array([a.b_iso for a in _atoms(st)])
        rows.append({"reference_b": name, "b_mean": float(b.mean()), "b_std": float(b.std()),
                     **bench.scores(bench.locscale(st))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- model completion
DISTANCE_BINS = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0, np.inf)


def _distance_to(structure: gemmi.Structure, like: Map, max_distance: float = 30.0) -> np.ndarray:
    """Distance (Å) of every voxel to the nearest atom of `structure` (capped at `max_distance`)."""
    import scipy.ndimage as ndi

    occ = np.zeros(like.shape, dtype=bool)
    ijk = np.rint(like.frac_to_xyz_index(np.array([a.pos.tolist() for a in _atoms(structure)]))).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(like.shape)), axis=1)
    occ[tuple(ijk[ok].T)] = True
    d = ndi.distance_transform_edt(~occ, sampling=like.voxel_size)
    return np.minimum(d, max_distance)


def _residue_cc(emap: Map, truth: Map, res: gemmi.Residue, radius: float) -> float:
    from .models import envelope_mask

    st = gemmi.Structure()
    model = gemmi.Model("1")
    ch = gemmi.Chain("A")
    ch.add_residue(res)
    model.add_chain(ch)
    st.add_model(model)
    m = envelope_mask(st, emap, radius)
    return metrics.pearson(emap.data[m], truth.data[m]) if m.sum() > 3 else float("nan")


def model_completion(bench: Bench, partial: gemmi.Structure, *, cycles: int = 3, build_cc: float | None = 0.7,
                     refine: Callable[[gemmi.Structure, Map, int], gemmi.Structure] | None = None,
                     baseline: Map | None = None, progress: bool = False) -> pd.DataFrame:
    """Per cycle: LocScale (every voxel of the box, so the map itself shows how far the model's reach goes)
    against the current model; CC to truth in the unmodelled region -- voxels within the evaluation radius of
    the removed residues' true atoms and not of the starting model's -- overall and binned by distance from the
    starting model (region and bins stay fixed over the cycles), and in the starting model's own envelope (bin
    ``modelled``: rebuilding must not degrade it); then optional
    `refine(model, target, cycle)` and the surrogate builder (module docstring; ``build_cc=None`` disables it).
    `baseline` (e.g. the best global sharpening) is scored on the same voxels for comparison."""
    from .models import envelope_mask

    radius = metrics.envelope_radius(bench.resolution)
    current = partial.clone()
    present = {(ch.name, r.seqid.num, r.seqid.icode.strip()) for ch in current[0] for r in ch}
    true_res = {(ch.name, r.seqid.num, r.seqid.icode.strip()): r for ch in bench.structure[0] for r in ch}
    removed0 = [k for k in true_res if k not in present]
    if not removed0:
        raise ValueError("the partial model lacks no residue of the true model: nothing to complete")
    # fixed over cycles: the region the starting model leaves unmodelled, binned by distance from that model
    gone = _sub_structure(bench.structure, set(removed0))
    region = envelope_mask(gone, bench.half1, radius) & ~envelope_mask(partial, bench.half1, radius)
    dist = _distance_to(partial, bench.half1)
    bins = [("all", 0.0, np.inf)] + [(f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}", lo, hi)
                                      for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:], strict=True)]
    # "elsewhere": the starting model's own envelope, which rebuilding must not degrade
    modelled = envelope_mask(partial, bench.half1, radius)
    regions = [(label, region & (dist >= lo) & (dist < hi)) for label, lo, hi in bins] + [("modelled", modelled)]
    rows = []
    for cycle in range(1, cycles + 1):
        missing = [k for k in true_res if k not in present]
        out = bench.locscale(current, mask=None, progress=progress)
        for label, sel in regions:
            enough = sel.sum() > 3
            row = {"cycle": cycle, "distance_bin_A": label, "n_voxels": int(sel.sum()),
                   "residues_modelled": len(present), "residues_missing": len(missing),
                   "cc_truth_locscale": metrics.pearson(out.data[sel], bench.truth.data[sel]) if enough else np.nan,
                   "mean_abs_locscale": float(np.mean(np.abs(out.data[sel]))) if sel.any() else np.nan}
            if baseline is not None:
                row["cc_truth_baseline"] = (metrics.pearson(baseline.data[sel], bench.truth.data[sel])
                                            if enough else np.nan)
            rows.append(row)
        if cycle == cycles:
            break
        if refine is not None:
            current = refine(current, out, cycle)
        if build_cc is not None and missing:
            b_fill = float(np.mean([a.b_iso for a in _atoms(current)]))
            add = [k for k in missing if _residue_cc(out, bench.truth, true_res[k], radius) >= build_cc]
            current = _add_residues(current, [true_res[k] for k in add], [k[0] for k in add], b_fill)
            present |= set(add)
    return pd.DataFrame(rows)


def _sub_structure(structure: gemmi.Structure, keys: set) -> gemmi.Structure:
    st = structure.clone()
    for ch in st[0]:
        for i in reversed(range(len(ch))):
            if (ch.name, ch[i].seqid.num, ch[i].seqid.icode.strip()) not in keys:
                del ch[i]
    st.remove_empty_chains()
    return st


def _add_residues(structure: gemmi.Structure, residues, chains, b: float) -> gemmi.Structure:
    st = structure.clone()
    for res, chain in zip(residues, chains, strict=True):
        names = [c.name for c in st[0]]
        if chain not in names:
            st[0].add_chain(gemmi.Chain(chain))
        ch = st[0][chain]
        new = res.clone()
        for a in new:
            a.b_iso = b
        # keep residues in sequence order
        pos = next((i for i, r in enumerate(ch) if r.seqid.num > new.seqid.num), len(ch))
        ch.add_residue(new, pos)
    return st


# ---------------------------------------------------------------------- output
def write_table(table: pd.DataFrame, path: str | Path, meta: dict | None = None) -> None:
    """TSV with an optional one-line JSON comment header (settings), atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            if meta:
                fh.write("# " + dumps(meta, sort_keys=True) + "\n")
            table.to_csv(fh, sep="\t", index=False, float_format="%.6g")


def read_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#")


def _figure(path, draw, title: str, size=(6.5, 4.2)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    draw(fig, ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_window_sweep(table: pd.DataFrame, path, title: str = "window sweep (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        ax.plot(table["window_A"], table["kurtosis_mask"], "o-", color="C0", label="in-mask kurtosis")
        ax.set_xlabel("window (Å)")
        ax.set_ylabel("excess kurtosis in mask", color="C0")
        ax2 = ax.twinx()
        ax2.plot(table["window_A"], table["fsc_average_truth"], "s--", color="C1", label="FSCavg to truth")
        ax2.plot(table["window_A"], table["cc_mask_truth"], "^:", color="C2", label="CC to truth")
        ax2.set_ylabel("FSCavg / CC to truth")
        fig.legend(loc="lower right", fontsize=8)
    _figure(path, draw, title)


def plot_model_bias(table: pd.DataFrame, path, title: str = "model-bias controls (SIMULATED phantom)") -> None:
    t = table[table["control"] != "reference"]

    def draw(fig, ax):
        x = np.arange(len(t))
        ax.bar(x - 0.2, t["ratio"], 0.4, label="value / value with unmodified reference")
        ax.bar(x + 0.2, t["ratio_main_chain"], 0.4, label="same, each map / its main-chain value")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xticks(x, t["control"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("map value at affected side-chain atoms")
        ax.legend(fontsize=8)
    _figure(path, draw, title)


def plot_b_misestimation(table: pd.DataFrame, path, title: str = "reference B (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        x = np.arange(len(table))
        ax.plot(x, table["cc_mask_truth"], "o-", label="CC to truth")
        ax.plot(x, table["fsc_average_truth"], "s-", label="FSCavg to truth")
        ax.set_xticks(x, table["reference_b"], rotation=30, ha="right", fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(x, table["kurtosis_mask"], "^--", color="C3", label="kurtosis")
        ax2.set_ylabel("in-mask kurtosis", color="C3")
        ax.set_ylabel("score to truth")
        fig.legend(loc="lower left", fontsize=8)
    _figure(path, draw, title)


def plot_model_completion(table: pd.DataFrame, path, title: str = "model completion (SIMULATED phantom)") -> None:
    t = table[~table["distance_bin_A"].isin(["all", "modelled"])]  # the distance bins

    def draw(fig, ax):
        for cycle, g in t.groupby("cycle"):
            ax.plot(np.arange(len(g)), g["cc_truth_locscale"], "o-", label=f"LocScale, cycle {cycle}")
        if "cc_truth_baseline" in t:
            g = t[t["cycle"] == t["cycle"].min()]
            ax.plot(np.arange(len(g)), g["cc_truth_baseline"], "k--", label="global sharpening (cycle 1 bins)")
        labels = t[t["cycle"] == t["cycle"].min()]["distance_bin_A"]
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_xlabel("distance from the starting model (Å)")
        ax.set_ylabel("CC to truth, unmodelled region")
        ax.legend(fontsize=8)
    _figure(path, draw, title)


def plot_truth_curves(curves: dict, path, resolution: float,
                      title: str = "FSC to truth (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        for name, c in curves.items():
            sel = c.shell >= 1
            ax.plot(c.freq[sel], c.fsc[sel], label=name)
        ax.axvline(1.0 / resolution, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("spatial frequency (1/Å)")
        ax.set_ylabel("FSC to truth (masked)")
        ax.legend(fontsize=7)
    _figure(path, draw, title)


def plot_local_resolution(table: pd.DataFrame, path, title: str = "local resolution (SIMULATED phantom)") -> None:
    """Per-residue local resolution against the residue's refined B (and the phantom's blur B if present)."""
    def draw(fig, ax):
        ax.scatter(table["b_mean"], table["local_resolution"], s=10, label="refined B")
        if "signal_b" in table:
            ax.scatter(table["signal_b"], table["local_resolution"], s=10, marker="x", label="true blur B")
        ax.set_xlabel("residue mean B (Å²)")
        ax.set_ylabel("local resolution (Å)")
        ax.legend(fontsize=8)
    _figure(path, draw, title)


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A pipe table (GitHub markdown) of `table`, numbers to `digits` significant digits."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v)
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    sep = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, sep, *body])

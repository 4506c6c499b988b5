"""Model completion: LocScale against a partial model over cycles of (optional) refinement and a surrogate
model builder; CC to truth in the unmodelled region by distance from the starting model."""

from __future__ import annotations

from collections.abc import Callable

import gemmi
import numpy as np
import pandas as pd

from .. import metrics
from ..mapio import Map
from ..models import atom_positions, b_factors
from ..phantoms.edits import add_residues, sub_structure
from .bench import Bench
from .common import figure

DISTANCE_BINS = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0, np.inf)


def _distance_to(structure: gemmi.Structure, like: Map, max_distance: float = 30.0) -> np.ndarray:
    """Distance (Å) of every voxel to the nearest atom of `structure` (capped at `max_distance`)."""
    import scipy.ndimage as ndi

    occ = np.zeros(like.shape, dtype=bool)
    ijk = np.rint(like.frac_to_xyz_index(atom_positions(structure))).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(like.shape)), axis=1)
    occ[tuple(ijk[ok].T)] = True
    d = ndi.distance_transform_edt(~occ, sampling=like.voxel_size)
    return np.minimum(d, max_distance)


def _residue_cc(emap: Map, truth: Map, res: gemmi.Residue, radius: float) -> float:
    from ..models import envelope_mask

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
    from ..models import envelope_mask

    radius = metrics.envelope_radius(bench.resolution)
    current = partial.clone()
    present = {(ch.name, r.seqid.num, r.seqid.icode.strip()) for ch in current[0] for r in ch}
    true_res = {(ch.name, r.seqid.num, r.seqid.icode.strip()): r for ch in bench.structure[0] for r in ch}
    removed0 = [k for k in true_res if k not in present]
    if not removed0:
        raise ValueError("the partial model lacks no residue of the true model: nothing to complete")
    # fixed over cycles: the region the starting model leaves unmodelled, binned by distance from that model
    gone = sub_structure(bench.structure, set(removed0))
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
            b_fill = float(np.mean(b_factors(current)))
            add = [k for k in missing if _residue_cc(out, bench.truth, true_res[k], radius) >= build_cc]
            current = add_residues(current, [true_res[k] for k in add], [k[0] for k in add], b_fill)
            present |= set(add)
    return pd.DataFrame(rows)


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
    figure(path, draw, title)

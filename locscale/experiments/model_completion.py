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


def _with_refined_b(partial: gemmi.Structure, refined: gemmi.Structure) -> gemmi.Structure:
    """`partial` with the B-factors `refined` gives its residues (matched by chain and number)."""
    by_residue = {(ch.name, r.seqid.num): r for ch in refined[0] for r in ch}
    for ch in partial[0]:
        for r in ch:
            for a, b in zip(r, by_residue[(ch.name, r.seqid.num)], strict=True):
                a.b_iso = b.b_iso
    return partial


def _refiner(bench: Bench, engine, b_target: str, workdir, threads: int):
    """refine(model, LocScale map, cycle) for :func:`model_completion`: B refined against the fixed cycle-0 global
    target (b_target global) or the cycle's LocScale map (locscale), in ``workdir/cycle_NN``."""
    from pathlib import Path

    from ..mapio import write_map
    from ..models import read_model, write_model
    from .bench import global_target

    fixed, _ = global_target(bench.half1, bench.half2, bench.resolution)

    def refine(model, locscale_map, cycle):
        d = Path(workdir) / f"cycle_{cycle:02d}"
        d.mkdir(parents=True, exist_ok=True)
        write_map(d / "SIMULATED_locscale_target.mrc", fixed if b_target == "global" else locscale_map,
                  label=f"SIMULATED phantom {b_target} target")
        write_model(model, d / "model_in.pdb")
        result = engine.run(d / "model_in.pdb", bench.resolution, d / "servalcat",
                            target_map=d / "SIMULATED_locscale_target.mrc", threads=threads)
        print(f"cycle {cycle}: {result.record()}")
        return read_model(result.model)

    return refine


def run_model_completion(phantom_json, model, refined, table_path, plot_path, *, phantom: str, settings: dict,
                         refine_config: dict, mode, window, reference: str, workdir, threads: int = 1):
    """The experiments' model-completion step: the per-cycle table against the truth and its plot."""
    from pathlib import Path

    from ..global_sharpen import global_sharpen
    from ..models import read_model
    from ..phantoms.truth import global_b_scan
    from .bench import refinement_engine
    from .common import write_table

    s = settings
    bench = Bench.from_dir(Path(phantom_json).parent, window=window, mode=mode)
    partial = read_model(model)
    if reference == "refined":  # the refined B of the residues the partial model keeps
        partial = _with_refined_b(partial, read_model(refined))
    refine = _refiner(bench, refinement_engine(refine_config), s["b_target"], workdir, threads)
    scan = global_b_scan(bench.full, bench.truth, bench.resolution, bench.eval_mask)
    b_best = float(scan.loc[scan["cc_mask_truth"].idxmax(), "bfactor_applied"])
    baseline, _ = global_sharpen(bench.full, bench.resolution, bfactor=b_best)
    table = model_completion(bench, partial, cycles=int(s["cycles"]), build_cc=s.get("build_cc"),
                             refine=refine if s.get("refine") else None, baseline=baseline)
    write_table(table, table_path, {"phantom": phantom, "mode": bench.mode, "window_voxels": bench.window,
                                    "refine": bool(s.get("refine")), "b_target": s["b_target"],
                                    "build_cc": s.get("build_cc"), "baseline_global_b": b_best})
    plot_model_completion(table, plot_path, title=f"model completion, SIMULATED phantom {phantom}")
    return table

"""One cycle's validation record (docs/design.md "Metrics: one definition each"): always against the *original* map.

Used by the `locscale metrics` command and by the workflow's validate step, so every cycle is measured the same
way: RSCC (CC_mask, CC_box, per residue) at the map resolution, model-vs-map FSC with one-voxel shells and its
FSCaverage up to the resolution, excess kurtosis of a (sharpened) map inside one fixed mask, and B statistics.
"""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from ..errors import LocScaleInputError
from ..mapio import Map
from ..models import b_factors


def bfactor_stats(structure: gemmi.Structure, previous: gemmi.Structure | None = None) -> dict:
    """Mean/median/spread of B, and the change from `previous` (mean ΔB and mean |ΔB| over matching atoms)."""
    b = b_factors(structure)
    rec = {
        "b_mean": float(b.mean()),
        "b_median": float(np.median(b)),
        "b_std": float(b.std()),
        "b_min": float(b.min()),
        "b_max": float(b.max()),
    }
    if previous is not None:
        bp = b_factors(previous)
        if bp.shape == b.shape:
            rec["delta_b_mean"] = float(b.mean() - bp.mean())
            rec["delta_b_abs_mean"] = float(np.mean(np.abs(b - bp)))
        else:  # the model was rebuilt between cycles: only the means compare
            rec["delta_b_mean"] = float(b.mean() - bp.mean())
            rec["delta_b_abs_mean"] = float("nan")
    return rec


def sharpness_vs_reference(sharpened: Map, reference: Map, resolution: float, mask: np.ndarray) -> float:
    """Guinier B (10 Å to `resolution`) of `sharpened` minus that of `reference`, both multiplied by the same soft
    copy of `mask` (Å²; :func:`locscale.global_sharpen.guinier_bfactor`'s convention, positive = blurrier).

    A truth-free check of a LocScale map against the cycle-0 FSC-weighted global target: a LocScale map that
    keeps its sharpening stays near 0 (the local scaling redistributes the same overall falloff); one that
    drifts towards the blur of the data rises by the drift (the input map is +B_global blurrier).
    """
    from ..global_sharpen import guinier_bfactor
    from ..phantoms.truth import soft_mask

    soft = soft_mask(mask).astype(np.float32)
    b_s, _ = guinier_bfactor(sharpened.like(sharpened.data * soft), resolution)
    b_r, _ = guinier_bfactor(reference.like(reference.data * soft), resolution)
    return float(b_s - b_r)


def truth_metrics(sharpened: Map, truth: Map, resolution: float, mask: np.ndarray,
                  regions: dict[str, np.ndarray] | None = None) -> dict:
    """Phantoms: CC and FSCaverage of `sharpened` to the noise-free `truth` inside `mask` (the true model's
    envelope; :func:`locscale.phantoms.truth.truth_scores`), keys ``cc_truth``, ``fsc_average_truth``; with
    `regions` (:func:`locscale.phantoms.truth.region_masks`) also ``cc_truth_<region>`` (rigid, middle and flexible
    thirds of the truth B; the unmodelled part of a partial model)."""
    from ..phantoms.truth import region_scores, truth_scores

    sharpened.require_same_grid(truth, "the map and the truth map")
    rec, _ = truth_scores(sharpened.data, truth, resolution, mask)
    out = {"cc_truth": float(rec["cc_mask_truth"]), "fsc_average_truth": float(rec["fsc_average_truth"])}
    if regions:
        out.update(region_scores(sharpened.data, truth, regions))
    return out


def validation_metrics(emap: Map, structure: gemmi.Structure, resolution: float, *,
                       sharpened: Map | None = None, kurtosis_mask: np.ndarray | None = None,
                       previous: gemmi.Structure | None = None,
                       model_map: Map | None = None, reference: Map | None = None, truth: Map | None = None,
                       truth_mask: np.ndarray | None = None, truth_regions: dict[str, np.ndarray] | None = None
                       ) -> tuple[dict, object, pd.DataFrame]:
    """Validation of `structure` against the original map `emap`.

    Returns (record, FSC curve, per-residue table). `record` is flat (JSON/TSV-ready). Kurtosis is computed for
    `sharpened` (default: `emap`) inside `kurtosis_mask` (default: the model envelope at the RSCC radius) -- pass
    the same cycle-0 mask in every cycle. `model_map` (Nyquist-limited, on emap's grid) is simulated if not given.
    With `reference` (the cycle-0 global target) the record gains ``sharpness_b_vs_global``
    (:func:`sharpness_vs_reference`, in the kurtosis mask); with `truth` (phantoms) and `truth_mask`, ``cc_truth``
    and ``fsc_average_truth`` of `sharpened`, and ``cc_truth_<region>`` with `truth_regions` (:func:`truth_metrics`).
    """
    from .. import metrics
    from ..checks import check_map_content
    from ..limits import check_resolution
    from ..models import envelope_mask
    from ..simulate import rscc, simulate_model_map

    apix = emap.apix
    check_map_content(emap.data, emap.path)  # an all-zero or constant map gives NaN everywhere
    resolution = check_resolution(resolution, apix)
    rs = rscc(emap, structure, resolution)
    if model_map is None:
        model_map = simulate_model_map(structure, emap)
    curve = metrics.fsc(model_map.data, emap.data, apix)
    if kurtosis_mask is None:
        kurtosis_mask = envelope_mask(structure, emap, metrics.envelope_radius(resolution))
    if np.count_nonzero(kurtosis_mask) < 2:  # kurtosis of fewer than 2 voxels is NaN
        raise LocScaleInputError(f"the kurtosis mask holds {np.count_nonzero(kurtosis_mask)} voxel(s)",
                                 "give a mask with voxels ≥ 0.5 inside the molecule (or none: the model envelope)",
                                 emap.path)
    kmap = emap if sharpened is None else sharpened
    record = {
        "resolution": float(resolution),
        "cc_mask": float(rs["cc_mask"]),
        "cc_box": float(rs["cc_box"]),
        "cc_residue_median": float(np.nanmedian(rs["per_residue"]["cc"])) if len(rs["per_residue"]) else np.nan,
        "fsc_average": float(metrics.fsc_average(curve, resolution)),
        "fsc05_resolution": float(metrics.resolution_at(curve, 0.5)),
        "kurtosis": float(metrics.excess_kurtosis(kmap.data, kurtosis_mask)),
        "kurtosis_mask_voxels": int(np.count_nonzero(kurtosis_mask)),
        **bfactor_stats(structure, previous),
    }
    if reference is not None and sharpened is not None:
        record["sharpness_b_vs_global"] = sharpness_vs_reference(sharpened, reference, resolution, kurtosis_mask)
    if truth is not None:
        if truth_mask is None:
            raise ValueError("give truth_mask with truth")
        record.update(truth_metrics(kmap, truth, resolution, truth_mask, truth_regions))
    return record, curve, rs["per_residue"]

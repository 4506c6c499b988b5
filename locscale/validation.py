"""One cycle's validation record (DESIGN.md §6): always against the *original* map.

Used by the `locscale metrics` command and by the workflow's validate step, so every cycle is measured the same
way: RSCC (CC_mask, CC_box, per residue) at the map resolution, model-vs-map FSC with one-voxel shells and its
FSCaverage up to the resolution, excess kurtosis of a (sharpened) map inside one fixed mask, and B statistics.
"""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from .mapio import Map
from .models import b_factors


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


def validation_metrics(emap: Map, structure: gemmi.Structure, resolution: float, *,
                       sharpened: Map | None = None, kurtosis_mask: np.ndarray | None = None,
                       previous: gemmi.Structure | None = None,
                       model_map: Map | None = None) -> tuple[dict, object, pd.DataFrame]:
    """Validation of `structure` against the original map `emap`.

    Returns (record, FSC curve, per-residue table). `record` is flat (JSON/TSV-ready). Kurtosis is computed for
    `sharpened` (default: `emap`) inside `kurtosis_mask` (default: the model envelope at the RSCC radius) -- pass
    the same cycle-0 mask in every cycle. `model_map` (Nyquist-limited, on emap's grid) is simulated if not given.
    """
    from . import metrics
    from .models import envelope_mask
    from .simulate import simulate_model_map

    apix = emap.apix
    rs = metrics.rscc(emap, structure, resolution)
    if model_map is None:
        model_map = simulate_model_map(structure, emap)
    curve = metrics.fsc(model_map.data, emap.data, apix)
    if kurtosis_mask is None:
        kurtosis_mask = envelope_mask(structure, emap, metrics.envelope_radius(resolution))
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
    return record, curve, rs["per_residue"]

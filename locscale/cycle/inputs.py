"""Cycle 0: the dataset's inputs checked and put in one frame: the full map (the mean of the half maps when given),
the resolution (given, or FSC 0.143 of the half maps), the model without hydrogens in the map's frame (shifted and
with a uniform B when the dataset says so, checked to lie inside the map and fit it), the optional mask and the
fixed kurtosis mask (the model's envelope), recorded in ``inputs.json``. The workflow's ``prepare_inputs`` rule
calls :func:`prepare_inputs` with its named files ({name: path})."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import metrics
from ..mapio import Map, average_half_maps, read_half_maps, read_map, write_map
from ..models import check_model_in_map, envelope_mask, model_summary, read_model, write_model
from ..records import write_json


def _read_map(inputs: Mapping) -> tuple[Map, dict]:
    """The full map (the mean of the half maps when given) and what the record says about it."""
    if "half1" not in inputs:
        return read_map(inputs["map"]), {"map": inputs["map"]}
    h1, h2 = read_half_maps(inputs["half1"], inputs["half2"])
    info = {"half_maps": [inputs["half1"], inputs["half2"]],
            "half_map_fsc0143_A": metrics.resolution_at(metrics.fsc(h1.data, h2.data, h1.apix), 0.143)}
    return average_half_maps(h1, h2), info


def _model_in_frame(path, dataset: Mapping, info: dict):
    """The model without hydrogens (one hydrogen policy for every cycle: refinement runs without them, servalcat
    --hydrogen no, so cycle 0 is checked and validated without them too, else the input's CC, Q-score and overlaps
    would not compare), shifted and with a uniform B when `dataset` says so; `info` records what was done."""
    from ..checks import check_model_atoms
    from ..models import set_uniform_b, shift_model

    structure = read_model(path)
    info["hydrogens"] = {"removed": model_summary(structure)["hydrogens"],
                         "policy": "none in any cycle: removed from the input model, and refinement runs "
                                   "without them (servalcat --hydrogen no)"}
    structure.remove_hydrogens()
    check_model_atoms(structure, path)
    if dataset["model_shift"] is not None:
        structure = shift_model(structure, dataset["model_shift"])
        info["model_shift_A"] = list(dataset["model_shift"])
    if dataset["initial_b"] is not None:
        structure = set_uniform_b(structure, float(dataset["initial_b"]))
        info["initial_b"] = float(dataset["initial_b"])
    info["model"] = path
    return structure


def prepare_inputs(inputs: Mapping, outputs: Mapping, dataset: Mapping, *, name: str) -> dict:
    """Check dataset `name`'s files (`inputs`: ``model`` and ``map`` or ``half1``/``half2``, optionally ``mask``)
    against its settings `dataset` (``resolution``, ``model_shift``, ``initial_b``, ``min_model_inside``; None where
    not given) and write `outputs` ``map``, ``model``, ``kurtosis_mask`` and the record ``info``, which it returns."""
    from ..simulate import check_model_fits_map

    emap, read = _read_map(inputs)
    info = {"dataset": name, **read}
    emap.require_isotropic("the refinement cycles (LocScale)")
    if dataset["resolution"] is not None:
        resolution, source = float(dataset["resolution"]), "config"
    else:
        resolution, source = info["half_map_fsc0143_A"], "half-map FSC 0.143"
    info.update(resolution=resolution, resolution_source=source, shape=list(emap.shape),
                voxel_size=emap.voxel_size.tolist(), origin=emap.origin.tolist(), axis_order=list(emap.axis_order),
                origin_convention=emap.origin_convention)
    structure = _model_in_frame(inputs["model"], dataset, info)
    info["model_inside_fraction"] = check_model_in_map(structure, emap, min_inside=dataset["min_model_inside"])
    info["model_fit_cc"] = check_model_fits_map(structure, emap, resolution)
    info["model_summary"] = model_summary(structure)
    if "mask" in inputs:
        mask = read_map(inputs["mask"])
        emap.require_same_grid(mask, "the map and the mask")
        info.update(mask=inputs["mask"], mask_voxels=int(np.count_nonzero(mask.data >= 0.5)))
    radius = metrics.envelope_radius(resolution)
    kmask = envelope_mask(structure, emap, radius)
    info.update(kurtosis_mask_radius_A=radius, kurtosis_mask_voxels=int(np.count_nonzero(kmask)))
    write_map(outputs["map"], emap, label="LocScale cycles: original map")
    write_model(structure, outputs["model"])
    write_map(outputs["kurtosis_mask"], emap, data=kmask.astype(np.float32),
              label=f"kurtosis mask: model envelope {radius:.1f} A")
    write_json(outputs["info"], info)
    return info

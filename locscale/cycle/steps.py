"""What the cycle's map steps do, file in, file out: the hybrid reference's pseudo-atoms, LocScale of the original
map and the validation record. The workflow's scripts call these with the rule's named files (``inputs``,
``outputs``: {name: path}) and settings; the numerics live in the modules they call."""

from __future__ import annotations

from collections.abc import Mapping

from ..mapio import read_half_maps, read_map, write_map
from ..models import read_model, write_model
from ..records import read_json, write_json


def _resolution(inputs: Mapping) -> float:
    """The dataset's resolution in Å, as decided in cycle 0 (``inputs.json``)."""
    return float(read_json(inputs["info"])["resolution"])


def _half_maps(inputs: Mapping):
    return read_half_maps(inputs["half1"], inputs["half2"]) if "half1" in inputs else None


def pseudo_atoms_step(inputs: Mapping, outputs: Mapping, sharpen: Mapping, refine: Mapping, *, cycle: int,
                      workdir, threads: int = 1, log=None) -> dict:
    """Pseudo-atoms where the original map has significant density the cycle's model does not explain
    (:mod:`locscale.hybrid`), their B (the model's median, or refined by the engine with the model held), and the
    unexplained-density mask. Without a measurable noise level the default (``sharpen.hybrid: null``) goes on with
    the model alone and says why; ``hybrid: true`` stops with the fix."""
    import numpy as np

    from .. import hybrid

    emap, modelmap, model = read_map(inputs["map"]), read_map(inputs["modelmap"]), read_model(inputs["model"])
    resolution = _resolution(inputs)
    why_on = "sharpen.hybrid: true" if sharpen["hybrid"] else "on with model completion (sharpen.hybrid: null)"
    try:
        ref = hybrid.hybrid_reference(emap, model, resolution, half_maps=_half_maps(inputs),
                                      fdr=sharpen["hybrid_fdr"], modelmap=modelmap)
    except hybrid.NoiseNotMeasurable as err:
        if sharpen["hybrid"]:  # asked for explicitly: stop with the reason and the fix
            raise
        print(f"WARNING: hybrid reference not used in cycle {cycle}: {err.problem}")
        ref = hybrid.HybridReference(hybrid.pseudo_atom_structure([], 0.0), np.zeros(emap.shape, dtype=bool),
                                     {"pseudo_atoms": 0, "not_used": err.problem, "fix": err.fix})
    record, pseudo = {"cycle": cycle, "hybrid": why_on, **ref.record}, ref.pseudo_atoms
    if sharpen["pseudo_atom_b"] == "refined" and ref.count:
        from ..engines import make_engine

        pseudo, refined = hybrid.refine_pseudo_atom_b(make_engine(refine), model, pseudo, inputs["target"],
                                                      resolution, workdir, threads=threads, log=log)
        record.update(refined, b_target=inputs["target"])
    write_model(pseudo, outputs["atoms"])
    write_map(outputs["mask"], emap, ref.unexplained.astype("float32"), label=f"unexplained density, cycle {cycle}")
    write_json(outputs["info"], record)
    return record


def _hybrid_reference(inputs: Mapping, modelmap, structure):
    """(model map, structure, record) of the reference: the model's, plus the pseudo-atoms when there are any."""
    if "pseudo_atoms" not in inputs:
        return modelmap, structure, None
    from .. import hybrid

    record = {"pseudo_atoms_file": inputs["pseudo_atoms"], **read_json(inputs["pseudo_info"])}
    if record["pseudo_atoms"]:
        pseudo = read_model(inputs["pseudo_atoms"])
        modelmap, structure = hybrid.add_pseudo_atom_map(modelmap, pseudo), hybrid.merge(structure, pseudo)
    return modelmap, structure, record


def simulate_step(inputs: Mapping, outputs: Mapping, *, cycle: int, reuse: bool = True) -> dict:
    """The refined model's map on the original map's grid (:func:`locscale.simulate.simulate_model_map`), sharpened
    by the refine step's B raise (:func:`locscale.cycle.b_level.sharpen_model_map`). With `reuse` and the previous
    cycle's files (``previous_model``, ``previous_refine``, ``previous_modelmap``): the same model file and the same
    raise give the same map, so the previous cycle's map is written again (its values; this cycle's label).
    Returns what was done."""
    import time

    from ..validation.reuse import file_digest
    from .b_level import sharpen_model_map

    t0 = time.perf_counter()
    raise_b = float(read_json(inputs["refine"]).get("b_model_raise") or 0.0)
    label = f"model map, cycle {cycle}" + (f", sharpened by {raise_b:.1f} A^2" if raise_b else "")
    record = {"cycle": cycle, "b_model_raise": raise_b}
    if reuse and "previous_modelmap" in inputs and \
            float(read_json(inputs["previous_refine"]).get("b_model_raise") or 0.0) == raise_b and \
            file_digest(inputs["model"]) == file_digest(inputs["previous_model"]):
        write_map(outputs["map"], read_map(inputs["previous_modelmap"]), label=label)
        record["reused"] = ("the previous cycle's model map: the same model file and B raise "
                            f"({inputs['previous_modelmap']})")
    else:
        from ..simulate import simulate_model_map

        write_map(outputs["map"], sharpen_model_map(simulate_model_map(read_model(inputs["model"]),
                                                                       read_map(inputs["map"])), raise_b), label=label)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


def sharpen_digest(inputs: Mapping, settings: Mapping, threads: int) -> str:
    """The digest of what a LocScale step reads: its input files (maps by their values,
    :func:`locscale.validation.reuse.files_digest`), the ``sharpen`` settings and the threads."""
    from ..validation.reuse import files_digest

    own = {k: v for k, v in inputs.items() if not k.startswith("previous_")}  # the previous cycle's files
    kept = {k: v for k, v in settings.items() if k != "reuse_unchanged"}
    return files_digest(own, {"step": "sharpen", "settings": kept, "threads": int(threads)})


def sharpen_step(inputs: Mapping, outputs: Mapping, settings: Mapping, *, cycle: int, threads: int = 1) -> dict:
    """LocScale of the ORIGINAL map against the cycle's model map (:func:`locscale.sharpen.sharpen_map`); with the
    hybrid reference, against the model map plus the pseudo-atoms' map, in a mask around both. With
    ``sharpen.reuse_unchanged`` and the previous cycle's LocScale map and record (``previous_map``,
    ``previous_info``) made from the same inputs (:func:`sharpen_digest`), that map is copied instead: LocScale
    is deterministic, so it is the map this step would compute."""
    import time

    from .. import sharpen
    from ..validation.reuse import DIGEST_KEY, REUSED_KEY, read_previous, reusable

    t0 = time.perf_counter()
    digest = sharpen_digest(inputs, settings, threads)
    prev = read_previous(inputs.get("previous_info")) if settings["reuse_unchanged"] else None
    origin = reusable(prev, digest)
    if origin is not None and "previous_map" in inputs:
        import shutil

        from ..outputs import atomic_output

        with atomic_output(outputs["map"]) as tmp:
            shutil.copyfile(inputs["previous_map"], tmp)
        info = {k: v for k, v in prev.items() if k not in ("provenance", "warnings")}
        info.update({"cycle": cycle, REUSED_KEY: origin, "seconds": round(time.perf_counter() - t0, 3),
                     "sharpen_reused": f"reused from cycle {origin}: the same model map, maps and settings"})
        write_json(outputs["info"], info)
        return info
    emap, resolution = read_map(inputs["map"]), _resolution(inputs)
    modelmap, structure, hybrid_record = _hybrid_reference(inputs, read_map(inputs["modelmap"]),
                                                           read_model(inputs["model"]))
    win = sharpen.choose_window(emap.apix, resolution, settings["window"], settings["window_angstrom"],
                                settings["mode"])
    mask, mask_rule = sharpen.choose_mask(emap, mask_path=inputs.get("mask"), structure=structure,
                                          mask_radius=settings["mask_radius"], window_voxels=win.voxels)
    if hybrid_record:
        from ..hybrid import mask_rule as hybrid_mask_rule

        mask_rule = hybrid_mask_rule(mask_rule, hybrid_record["pseudo_atoms"])
    options = {"workers": threads, **({"stride": settings["stride"]} if settings["stride"] else {})}
    out, info = sharpen.sharpen_map(emap, modelmap, resolution, window=win.voxels, mask=mask, mode=settings["mode"],
                                    half_maps=_half_maps(inputs), progress=False, **options)
    write_map(outputs["map"], out, label=sharpen.sharpened_label(info))
    info.update(cycle=cycle, mask=mask_rule, window_rule=win.rule,
                reference=f"hybrid: model + {hybrid_record['pseudo_atoms']} pseudo-atoms" if hybrid_record else "model")
    info[DIGEST_KEY] = digest
    if hybrid_record:
        info["hybrid"] = hybrid_record
    write_json(outputs["info"], info)
    return info


def _truth(inputs: Mapping, emap, resolution: float):
    """Phantoms: the truth map, the true model's envelope (where maps are scored) and its regions (thirds of the
    truth B, and what the input model lacks); Nones without a truth."""
    if "truth" not in inputs:
        return None, None, None
    from .. import metrics
    from ..models import envelope_mask
    from ..phantoms.truth import region_masks

    true_model = read_model(inputs["truth_model"])
    mask = envelope_mask(true_model, emap, metrics.envelope_radius(resolution))
    return read_map(inputs["truth"]), mask, region_masks(true_model, emap, mask, read_model(inputs["start_model"]))


def validate_step(inputs: Mapping, outputs: Mapping, *, cycle: int) -> dict:
    """The cycle's validation record against the ORIGINAL map (:func:`locscale.validation.map_metrics
    .validation_metrics`) with the model validation merged in: metrics (JSON), FSC curve and per-residue table."""
    from ..outputs import write_tsv
    from ..validation.map_metrics import validation_metrics
    from ..validation.model import cycle_record, merge_per_residue

    emap, resolution = read_map(inputs["map"]), _resolution(inputs)
    truth, truth_mask, regions = _truth(inputs, emap, resolution)
    record, curve, per_residue = validation_metrics(
        emap, read_model(inputs["model"]), resolution, sharpened=read_map(inputs["sharpened"]),
        kurtosis_mask=read_map(inputs["kurtosis_mask"]).data >= 0.5,
        previous=read_model(inputs["previous"]) if inputs.get("previous") else None,
        model_map=read_map(inputs["modelmap"]) if inputs.get("modelmap") else None,
        reference=read_map(inputs["reference"]), truth=truth, truth_mask=truth_mask, truth_regions=regions)
    record = {"cycle": cycle, **record, **cycle_record(read_json(inputs["model_validation"]))}
    write_json(outputs["metrics"], record)
    write_tsv(curve.to_frame(), outputs["fsc"])
    write_tsv(merge_per_residue(per_residue, inputs["model_validation_residues"]), outputs["per_residue"])
    return record

"""The experiments' refined model: the true model's B-factors refined (coordinates fixed) from a uniform start, as
the workflow refines them (``refine.target: global``, the default): against the unsharpened full map first (its
1st percentile is the data's own blur, :func:`locscale.global_sharpen.data_blur`), then against the cycle-0 target
sharpened by that blur and FSC-weighted, at the level of the first refinement less the blur; or against the raw
half maps (``half_maps``: B then carries the data's global falloff too)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..global_sharpen import data_blur
from ..mapio import read_map, write_map
from ..models import b_factors, read_model, set_uniform_b, shift_b_to_mean, write_model
from ..records import read_json, write_json
from .bench import global_target, refinement_engine


def refine_phantom(inputs: Mapping, outputs: Mapping, settings: Mapping, *, workdir, threads: int = 1) -> dict:
    """Refine phantom `inputs` (``json``: its record, ``model_true``, ``full``, ``half1``, ``half2``) as the
    experiments' ``refine`` section `settings` says (``start_b``, ``target``, the engine's settings), the engine
    running in `workdir` (start model and global target beside it); writes `outputs` ``model`` and ``info`` (the
    record, which it returns)."""
    work = Path(workdir)
    start = work.parent / "start.pdb"
    write_model(set_uniform_b(read_model(inputs["model_true"]), float(settings["start_b"])), start)
    engine = refinement_engine(settings)
    resolution = float(read_json(inputs["json"])["noise"]["requested_resolution"])
    target = settings["target"]
    record = {"start_b": settings["start_b"], "resolution": resolution, "target": target}
    if target == "global":
        h1, h2 = read_map(inputs["half1"]), read_map(inputs["half2"])
        raw = engine.run(start, resolution, work / "unsharpened", target_map=inputs["full"], threads=threads)
        blur = data_blur(b_factors(read_model(raw.model)))
        gmap, _ = global_target(h1, h2, resolution, blur["b_data"])
        path = work.parent / "SIMULATED_global_target.mrc"
        write_map(path, gmap, label="SIMULATED phantom: FSC-weighted global target")
        result = engine.run(start, resolution, work / "target", target_map=path, threads=threads)
        refined, shift = shift_b_to_mean(read_model(result.model), blur["b_mean_reference"])
        record.update(data_blur=blur, b_shift_applied=shift)
    else:
        result = engine.run(start, resolution, work, half_maps=[inputs["half1"], inputs["half2"]], threads=threads)
        refined = read_model(result.model)
    write_model(refined, outputs["model"])
    record = {**record, **result.record()}
    write_json(outputs["info"], record)
    return record

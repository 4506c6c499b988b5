"""The cycle's refine step, file in, file out: the configured engine (:mod:`locscale.engines`) refines the model
and :mod:`.b_level` places its B level.

B-factors are refined against ``target`` (refine.b_target); with ``xyz_target`` (refine_xyz and b_target global)
the coordinates are first refined against that map with B fixed, then B against the target with coordinates fixed,
each run in its own folder; with ``half1``/``half2`` (b_target locscale_signal) the target is the LocScale map's
model-coherent part. The B level: with b_target global, cycle 1 keeps the level of the model refined against the
unsharpened map less the data's own blur (``data_blur``, cycle 0); later cycles keep cycle 1's level with b_level
fixed (``first_cycle``). Where that level puts atoms at or below the B floor, the model's B are raised off it (none
clipped); the record says by how much, and the simulate step sharpens the model map by the same amount."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..records import read_json, write_json


def _signal_target(inputs: Mapping, resolution: float, workdir: Path) -> tuple[Path, dict]:
    """b_target locscale_signal: the LocScale map divided by the half-map FSC weight (its model-coherent part
    restored), written into `workdir`; and its record."""
    from ..global_sharpen import signal_matched
    from ..mapio import read_half_maps, read_map, write_map

    h1, h2 = read_half_maps(inputs["half1"], inputs["half2"])
    signal, info = signal_matched(read_map(inputs["target"]), h1, h2, resolution)
    target = workdir / "signal_target.mrc"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_map(target, signal, label="LocScale map / half-map FSC weight (B-refinement target)")
    return target, {"from": inputs["target"], **info}


def _place_b_level(inputs: Mapping, model_path, output, mode: str, cycle: int) -> dict:
    """Write the refined model at its B level (:mod:`.b_level`) to `output`; the record of the level."""
    import gemmi

    from ..models import write_model
    from .b_level import held_level, place_refined_b

    first = read_json(inputs["first_cycle"]) if "first_cycle" in inputs else None
    # only relative B are fixed by the data: with b_target global, cycle 1 keeps the level of the model refined
    # against the unsharpened map less the data's own blur, the blur the target removes (locscale.global_sharpen)
    blur = read_json(inputs["data_blur"]) if "data_blur" in inputs else None
    level = held_level(cycle, mode, first, blur)
    model, placed = place_refined_b(gemmi.read_structure(str(model_path)), level=level)
    write_model(model, output)
    record = {"b_level": mode if cycle > 1 else ("unsharpened refinement less the data's blur (cycle 1)"
                                                 if blur else "refined (cycle 1)"), **placed}
    if blur is not None:
        record["b_data"] = blur["b_data"]
    return record


def refine_step(inputs: Mapping, outputs: Mapping, settings: Mapping, *, cycle: int, workdir, threads: int = 1,
                log=None) -> dict:
    """Refine `inputs` ``model`` (module docstring; ``info``: cycle 0's inputs record) with the engine of
    `settings` (the config's ``refine``), each run in its own folder under `workdir`; write `outputs` ``model``
    and ``info`` (the record, which it returns)."""
    from ..engines import make_engine

    engine, workdir = make_engine(settings), Path(workdir)
    resolution = float(read_json(inputs["info"])["resolution"])
    model_in = inputs["model"]
    record = {"cycle": cycle, "model_in": model_in}
    if "xyz_target" in inputs:
        xyz = engine.run(model_in, resolution, workdir / "xyz", target_map=inputs["xyz_target"], threads=threads,
                         log=log, step="xyz")
        record.update({"xyz_target": inputs["xyz_target"], "xyz_command": xyz.record()["command"],
                       "xyz_refine_seconds": round(xyz.seconds, 3)})
        model_in = xyz.model
    target = inputs["target"]
    if "half1" in inputs:  # b_target locscale_signal: the LocScale map's model-coherent part restored
        target, record["signal_target"] = _signal_target(inputs, resolution, workdir)
    result = engine.run(model_in, resolution, workdir / "adp", target_map=target, threads=threads, log=log,
                        step="adp" if "xyz_target" in inputs else None)
    record.update(_place_b_level(inputs, result.model, outputs["model"], settings["b_level"], cycle))
    record.update({"target": str(target), **result.record()})
    record["refine_xyz"] = bool(settings["refine_xyz"])
    if "xyz_refine_seconds" in record:
        record["refine_seconds"] = round(record["refine_seconds"] + record["xyz_refine_seconds"], 3)
    write_json(outputs["info"], record)
    return record

"""The cycle's refine step, file in, file out: the configured engine (:mod:`locscale.engines`) refines the model
and :mod:`.b_level` places its B level.

B-factors are refined against ``target`` (refine.b_target); with ``xyz_target`` (refine_xyz and b_target global)
the coordinates are first refined against that map with B fixed, then B against the target with coordinates fixed,
each run in its own folder; with ``half1``/``half2`` (b_target locscale_signal) the target is the LocScale map's
model-coherent part. The B level: with b_target global, cycle 1 keeps the level of the model refined against the
unsharpened map less the data's own blur (``data_blur``, cycle 0); later cycles keep cycle 1's level with b_level
fixed (``first_cycle``). Where that level puts atoms at or below the B floor, the model's B are raised off it (none
clipped); the record says by how much, and the simulate step sharpens the model map by the same amount.

**Unchanged inputs, the same model.** A cycle that refines the same coordinates against the same maps with the
same settings as the previous cycle, with an engine whose result does not read the model's B-factors
(servalcat's B-factor refinement starts every atom at one B), would refine the same model bit for bit: with
refine.reuse_unchanged (default) it takes the previous cycle's refined model (:func:`refine_digest`, the recipe
of :mod:`locscale.validation.reuse`) and places its B level for this cycle; the record says where it came from
(``reused_from_cycle``). In the default B-factor-only cycles against the fixed global target, every cycle after
the first is such a cycle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..records import read_json, write_json
from .b_level import level_is_held


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


#: maps a refinement reads (``half1``/``half2``: b_target locscale_signal's target is made from them)
REFINE_MAPS = ("target", "xyz_target", "half1", "half2")
#: record keys that belong to one cycle (never taken from a reused record)
OWN_KEYS = ("cycle", "model_in", "warnings", "provenance", "refine_seconds")
#: record keys of the engine's result (what a reused record contributes; the B level is placed per cycle)
ENGINE_KEYS = ("engine", "refined_model", "command", "workdir", "restrained", "refine_xyz", "target",
               "signal_target")


def refine_digest(inputs: Mapping, settings: Mapping, resolution: float, engine, keep_level: bool) -> str:
    """The digest of what a refine step's engine result depends on: the coordinates of ``model`` (and its
    B-factors when the engine reads them, :meth:`~locscale.engines.base.RefinementEngine.reads_start_b`; a
    coordinate-refinement step with B fixed always does), the bytes of the maps it refines against, every
    ``refine`` setting but the threads and the B level mode (those change how fast it runs and where the level is
    placed, not what the engine returns) and whether the engine keeps the target's level (`keep_level`)."""
    import hashlib

    from ..models import b_factors, read_model
    from ..validation.reuse import file_digest, inputs_digest

    model = read_model(inputs["model"])
    kept = {k: v for k, v in settings.items() if k not in ("threads", "b_level", "reuse_unchanged")}
    extra = {"step": "refine", "resolution": float(resolution), "engine": engine.name, "settings": kept,
             "keep_level": bool(keep_level),
             "ligands": [file_digest(p) for p in settings["ligands"]]}
    if "xyz_target" in inputs or engine.reads_start_b():
        extra["b_factors"] = hashlib.sha256(b_factors(model).astype("<f8").tobytes()).hexdigest()
    return inputs_digest(model, [inputs.get(k) for k in REFINE_MAPS], extra)


def _reused(inputs: Mapping, digest: str) -> tuple[dict, int] | None:
    """The previous cycle's refine record (``previous_refine``) and the cycle that refined it, when it refined
    from the same inputs (`digest`) and its engine result is still there; else None."""
    from ..validation.reuse import read_previous, reusable

    prev = read_previous(inputs.get("previous_refine"))
    origin = reusable(prev, digest)
    if origin is None or not Path(prev.get("refined_model", "")).is_file():
        return None
    return prev, origin


def refine_step(inputs: Mapping, outputs: Mapping, settings: Mapping, *, cycle: int, workdir, threads: int = 1,
                log=None) -> dict:
    """Refine `inputs` ``model`` (module docstring; ``info``: cycle 0's inputs record) with the engine of
    `settings` (the config's ``refine``), each run in its own folder under `workdir`, or take the previous
    cycle's result (``previous_refine``, module docstring); write `outputs` ``model`` and ``info`` (the record,
    which it returns)."""
    import time

    from ..engines import make_engine
    from ..validation.reuse import DIGEST_KEY, REUSED_KEY

    t0 = time.perf_counter()
    engine, workdir = make_engine(settings), Path(workdir)
    resolution = float(read_json(inputs["info"])["resolution"])
    keep_level = not level_is_held(cycle, settings["b_level"], "data_blur" in inputs)
    digest = refine_digest(inputs, settings, resolution, engine, keep_level)
    found = _reused(inputs, digest) if settings["reuse_unchanged"] else None
    if found is not None:
        prev, origin = found
        record = {"cycle": cycle, "model_in": inputs["model"],
                  **{k: v for k, v in prev.items() if k in ENGINE_KEYS or k.startswith(("engine_", "xyz_"))}}
        record.update(_place_b_level(inputs, prev["refined_model"], outputs["model"], settings["b_level"], cycle))
        record.update({DIGEST_KEY: digest, REUSED_KEY: origin, "refine_seconds": round(time.perf_counter() - t0, 3),
                       "refine_reused": f"reused from cycle {origin}: the same coordinates, maps and settings, and "
                       "the refinement reads none of the model's B-factors (the same model, bit for bit)"})
        write_json(outputs["info"], record)
        return record
    record = _refine(engine, inputs, outputs, settings, cycle=cycle, workdir=workdir, threads=threads, log=log,
                     resolution=resolution, keep_level=keep_level)
    record[DIGEST_KEY] = digest
    write_json(outputs["info"], record)
    return record


def _refine(engine, inputs: Mapping, outputs: Mapping, settings: Mapping, *, cycle: int, workdir: Path,
            threads: int, log, resolution: float, keep_level: bool) -> dict:
    """Run the engine (module docstring) and place the B level; the record."""
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
                        step="adp" if "xyz_target" in inputs else None, keep_level=keep_level)
    record.update(_place_b_level(inputs, result.model, outputs["model"], settings["b_level"], cycle))
    record.update({"target": str(target), **result.record()})
    record["refine_xyz"] = bool(settings["refine_xyz"])
    if "xyz_refine_seconds" in record:
        record["refine_seconds"] = round(record["refine_seconds"] + record["xyz_refine_seconds"], 3)
    return record

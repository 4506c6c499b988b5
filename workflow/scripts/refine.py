"""Cycle step 1: refine the model with the configured engine (locscale.engines) and place its B level
(locscale.cycle.b_level).

B-factors are refined against ``input.target`` (refine.b_target); with ``input.xyz_target`` (refine_xyz and
b_target global) the coordinates are first refined against that map with B fixed, then B against the target with
coordinates fixed, each run in its own folder. The B level (locscale.cycle.b_level): with b_target global, cycle 1
keeps the level of the model refined against the unsharpened map less the data's own blur (``input.data_blur``,
cycle 0); later cycles keep cycle 1's level with b_level fixed (``input.first_cycle``). Where that level puts atoms
at or below the B floor, the model's B are raised off it (none clipped); the record says by how much, and the
simulate step sharpens the model map by the same amount.
"""

from _wf import read_json, resolution_of, run, write_json


def main(smk):
    from pathlib import Path

    import gemmi

    from locscale.cycle.b_level import held_level, place_refined_b
    from locscale.engines import make_engine
    from locscale.models import write_model

    engine = make_engine(smk.params.refine)
    resolution = resolution_of(smk.input.info)
    model_in = smk.input.model
    cycle = int(smk.wildcards.cycle)
    record = {"cycle": cycle, "model_in": model_in}
    if "xyz_target" in smk.input.keys():
        xyz = engine.run(model_in, resolution, Path(smk.params.workdir) / "xyz", target_map=smk.input.xyz_target,
                         threads=smk.threads, log=smk.log[0], step="xyz")
        record.update({"xyz_target": smk.input.xyz_target, "xyz_command": xyz.record()["command"],
                       "xyz_refine_seconds": round(xyz.seconds, 3)})
        model_in = xyz.model
    target = smk.input.target
    if "half1" in smk.input.keys():  # b_target locscale_signal: the LocScale map's model-coherent part restored
        from locscale.global_sharpen import signal_matched
        from locscale.mapio import read_half_maps, read_map, write_map

        h1, h2 = read_half_maps(smk.input.half1, smk.input.half2)
        signal, info = signal_matched(read_map(target), h1, h2, resolution)
        target = Path(smk.params.workdir) / "signal_target.mrc"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_map(target, signal, label="LocScale map / half-map FSC weight (B-refinement target)")
        record["signal_target"] = {"from": smk.input.target, **info}
    result = engine.run(model_in, resolution, Path(smk.params.workdir) / "adp", target_map=target,
                        threads=smk.threads, log=smk.log[0], step="adp" if "xyz_target" in smk.input.keys() else None)
    mode = smk.params.refine["b_level"]
    first = read_json(smk.input.first_cycle) if "first_cycle" in smk.input.keys() else None
    # only relative B are fixed by the data: with b_target global, cycle 1 keeps the level of the model refined
    # against the unsharpened map less the data's own blur, the blur the target removes (locscale.global_sharpen)
    blur = read_json(smk.input.data_blur) if "data_blur" in smk.input.keys() else None
    level = held_level(cycle, mode, first, blur)
    model, placed = place_refined_b(gemmi.read_structure(str(result.model)), level=level)
    write_model(model, smk.output.model)
    record.update({"b_level": mode if cycle > 1 else ("unsharpened refinement less the data's blur (cycle 1)"
                                                      if blur else "refined (cycle 1)"), **placed})
    if blur is not None:
        record["b_data"] = blur["b_data"]
    record.update({"target": str(target), **result.record()})
    record["refine_xyz"] = bool(smk.params.refine["refine_xyz"])
    if "xyz_refine_seconds" in record:
        record["refine_seconds"] = round(record["refine_seconds"] + record["xyz_refine_seconds"], 3)
    write_json(smk.output.info, record)
    print(record)


run(main)

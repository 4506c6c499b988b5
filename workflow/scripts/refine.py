"""Cycle step 1: refine the model with the configured engine (locscale.engines).

B-factors are refined against ``input.target`` (refine.b_target); with ``input.xyz_target`` (refine_xyz and
b_target global) the coordinates are first refined against that map with B fixed, then B against the target with
coordinates fixed, each run in its own folder. With b_target global, cycle 1's B level is the one of the model
refined against the unsharpened map less the data's own blur (``input.data_blur``, cycle 0); later cycles keep
their input's level with b_level fixed.
"""

from _wf import read_json, resolution_of, run, write_json


def main(smk):
    from pathlib import Path

    from locscale.engines import make_engine
    from locscale.models import read_model, write_model

    engine = make_engine(smk.params.refine)
    resolution = resolution_of(smk.input.info)
    model_in = smk.input.model
    record = {"cycle": int(smk.wildcards.cycle), "model_in": model_in}
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
    refined = read_model(result.model)
    if "data_blur" in smk.input.keys():
        # only relative B are fixed by the data: cycle 1 keeps the B level of the model refined against the
        # unsharpened map less the data's own blur, the blur the target removes (its best-ordered atoms at B = 0).
        # Servalcat's level against a sharpened, FSC-weighted target is higher, the more so at lower resolution.
        from locscale.models import b_factors, shift_b_to_mean

        blur = read_json(smk.input.data_blur)
        record.update({"b_level": "unsharpened refinement less the data's blur (cycle 1)",
                       "b_mean_refined": float(b_factors(refined).mean()), "b_data": blur["b_data"]})
        refined, record["b_shift_applied"] = shift_b_to_mean(refined, blur["b_mean_reference"])
    elif smk.params.refine["b_level"] == "fixed" and int(smk.wildcards.cycle) > 1:
        # the overall B level is not determined by the data (README): cycles after the first keep the mean B of
        # the model that enters them and refine only the relative B-factors (and coordinates)
        from locscale.models import b_factors, shift_b_to_mean

        level = float(b_factors(read_model(smk.input.model)).mean())
        record.update({"b_level": "fixed", "b_mean_refined": float(b_factors(refined).mean())})
        refined, record["b_shift_applied"] = shift_b_to_mean(refined, level)
    else:
        record["b_level"] = "free" if int(smk.wildcards.cycle) > 1 else "refined (cycle 1)"
    write_model(refined, smk.output.model)
    record.update({"target": str(target), **result.record()})
    record["refine_xyz"] = bool(smk.params.refine["refine_xyz"])
    if "xyz_refine_seconds" in record:
        record["refine_seconds"] = round(record["refine_seconds"] + record["xyz_refine_seconds"], 3)
    write_json(smk.output.info, record)
    print(record)


run(main)

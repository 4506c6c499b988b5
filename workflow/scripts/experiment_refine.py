"""Experiments: refine the true model's B-factors (coordinates fixed), from a uniform start, as the workflow does
(refine.target ``global``, the default): against the unsharpened full map first (its 1st percentile is the data's
own blur, locscale.global_sharpen.data_blur), then against the cycle-0 target sharpened by that blur and
FSC-weighted, at the level of the first refinement less the blur; or against the raw half maps (``half_maps``: B
then carries the data's global falloff too)."""

from pathlib import Path

from _wf import run, write_json


def main(smk):
    from locscale.experiments.bench import global_target, refinement_engine
    from locscale.global_sharpen import data_blur
    from locscale.mapio import read_map, write_map
    from locscale.models import b_factors, read_model, set_uniform_b, shift_b_to_mean, write_model

    cfg = smk.params.refine
    work = Path(smk.params.workdir)
    start = work.parent / "start.pdb"
    write_model(set_uniform_b(read_model(smk.input.model_true), float(cfg["start_b"])), start)
    engine = refinement_engine(cfg)
    resolution = float(__import__("json").loads(Path(smk.input.json).read_text())["noise"]["requested_resolution"])
    target = cfg["target"]
    record = {"start_b": cfg["start_b"], "resolution": resolution, "target": target}
    if target == "global":
        h1, h2 = read_map(smk.input.half1), read_map(smk.input.half2)
        raw = engine.run(start, resolution, work / "unsharpened", target_map=smk.input.full, threads=smk.threads)
        blur = data_blur(b_factors(read_model(raw.model)))
        gmap, _ = global_target(h1, h2, resolution, blur["b_data"])
        path = work.parent / "SIMULATED_global_target.mrc"
        write_map(path, gmap, label="SIMULATED phantom: FSC-weighted global target")
        result = engine.run(start, resolution, work / "target", target_map=path, threads=smk.threads)
        refined, shift = shift_b_to_mean(read_model(result.model), blur["b_mean_reference"])
        record.update(data_blur=blur, b_shift_applied=shift)
    else:
        result = engine.run(start, resolution, work, half_maps=[smk.input.half1, smk.input.half2],
                            threads=smk.threads)
        refined = read_model(result.model)
    write_model(refined, smk.output.model)
    write_json(smk.output.info, {**record, **result.record()})


run(main)

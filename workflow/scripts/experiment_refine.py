"""Experiments: refine the true model's B-factors (coordinates fixed), from a uniform start, against the target
the workflow uses (refine.target: ``global``, the FSC-weighted globally sharpened full map of cycle 0; the
default) or against the raw half maps (``half_maps``: B then carries the data's global falloff too)."""

from pathlib import Path

from _wf import run, write_json


def main(smk):
    from locscale.experiments.bench import global_target, refinement_engine
    from locscale.mapio import read_map, write_map
    from locscale.models import read_model, set_uniform_b, write_model

    cfg = smk.params.refine
    start = Path(smk.params.workdir).parent / "start.pdb"
    write_model(set_uniform_b(read_model(smk.input.model_true), float(cfg["start_b"])), start)
    engine = refinement_engine(cfg)
    resolution = float(__import__("json").loads(Path(smk.input.json).read_text())["noise"]["requested_resolution"])
    target = cfg["target"]
    if target == "global":
        gmap, _ = global_target(read_map(smk.input.half1), read_map(smk.input.half2), resolution)
        path = Path(smk.params.workdir).parent / "SIMULATED_global_target.mrc"
        write_map(path, gmap, label="SIMULATED phantom: FSC-weighted global target")
        result = engine.run(start, resolution, smk.params.workdir, target_map=path, threads=smk.threads)
    else:
        result = engine.run(start, resolution, smk.params.workdir, half_maps=[smk.input.half1, smk.input.half2],
                            threads=smk.threads)
    write_model(read_model(result.model), smk.output.model)
    write_json(smk.output.info, {"start_b": cfg["start_b"], "resolution": resolution, "target": target,
                                 **result.record()})


run(main)

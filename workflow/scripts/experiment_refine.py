"""Experiments: refine the true model's B-factors (coordinates fixed) against the phantom's half maps."""

from pathlib import Path

from _wf import run, write_json


def main(smk):
    from locscale.models import read_model, set_uniform_b, write_model
    from locscale.refine import ServalcatEngine, resolve_monlib

    cfg = smk.params.refine
    start = Path(smk.params.workdir).parent / "start.pdb"
    write_model(set_uniform_b(read_model(smk.input.model_true), float(cfg["start_b"])), start)
    engine = ServalcatEngine(monlib=resolve_monlib(cfg.get("monlib")), refine_xyz=False, ncycle=cfg.get("ncycle"))
    resolution = float(__import__("json").loads(Path(smk.input.json).read_text())["noise"]["requested_resolution"])
    result = engine.run(start, resolution, smk.params.workdir, half_maps=[smk.input.half1, smk.input.half2],
                        threads=smk.threads)
    write_model(read_model(result.model), smk.output.model)
    write_json(smk.output.info, {"start_b": cfg["start_b"], "resolution": resolution, **result.record()})


run(main)

"""Experiments: FSCwork / FSCtest of the refined phantom model by the shake protocol."""

from pathlib import Path

from _wf import run


def main(smk):
    import json

    from locscale.crossval import cross_validate, write_crossval
    from locscale.models import read_model
    from locscale.refine import resolve_monlib

    s, cfg = smk.params.settings, smk.params.refine
    resolution = float(json.loads(Path(smk.input.json).read_text())["noise"]["requested_resolution"])
    monlib = resolve_monlib(cfg.get("monlib"), restrained=cfg.get("restrained", True))
    cv = cross_validate(read_model(smk.input.refined), smk.input.half1, smk.input.half2, resolution,
                        smk.params.workdir, shake=float(s["shake"]), seed=int(s["seed"]),
                        monlib=None if monlib is None else str(monlib), ncycle=cfg.get("ncycle"))
    write_crossval(cv, smk.output.table, smk.output.plot, title=f"SIMULATED phantom {smk.wildcards.ph}")
    print(cv.record())


run(main)

"""Experiments: FSCwork / FSCtest of the refined phantom model by the shake protocol."""

from pathlib import Path

from _wf import run


def main(smk):
    import json

    from locscale.experiments.bench import refinement_engine
    from locscale.models import read_model
    from locscale.validation.crossval import cross_validate, write_crossval

    s, cfg = smk.params.settings, smk.params.refine
    resolution = float(json.loads(Path(smk.input.json).read_text())["noise"]["requested_resolution"])
    cv = cross_validate(read_model(smk.input.refined), smk.input.half1, smk.input.half2, resolution,
                        smk.params.workdir, engine=refinement_engine(cfg), shake=float(s["shake"]),
                        seed=int(s["seed"]))
    write_crossval(cv, smk.output.table, smk.output.plot, title=f"SIMULATED phantom {smk.wildcards.ph}")
    print(cv.record())


run(main)

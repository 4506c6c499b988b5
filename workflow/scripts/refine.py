"""Cycle step 1: refine the model against the current target with the configured engine (locscale.refine)."""

from _wf import resolution_of, run, write_json


def main(smk):
    from locscale.models import read_model, write_model
    from locscale.refine import make_engine

    engine = make_engine(smk.params.refine)
    result = engine.run(smk.input.model, resolution_of(smk.input.info), smk.params.workdir,
                        target_map=smk.input.target, threads=smk.threads, log=smk.log[0])
    write_model(read_model(result.model), smk.output.model)
    record = {"cycle": int(smk.wildcards.cycle), "model_in": smk.input.model, "target": smk.input.target,
              **result.record()}
    write_json(smk.output.info, record)
    print(record)


run(main)

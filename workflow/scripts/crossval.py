"""FSCwork / FSCtest of the cycle's refined model by the shake protocol
(locscale.validation.crossval.cross_validate)."""

from _wf import resolution_of, run, write_json


def main(smk):
    from locscale.engines import make_engine
    from locscale.models import read_model
    from locscale.validation.crossval import cross_validate, write_crossval

    cv_cfg, refine = smk.params.crossval, smk.params.refine
    cv = cross_validate(read_model(smk.input.model), smk.input.half1, smk.input.half2,
                        resolution_of(smk.input.info), smk.params.workdir, engine=make_engine(refine),
                        shake=cv_cfg["shake"], seed=cv_cfg["seed"], refine_xyz=refine["refine_xyz"])
    write_crossval(cv, smk.output.curve, smk.output.plot, title=f"cycle {smk.wildcards.cycle}")
    write_json(smk.output.info, {"cycle": int(smk.wildcards.cycle), **cv.record()})
    print(cv.record())


run(main)

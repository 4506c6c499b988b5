"""FSCwork / FSCtest of the cycle's refined model by the shake protocol (locscale.validation.crossval), or the
previous cycle's when the coordinates, half maps and settings are unchanged (locscale.validation.reuse)."""

from _wf import resolution_of, run, write_json


def main(smk):
    from locscale.engines import make_engine
    from locscale.validation.crossval import write_curve
    from locscale.validation.reuse import cross_validate_reusing

    cv_cfg, refine = smk.params.crossval, smk.params.refine
    previous = (smk.input.previous_info, smk.input.previous_curve) if "previous_info" in smk.input.keys() else None
    record, curve, _ = cross_validate_reusing(
        smk.input.model, smk.input.half1, smk.input.half2, resolution_of(smk.input.info), smk.params.workdir,
        cycle=int(smk.wildcards.cycle), previous=previous, engine=make_engine(refine), shake=cv_cfg["shake"],
        seed=cv_cfg["seed"], refine_xyz=refine["refine_xyz"], threads=smk.threads)
    write_curve(record, curve, smk.output.curve, smk.output.plot, title=f"cycle {smk.wildcards.cycle}")
    write_json(smk.output.info, record)
    print(record)


run(main)

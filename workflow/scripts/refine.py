"""Cycle step 1: refine the model and place its B level (locscale.cycle.refinement.refine_step)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.refinement import refine_step

    print(refine_step(named(smk.input), named(smk.output), smk.params.refine, cycle=int(smk.wildcards.cycle),
                      workdir=smk.params.workdir, threads=smk.threads, log=smk.log[0]))


run(main)

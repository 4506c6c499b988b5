"""Experiments: the true model's B refined as the workflow does (locscale.experiments.refine.refine_phantom)."""

from _wf import named, run


def main(smk):
    from locscale.experiments.refine import refine_phantom

    refine_phantom(named(smk.input), named(smk.output), smk.params.refine, workdir=smk.params.workdir,
                   threads=smk.threads)


run(main)

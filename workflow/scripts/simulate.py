"""Cycle step 2: the refined model's map on the original map's grid, sharpened by the refine step's B raise; the
previous cycle's when the model is the same (locscale.cycle.steps.simulate_step)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.steps import simulate_step

    print(simulate_step(named(smk.input), named(smk.output), cycle=int(smk.wildcards.cycle),
                        reuse=smk.params.reuse))


run(main)

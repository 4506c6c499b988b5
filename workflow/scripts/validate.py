"""Cycle step 4 (and cycle 0): validation against the ORIGINAL map, with the model validation of rule
model_validation merged in (locscale.cycle.steps.validate_step)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.steps import validate_step

    print(validate_step(named(smk.input), named(smk.output), cycle=int(smk.params.cycle)))


run(main)

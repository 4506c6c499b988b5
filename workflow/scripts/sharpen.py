"""Cycle step 3: LocScale of the ORIGINAL map against the cycle's model map; with the hybrid reference, against the
model map plus the pseudo-atoms' map, in a mask around both (locscale.cycle.steps.sharpen_step)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.steps import sharpen_step

    print(sharpen_step(named(smk.input), named(smk.output), smk.params.sharpen, cycle=int(smk.wildcards.cycle),
                       threads=smk.threads))


run(main)

"""Cycle step 3a (hybrid reference): pseudo-atoms where the original map has significant density the cycle's model
does not explain, their B and the unexplained-density mask (locscale.cycle.steps.pseudo_atoms_step)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.steps import pseudo_atoms_step

    print(pseudo_atoms_step(named(smk.input), named(smk.output), smk.params.sharpen, smk.params.refine,
                            cycle=int(smk.wildcards.cycle), workdir=smk.params.workdir, threads=smk.threads,
                            log=smk.log[0]))


run(main)

"""Cycle 0: check the inputs; write the full map, the model in its frame, the kurtosis mask (locscale.cycle.inputs)."""

from _wf import named, run


def main(smk):
    from locscale.cycle.inputs import prepare_inputs

    print(prepare_inputs(named(smk.input), named(smk.output), smk.params.dataset, name=smk.wildcards.ds))


run(main)

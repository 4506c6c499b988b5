"""Experiments: local resolution (windowed half-map FSC) as a map and per residue, against refined B
(locscale.experiments.local_resolution)."""

from _wf import run


def main(smk):
    from locscale.experiments.local_resolution import run_local_resolution

    print(run_local_resolution(smk.input.json, smk.input.refined, smk.output.map, smk.output.table,
                               smk.output.plot, phantom=smk.wildcards.ph, settings=smk.params.settings,
                               window=smk.params.window))


run(main)

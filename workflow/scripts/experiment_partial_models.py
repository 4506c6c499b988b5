"""Experiments: partial models (a chain, 20 % in gaps, a domain removed) scored by region against the truth: LocScale
with the partial model, with the hybrid reference, the global target and LocScale with the complete model; the
negative control counts pseudo-atoms where the data lack the removed part too
(locscale.experiments.partial_models)."""

from _wf import run


def main(smk):
    from locscale.experiments.partial_models import run_partial_models

    table = run_partial_models(smk.input.json, smk.input.refined, smk.output.table, smk.output.plot,
                               phantom=smk.wildcards.ph, settings=smk.params.settings, window=smk.params.window,
                               mode=smk.params.mode, reference=smk.params.reference)
    print(table.to_string())


run(main)

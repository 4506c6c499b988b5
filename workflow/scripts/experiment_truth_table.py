"""Experiments: input / global target / best global B / local Guinier / LocScale (all modes but compat; true and
refined B) vs the truth, over the envelope and by region (locscale.experiments.truth_table)."""

from _wf import run


def main(smk):
    from locscale.experiments.truth_table import run_truth_table

    table = run_truth_table(smk.input.json, smk.input.model, smk.input.refined, smk.input.refined_info,
                            smk.output.table, smk.output.scan, smk.output.plot, phantom=smk.wildcards.ph,
                            window=smk.params.window)
    print(table.to_string())


run(main)

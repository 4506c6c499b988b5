"""Experiments: model completion -- CC to truth beyond an incomplete model, per cycle (optionally with servalcat
B refinement before each next cycle against the fixed cycle-0 global target or the cycle's LocScale map, and a
surrogate builder that adds back what the cycle's LocScale map shows; locscale.experiments.model_completion)."""

from _wf import run


def main(smk):
    from locscale.experiments.model_completion import run_model_completion

    table = run_model_completion(smk.input.json, smk.input.model, smk.input.refined, smk.output.table,
                                 smk.output.plot, phantom=smk.wildcards.ph, settings=smk.params.settings,
                                 refine_config=smk.params.refine, mode=smk.params.mode, window=smk.params.window,
                                 reference=smk.params.reference, workdir=smk.params.workdir, threads=smk.threads)
    print(table.to_string())


run(main)

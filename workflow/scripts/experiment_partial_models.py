"""Experiments: partial models (a chain, 20 % in gaps, a domain removed) scored by region against the truth: LocScale
with the partial model, with the hybrid reference, the global target and LocScale with the complete model; the
negative control counts pseudo-atoms where the data lack the removed part too."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.experiments.partial_models import partial_models, plot_partial_models
    from locscale.models import read_model

    s = smk.params.settings
    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window, mode=smk.params.mode)
    model = bench.structure if smk.params.reference == "truth" else read_model(smk.input.refined)
    table = partial_models(bench, model, kinds=s["kinds"], fraction=float(s["fraction"]), fdr=float(s["fdr"]))
    write_table(table, smk.output.table, {"phantom": smk.wildcards.ph, "mode": bench.mode,
                                          "window_voxels": bench.window, "reference": smk.params.reference,
                                          "fraction": s["fraction"], "fdr": s["fdr"]})
    plot_partial_models(table, smk.output.plot, title=f"partial models, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)

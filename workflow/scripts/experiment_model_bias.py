"""Experiments: model-bias controls (F->A, V->W, poly-Ala, perturbed coordinates)."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.experiments.model_bias import model_bias_controls, plot_model_bias
    from locscale.models import read_model

    s = smk.params.settings
    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window, mode=smk.params.mode)
    ref = bench.reference_structure(smk.params.reference, read_model(smk.input.refined))
    table = model_bias_controls(bench, ref, truncate=s.get("truncate"), mutate=s.get("mutate"),
                                perturb_rms=[float(r) for r in s["perturb_rms"]], seed=int(s["seed"]))
    write_table(table, smk.output.table, {"phantom": smk.wildcards.ph, "mode": bench.mode,
                                          "window_voxels": bench.window, "reference": smk.params.reference})
    plot_model_bias(table, smk.output.plot, title=f"model-bias controls, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)

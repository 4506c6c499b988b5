"""Experiments: reference B-factors set to uniform values vs refined and true B."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.b_misestimation import b_misestimation, plot_b_misestimation
    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.models import read_model

    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window, mode=smk.params.mode)
    table = b_misestimation(bench, [float(b) for b in smk.params.settings["uniform_b"]],
                            refined=read_model(smk.input.refined))
    write_table(table, smk.output.table, {"phantom": smk.wildcards.ph, "mode": bench.mode,
                                          "window_voxels": bench.window})
    plot_b_misestimation(table, smk.output.plot, title=f"reference B, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)

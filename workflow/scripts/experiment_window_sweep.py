"""Experiments: LocScale window sweep (8 voxels to ~45 Å): in-mask kurtosis and truth scores."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.experiments.window_sweep import default_sweep_windows, plot_window_sweep, window_sweep
    from locscale.models import read_model

    s = smk.params.settings
    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window, mode=smk.params.mode)
    ref = bench.reference_structure(smk.params.reference, read_model(smk.input.refined))
    windows = default_sweep_windows(bench.half1.apix, float(s["max_angstrom"]), int(s["n_windows"]))
    table = window_sweep(bench, ref, windows, progress=False)
    write_table(table, smk.output.table, {"phantom": smk.wildcards.ph, "mode": bench.mode,
                                          "reference": smk.params.reference})
    plot_window_sweep(table, smk.output.plot, title=f"window sweep, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)

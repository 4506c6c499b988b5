"""Experiments: local resolution (windowed half-map FSC) as a map and per residue, against refined B."""

from pathlib import Path

from _wf import run


def main(smk):
    import numpy as np

    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.experiments.local_resolution import plot_local_resolution
    from locscale.localres import local_resolution, local_resolution_b_correlation, per_residue_local_resolution
    from locscale.mapio import write_map
    from locscale.models import read_model

    thr = smk.params.settings["threshold"]
    thr = thr if thr == "3sigma" else float(thr)
    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window)
    lr = local_resolution(bench.half1, bench.half2, window=bench.window, mask=bench.eval_mask, threshold=thr,
                          progress=False)
    write_map(smk.output.map, lr.map, label=f"SIMULATED phantom local resolution (FSC {thr}), Angstrom")
    table = per_residue_local_resolution(lr, read_model(smk.input.refined), bench.half1)
    if bench.blurred is not None:
        blur = per_residue_local_resolution(lr, bench.blurred, bench.half1)
        table["signal_b"] = blur["b_mean"].to_numpy()
    corr = local_resolution_b_correlation(table)
    corr_true = local_resolution_b_correlation(table.assign(b_mean=table.get("signal_b", np.nan)))
    meta = {"phantom": smk.wildcards.ph, **lr.summary(), "vs_refined_b": corr, "vs_true_blur_b": corr_true}
    write_table(table, smk.output.table, meta)
    plot_local_resolution(table, smk.output.plot,
                          title=f"local resolution vs B, SIMULATED phantom {smk.wildcards.ph}")
    print(meta)


run(main)

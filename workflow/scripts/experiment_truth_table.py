"""Experiments: input / global target / best global B / local Guinier / LocScale (all modes but compat; true and
refined B) vs the truth, over the envelope and by region."""

from pathlib import Path

from _wf import run


def main(smk):
    from locscale.experiments.bench import Bench
    from locscale.experiments.common import write_table
    from locscale.experiments.truth_table import plot_truth_curves
    from locscale.models import read_model
    from locscale.phantoms.truth import truth_table
    from locscale.records import read_json

    bench = Bench.from_dir(Path(smk.input.json).parent, window=smk.params.window)
    refs = {"truth_b": bench.reference_map(bench.structure),
            "refined_b": bench.reference_map(read_model(smk.input.refined))}
    blur = read_json(smk.input.refined_info).get("data_blur")
    table, maps, curves = truth_table(bench.half1, bench.half2, bench.truth, bench.resolution, refs,
                                      window=smk.params.window, eval_mask=bench.eval_mask,
                                      scale_mask=bench.scale_mask, structure=bench.structure,
                                      model=read_model(smk.input.model),
                                      global_bfactor=None if blur is None else -blur["b_data"])
    meta = {"phantom": smk.wildcards.ph, "resolution": bench.resolution, "window_voxels": bench.window,
            "eval_mask_voxels": int(bench.eval_mask.sum()), "scale_mask_voxels": int(bench.scale_mask.sum())}
    write_table(table, smk.output.table, meta)
    write_table(table.attrs["b_scan"], smk.output.scan, meta)
    plot_truth_curves(curves, smk.output.plot, bench.resolution,
                      title=f"FSC to truth, SIMULATED phantom {smk.wildcards.ph}")
    print(table.to_string())


run(main)

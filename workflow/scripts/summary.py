"""The per-cycle table (TSV) and plots of cycles 0 ... last (rows: locscale.cycle.table;
plots: locscale.cycle.report)."""

from pathlib import Path

from _wf import read_json, run, write_json


def main(smk):
    import numpy as np
    import pandas as pd

    from locscale.cycle import report
    from locscale.cycle.selection import choose_final_cycle
    from locscale.cycle.table import TIMED_STEPS, finish_rows, read_cycle_row
    from locscale.mapio import read_map
    from locscale.metrics import radial_profile
    from locscale.models import b_factors, read_model
    from locscale.validation.model import read_per_residue

    schema = Path(__file__).resolve().parents[1] / "schemas" / "cycle_row.schema.yaml"
    inp, last = smk.input, int(smk.params.last)
    info = read_json(inp.inputs)
    rows, curves, bvalues, residues, by_cycle = [], {}, {}, {}, {}
    for c in range(last + 1):
        key = f"{c:02d}"
        label = "cycle 0 (input)" if c == 0 else f"cycle {c}"
        steps = {}
        if c >= 1:
            steps = {k: inp[f"{k}_{key}"] for k in ("refine", "sharpen", "converged")}
            steps["benchmarks"] = {s: inp[f"bench_{s}_{key}"] for s in TIMED_STEPS}
            if f"crossval_{key}" in inp.keys():
                steps["crossval"] = inp[f"crossval_{key}"]
            if f"completion_{key}" in inp.keys():
                steps["completion"] = inp[f"completion_{key}"]
        rows.append(read_cycle_row(c, inp[f"metrics_{key}"], resolution_source=info["resolution_source"], **steps))
        curves[label] = pd.read_csv(inp[f"fsc_{key}"], sep="\t")
        bvalues[label] = b_factors(read_model(inp[f"model_{key}"]))
        residues[label] = by_cycle[c] = read_per_residue(inp[f"residues_{key}"])
    selection = choose_final_cycle(rows, smk.params.selection, residues=by_cycle)
    finish_rows(rows, selection, smk.params.config_summary["refine"]["b_target"], schema)
    write_json(smk.output.selection, {**selection.record(), "last_cycle": last})
    print(f"final cycle: {selection.reason}")
    table = report.write_cycle_table(rows, smk.output.table)
    print(table.to_string())

    resolution = float(info["resolution"])
    report.plot_metrics_vs_cycle(table, smk.output.metrics, final_cycle=selection.cycle)
    report.plot_fsc_curves(curves, smk.output.fsc, resolution=resolution)
    report.plot_bfactor_distributions(bvalues, smk.output.bfactors)
    report.plot_per_residue(residues, smk.output.per_residue)
    original, global_map = read_map(inp.map), read_map(inp.global_map)
    apix = original.apix
    profiles = {"original": radial_profile(original.data, apix), "global sharpened": radial_profile(global_map.data,
                                                                                                    apix)}
    for c in range(1, last + 1):
        profiles[f"LocScale cycle {c}"] = radial_profile(read_map(inp[f"locscale_{c:02d}"]).data, apix)
    report.plot_radial_profiles(profiles, smk.output.radial, resolution=resolution, normalise=True)
    sections = {"original": original, "global sharpened": global_map}
    for c in sorted({1, selection.cycle, last} - {0}):
        final = " (final)" if c == selection.cycle else ""
        sections[f"LocScale cycle {c}{final}"] = read_map(inp[f"locscale_{c:02d}"])
    report.plot_central_sections(sections, smk.output.sections)
    print(f"{len(rows)} rows; finite metric values: {int(np.isfinite(table.select_dtypes('number')).sum().sum())}")


run(main)

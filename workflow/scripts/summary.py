"""The per-cycle table (TSV) and plots of cycles 0 ... last (locscale.report)."""

from _wf import read_json, run, write_json

# columns copied from each step's record into the cycle table (prefix added where names would clash)
REFINE_KEYS = {"engine": "engine", "restrained": "restrained", "refine_xyz": "refine_xyz",
               "engine_fsc_average_target": "engine_fsc_average_target", "engine_cycles": "engine_cycles"}
SHARPEN_KEYS = {"mode": "sharpen_mode", "window_voxels": "window_voxels", "window_angstrom": "window_angstrom",
                "voxels_scaled": "voxels_scaled"}
CROSSVAL_KEYS = {"fsc_work_average": "fsc_work", "fsc_test_average": "fsc_test",
                 "fsc_work_test_gap": "fsc_work_test_gap"}


def validate_row(row: dict) -> None:
    """Check a row against workflow/schemas/cycle_row.schema.yaml (the table's documented columns)."""
    from pathlib import Path

    import jsonschema
    import yaml

    schema = yaml.safe_load((Path(__file__).parents[1] / "schemas" / "cycle_row.schema.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(row)


def main(smk):
    import numpy as np
    import pandas as pd

    from locscale import report
    from locscale.mapio import read_map
    from locscale.metrics import radial_profile
    from locscale.model_validation import read_per_residue
    from locscale.models import b_factors, read_model
    from locscale.selection import choose_final_cycle

    inp, last = smk.input, int(smk.params.last)
    info = read_json(inp.inputs)
    rows, curves, bvalues, residues = [], {}, {}, {}
    for c in range(last + 1):
        key = f"{c:02d}"
        label = "cycle 0 (input)" if c == 0 else f"cycle {c}"
        row = dict(read_json(inp[f"metrics_{key}"]))
        row.pop("provenance", None)  # the table's columns are the metrics (each record keeps its provenance)
        row["cycle"] = c
        row["resolution_source"] = info["resolution_source"]
        if c >= 1:
            ref, shp, conv = (read_json(inp[f"{k}_{key}"]) for k in ("refine", "sharpen", "converged"))
            row.update({new: ref.get(old) for old, new in REFINE_KEYS.items()})
            row.update({new: shp.get(old) for old, new in SHARPEN_KEYS.items()})
            row["convergence"] = conv["status"]
            row["convergence_reason"] = conv["reason"]
            for step in ("refine", "simulate", "sharpen", "validate"):
                row[f"time_{step}_s"] = float(pd.read_csv(inp[f"bench_{step}_{key}"], sep="\t")["s"].iloc[0])
            if f"crossval_{key}" in inp.keys():
                cv = read_json(inp[f"crossval_{key}"])
                row.update({new: cv.get(old) for old, new in CROSSVAL_KEYS.items()})
        rows.append(row)
        curves[label] = pd.read_csv(inp[f"fsc_{key}"], sep="\t")
        bvalues[label] = b_factors(read_model(inp[f"model_{key}"]))
        residues[label] = read_per_residue(inp[f"residues_{key}"])
    selection = choose_final_cycle(rows, smk.params.selection)
    for row in rows:
        row["b_target"] = smk.params.config_summary["refine"]["b_target"]
        row["flags"] = "; ".join(selection.flags.get(row["cycle"], [])) or "none"
        row["final"] = row["cycle"] == selection.cycle
        row["warnings"] = "; ".join(row.get("warnings") or []) or "none"
        validate_row(row)
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

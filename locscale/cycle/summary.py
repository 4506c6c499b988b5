"""The summary of cycles 0 ... last (rule summary): the per-cycle table (rows: :mod:`.table`), the final-cycle
choice (:mod:`.selection`) and the plots (:mod:`.report`), from the named inputs of
:func:`locscale.cycle.files.summary_inputs`."""

from __future__ import annotations

from collections.abc import Mapping

from ..records import read_json, write_json
from . import report
from .files import summary_cycle_files
from .selection import choose_final_cycle
from .table import finish_rows, read_cycle_row

#: the cycle's files that go into its table row (besides metrics.json)
_ROW_FILES = ("refine", "sharpen", "converged", "benchmarks", "crossval", "completion")


def _label(cycle: int) -> str:
    return "cycle 0 (input)" if cycle == 0 else f"cycle {cycle}"


def _read_cycles(inputs: Mapping, last: int, resolution_source: str):
    """Per cycle 0 ... `last`: its table row, FSC curve, B-factors and per-residue table."""
    import pandas as pd

    from ..models import b_factors, read_model
    from ..validation.model import read_per_residue

    rows, curves, bvalues, residues = [], {}, {}, {}
    for c in range(last + 1):
        files = summary_cycle_files(inputs, c)
        steps = {k: files[k] for k in _ROW_FILES if k in files}
        rows.append(read_cycle_row(c, files["metrics"], resolution_source=resolution_source, **steps))
        curves[_label(c)] = pd.read_csv(files["fsc"], sep="\t")
        bvalues[_label(c)] = b_factors(read_model(files["model"]))
        residues[c] = read_per_residue(files["residues"])
    return rows, curves, bvalues, residues


def _plot_maps(inputs: Mapping, outputs: Mapping, last: int, final: int, resolution: float) -> None:
    """Radial profiles of the original map, the global target and every cycle's LocScale map; central sections
    of the first, the final and the last cycle's."""
    from ..mapio import read_map
    from ..metrics import radial_profile

    original, global_map = read_map(inputs["map"]), read_map(inputs["global_map"])
    apix = original.apix
    locscale = {c: summary_cycle_files(inputs, c)["locscale"] for c in range(1, last + 1)}
    profiles = {"original": radial_profile(original.data, apix),
                "global sharpened": radial_profile(global_map.data, apix)}
    profiles.update({f"LocScale cycle {c}": radial_profile(read_map(p).data, apix) for c, p in locscale.items()})
    report.plot_radial_profiles(profiles, outputs["radial"], resolution=resolution, normalise=True)
    sections = {"original": original, "global sharpened": global_map}
    for c in sorted({1, final, last} - {0}):
        sections[f"LocScale cycle {c}{' (final)' if c == final else ''}"] = read_map(locscale[c])
    report.plot_central_sections(sections, outputs["sections"])


def write_summary(inputs: Mapping, outputs: Mapping, *, last: int, selection_settings: Mapping, b_target: str,
                  schema_path=None):
    """Read cycles 0 ... `last`, choose the final cycle (`selection_settings`: the config's ``selection``), write
    the table (``table``), the selection (``selection``) and the plots (``metrics``, ``fsc``, ``bfactors``,
    ``per_residue``, ``radial``, ``sections``) of `outputs`; returns the table."""
    import numpy as np

    info = read_json(inputs["inputs"])
    rows, curves, bvalues, residues = _read_cycles(inputs, last, info["resolution_source"])
    selection = choose_final_cycle(rows, selection_settings, residues=residues)
    finish_rows(rows, selection, b_target, schema_path)
    write_json(outputs["selection"], {**selection.record(), "last_cycle": last})
    print(f"final cycle: {selection.reason}")
    table = report.write_cycle_table(rows, outputs["table"])
    print(table.to_string())
    resolution = float(info["resolution"])
    report.plot_metrics_vs_cycle(table, outputs["metrics"], final_cycle=selection.cycle)
    report.plot_fsc_curves(curves, outputs["fsc"], resolution=resolution)
    report.plot_bfactor_distributions(bvalues, outputs["bfactors"])
    report.plot_per_residue({_label(c): t for c, t in residues.items()}, outputs["per_residue"])
    _plot_maps(inputs, outputs, last, selection.cycle, resolution)
    print(f"{len(rows)} rows; finite metric values: {int(np.isfinite(table.select_dtypes('number')).sum().sum())}")
    return table

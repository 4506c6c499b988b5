"""locscale.cycle.table and the metric registry locscale.cycle.registry: a cycle's row from its records, the row
schema, the figure's panels and the convergence defaults all follow the registry (a new metric is one entry)."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from locscale.cycle import convergence, report
from locscale.cycle import registry as cycle_metrics
from locscale.cycle import table as cycle_table
from locscale.cycle.registry import Metric
from locscale.cycle.selection import Selection
from locscale.errors import LocScaleInputError
from locscale.validation import model as model_validation

EXPECTED_PANELS = [  # the figure's panels on the bundled example (and before the registry), in order
    "RSCC vs original map", "FSCaverage (model vs original map)", "Kurtosis in fixed envelope", "Atomic B-factors",
    "Sharpness vs global target (> 0: blurrier)", "Phantom: sharpened map vs truth", "Model: outliers (%)",
    "Model: Ramachandran favoured", "Model: geometry RMSZ", "Model: atom overlaps (Coot)",
    "Model vs original map: EMRinger", "Model vs original map: median Q-score", "Cross-validation (shaken model)",
    "FSCwork − FSCtest (overfitting gap)"]


def _metrics(c: int) -> dict:
    rec = {"resolution": 3.2, "cc_mask": 0.7 + 0.01 * c, "cc_box": 0.6, "cc_residue_median": 0.65,
           "fsc_average": 0.68 + 0.02 * c, "fsc05_resolution": 4.1, "kurtosis": 3.0 - 0.1 * c,
           "kurtosis_mask_voxels": 1000, "b_mean": 40.0 + c, "b_median": 38.0 + c, "b_std": 10.0 + c,
           "b_min": 10.0, "b_max": 90.0, "sharpness_b_vs_global": 1.5 * c, "cc_truth": 0.8, "fsc_average_truth": 0.7,
           **{k: 1.0 + c for k in model_validation.SUMMARY_KEYS}, "model_validation_tools": "coot 1.1",
           "warnings": []}
    if c:
        rec.update(delta_b_mean=1.0, delta_b_abs_mean=2.0)
    return rec


def _row(c: int, **extra) -> dict:
    steps = {}
    if c:
        steps = {"refine": {"engine": "servalcat", "restrained": True, "refine_xyz": False,
                            "engine_fsc_average_target": 0.7, "engine_cycles": 5},
                 "sharpen": {"mode": "exact", "window_voxels": 25, "window_angstrom": 30.0, "voxels_scaled": 100},
                 "converged": {"status": "not_converged", "reason": "|Δb_mean| = 6 > 5"},
                 "times": {s: 1.0 for s in cycle_table.TIMED_STEPS},
                 "crossval": {"fsc_work_average": 0.6 + 0.01 * c, "fsc_test_average": 0.58, "fsc_work_test_gap": 0.02}}
    return cycle_table.cycle_row(c, {**_metrics(c), **extra}, resolution_source="given", **steps)


def _finished(rows):
    cycle_table.finish_rows(rows, Selection(cycle=1, reason="test", criterion="test", flags={2: ["drift"]}), "global")
    return rows


def test_cycle_row_columns_and_validation():
    rows = _finished([_row(c) for c in range(3)])
    r0, r2 = rows[0], rows[2]
    assert "engine" not in r0 and "fsc_work" not in r0 and r0["final"] is False
    assert r2["sharpen_mode"] == "exact" and r2["time_refine_s"] == 1.0 and r2["fsc_work_test_gap"] == 0.02
    assert r2["convergence"] == "not_converged" and r2["flags"] == "drift" and r2["warnings"] == "none"
    assert rows[1]["final"] is True and rows[1]["flags"] == "none" and r2["b_target"] == "global"
    bad = dict(r2)
    del bad["delta_b_mean"]  # required from cycle 1 on (a registry metric)
    with pytest.raises(jsonschema.ValidationError, match="delta_b_mean"):
        cycle_table.validate_row(bad)
    bad = {**r2, "kurtosis_mask_voxels": 1.5}  # an integer column of the registry
    with pytest.raises(jsonschema.ValidationError):
        cycle_table.validate_row(bad)


def test_read_cycle_row_from_files(tmp_path):
    files = {}
    for name, rec in (("metrics", _metrics(1)), ("refine", {"engine": "servalcat", "restrained": False}),
                      ("sharpen", {"mode": "exact"}), ("converged", {"status": "converged", "reason": "ok"})):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(rec))
    bench = {}
    for step in cycle_table.TIMED_STEPS:
        bench[step] = tmp_path / f"{step}.tsv"
        bench[step].write_text("s\th:m:s\n12.5\t0:00:12\n")
    row = cycle_table.read_cycle_row(1, files.pop("metrics"), resolution_source="given", benchmarks=bench, **files)
    assert row["time_validate_s"] == 12.5 and row["engine"] == "servalcat" and row["convergence"] == "converged"
    assert list(row)[: len(_metrics(1))] == list(_metrics(1))  # the record's columns first, in its order


def test_schema_file_missing_is_a_clear_error(tmp_path):
    with pytest.raises(LocScaleInputError, match="schema"):
        cycle_table.row_schema(tmp_path / "nope.yaml")


def test_schema_is_the_file_plus_the_registry(repo_root):
    """The schema file holds only non-metric columns; every metric column is documented by the registry."""
    on_file = yaml.safe_load((repo_root / "workflow" / "schemas" / "cycle_row.schema.yaml").read_text())
    keys = set(cycle_metrics.registry())
    assert not keys & set(on_file["properties"])
    documented = cycle_table.documented_columns()
    assert keys <= set(documented) and set(on_file["properties"]) <= set(documented)
    assert documented["cc_mask"].startswith("RSCC inside the model envelope")


def test_panels_come_from_the_registry(tmp_path):
    table = report.write_cycle_table(_finished([_row(c) for c in range(3)]), tmp_path / "t.tsv")
    assert [p.title for p, _, _ in report.metric_panels(table)] == EXPECTED_PANELS
    by_title = {p.title: (lines, band) for p, lines, band in report.metric_panels(table)}
    lines, band = by_title["Atomic B-factors"]
    assert [lab for lab, _, _ in lines] == ["mean B", "median B"] and lines[1][2] == {"ls": "--"}
    np.testing.assert_allclose(band[0], table["b_mean"] - table["b_std"])
    gap, _ = by_title["FSCwork − FSCtest (overfitting gap)"]
    np.testing.assert_allclose(gap[0][1], table["fsc_work"] - table["fsc_test"])  # computed, NaN at cycle 0
    assert [lab for lab, _, _ in by_title["RSCC vs original map"][0]] == ["CC_mask", "CC_box"]
    # no aliases: only the canonical names are plotted
    renamed = table.rename(columns={"fsc_average": "FSCaverage"})
    assert "FSCaverage (model vs original map)" not in [p.title for p, _, _ in report.metric_panels(renamed)]


def test_convergence_and_validation_labels_come_from_the_registry(repo_root):
    assert convergence.DEFAULT_TOLERANCES == cycle_metrics.default_tolerances() == {
        "cc_mask": 0.01, "fsc_average": 0.002, "b_mean": 5.0}
    assert model_validation.LABELS["rama_outliers_pct"] == "Ramachandran outliers (%)"
    assert model_validation.SOURCE["emringer_score"] == "cctbx"
    # the workflow's configured tolerances default to the registry's
    config = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    defaults = {k: v["default"] for k, v in config["properties"]["tolerances"]["properties"].items()}
    assert defaults == cycle_metrics.default_tolerances()


def test_a_new_metric_is_one_registry_entry(tmp_path, monkeypatch):
    toy = Metric("toy_score", "Toy score", "a.u.", description="a toy metric for this test", required="always",
                 panel="toy", tolerance=0.5)
    monkeypatch.setattr(cycle_metrics, "METRICS", (*cycle_metrics.METRICS, toy))
    # documented column, required in every row
    assert cycle_table.documented_columns()["toy_score"] == "a toy metric for this test"
    with pytest.raises(jsonschema.ValidationError, match="toy_score"):
        _finished([_row(0)])
    rows = _finished([_row(c, toy_score=0.1 * c) for c in range(3)])
    table = report.write_cycle_table(rows, tmp_path / "t.tsv")
    assert list(pd.read_csv(tmp_path / "t.tsv", sep="\t")["toy_score"]) == pytest.approx([0.0, 0.1, 0.2])
    # its own panel after the registered ones (title = its name, y label = its unit)
    panels = report.metric_panels(table)
    assert [p.title for p, _, _ in panels] == EXPECTED_PANELS + ["Toy score"]
    assert panels[-1][0].ylabel == "a.u." and panels[-1][1][0][0] == "Toy score"
    assert report.plot_metrics_vs_cycle(table, tmp_path / "m.png").stat().st_size > 0
    # and watched by the convergence check by default
    d = convergence.check_convergence(rows[2], rows[1], cycle=2)
    assert "toy_score" in d.deltas and d.tolerances["toy_score"] == 0.5

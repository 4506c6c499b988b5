"""One row of the per-cycle table (results/<dataset>/summary_upto_NN.tsv), assembled from the cycle's records.

A row holds the cycle's validation record (metrics.json: the metric columns of :mod:`locscale.cycle.registry`, the
model validation and the input warnings), and for refined cycles (≥ 1) the refinement and LocScale parameters
(refine.json, sharpen.json), the convergence decision (converged.json), the wall time of each step (Snakemake
benchmark TSVs), with half maps, the cross-validation FSCs (crossval.json) and, for cycles after which a model
was built automatically (``model_completion.mode: coot``), what was built (completion_coot.json,
:data:`COMPLETION_COLUMNS`; empty otherwise). :func:`finish_rows` adds what
needs all cycles (the final-cycle choice and flags of :mod:`locscale.cycle.selection`) and checks every row against
:func:`row_schema`: the non-metric columns of workflow/schemas/cycle_row.schema.yaml plus the metric registry.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from ..errors import LocScaleInputError
from ..records import read_json
from . import registry

#: columns copied from each step's record into the row: record key -> column (renamed where names would clash)
REFINE_COLUMNS = {"engine": "engine", "restrained": "restrained", "refine_xyz": "refine_xyz",
                  "engine_fsc_average_target": "engine_fsc_average_target", "engine_cycles": "engine_cycles",
                  "b_below_floor_pct": "b_below_floor_pct", "b_model_raise": "b_model_raise",
                  "reused_from_cycle": "refine_reused_from"}
SHARPEN_COLUMNS = {"mode": "sharpen_mode", "window_voxels": "window_voxels", "window_angstrom": "window_angstrom",
                   "voxels_scaled": "voxels_scaled", "reused_from_cycle": "sharpen_reused_from"}
CROSSVAL_COLUMNS = {"fsc_work_average": "fsc_work", "fsc_test_average": "fsc_test",
                    "fsc_work_test_gap": "fsc_work_test_gap", "reused_from_cycle": "crossval_reused_from"}
#: columns from the model-completion record (locscale.building.completion) of the model built after the cycle
COMPLETION_COLUMNS = {"residues_built": "residues_built", "residues_trimmed": "residues_trimmed",
                      "built_fit_mean": "built_fit_mean"}
#: the steps of a refined cycle whose wall time is a column (``time_<step>_s``)
TIMED_STEPS = ("refine", "simulate", "sharpen", "validate")

#: where the schema of the non-metric columns lives in a checkout (the package sits at the repository root)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "cycle_row.schema.yaml"


def _load_schema_file(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise LocScaleInputError(
            f"the cycle-table schema {path} is missing",
            "run from a checkout of the LocScale repository (the package next to workflow/), or pass the "
            "schema path (workflow/schemas/cycle_row.schema.yaml) explicitly", path)
    return yaml.safe_load(path.read_text())


@lru_cache(maxsize=8)
def _schema_file(path: str) -> dict:
    return _load_schema_file(Path(path))


def row_schema(path: str | os.PathLike | None = None) -> dict:
    """The JSON schema of one row: the non-metric columns of the schema file (default :data:`SCHEMA_PATH`) with
    the metric columns of :data:`locscale.cycle.registry.METRICS` added (properties and required keys)."""
    schema = copy.deepcopy(_schema_file(str(Path(path or SCHEMA_PATH).resolve())))
    props, always, refined = registry.schema_properties()
    clash = sorted(set(props) & set(schema.get("properties", {})))
    if clash:
        raise ValueError(f"column(s) {clash} are both in the metric registry and in the schema file")
    schema.setdefault("properties", {}).update(props)
    schema["required"] = list(dict.fromkeys([*schema.get("required", []), *always]))
    then = schema.setdefault("then", {})
    then["required"] = list(dict.fromkeys([*refined, *then.get("required", [])]))
    return schema


def documented_columns(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Every documented column of the table -> its description ("" where the schema gives none)."""
    return {k: str(v.get("description", "")) for k, v in row_schema(path)["properties"].items()}


def validate_row(row: Mapping, schema_path: str | os.PathLike | None = None) -> None:
    """Check a row against :func:`row_schema` (raises jsonschema.ValidationError)."""
    import jsonschema

    jsonschema.Draft202012Validator(row_schema(schema_path)).validate(dict(row))


def benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall time (column ``s``, first row) of a Snakemake benchmark TSV."""
    import pandas as pd

    return float(pd.read_csv(path, sep="\t")["s"].iloc[0])


def cycle_row(cycle: int, metrics: Mapping, *, resolution_source: str, refine: Mapping | None = None,
              sharpen: Mapping | None = None, converged: Mapping | None = None,
              times: Mapping[str, float] | None = None, crossval: Mapping | None = None,
              completion: Mapping | None = None) -> dict:
    """One cycle's row from its records (dicts as the workflow's steps write them): the validation record
    `metrics`, and for refined cycles `refine`, `sharpen`, `converged` (the checkpoint's decision), `times`
    (step -> seconds, :data:`TIMED_STEPS`), `crossval` (half maps only) and `completion` (the record of the model
    built automatically after this cycle, if one was)."""
    row = dict(metrics)
    row.pop("provenance", None)  # the table's columns are the metrics (each record keeps its provenance)
    row["cycle"] = int(cycle)
    row["resolution_source"] = resolution_source
    if refine is not None:
        row.update({new: refine.get(old) for old, new in REFINE_COLUMNS.items()})
        # the refine step's warnings (an over-sharpened B target) join the validation record's
        row["warnings"] = list(dict.fromkeys([*(row.get("warnings") or []), *(refine.get("warnings") or [])]))
    if sharpen is not None:
        row.update({new: sharpen.get(old) for old, new in SHARPEN_COLUMNS.items()})
    if converged is not None:
        row["convergence"] = converged["status"]
        row["convergence_reason"] = converged["reason"]
    for step, seconds in (times or {}).items():
        row[f"time_{step}_s"] = float(seconds)
    if crossval is not None:
        row.update({new: crossval.get(old) for old, new in CROSSVAL_COLUMNS.items()})
    if completion is not None:
        row.update({new: completion.get(old) for old, new in COMPLETION_COLUMNS.items()})
    return row


def read_cycle_row(cycle: int, metrics: str | os.PathLike, *, resolution_source: str,
                   refine: str | os.PathLike | None = None, sharpen: str | os.PathLike | None = None,
                   converged: str | os.PathLike | None = None,
                   benchmarks: Mapping[str, str | os.PathLike] | None = None,
                   crossval: str | os.PathLike | None = None,
                   completion: str | os.PathLike | None = None) -> dict:
    """:func:`cycle_row` from the record files (JSON; `benchmarks`: step -> Snakemake benchmark TSV)."""

    def load(p):
        return None if p is None else read_json(p)

    times = {step: benchmark_seconds(p) for step, p in (benchmarks or {}).items()}
    return cycle_row(cycle, read_json(metrics), resolution_source=resolution_source, refine=load(refine),
                     sharpen=load(sharpen), converged=load(converged), times=times, crossval=load(crossval),
                     completion=load(completion))


def finish_rows(rows: Sequence[dict], selection, b_target: str,
                schema_path: str | os.PathLike | None = None) -> None:
    """Add the columns that need every cycle (in place) and validate each row: ``b_target`` (the run's
    refine.b_target), ``flags`` and ``final`` from `selection` (:class:`locscale.cycle.selection.Selection`), and
    ``warnings`` as one text cell ("none" when none)."""
    for row in rows:
        row["b_target"] = b_target
        row["flags"] = "; ".join(selection.flags.get(row["cycle"], [])) or "none"
        row["final"] = row["cycle"] == selection.cycle
        row["warnings"] = "; ".join(row.get("warnings") or []) or "none"
        validate_row(row, schema_path)

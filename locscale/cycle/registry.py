"""The registry of per-cycle metrics: one entry per metric column of the per-cycle table.

Each :class:`Metric` says what the column is (name, unit, description, JSON type, in which rows it is required),
where the report plots it (a panel of :func:`locscale.cycle.report.plot_metrics_vs_cycle`, its legend label and line
style) and whether the convergence check watches it by default (its tolerance). The registry drives

* the documented columns of the table (the row schema, :func:`locscale.cycle.table.row_schema`: the metric
  properties are added to the non-metric columns of workflow/schemas/cycle_row.schema.yaml),
* the panels of the metrics-vs-cycle figure (:func:`panels`),
* the default convergence tolerances (:data:`locscale.cycle.convergence.DEFAULT_TOLERANCES`),
* the labels of the model-validation summary (:data:`locscale.validation.model.LABELS`).

Adding a metric is one :class:`Metric` in :data:`METRICS` (its value must reach the cycle's records, e.g.
metrics.json). A panel that is not in :data:`PANELS` is drawn with the metric's name as title and its unit as the
y label. This module imports nothing from locscale and nothing heavy, so any module may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ALWAYS = "always"  # required in every row (cycle 0 included)
REFINED = "refined"  # required in the rows of refined cycles (≥ 1)


@dataclass(frozen=True)
class Metric:
    """One metric column of the per-cycle table."""

    key: str  # column name (canonical; the plots look for exactly this name)
    name: str  # human name, e.g. "Ramachandran outliers"
    unit: str = ""  # e.g. "%", "Å²"; "" for none
    description: str = ""  # documented meaning of the column (row schema)
    json_type: str = "number"  # JSON-schema type of the value
    required: str | None = None  # ALWAYS, REFINED or None (optional column)
    panel: str | None = None  # id of the plot panel (see PANELS); None = not plotted as a line
    legend: str | None = None  # label of its line in the panel (default: name)
    style: Mapping[str, object] = field(default_factory=dict)  # extra matplotlib line style, e.g. {"ls": "--"}
    difference: tuple[str, str] | None = None  # plotted as column a − column b (both must be present)
    tolerance: float | None = None  # default convergence tolerance; None = not watched by default
    tool: str | None = None  # model validation: the tool that gives the value (locscale.validation.model)

    @property
    def label(self) -> str:
        """Name with unit, e.g. ``Ramachandran outliers (%)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def line_label(self) -> str:
        return self.legend if self.legend is not None else self.name


@dataclass(frozen=True)
class Panel:
    """One panel of the metrics-vs-cycle figure; its lines are the metrics with this panel id."""

    id: str
    title: str
    ylabel: str
    band: tuple[str, str] | None = None  # (centre, spread): a ±1 s.d. band around the centre metric
    zero_line: bool = False  # draw y = 0


#: Panels in figure order (a panel is drawn when the table holds any of its metrics).
PANELS: tuple[Panel, ...] = (
    Panel("rscc", "RSCC vs original map", "correlation"),
    Panel("fsc_average", "FSCaverage (model vs original map)", "FSCaverage"),
    Panel("kurtosis", "Kurtosis in fixed envelope", "excess kurtosis"),
    Panel("b", "Atomic B-factors", "B (Å²)", band=("b_mean", "b_std")),
    Panel("sharpness", "Sharpness vs global target (> 0: blurrier)", "Δ Guinier B (Å²)", zero_line=True),
    Panel("truth", "Phantom: sharpened map vs truth", "score"),
    Panel("truth_regions", "Phantom: CC to truth by region", "CC"),
    # model validation (locscale.validation.model): geometry and fit of the cycle's model
    Panel("model_outliers", "Model: outliers (%)", "% of residues"),
    Panel("rama_favoured", "Model: Ramachandran favoured", "%"),
    Panel("rmsz", "Model: geometry RMSZ", "RMSZ"),
    Panel("overlaps", "Model: atom overlaps (Coot)", "per 1000 atoms"),
    Panel("emringer", "Model vs original map: EMRinger", "score"),
    Panel("q_score", "Model vs original map: median Q-score", "score"),
    Panel("crossval", "Cross-validation (shaken model)", "FSCaverage"),
    Panel("gap", "FSCwork − FSCtest (overfitting gap)", "gap", zero_line=True),
)

_M = Metric
#: Every metric column, in documentation order (lines of a panel are drawn in this order).
METRICS: tuple[Metric, ...] = (
    # validation record against the ORIGINAL map (locscale.validation.map_metrics, metrics.json)
    _M("cc_mask", "CC_mask", description="RSCC inside the model envelope (max(3 Å, d) from any atom)",
       required=ALWAYS, panel="rscc", tolerance=0.01),
    _M("cc_box", "CC_box", description="RSCC over the whole box", required=ALWAYS, panel="rscc"),
    _M("cc_residue_median", "median per-residue RSCC", description="median per-residue RSCC", required=ALWAYS),
    _M("fsc_average", "FSCaverage",
       description="model-map FSC averaged up to the resolution (servalcat's FSCaverage)", required=ALWAYS,
       panel="fsc_average", tolerance=0.002),
    _M("fsc05_resolution", "FSC 0.5 resolution", "Å", description="Å where the model-map FSC falls below 0.5",
       required=ALWAYS),
    _M("kurtosis", "kurtosis",
       description="excess kurtosis of the cycle's sharpened map in the fixed cycle-0 mask", required=ALWAYS,
       panel="kurtosis"),
    _M("kurtosis_mask_voxels", "kurtosis mask voxels", json_type="integer", required=ALWAYS),
    _M("b_mean", "mean B", "Å²", description="Å²", required=ALWAYS, panel="b", tolerance=5.0),
    _M("b_median", "median B", "Å²", required=ALWAYS, panel="b", style={"ls": "--"}),
    _M("b_std", "s.d. of B", "Å²", required=ALWAYS),  # the band of panel "b"
    _M("b_min", "min B", "Å²", required=ALWAYS),
    _M("b_max", "max B", "Å²", required=ALWAYS),
    _M("delta_b_mean", "Δ mean B", "Å²", description="mean B minus that of the model that entered the cycle",
       required=REFINED),
    _M("delta_b_abs_mean", "mean |ΔB|", "Å²",
       description="mean |ΔB| over atoms (NaN when the model was rebuilt)", required=REFINED),
    _M("sharpness_b_vs_global", "sharpness vs global", "Å²",
       description="Guinier B of the cycle's sharpened map minus the global target's, in the cycle-0 mask "
                   "(Å²; > 0 blurrier); a truth-free over-smoothing signal",
       panel="sharpness", legend="LocScale − global"),
    _M("cc_truth", "CC to truth",
       description="phantoms: CC of the cycle's sharpened map to the truth in the true model's envelope",
       panel="truth"),
    _M("fsc_average_truth", "FSCaverage to truth", description="phantoms: FSCaverage of the sharpened map to the truth",
       panel="truth", legend="FSCavg to truth"),
    _M("cc_truth_rigid", "CC to truth, rigid third",
       description="phantoms: CC to the truth in the voxels nearest the third of the true atoms with the lowest B",
       panel="truth_regions", legend="rigid third"),
    _M("cc_truth_middle", "CC to truth, middle third",
       description="phantoms: ... nearest the middle third of the truth B", panel="truth_regions",
       legend="middle third"),
    _M("cc_truth_flexible", "CC to truth, flexible third",
       description="phantoms: ... nearest the third of the true atoms with the highest B", panel="truth_regions",
       legend="flexible third"),
    _M("cc_truth_unmodelled", "CC to truth, unmodelled part",
       description="phantoms: ... nearest true atoms of residues the input model lacks (partial models)",
       panel="truth_regions", legend="unmodelled"),
    # model validation (locscale.validation.model), in its report order
    _M("rama_favoured_pct", "Ramachandran favoured", "%",
       description="Ramachandran favoured, % of classified residues (Coot)", required=ALWAYS,
       panel="rama_favoured", legend="favoured", tool="coot"),
    _M("rama_outliers_pct", "Ramachandran outliers", "%", description="Ramachandran outliers, % (Coot)",
       required=ALWAYS, panel="model_outliers", legend="Ramachandran", tool="coot"),
    _M("rotamer_outliers_pct", "Rotamer outliers", "%",
       description="rotamer outliers, % of residues Coot classifies (not ARG/LYS)", required=ALWAYS,
       panel="model_outliers", legend="rotamers", tool="coot"),
    _M("bond_rmsz", "Bond length RMSZ",
       description="bond-length RMSZ against the monomer library (servalcat util geom)", required=ALWAYS,
       panel="rmsz", legend="bond", tool="servalcat"),
    _M("angle_rmsz", "Bond angle RMSZ", description="bond-angle RMSZ (servalcat util geom)", required=ALWAYS,
       panel="rmsz", legend="angle", tool="servalcat"),
    _M("atom_overlaps_per_1000_atoms", "Atom overlaps ≥ 1.2 Å³ per 1000 atoms",
       description="Coot's atom overlaps per 1000 atoms (clashscore-like)", required=ALWAYS, panel="overlaps",
       legend="overlaps", tool="coot"),
    _M("emringer_score", "EMRinger score", description="EMRinger score against the original map (cctbx)",
       required=ALWAYS, panel="emringer", legend="EMRinger", tool="cctbx"),
    _M("q_score_median", "Q-score (median)",
       description="median per-residue Q-score against the original map (Coot)", required=ALWAYS,
       panel="q_score", legend="median Q-score", tool="coot"),
    # automated model completion after the cycle (model_completion.mode: coot; locscale.building.completion,
    # completion_coot.json); empty for cycles after which no model was built
    _M("residues_built", "residues built", json_type="integer",
       description="model completion (coot) after this cycle: new residues kept in the built model"),
    _M("residues_trimmed", "residues trimmed", json_type="integer",
       description="model completion (coot) after this cycle: new residues removed again (CC below min_fit)"),
    _M("built_fit_mean", "mean CC of the built residues",
       description="model completion (coot) after this cycle: mean per-residue CC of the kept new residues with "
                   "the cycle's LocScale map"),
    # half-map cross-validation (locscale.validation.crossval, crossval.json)
    _M("fsc_work", "FSCwork", description="cross-validation FSCaverage against half map 1 (half maps only)",
       panel="crossval", legend="FSCwork (half 1)"),
    _M("fsc_test", "FSCtest", description="... against half map 2", panel="crossval", legend="FSCtest (half 2)"),
    _M("fsc_work_test_gap", "FSCwork − FSCtest", panel="gap", legend="gap", difference=("fsc_work", "fsc_test")),
)
del _M


def registry() -> dict[str, Metric]:
    """key -> Metric, in registry order (reads :data:`METRICS` at call time, so tests can replace it)."""
    return {m.key: m for m in METRICS}


def metric(key: str) -> Metric:
    return registry()[key]


def panels() -> list[tuple[Panel, list[Metric]]]:
    """Every panel with its metrics (lines, in registry order): the panels of :data:`PANELS` in their order,
    then panels named only by metrics (title = the first metric's name, y label = its unit or name)."""
    known = {p.id: p for p in PANELS}
    members: dict[str, list[Metric]] = {}
    for m in METRICS:
        if m.panel is not None:
            members.setdefault(m.panel, []).append(m)
    out = [(p, members[p.id]) for p in PANELS if p.id in members]
    for pid, ms in members.items():
        if pid not in known:
            out.append((Panel(pid, ms[0].name, ms[0].unit or ms[0].name), ms))
    return out


def plotted_keys() -> list[str]:
    """The columns the metrics-vs-cycle figure can plot."""
    keys: list[str] = []
    for p, ms in panels():
        for m in ms:
            keys += list(m.difference) if m.difference else [m.key]
        if p.band:
            keys += list(p.band)
    return list(dict.fromkeys(keys))


def default_tolerances() -> dict[str, float]:
    """The convergence check's default tolerances: metric -> largest |change| between cycles."""
    return {m.key: float(m.tolerance) for m in METRICS if m.tolerance is not None}


def validation_keys(tools=None) -> tuple[str, ...]:
    """The model-validation summary values (metrics with a `tool`), in registry order."""
    return tuple(m.key for m in METRICS if m.tool is not None and (tools is None or m.tool in tools))


def schema_properties() -> tuple[dict[str, dict], list[str], list[str]]:
    """JSON-schema properties of the metric columns, the always-required keys and those required from cycle 1."""
    props = {}
    for m in METRICS:
        prop: dict[str, object] = {"type": m.json_type}
        if m.description:
            prop["description"] = m.description
        props[m.key] = prop
    always = [m.key for m in METRICS if m.required == ALWAYS]
    refined = [m.key for m in METRICS if m.required == REFINED]
    return props, always, refined

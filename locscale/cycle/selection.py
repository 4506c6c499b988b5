"""Which cycle a run hands out: flags that catch drift, and the documented choice of the final cycle.

The refinement cycles must not present drift as progress (README, "Which cycle is final"). Two truth-free
signals respond to a LocScale map that loses its sharpening:

* **B drift**: the refined mean B of cycle c minus that of cycle 1. Refining B against a fixed target (the
  default, ``refine.b_target: global``) moves it by a few Å² at most; refining against the previous LocScale map
  raised it by +93 … +143 Å² over three cycles on phantoms (README table), towards the blur of the data itself.
* **Sharpness against the global target** (``sharpness_b_vs_global``,
  :func:`locscale.validation.map_metrics.sharpness_vs_reference`): the Guinier B of the LocScale map minus that of the
  cycle-0 FSC-weighted global target, in the same mask.

A cycle whose |B drift| exceeds ``max_b_drift`` or whose LocScale map became blurrier or sharper, relative to
the global target, than cycle 1's by more than ``max_sharpness_change`` is *flagged*. So is a cycle whose model
geometry got worse than the input model's (cycle 0, ``locscale.validation.model``). A model that fits the map
better by wrecking its geometry is not progress. RSCC against the original map is never used to choose: it rises
as a model blurs to match an unsharpened map (docs/science.md).

**Like with like.** A cycle after model completion has residues the input did not have, so its geometry is
judged in two parts when the per-residue tables are given (:func:`choose_final_cycle`, ``residues``):

* the residues it shares with the input model against the input's own values on the same residues: Ramachandran
  outliers up by more than ``max_rama_outliers_increase`` percentage points;
* the residues that were built against absolute limits: more than ``max_built_rama_outliers_pct`` % of them
  Ramachandran outliers, or more than ``max_built_overlap_pct`` % of them in a bad atom overlap.

Without the tables the whole model's Ramachandran outliers are compared with the input's. Whole-model measures
apply to every cycle: atom overlaps per 1000 atoms more than ``max_overlaps_increase`` above the input's, bond or
angle RMSZ above ``rmsz_ceiling`` and more than ``max_rmsz_increase`` above the input's.

**The choice** (:func:`choose_final_cycle`): among the cycles ≥ 1 that are not flagged, those that hold the same
model as the last of them (the same residues: a completion that passed its checks is what the run hands out),
and of these the ones whose model-map FSCaverage against the original map is within ``fsc_tolerance`` of their
best; of these the last (the most refined). FSCaverage is compared only between cycles with the same residues:
a model with more residues is a different model (its built residues fit less well than the rest, so its
FSCaverage is lower), and comparing it with a smaller one would hold completion back. FSCaverage is normalised per
shell, so it judges coordinates and the *relative* B-factors but is blind to an overall B level -- which the
flags watch. When every cycle is flagged, cycle 1 is chosen (its B was refined against the cycle-0 global target
in every design) and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .defaults import with_schema_defaults

#: Defaults: the schema's (config ``selection``, the only place they are written), from benchmarks/bench_cycles.py
#: (docs/science.md, "Which map the B-factors are refined against"): the default design moved mean B and sharpness by
#: at most 1.2 and 2.7 Å² over three cycles (EMD-3488, phantoms A and B); a fixed target with a free B level by +7 /
#: +4 Å² on phantom A, but +18 / +13 Å² on EMD-3488, where CC_mask fell by 0.03 (flagged at cycle 4); the smallest
#: first step of a drifting design was +25 / +15 Å² (phantom B), and the paper's loop added +34 … +70 Å² in one
#: cycle. Geometry: servalcat's weight adjustment aims at bond RMSZ 0.5-1.0 (``--target_bond_rmsz_range``), so RMSZ
#: under 1.0 is never flagged; 0.5 percentage points of Ramachandran outliers is 3 residues of the bundled
#: 574-residue model, more than restrained B-only or jelly-body refinement moved them (0). Atom overlaps: 1 more per
#: 1000 atoms than the input (restrained B-only refinement moves no atom, so it never adds one). Built residues: the
#: builder (locscale.building.completion) removes every new residue that is a Ramachandran outlier or in a bad
#: overlap, so a completion that passes its own checks has 0 % of either; 2 % leaves room for one in 50 after
#: later coordinate refinement, MolProbity's "allowed" limit for Ramachandran outliers.
DEFAULT_SELECTION: dict[str, float] = with_schema_defaults("selection")


@dataclass
class Selection:
    """The chosen cycle, why, and the flags of every cycle (JSON-ready via :meth:`record`)."""

    cycle: int
    reason: str
    criterion: str
    flags: dict[int, list[str]] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)
    completion: dict = field(default_factory=dict)

    def record(self) -> dict:
        rec = asdict(self)
        rec["flags"] = {str(k): v for k, v in self.flags.items()}
        return rec


CRITERION = ("among cycles >= 1 without a drift flag (|mean B - cycle 1's| <= max_b_drift; LocScale map's Guinier "
             "B against the global target changed by <= max_sharpness_change since cycle 1) or a geometry flag "
             "(the input model's residues: Ramachandran outliers worse than in the input beyond the tolerance; built "
             "residues: Ramachandran outliers or bad overlaps above the absolute limits; the whole model: overlaps "
             "or bond/angle RMSZ worse than the input's beyond the tolerances), those holding the same residues as "
             "the last of them, and of these the last whose FSCaverage (model vs original map) is within "
             "fsc_tolerance of their best")


def _num(row: Mapping, key: str) -> float:
    v = row.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def cycle_flags(rows: Sequence[Mapping], settings: Mapping[str, float] | None = None,
                residues: Mapping[int, object] | None = None) -> dict[int, list[str]]:
    """Drift and geometry flags of every cycle ≥ 1 (``rows``: the per-cycle validation records, with ``cycle``;
    ``residues``: optional per-residue tables by cycle, see :func:`geometry_flags`)."""
    s = {**DEFAULT_SELECTION, **(settings or {})}
    by_cycle = {int(r["cycle"]): r for r in rows}
    b1 = _num(by_cycle.get(1, {}), "b_mean")
    blur1 = _num(by_cycle.get(1, {}), "sharpness_b_vs_global")
    residues = residues or {}
    flags: dict[int, list[str]] = {}
    for c, r in sorted(by_cycle.items()):
        if c < 1:
            continue
        f = []
        drift = _num(r, "b_mean") - b1
        if s.get("max_b_drift") is not None and math.isfinite(drift) and abs(drift) > float(s["max_b_drift"]):
            f.append(f"B drift: mean B {drift:+.1f} Å² since cycle 1 (> {float(s['max_b_drift']):g})")
        blur = _num(r, "sharpness_b_vs_global") - blur1
        limit = s.get("max_sharpness_change")
        if limit is not None and math.isfinite(blur) and abs(blur) > float(limit):
            what, how = ("over-smoothed", "blurrier") if blur > 0 else ("over-sharpened", "sharper")
            f.append(f"{what}: LocScale map {abs(blur):.1f} Å² {how} (Guinier B against the global target) "
                     f"than in cycle 1 (> {float(limit):g})")
        f += geometry_flags(r, by_cycle.get(0, {}), s, residues.get(c), residues.get(0))
        flags[c] = f
    return flags


def _residue_table(table) -> dict[tuple, dict]:
    """{(chain, residue number, insertion code): row} of a per-residue table (pandas DataFrame or list of dicts)."""
    if table is None:
        return {}
    records = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    out = {}
    for r in records:
        icode = r.get("icode", "")
        icode = "" if icode is None or (isinstance(icode, float) and math.isnan(icode)) else str(icode).strip()
        out[(str(r["chain"]), int(r["resnum"]), icode)] = r
    return out


def _is_outlier(row: Mapping) -> bool | None:
    """Whether a residue is a Ramachandran outlier (None: it has no Ramachandran class)."""
    value = row.get("rama")
    if not isinstance(value, str) or not value:
        return None
    return value == "outlier"


def residue_parts(table, reference) -> dict[str, list]:
    """The residues of a cycle's per-residue table split into ``shared`` (also in the input model's table
    `reference`) and ``built`` (not in it)."""
    rows, ref = _residue_table(table), _residue_table(reference)
    return {"shared": sorted(k for k in rows if k in ref), "built": sorted(k for k in rows if k not in ref)}


def geometry_flags(row: Mapping, reference: Mapping, settings: Mapping[str, float], residues=None,
                   reference_residues=None) -> list[str]:
    """Flags of a cycle whose model geometry is worse than the input model's (module docstring); nothing when a
    value is missing (the tool was not available). With the per-residue tables of the cycle (`residues`) and of
    the input model (`reference_residues`; columns chain, resnum, icode, rama, overlaps), the input model's
    residues are compared with themselves in the input and the built residues with absolute limits."""
    f = []
    limit = settings.get("max_rama_outliers_increase")
    rows, ref = _residue_table(residues), _residue_table(reference_residues)
    if rows and ref:
        shared = [k for k in rows if k in ref and _is_outlier(rows[k]) is not None
                  and _is_outlier(ref[k]) is not None]
        if limit is not None and shared:
            now = 100.0 * sum(bool(_is_outlier(rows[k])) for k in shared) / len(shared)
            before = 100.0 * sum(bool(_is_outlier(ref[k])) for k in shared) / len(shared)
            if now - before > float(limit):
                f.append(f"geometry: Ramachandran outliers of the input model's residues {now:.2f} %, "
                         f"{now - before:+.2f} points above the same residues in the input (> {float(limit):g})")
        built = [k for k in rows if k not in ref]
        classed = [k for k in built if _is_outlier(rows[k]) is not None]
        limit = settings.get("max_built_rama_outliers_pct")
        if limit is not None and classed:
            pct = 100.0 * sum(bool(_is_outlier(rows[k])) for k in classed) / len(classed)
            if pct > float(limit):
                f.append(f"geometry: {pct:.1f} % of the {len(classed)} built residues are Ramachandran outliers "
                         f"(> {float(limit):g} %)")
        limit = settings.get("max_built_overlap_pct")
        counted = [k for k in built if _finite(rows[k].get("overlaps"))]
        if limit is not None and counted:
            pct = 100.0 * sum(float(rows[k]["overlaps"]) > 0 for k in counted) / len(counted)
            if pct > float(limit):
                f.append(f"geometry: {pct:.1f} % of the {len(counted)} built residues are in a bad atom overlap "
                         f"(> {float(limit):g} %)")
    else:
        rise = _num(row, "rama_outliers_pct") - _num(reference, "rama_outliers_pct")
        if limit is not None and math.isfinite(rise) and rise > float(limit):
            f.append(f"geometry: Ramachandran outliers {_num(row, 'rama_outliers_pct'):.2f} %, {rise:+.2f} points "
                     f"above the input model's (> {float(limit):g})")
    limit = settings.get("max_overlaps_increase")
    rise = _num(row, "atom_overlaps_per_1000_atoms") - _num(reference, "atom_overlaps_per_1000_atoms")
    if limit is not None and math.isfinite(rise) and rise > float(limit):
        f.append(f"geometry: {_num(row, 'atom_overlaps_per_1000_atoms'):.2f} atom overlaps per 1000 atoms, "
                 f"{rise:+.2f} above the input model's (> {float(limit):g})")
    limit, ceiling = settings.get("max_rmsz_increase"), float(settings["rmsz_ceiling"])
    for key, what in (("bond_rmsz", "bond"), ("angle_rmsz", "angle")):
        value = _num(row, key)
        rise = value - _num(reference, key)
        if limit is not None and math.isfinite(rise) and value > ceiling and rise > float(limit):
            f.append(f"geometry: {what} RMSZ {value:.2f}, {rise:+.2f} above the input model's (> {float(limit):g} "
                     f"and above {ceiling:g})")
    return f


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def choose_final_cycle(rows: Sequence[Mapping], settings: Mapping[str, float] | None = None,
                       residues: Mapping[int, object] | None = None) -> Selection:
    """The cycle to hand out (see the module docstring); `rows` are the per-cycle records (cycle 0 may be among
    them and is never chosen); `residues` the per-residue tables by cycle (optional: they make the geometry flags
    compare like with like and say which cycles hold the same model)."""
    s = {**DEFAULT_SELECTION, **(settings or {})}
    flags = cycle_flags(rows, s, residues)
    by_cycle = {int(r["cycle"]): r for r in rows if int(r["cycle"]) >= 1}
    if not by_cycle:
        raise ValueError("no refinement cycle to choose from")
    models = {c: frozenset(_residue_table((residues or {}).get(c))) for c in by_cycle}
    completion = _completion_record(models, frozenset(_residue_table((residues or {}).get(0))), flags)
    ok = [c for c in sorted(by_cycle) if not flags.get(c)]
    if not ok:
        sound = [c for c in sorted(by_cycle) if not any(f.startswith("geometry") for f in flags.get(c, []))]
        if not sound:
            c = 1 if 1 in by_cycle else min(by_cycle)
            return Selection(c, f"every cycle is flagged for geometry; cycle {c} is handed out only so that final/ "
                             "is complete: do not use its model (check the refinement weight and restraints)",
                             CRITERION, flags, s, _final_completion(completion, c, models))
        c = 1 if 1 in sound else sound[0]
        return Selection(c, f"every cycle is flagged; cycle {c} is handed out because its B-factors were refined "
                         "against the cycle-0 global target and its geometry is not flagged", CRITERION, flags, s,
                         _final_completion(completion, c, models))
    same = [c for c in ok if models[c] == models[ok[-1]]]
    fsc = {c: _num(by_cycle[c], "fsc_average") for c in same}
    finite = {c: v for c, v in fsc.items() if math.isfinite(v)}
    skipped = sorted(set(by_cycle) - set(ok))
    if not finite:
        c = same[-1]
        return Selection(c, f"no FSCaverage to compare; cycle {c} is the last unflagged cycle", CRITERION, flags, s,
                         _final_completion(completion, c, models))
    best = max(finite.values())
    near = [c for c, v in finite.items() if v >= best - float(s["fsc_tolerance"])]
    c = max(near)
    reason = (f"cycle {c}: FSCaverage {finite[c]:.4f} within {float(s['fsc_tolerance']):g} of the best "
              f"({best:.4f}), the last such cycle without a flag")
    other = [k for k in ok if k not in same]
    if other:
        reason += (f", among the cycles holding the last unflagged model ({len(models[c])} residues; "
                   f"cycles {', '.join(map(str, other))} hold another)")
    if skipped:
        reason += f"; flagged and not eligible: {', '.join(map(str, skipped))}"
    record = _final_completion(completion, c, models)
    if record.get("residues_added"):
        reason += f"; final/ holds the completed model ({record['residues_added']} residues more than the input)"
    return Selection(c, reason, CRITERION, flags, s, record)


def _completion_record(models: Mapping[int, frozenset], reference: frozenset, flags: Mapping[int, list]) -> dict:
    """Per cycle whose model has residues the input model lacks: how many, and whether the cycle is flagged."""
    if not reference:
        return {}
    cycles = {str(c): {"residues": len(m), "residues_added": len(m - reference), "flagged": bool(flags.get(c))}
              for c, m in sorted(models.items()) if m and m - reference}
    return {"input_residues": len(reference), "cycles": cycles} if cycles else {"input_residues": len(reference)}


def _final_completion(record: dict, cycle: int, models: Mapping[int, frozenset]) -> dict:
    """`record` with what the chosen cycle holds: the residues it added to the input model (0: none) and whether
    a completed model was left out (a flagged completion)."""
    if not record:
        return {}
    added = record.get("cycles", {}).get(str(cycle), {}).get("residues_added", 0)
    left_out = [int(c) for c, v in record.get("cycles", {}).items() if v["flagged"]]
    return {**record, "final_cycle": cycle, "residues_added": added, "holds_completion": bool(added),
            "flagged_completions": left_out}

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
geometry got worse than the input model's (cycle 0, ``locscale.validation.model``): Ramachandran outliers up by more
than ``max_rama_outliers_increase`` percentage points, or bond or angle RMSZ above ``rmsz_ceiling`` and more than
``max_rmsz_increase`` above the input's. A model that fits the map better by wrecking its geometry is not
progress. RSCC against the original map is never used to choose: it rises as a model blurs to match an
unsharpened map (docs/science.md).

**The choice** (:func:`choose_final_cycle`): among the cycles ≥ 1 that are not flagged, those whose model-map
FSCaverage against the original map is within ``fsc_tolerance`` of the best; of these the last (the most
refined). FSCaverage is normalised per shell, so it judges coordinates and the *relative* B-factors but is blind
to an overall B level -- which the flags watch. When every cycle is flagged, cycle 1 is chosen (its B was refined
against the cycle-0 global target in every design) and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .defaults import with_schema_defaults

#: Defaults: the schema's (config ``selection``, the only place they are written), from benchmarks/bench_cycles.py
#: (README, "Which map the B-factors are refined against"): the default design moved mean B and sharpness by at most 1.2
#: and 2.7 Å² over three cycles (EMD-3488, phantoms A and B); a fixed target with a free B level by +7 / +4 Å² on
#: phantom A, but +18 / +13 Å² on EMD-3488, where CC_mask fell by 0.03 (flagged at cycle 4); the smallest first step of
#: a drifting design was +25 / +15 Å² (phantom B), and the paper's loop added +34 … +70 Å² in one cycle. Geometry:
#: servalcat's weight adjustment aims at bond RMSZ 0.5-1.0 (``--target_bond_rmsz_range``), so RMSZ under 1.0 is never
#: flagged; 0.5 percentage points of Ramachandran outliers is 3 residues of the bundled 574-residue model, more than
#: restrained B-only or jelly-body refinement moved them (0).
DEFAULT_SELECTION: dict[str, float] = with_schema_defaults("selection")


@dataclass
class Selection:
    """The chosen cycle, why, and the flags of every cycle (JSON-ready via :meth:`record`)."""

    cycle: int
    reason: str
    criterion: str
    flags: dict[int, list[str]] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict:
        rec = asdict(self)
        rec["flags"] = {str(k): v for k, v in self.flags.items()}
        return rec


CRITERION = ("among cycles >= 1 without a drift flag (|mean B - cycle 1's| <= max_b_drift; LocScale map's Guinier "
             "B against the global target changed by <= max_sharpness_change since cycle 1) or a geometry flag "
             "(Ramachandran outliers or bond/angle RMSZ worse than the input model's beyond the tolerances), the last "
             "whose FSCaverage (model vs original map) is within fsc_tolerance of the best")


def _num(row: Mapping, key: str) -> float:
    v = row.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def cycle_flags(rows: Sequence[Mapping], settings: Mapping[str, float] | None = None) -> dict[int, list[str]]:
    """Drift flags of every cycle ≥ 1 (``rows``: the per-cycle validation records, with ``cycle``)."""
    s = {**DEFAULT_SELECTION, **(settings or {})}
    by_cycle = {int(r["cycle"]): r for r in rows}
    b1 = _num(by_cycle.get(1, {}), "b_mean")
    blur1 = _num(by_cycle.get(1, {}), "sharpness_b_vs_global")
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
        f += geometry_flags(r, by_cycle.get(0, {}), s)
        flags[c] = f
    return flags


def geometry_flags(row: Mapping, reference: Mapping, settings: Mapping[str, float]) -> list[str]:
    """Flags of a cycle whose model geometry is worse than the `reference` (input) model's (module docstring);
    nothing when a value is missing (the tool was not available)."""
    f = []
    limit = settings.get("max_rama_outliers_increase")
    rise = _num(row, "rama_outliers_pct") - _num(reference, "rama_outliers_pct")
    if limit is not None and math.isfinite(rise) and rise > float(limit):
        f.append(f"geometry: Ramachandran outliers {_num(row, 'rama_outliers_pct'):.2f} %, {rise:+.2f} points "
                 f"above the input model's (> {float(limit):g})")
    limit, ceiling = settings.get("max_rmsz_increase"), float(settings["rmsz_ceiling"])
    for key, what in (("bond_rmsz", "bond"), ("angle_rmsz", "angle")):
        value = _num(row, key)
        rise = value - _num(reference, key)
        if limit is not None and math.isfinite(rise) and value > ceiling and rise > float(limit):
            f.append(f"geometry: {what} RMSZ {value:.2f}, {rise:+.2f} above the input model's (> {float(limit):g} "
                     f"and above {ceiling:g})")
    return f


def choose_final_cycle(rows: Sequence[Mapping], settings: Mapping[str, float] | None = None) -> Selection:
    """The cycle to hand out (see the module docstring); `rows` are the per-cycle records (cycle 0 may be among
    them and is never chosen)."""
    s = {**DEFAULT_SELECTION, **(settings or {})}
    flags = cycle_flags(rows, s)
    by_cycle = {int(r["cycle"]): r for r in rows if int(r["cycle"]) >= 1}
    if not by_cycle:
        raise ValueError("no refinement cycle to choose from")
    ok = [c for c in sorted(by_cycle) if not flags.get(c)]
    if not ok:
        sound = [c for c in sorted(by_cycle) if not any(f.startswith("geometry") for f in flags.get(c, []))]
        if not sound:
            c = 1 if 1 in by_cycle else min(by_cycle)
            return Selection(c, f"every cycle is flagged for geometry; cycle {c} is handed out only so that final/ "
                             "is complete: do not use its model (check the refinement weight and restraints)",
                             CRITERION, flags, s)
        c = 1 if 1 in sound else sound[0]
        return Selection(c, f"every cycle is flagged; cycle {c} is handed out because its B-factors were refined "
                         "against the cycle-0 global target and its geometry is not flagged", CRITERION, flags, s)
    fsc = {c: _num(by_cycle[c], "fsc_average") for c in ok}
    finite = {c: v for c, v in fsc.items() if math.isfinite(v)}
    if not finite:
        c = ok[-1]
        return Selection(c, f"no FSCaverage to compare; cycle {c} is the last unflagged cycle", CRITERION, flags, s)
    best = max(finite.values())
    near = [c for c, v in finite.items() if v >= best - float(s["fsc_tolerance"])]
    c = max(near)
    skipped = sorted(set(by_cycle) - set(ok))
    reason = (f"cycle {c}: FSCaverage {finite[c]:.4f} within {float(s['fsc_tolerance']):g} of the best "
              f"({best:.4f}), the last such cycle without a drift flag")
    if skipped:
        reason += f"; flagged and not eligible: {', '.join(map(str, skipped))}"
    return Selection(c, reason, CRITERION, flags, s)

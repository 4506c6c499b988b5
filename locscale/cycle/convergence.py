"""When to stop the refinement cycles: the decision of the workflow's `converged` checkpoint, and the loop walk.

A cycle c has *converged* when every watched metric changed by no more than its tolerance from cycle c−1 (cycle 0
= the input model against the original map, before any refinement):

* ``cc_mask``     |ΔRSCC| inside the model envelope (against the original map),
* ``fsc_average`` |ΔFSCaverage| of the model map against the original map, up to the resolution,
* ``b_mean``      |Δ mean B| in Å²,

plus any other numeric key of the validation record given a tolerance (e.g. ``kurtosis``). A tolerance of
``null``/None switches that metric off. Whatever the metrics say, a cycle does not converge

* before ``min_cycles`` cycles have run (the first cycle is always compared with unrefined B-factors), or
* right after the model was rebuilt (model completion): its metrics are not comparable with the previous cycle's.

:func:`walk_cycles` is the loop (docs/design.md "How the loop is built"): it asks the checkpoint of cycle 1, 2, …
whether it converged and returns the last cycle to run. The workflow calls it **only** from the input function of its
target rule `all`. ``max_cycles`` enters only there, never a checkpoint's parameters (changing it must not re-run the
checks).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LocScaleInputError
from ..records import write_json
from . import registry

#: Default tolerances: the change between consecutive cycles below which a metric counts as converged.
#: Measured on the bundled example (EMD-3488 + 5ME2, 3.2 Å, unrestrained servalcat, exact LocScale): cycle 1 raises
#: FSCaverage by 0.15 and CC_mask by 0.10; from cycle 3 on FSCaverage moves by ≤ 0.0004 per cycle while B keeps
#: creeping up by geometrically shrinking steps (+11, +5.8, +3.4, +2.0, +1.4 Å²) and CC_mask follows it down
#: (−0.020, −0.012, −0.008, −0.005, −0.004). So: FSCaverage 0.002 (1/75 of the first cycle's gain); CC_mask 0.01
#: (under a third of the smallest RSCC gain, 3 %, that the paper reports from LocScale targets); mean B 5 Å² (about
#: 5 % of the refined mean B of 80-100 Å² at 3-4 Å). With these the example converges at cycle 4.
#: They live in the metric registry (locscale.cycle.registry, Metric.tolerance).
DEFAULT_TOLERANCES: dict[str, float] = registry.default_tolerances()
CONVERGED = "converged"
NOT_CONVERGED = "not_converged"


@dataclass
class Decision:
    """The outcome of one convergence check (JSON-ready via :meth:`record`)."""

    cycle: int
    converged: bool
    reason: str
    deltas: dict[str, float] = field(default_factory=dict)  # metric -> current − previous
    tolerances: dict[str, float] = field(default_factory=dict)
    within: dict[str, bool] = field(default_factory=dict)  # metric -> |delta| ≤ tolerance

    @property
    def status(self) -> str:
        return CONVERGED if self.converged else NOT_CONVERGED

    def record(self) -> dict:
        rec = asdict(self)
        rec["status"] = self.status
        return rec


def _number(record: Mapping, key: str, which: str) -> float:
    if key not in record:
        raise LocScaleInputError(f"the {which} cycle's validation record has no {key!r}",
                                 f"remove {key!r} from the tolerances or validate with a metric of that name "
                                 f"(available: {', '.join(sorted(k for k in record if _is_number(record[k])))})")
    value = record[key]
    if not _is_number(value):
        raise LocScaleInputError(f"{key!r} of the {which} cycle is {value!r}, not a number",
                                 "check the validation step's output for this cycle")
    return float(value)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_convergence(current: Mapping, previous: Mapping, tolerances: Mapping[str, float | None] | None = None,
                      *, cycle: int, min_cycles: int = 1, model_rebuilt: bool = False) -> Decision:
    """Decide whether `cycle` has converged from its validation record and the previous cycle's.

    `tolerances` maps metric names of the records to the largest |change| that counts as converged (None/absent =
    not watched; default: the registry's, :func:`locscale.cycle.registry.default_tolerances`, which is
    :data:`DEFAULT_TOLERANCES` unless a metric was registered since). A NaN metric never counts as converged.
    """
    tol = {k: float(v) for k, v in (registry.default_tolerances() if tolerances is None else tolerances).items()
           if v is not None}
    for k, v in tol.items():
        if not v >= 0:
            raise LocScaleInputError(f"tolerance for {k!r} is {v}; it must be ≥ 0",
                                     "give a non-negative number (or null to stop watching the metric)")
    if cycle < 1:
        raise ValueError("convergence is decided for cycles ≥ 1 (cycle 0 is the unrefined input)")
    deltas = {k: _number(current, k, "current") - _number(previous, k, "previous") for k in tol}
    within = {k: bool(math.isfinite(d) and abs(d) <= tol[k]) for k, d in deltas.items()}
    outside = [f"|Δ{k}| = {abs(deltas[k]):.4g} > {tol[k]:g}" if math.isfinite(deltas[k]) else f"Δ{k} is NaN"
               for k in tol if not within[k]]
    if model_rebuilt:
        converged, reason = False, "the model was rebuilt before this cycle, so its metrics do not compare"
    elif cycle < min_cycles:
        converged, reason = False, f"cycle {cycle} < min_cycles = {min_cycles}"
    elif not tol:
        converged, reason = False, "no metric is watched (all tolerances are null): runs to max_cycles"
    elif outside:
        converged, reason = False, "; ".join(outside)
    else:
        converged = True
        reason = "all changes within tolerance: " + ", ".join(
            f"|Δ{k}| = {abs(deltas[k]):.4g} ≤ {tol[k]:g}" for k in tol)
    return Decision(cycle=int(cycle), converged=converged, reason=reason, deltas=deltas, tolerances=tol,
                    within=within)


def write_decision(decision: Decision, path: str | os.PathLike) -> Path:
    """Write a decision as JSON (atomically); its ``status`` is ``converged`` or ``not_converged``."""
    return write_json(path, decision.record())


def read_decision(path: str | os.PathLike) -> bool:
    """True when the decision file at `path` says ``converged``."""
    path = Path(path)
    try:
        status = json.loads(path.read_text())["status"]
    except (OSError, ValueError, KeyError) as exc:
        raise LocScaleInputError(f"not a convergence decision file ({exc})",
                                 "delete it; the workflow's `converged` checkpoint writes it again", path) from exc
    if status not in (CONVERGED, NOT_CONVERGED):
        raise LocScaleInputError(f"unknown convergence status {status!r}",
                                 "delete the file; the workflow's `converged` checkpoint writes it again", path)
    return status == CONVERGED


@dataclass
class Walk:
    """Where the loop stands: the last cycle to run and why it is the last."""

    last: int
    converged: bool  # the last cycle converged
    stopped_by: str  # "converged", "max_cycles" or "waiting" (for a rebuilt model)


def walk_cycles(is_converged: Callable[[int], bool], max_cycles: int,
                is_waiting: Callable[[int], bool] | None = None) -> Walk:
    """Walk cycles 1 … `max_cycles` and stop at the first converged one (docs/design.md "How the loop is built").

    `is_converged(c)` returns cycle c's checkpoint decision; in a workflow it raises Snakemake's
    IncompleteCheckpointException while that checkpoint has not run, which is how the loop is extended one cycle at
    a time. `is_waiting(c)` (model completion) returns True when the cycle after c needs a model the user has not
    provided yet: the walk then stops at c. It is asked only for cycles that did not converge and are below
    `max_cycles`.
    """
    if int(max_cycles) < 1:
        raise LocScaleInputError(f"max_cycles = {max_cycles}", "set max_cycles to at least 1")
    for c in range(1, int(max_cycles) + 1):
        if is_converged(c):
            return Walk(c, True, "converged")
        if c < int(max_cycles) and is_waiting is not None and is_waiting(c):
            return Walk(c, False, "waiting")
    return Walk(int(max_cycles), False, "max_cycles")

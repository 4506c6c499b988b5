"""Convergence decisions of the workflow's `converged` checkpoint and the loop walk (locscale.cycle.convergence)."""

from __future__ import annotations

import json
import math

import pytest

from locscale.cycle.convergence import (
    CONVERGED,
    DEFAULT_TOLERANCES,
    NOT_CONVERGED,
    check_convergence,
    read_decision,
    walk_cycles,
    write_decision,
)
from locscale.errors import LocScaleInputError

PREV = {"cc_mask": 0.800, "fsc_average": 0.700, "b_mean": 60.0, "kurtosis": 1.5}


def _cur(**changes):
    rec = dict(PREV)
    for k, d in changes.items():
        rec[k] = PREV[k] + d
    return rec


def test_converged_when_every_change_is_within_tolerance():
    d = check_convergence(_cur(cc_mask=0.009, fsc_average=-0.0015, b_mean=4.5), PREV, cycle=3, min_cycles=2)
    assert d.converged and d.status == CONVERGED
    assert set(d.deltas) == set(DEFAULT_TOLERANCES)
    # deltas are current - previous; 1e-12 covers float rounding of sums of numbers ~1
    assert d.deltas["cc_mask"] == pytest.approx(0.009, abs=1e-12)
    assert d.deltas["fsc_average"] == pytest.approx(-0.0015, abs=1e-12)
    assert all(d.within.values())


@pytest.mark.parametrize("metric,change", [("cc_mask", 0.011), ("fsc_average", -0.003), ("b_mean", 5.5)])
def test_one_metric_outside_tolerance_blocks_convergence(metric, change):
    d = check_convergence(_cur(**{metric: change}), PREV, cycle=3)
    assert not d.converged and d.status == NOT_CONVERGED
    assert not d.within[metric]
    assert metric in d.reason
    assert sum(not w for w in d.within.values()) == 1


def test_tolerance_boundary_is_inclusive():
    # |Δ| equal to the tolerance counts as converged. Differences of binary floats are not exact, so the test
    # uses values whose difference is exactly representable (0.5 and 0.25 are powers of two).
    prev = {"cc_mask": 0.5}
    d = check_convergence({"cc_mask": 0.75}, prev, {"cc_mask": 0.25}, cycle=2)
    assert d.deltas["cc_mask"] == 0.25 and d.converged


def test_min_cycles_and_rebuilt_model_prevent_convergence():
    cur = _cur()  # no change at all
    assert not check_convergence(cur, PREV, cycle=1, min_cycles=2).converged
    assert check_convergence(cur, PREV, cycle=2, min_cycles=2).converged
    rebuilt = check_convergence(cur, PREV, cycle=4, min_cycles=2, model_rebuilt=True)
    assert not rebuilt.converged and "rebuilt" in rebuilt.reason


def test_custom_tolerances_null_disables_a_metric_and_other_keys_are_watched():
    cur = _cur(b_mean=50.0, kurtosis=0.01)
    d = check_convergence(cur, PREV, {"cc_mask": 0.01, "b_mean": None, "kurtosis": 0.05}, cycle=2)
    assert d.converged and set(d.tolerances) == {"cc_mask", "kurtosis"}
    d = check_convergence(cur, PREV, {"kurtosis": 0.001}, cycle=2)
    assert not d.converged


def test_no_watched_metric_never_converges():
    d = check_convergence(_cur(), PREV, {"cc_mask": None}, cycle=5)
    assert not d.converged and "max_cycles" in d.reason


def test_nan_metric_is_not_converged():
    d = check_convergence({**PREV, "cc_mask": float("nan")}, PREV, cycle=3)
    assert not d.converged and math.isnan(d.deltas["cc_mask"]) and "NaN" in d.reason


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(LocScaleInputError, match="no 'rscc'"):
        check_convergence(PREV, PREV, {"rscc": 0.01}, cycle=2)
    with pytest.raises(LocScaleInputError, match="must be ≥ 0"):
        check_convergence(PREV, PREV, {"cc_mask": -1}, cycle=2)
    with pytest.raises(LocScaleInputError, match="not a number"):
        check_convergence({**PREV, "cc_mask": "high"}, PREV, cycle=2)
    with pytest.raises(ValueError):
        check_convergence(PREV, PREV, cycle=0)


def test_decision_file_round_trip(tmp_path):
    d = check_convergence(_cur(cc_mask=0.05), PREV, cycle=2)  # 0.05 > default 0.01
    path = write_decision(d, tmp_path / "c" / "converged.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == NOT_CONVERGED and rec["cycle"] == 2 and rec["within"]["cc_mask"] is False
    assert read_decision(path) is False
    write_decision(check_convergence(_cur(), PREV, cycle=2), path)
    assert read_decision(path) is True
    assert not list(tmp_path.glob("c/.*partial*"))  # atomic write leaves no temporary file
    (tmp_path / "bad.json").write_text('{"status": "maybe"}')
    with pytest.raises(LocScaleInputError, match="unknown convergence status"):
        read_decision(tmp_path / "bad.json")
    (tmp_path / "garbage.json").write_text("not json")
    with pytest.raises(LocScaleInputError, match="not a convergence decision"):
        read_decision(tmp_path / "garbage.json")


class _Incomplete(Exception):
    """Stands in for Snakemake's IncompleteCheckpointException in the walk."""


def test_walk_stops_at_first_converged_cycle():
    asked = []

    def conv(c):
        asked.append(c)
        return c == 3

    w = walk_cycles(conv, 6)
    assert (w.last, w.converged, w.stopped_by) == (3, True, "converged")
    assert asked == [1, 2, 3]


def test_walk_reaches_max_cycles_and_a_converged_last_cycle_counts():
    assert walk_cycles(lambda c: False, 4).__dict__ == {"last": 4, "converged": False, "stopped_by": "max_cycles"}
    w = walk_cycles(lambda c: c == 4, 4)
    assert w.converged and w.stopped_by == "converged"


def test_walk_propagates_incomplete_checkpoints_one_cycle_at_a_time():
    done = {1: False}  # cycle 1 checked and not converged; cycle 2 not run yet

    def conv(c):
        if c not in done:
            raise _Incomplete(c)
        return done[c]

    with pytest.raises(_Incomplete) as exc:
        walk_cycles(conv, 5)
    assert exc.value.args == (2,)
    done[2] = True
    assert walk_cycles(conv, 5).last == 2
    # a larger max_cycles changes nothing once converged; a smaller one stops the walk before
    assert walk_cycles(conv, 9).last == 2
    assert walk_cycles(conv, 1).__dict__ == {"last": 1, "converged": False, "stopped_by": "max_cycles"}


def test_walk_waits_for_rebuilt_model_only_below_max_cycles():
    w = walk_cycles(lambda c: False, 3, is_waiting=lambda c: c == 1)
    assert (w.last, w.stopped_by) == (1, "waiting")
    asked = []

    def waiting(c):
        asked.append(c)
        return True

    assert walk_cycles(lambda c: c == 1, 3, is_waiting=waiting).stopped_by == "converged"
    assert asked == []  # a converged cycle is never rebuilt
    assert walk_cycles(lambda c: False, 1, is_waiting=waiting).stopped_by == "max_cycles"
    assert asked == []  # nor is the last one


def test_walk_rejects_zero_cycles():
    with pytest.raises(LocScaleInputError, match="max_cycles"):
        walk_cycles(lambda c: True, 0)

"""Which cycle is handed out (locscale.cycle.selection): drift flags and the documented choice of the final cycle."""

from __future__ import annotations

import pytest

from locscale.cycle.selection import DEFAULT_SELECTION, choose_final_cycle, cycle_flags


def rows(b_means, fscs, blur=None):
    blur = blur or [0.0] * len(b_means)
    return [{"cycle": c, "b_mean": b, "fsc_average": f, "sharpness_b_vs_global": s}
            for c, (b, f, s) in enumerate(zip(b_means, fscs, blur, strict=True))]


def test_drifting_cycles_are_flagged_and_never_chosen():
    """The issue's phantom: mean B 40 -> 110 -> 159 -> 187 -> 195 against LocScale targets while FSCaverage stays
    flat (it is blind to an overall B) -- every cycle after the first is flagged, and cycle 1 is handed out."""
    r = rows([40, 39.9, 110.3, 159.4, 186.8, 195.0], [0.80, 0.94, 0.9402, 0.9401, 0.9403, 0.9402])
    flags = cycle_flags(r)
    assert flags[1] == [] and all(flags[c] and "B drift" in flags[c][0] for c in (2, 3, 4, 5))
    sel = choose_final_cycle(r)
    assert sel.cycle == 1 and "flagged and not eligible: 2, 3, 4, 5" in sel.reason


def test_the_last_of_equally_good_unflagged_cycles_is_chosen():
    lim = DEFAULT_SELECTION["max_b_drift"]
    r = rows([40, 45, 48, 45 + lim - 1], [0.70, 0.849, 0.8495, 0.8490])
    assert choose_final_cycle(r).cycle == 3  # 0.8490 is within 0.002 of the best (0.8495)
    r = rows([40, 45, 48, 49], [0.70, 0.849, 0.8495, 0.8470])
    assert choose_final_cycle(r).cycle == 2  # cycle 3 fell by more than the tolerance


def test_a_map_that_blurs_or_sharpens_is_flagged_even_when_b_is_steady():
    inc = DEFAULT_SELECTION["max_sharpness_change"]
    r = rows([40, 45, 46, 47, 46], [0.7, 0.85, 0.85, 0.85, 0.85], blur=[0.0, 36.0, 37.0, 36.0 + inc + 1, 37.0])
    flags = cycle_flags(r)
    assert not flags[2] and flags[3] and "over-smoothed" in flags[3][0]
    assert choose_final_cycle(r).cycle == 4
    # and one that got much sharper than cycle 1 (e.g. B collapsing towards 0) is flagged too
    r = rows([40, 45, 46, 47], [0.7, 0.85, 0.85, 0.85], blur=[0.0, 36.0, 37.0, 36.0 - inc - 1])
    flags = cycle_flags(r)
    assert flags[3] and "over-sharpened" in flags[3][0]
    assert choose_final_cycle(r).cycle == 2


def test_every_cycle_flagged_or_no_fsc():
    r = rows([40, 45, 46], [0.7, float("nan"), float("nan")])
    assert choose_final_cycle(r).cycle == 2  # no FSCaverage: the last unflagged cycle
    r = rows([40, 45, 100], [0.7, 0.8, 0.8])
    sel = choose_final_cycle(r, {"max_b_drift": 10})
    assert sel.cycle == 1
    with pytest.raises(ValueError):
        choose_final_cycle(rows([40], [0.7]))
    # a switched-off flag flags nothing
    assert not cycle_flags(rows([40, 45, 100], [0.7, 0.8, 0.8]), {"max_b_drift": None})[2]


def geometry_rows(rama, bond, angle=None, fsc=None):
    angle = angle or [0.8] * len(rama)
    fsc = fsc or [0.7] + [0.85] * (len(rama) - 1)
    return [{"cycle": c, "b_mean": 50.0, "fsc_average": f, "sharpness_b_vs_global": 0.0, "rama_outliers_pct": r,
             "bond_rmsz": b, "angle_rmsz": a}
            for c, (r, b, a, f) in enumerate(zip(rama, bond, angle, fsc, strict=True))]


def test_a_cycle_that_wrecks_geometry_is_flagged_and_cannot_be_final():
    s = DEFAULT_SELECTION
    # cycle 3 fits best (FSCaverage) but raised Ramachandran outliers beyond the tolerance: cycle 2 is final
    r = geometry_rows([0.2, 0.2, 0.3, 0.2 + s["max_rama_outliers_increase"] + 0.1], [0.4, 0.5, 0.6, 0.6],
                      fsc=[0.7, 0.85, 0.85, 0.86])
    flags = cycle_flags(r)
    assert not flags[1] and not flags[2] and "Ramachandran outliers" in flags[3][0]
    assert choose_final_cycle(r).cycle == 2
    # bond RMSZ: a rise within servalcat's target range (<= rmsz_ceiling) is not flagged; above it and more than
    # max_rmsz_increase above the input's it is
    r = geometry_rows([0.2] * 4, [0.2, 0.2 + s["max_rmsz_increase"] + 0.2, 0.9, s["rmsz_ceiling"] + 0.6],
                      fsc=[0.7, 0.85, 0.85, 0.86])
    flags = cycle_flags(r)
    assert not flags[1] and not flags[2] and "bond RMSZ" in flags[3][0]
    assert choose_final_cycle(r).cycle == 2
    # angle RMSZ likewise; a missing value (tool not available) flags nothing
    r = geometry_rows([0.2, float("nan"), 0.2], [0.5, float("nan"), 0.5], angle=[0.6, 0.6, 2.0])
    flags = cycle_flags(r)
    assert not flags[1] and "angle RMSZ" in flags[2][0]
    # switched off
    assert not cycle_flags(r, {"max_rmsz_increase": None})[2]


def test_when_every_cycle_is_flagged_a_geometry_flag_weighs_more_than_drift():
    r = geometry_rows([0.2, 2.0, 0.2], [0.5, 0.5, 0.5])
    r[2]["b_mean"] = 100.0  # cycle 2 drifted; cycle 1 wrecked the geometry
    sel = choose_final_cycle(r)
    assert sel.cycle == 2 and "geometry is not flagged" in sel.reason
    r = geometry_rows([0.2, 2.0, 3.0], [0.5, 0.5, 0.5])
    sel = choose_final_cycle(r)
    assert sel.cycle == 1 and "do not use its model" in sel.reason

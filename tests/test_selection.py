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


# ---------------------------------------------------------------------- model completion: like with like
def residue_table(n_input, built=0, input_outliers=(), built_outliers=0, built_overlaps=0, first=1):
    """A per-residue table (chain A): the input model's residues first..first+n_input-1 (``input_outliers``:
    those that are Ramachandran outliers) and `built` residues after them, `built_outliers` of them outliers and
    `built_overlaps` of them in a bad overlap."""
    rows = []
    for k in range(n_input + built):
        n = first + k
        is_built = k >= n_input
        j = k - n_input
        outlier = (n in input_outliers) if not is_built else j < built_outliers
        rows.append({"chain": "A", "resnum": n, "icode": "", "rama": "outlier" if outlier else "favoured",
                     "overlaps": 1.0 if is_built and j < built_overlaps else 0.0})
    return rows


def completion_rows(fsc):
    """Cycle records of a run with a completion after cycle 1 (cycles 2 and 3 hold the completed model):
    FSCaverage `fsc` per cycle, whole-model Ramachandran outliers as the validation would report them."""
    return [{"cycle": c, "b_mean": 50.0, "fsc_average": f, "sharpness_b_vs_global": 0.0, "bond_rmsz": 0.8,
             "angle_rmsz": 0.8, "atom_overlaps_per_1000_atoms": 2.0} for c, f in enumerate(fsc)]


def test_a_completed_model_that_passes_its_checks_is_final_although_its_fscaverage_is_lower():
    """FSCaverage of a model with 20 % more residues is compared only with cycles holding the same model: the
    completion (cycles 2 and 3, 30 built residues, no outlier or overlap among them) is handed out, and the record
    says so. Comparing its FSCaverage with the smaller model's would have chosen cycle 1."""
    r = completion_rows([0.70, 0.850, 0.842, 0.843])
    tables = {0: residue_table(150, input_outliers={40}), 1: residue_table(150, input_outliers={40})}
    tables[2] = tables[3] = residue_table(150, 30, input_outliers={40})
    assert choose_final_cycle(r).cycle == 1  # without the residue tables: the highest FSCaverage
    sel = choose_final_cycle(r, residues=tables)
    assert sel.cycle == 3 and not any(sel.flags.values())
    assert sel.completion["holds_completion"] and sel.completion["residues_added"] == 30
    assert sel.completion["input_residues"] == 150 and "completed model (30 residues more" in sel.reason
    assert sel.record()["completion"]["cycles"]["2"] == {"residues": 180, "residues_added": 30, "flagged": False}


def test_geometry_compares_the_input_residues_with_themselves_and_the_built_ones_with_absolute_limits():
    s = DEFAULT_SELECTION
    r = completion_rows([0.70, 0.850, 0.842, 0.843])
    base = residue_table(100, input_outliers={40})
    # (a) built residues without an outlier dilute the whole model's percentage (3 of 300 = 1 %, the input's 1 %),
    # but two of the input's residues became outliers: +2 points on the same 100 residues
    worse = residue_table(100, 200, input_outliers={10, 40, 60})
    flags = cycle_flags(r, residues={0: base, 1: base, 2: worse, 3: worse})
    assert "input model's residues" in flags[2][0] and "+2.00 points" in flags[2][0]
    # (b) the built residues against absolute limits: 2 of 20 outliers (10 %), 1 of 20 in an overlap (5 %)
    bad_built = residue_table(100, 20, input_outliers={40}, built_outliers=2, built_overlaps=1)
    flags = cycle_flags(r, residues={0: base, 1: base, 2: bad_built, 3: base})
    assert any(f"built residues are Ramachandran outliers (> {s['max_built_rama_outliers_pct']:g} %)" in f
               for f in flags[2]), flags[2]
    assert any("built residues are in a bad atom overlap" in f for f in flags[2]), flags[2]
    sel = choose_final_cycle(r, residues={0: base, 1: base, 2: bad_built, 3: bad_built})
    assert sel.cycle == 1 and sel.completion["flagged_completions"] == [2, 3] and not sel.completion["holds_completion"]
    # (c) clean built residues pass; limits can be switched off
    flags = cycle_flags(r, residues={0: base, 1: base, 2: residue_table(100, 20, input_outliers={40}), 3: base})
    assert not flags[2]
    assert not cycle_flags(r, {"max_built_rama_outliers_pct": None, "max_built_overlap_pct": None},
                           residues={0: base, 1: base, 2: bad_built, 3: base})[2]


def test_a_rise_in_atom_overlaps_is_flagged():
    r = completion_rows([0.70, 0.85, 0.85])
    r[2]["atom_overlaps_per_1000_atoms"] = 2.0 + DEFAULT_SELECTION["max_overlaps_increase"] + 0.5
    flags = cycle_flags(r)
    assert not flags[1] and "atom overlaps per 1000 atoms" in flags[2][0]
    assert choose_final_cycle(r).cycle == 1

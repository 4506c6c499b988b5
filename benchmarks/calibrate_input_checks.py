"""Calibration of two input checks (not a timing): what they measure on inputs that are right and on inputs that are
wrong, so their thresholds can be judged.

* half maps (locscale.checks.half_map_statistics): independent halves of SIMULATED phantoms of 5ME2 (chain A in a
  48³ box; all chains on the EMD-3488 grid) at several resolutions, against the full map given as a half map, a
  half map with a 5 % copy of itself, and the noise-free signal with a half map;
* model fit (locscale.simulate.fit_shift_scan): 5ME2 and 5NI1 in EMD-3488 moved by 0-6 voxels, and the edge-case
  crops of ../shared/data (or $LOCSCALE_SHARED_DATA; skipped when absent) in place and moved by one voxel.

    python benchmarks/calibrate_input_checks.py          # about 1 min on 2 cores
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from locscale.checks import (
    COPIES_FSC,
    NESTED_CROSS_POWER,
    NESTED_POWER_RATIO,
    half_map_statistics,
)
from locscale.mapio import read_map
from locscale.metrics import envelope_radius
from locscale.models import envelope_mask, read_model, shift_model
from locscale.phantoms.phantom import crop_model, make_phantom
from locscale.simulate import FIT_GAIN, FIT_GAIN_RELATIVE, fit_shift_scan, nyquist_dmin, simulate_model_map

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "emd3488"
SHARED = Path(os.environ.get("LOCSCALE_SHARED_DATA", REPO.parent / "shared" / "data")) / "edge_cases"


def half_maps() -> None:
    print("| phantom | pair | FSC min | outer FSC | outer cross / own power | outer power ratio | verdict |")
    print("|---|---|---|---|---|---|---|")
    st = read_model(EXAMPLE / "5me2.pdb")
    cases = [("chain A, 48³, 3.5 Å", ["A"], (48, 1.05), 3.5), ("chain A, 48³, 2.3 Å", ["A"], (48, 1.05), 2.3),
             ("chain A, 48³, 2.1 Å (Nyquist)", ["A"], (48, 1.05), 2.1),
             ("all chains, EMD-3488 grid, 2.68 Å", None, read_map(EXAMPLE / "emd_3488.mrc"), 2.68)]
    for label, chains, like, res in cases:
        ph = make_phantom(crop_model(st, chains), like, seed=1, resolution=res, b_global=80)
        h1, h2, full, apix = ph.half1.data, ph.half2.data, ph.full.data, ph.half1.apix
        rng = np.random.default_rng(0)
        pairs = {"independent halves": (h1, h2), "full, half 1": (full, h1),
                 "half 1, half 1 + 5 % noise": (h1, h1 + 0.05 * h1.std() * rng.standard_normal(h1.shape)),
                 "noise-free signal, half 1": (ph.signal.data, h1)}
        for name, (a, b) in pairs.items():
            s = half_map_statistics(a, b, apix)
            nested = s["outer_cross_over_own"] >= NESTED_CROSS_POWER and s["outer_power_ratio"] <= NESTED_POWER_RATIO
            verdict = ("refused: nested" if nested else "refused: copies" if s["fsc_min"] >= COPIES_FSC
                       else "warning: FSC ≥ 0.143 to Nyquist" if s["fsc_min"] >= 0.143 else "accepted")
            print(f"| {label} | {name} | {s['fsc_min']:.3f} | {s['outer_fsc']:.3f} | "
                  f"{s['outer_cross_over_own']:.3f} | {s['outer_power_ratio']:.3f} | {verdict} |")


def fit(emap, st, resolution: float, label: str) -> None:
    model_map = simulate_model_map(st, emap, dmin=max(resolution, nyquist_dmin(emap))).data
    mask = envelope_mask(st, emap, envelope_radius(resolution))
    scan = fit_shift_scan(emap.data, model_map, mask)
    gain = scan["best_cc"] - scan["cc"]
    refused = gain > max(FIT_GAIN, FIT_GAIN_RELATIVE * abs(scan["cc"]))
    print(f"| {label} | {scan['cc']:.3f} | {tuple(scan['best_shift'])} | {scan['best_cc']:.3f} | {gain:+.3f} | "
          f"{'refused' if refused else 'accepted'} |")


def model_fit() -> None:
    print("\n| model | CC in place | best move (voxels) | its CC | gain | verdict |")
    print("|---|---|---|---|---|---|")
    emap = read_map(EXAMPLE / "emd_3488.mrc")
    for name in ("5me2.pdb", "5ni1_updated.cif"):
        st = read_model(EXAMPLE / name)
        for dv in (0, 0.3, 0.5, 0.6, 0.7, 1, 2, 6):
            fit(emap, shift_model(st, [dv * emap.apix, 0, 0]), 3.2, f"{name} moved {dv} voxel along x")
    for m, mod, res in (("2566_3J6B_9.mrc", "3J6B_9.pdb", 3.2),
                        ("emringer_axis321_map.ccp4", "emringer_axis321_model.pdb", 3.4),
                        ("non_zero_origin_map.ccp4", "non_zero_origin_model.pdb", 3.0)):
        if not (SHARED / m).exists():
            continue
        e, st = read_map(SHARED / m), read_model(SHARED / mod)
        fit(e, st, res, f"{m} in place")
        fit(e, shift_model(st, [e.voxel_size[0], 0, 0]), res, f"{m} moved 1 voxel along x")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    half_maps()
    model_fit()

"""Model-bias controls (paper Fig. 3): LocScale against references with a side chain truncated, a residue
mutated to Trp, poly-Ala and perturbed coordinates; map values at the affected atoms."""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from ..mapio import Map
from ..models import atom_positions
from ..phantoms.edits import (
    main_chain_positions,
    mutate_to_trp,
    perturb_coordinates,
    pick_residue,
    side_chain_positions,
    truncate_to_ala,
)
from .bench import Bench
from .common import figure


def _values_at(emap: Map, xyz: np.ndarray) -> np.ndarray:
    import scipy.ndimage as ndi

    if len(xyz) == 0:
        return np.array([])
    ijk = emap.frac_to_xyz_index(xyz)
    return ndi.map_coordinates(emap.data.astype(np.float64), ijk.T, order=1, mode="nearest")


def _far_from(xyz: np.ndarray, others: np.ndarray, distance: float) -> np.ndarray:
    """Rows of `xyz` farther than `distance` Å from every row of `others`."""
    if len(xyz) == 0 or len(others) == 0:
        return xyz
    d = np.linalg.norm(xyz[:, None, :] - others[None, :, :], axis=2).min(axis=1)
    return xyz[d > distance]


def model_bias_controls(bench: Bench, reference: gemmi.Structure | None = None, *, truncate: str | None = None,
                        mutate: str | None = None, perturb_rms=(1.0, 2.0, 3.0, 5.0), seed: int = 0,
                        progress: bool = False) -> pd.DataFrame:
    """Paper Fig. 3 on a phantom. `reference` (default: the true model) is the unmodified reference; the
    controls change it and LocScale is rerun with the same window and masks.

    Affected atoms: the truncated residue's true side-chain atoms beyond CB (truncate); the added Trp atoms
    beyond CB that lie > 1.5 Å from every true atom (mutate; there is no density there); every true
    side-chain atom beyond CB (poly-Ala, perturbed). For each control: mean map value at the affected atoms
    with the control reference (``value_control``) and with the unmodified one (``value_reference``), their
    ratio, the same after dividing each map by its mean value at the main-chain atoms (``ratio_main_chain``:
    removes an overall change of scale), the control map's value there relative to its own main chain
    (``control_rel_main_chain``) and the truth's (``truth_rel_main_chain``), and the control
    map's in-mask kurtosis and truth scores. `truncate`/`mutate` default to the PHE/TYR and VAL/THR/SER nearest
    the centre (paper: F→A, V→W).
    """
    from tqdm import tqdm

    ref_st = bench.structure if reference is None else reference
    truncate = truncate or pick_residue(ref_st, ("PHE", "TYR"))
    mutate = mutate or pick_residue(ref_st, ("VAL", "THR", "SER"))
    base = bench.locscale(ref_st)
    all_true = atom_positions(bench.structure)
    main = main_chain_positions(bench.structure)
    trp_model, trp_added = mutate_to_trp(ref_st, mutate)
    controls = [("truncate_to_ala", truncate, truncate_to_ala(ref_st, truncate),
                 side_chain_positions(ref_st, truncate)),
                ("mutate_to_trp", mutate, trp_model, _far_from(trp_added, all_true, 1.5)),
                ("poly_ala", "all residues", truncate_to_ala(ref_st), side_chain_positions(ref_st))]
    for r in perturb_rms:
        controls.append((f"perturb_{r:g}A", f"RMS {r:g} Å, seed {seed}", perturb_coordinates(ref_st, r, seed),
                         side_chain_positions(ref_st)))

    def rel(m: Map, xyz):
        v = _values_at(m, xyz)
        return float(np.mean(v)) if v.size else float("nan"), float(np.mean(_values_at(m, main)))

    rows = [{"control": "reference", "detail": "unmodified", "n_atoms": 0, **bench.scores(base)}]
    for name, detail, st, xyz in tqdm(controls, desc="model-bias controls", disable=not progress):
        out = bench.locscale(st)
        vc, mc = rel(out, xyz)
        vr, mr = rel(base, xyz)
        vt, mt = rel(bench.truth, xyz)
        rows.append({"control": name, "detail": detail, "n_atoms": int(len(xyz)), "value_control": vc,
                     "value_reference": vr, "ratio": vc / vr if vr else np.nan,
                     "ratio_main_chain": (vc / mc) / (vr / mr) if vr and mc and mr else np.nan,
                     "control_rel_main_chain": vc / mc if mc else np.nan,
                     "truth_rel_main_chain": vt / mt if mt else np.nan, **bench.scores(out)})
    return pd.DataFrame(rows)


def plot_model_bias(table: pd.DataFrame, path, title: str = "model-bias controls (SIMULATED phantom)") -> None:
    t = table[table["control"] != "reference"]

    def draw(fig, ax):
        x = np.arange(len(t))
        ax.bar(x - 0.2, t["ratio"], 0.4, label="value / value with unmodified reference")
        ax.bar(x + 0.2, t["ratio_main_chain"], 0.4, label="same, each map / its main-chain value")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xticks(x, t["control"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("map value at affected side-chain atoms")
        ax.legend(fontsize=8)
    figure(path, draw, title)

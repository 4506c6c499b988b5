"""Degenerate inputs: refused with a clear error, or reported as an explicit warning.

Every check here either raises :class:`~locscale.errors.LocScaleInputError` (the input cannot give a
meaningful result) or emits a :class:`LocScaleWarning` (the result is computed but the user must know). The
command line turns warnings into one stderr line each and a ``warnings`` list in its JSON record
(:func:`locscale.records.collect_warnings`).

* maps (:func:`check_map_content`): all zero or constant → error; variation at float32 rounding level →
  error; very low relative variation → warning;
* half maps (:func:`check_half_maps_differ`): identical → error (every FSC would be 1);
  (:func:`check_half_maps_independent`): one map is the other plus independent noise (the full map given as a
  half map), or the two agree like copies even in their noisiest shells → error; an FSC that never falls below
  0.143 up to Nyquist → warning;
* models (:func:`check_model_content`, called by :func:`locscale.models.read_model`): non-finite
  coordinates or every occupancy 0 → error; missing, all-zero or negative B → warning;
  (:func:`check_model_atoms`): a CA-only (or P-only) trace → error; backbone without side chains → warning;
* model maps (:func:`check_model_map_differs`): a model map that is the map itself (or a scaled copy) → error.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import LocScaleInputError

#: a map whose standard deviation is below this fraction of its RMS value is constant up to float32
#: rounding (float32 keeps 24 bits: 6e-8 relative; summed rounding stays below 1e-6)
CONSTANT_RELATIVE_STD = 1e-6
#: below this fraction the variation is real but tiny compared with the map's offset: a warning
LOW_RELATIVE_STD = 1e-3


class LocScaleWarning(UserWarning):
    """A degenerate but usable input; the message says what and what it means for the result."""


def warn(message: str) -> None:
    warnings.warn(message, LocScaleWarning, stacklevel=3)


def check_map_content(data: np.ndarray, path: str | None = None, what: str = "map") -> None:
    """Refuse an all-zero or constant map; warn when its variation is tiny compared with its offset."""
    a = np.asarray(data)
    std = float(np.std(a, dtype=np.float64))
    rms = float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))
    fix = (f"check that this is the right {what} file (an export or masking step may have failed); "
           f"LocScale needs the unsharpened {what} with its density")
    if rms == 0:
        raise LocScaleInputError(f"the {what} is all zeros: nothing to sharpen or measure", fix, path)
    if std <= CONSTANT_RELATIVE_STD * rms:
        raise LocScaleInputError(f"the {what} is constant (every voxel {float(a.flat[0]):.6g}, standard deviation "
                                 f"{std:.3g}): it holds no density", fix, path)
    if std < LOW_RELATIVE_STD * rms:
        warn(f"{path or what}: the {what}'s standard deviation ({std:.3g}) is {std / rms:.1e} of its RMS value "
             f"({rms:.3g}): almost constant, results will be dominated by rounding")


def check_half_maps_differ(h1: np.ndarray, h2: np.ndarray, path1: str | None = None,
                           path2: str | None = None) -> None:
    """Refuse identical half maps: their FSC would be 1 at every resolution."""
    if np.array_equal(np.asarray(h1), np.asarray(h2)):
        raise LocScaleInputError(
            f"the two half maps are identical ({path1} and {path2}): every FSC between them would be 1",
            "give the two independent half maps of the reconstruction (e.g. *_half_map_1 and *_half_map_2)",
            path2)


#: the outer shells where independent half maps are noise-dominated and tested: from this fraction of Nyquist on
HALF_MAP_OUTER_SHELLS = 0.75
#: a half map whose cross-power with the other reaches this fraction of its own power in the outer shells is the
#: other plus independent noise (independent halves: cross-power / own power = FSC, near 0 there)
NESTED_CROSS_POWER = 0.9
#: ... when the two maps' outer-shell powers differ by more than this ratio (the mean of two independent halves
#: carries half the noise power of one; independent halves carry equal noise)
NESTED_POWER_RATIO = 0.9
#: half maps whose FSC stays at or above this in every shell up to Nyquist agree like copies of one map
COPIES_FSC = 0.9
#: Measured (benchmarks/calibrate_input_checks.py; phantoms of 5ME2 at 3.5, 2.3 and 2.1 Å in a 48³ box and at
#: 2.68 Å on the EMD-3488 grid): independent halves have outer cross / own power 0.02-0.71 (= their FSC there) and
#: power ratio 0.985-0.999; the full map with a half 0.995-1.000 and 0.51-0.86; the noise-free signal with a half
#: 0.98-1.00 and 0.02-0.71; a half with a 5 % noise copy of itself 1.00 and 0.46-0.97 (or FSC ≥ 0.93 everywhere).


def half_map_statistics(h1: np.ndarray, h2: np.ndarray, voxel_size: float) -> dict:
    """What :func:`check_half_maps_independent` decides on: the FSC curve's minimum and its value at Nyquist, the
    0.143 resolution, and, over the outer shells (from :data:`HALF_MAP_OUTER_SHELLS` of Nyquist on), the FSC, the
    ratio of the weaker map's power to the stronger's, and the cross-power Σ Re F1·F2* over the weaker map's own
    power.

    Why these: for independent halves S + N1 and S + N2 the cross-power is the signal power S², so cross / own
    power equals the FSC, which falls to about 0 in noise-dominated shells, and the two powers are equal. For a map
    A and B = A + E with E independent of A (the full map (S + (N1 + N2)/2) and one of its halves), the cross-power
    equals A's own power in every shell (ratio 1) while B carries more power (in noise-dominated shells A has half
    of B's noise power: FSC → √½ ≈ 0.71 instead of 0).
    """
    from . import metrics

    curve = metrics.fsc(h1, h2, voxel_size)
    n_shells = len(curve.shell)
    fine_shell = (np.arange(curve.fine_sums.shape[1]) + metrics.FINE_BINS // 2) // metrics.FINE_BINS
    num, p1, p2 = (np.bincount(fine_shell, weights=row, minlength=n_shells)[:n_shells] for row in curve.fine_sums[:3])
    outer = curve.shell >= HALF_MAP_OUTER_SHELLS * (n_shells - 1)
    cross, pa, pb = float(num[outer].sum()), float(p1[outer].sum()), float(p2[outer].sum())
    valid = (curve.shell >= 1) & np.isfinite(curve.fsc)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"fsc_min": float(np.min(curve.fsc[valid])) if valid.any() else float("nan"),
                "fsc_nyquist": float(curve.fsc[valid][-1]) if valid.any() else float("nan"),
                "nyquist_A": float(curve.resolution[-1]),
                "resolution_0143_A": metrics.resolution_at(curve, 0.143),
                "outer_from_A": float(curve.resolution[outer][0]) if outer.any() else float("nan"),
                "outer_fsc": cross / np.sqrt(pa * pb),
                "outer_power_ratio": min(pa, pb) / max(pa, pb),
                "outer_cross_over_own": cross / min(pa, pb),
                "weaker": 1 if pa <= pb else 2}


def check_half_maps_independent(h1: np.ndarray, h2: np.ndarray, voxel_size: float, path1: str | None = None,
                                path2: str | None = None) -> dict:
    """Refuse two "half maps" that cannot be independent halves, warn when their FSC never falls below 0.143.

    * one is the other plus independent noise (:func:`half_map_statistics`: outer-shell cross-power at least
      :data:`NESTED_CROSS_POWER` of the weaker map's own power, and the powers differing by more than
      :data:`NESTED_POWER_RATIO`): the full map given as a half map, or a noise-free map with a noisy one. Every FSC
      computed from them would be too high (≥ 0.71 in noise-dominated shells), and so the resolution, the FSC
      weights and the cross-validation;
    * they agree like copies in every shell up to Nyquist (FSC ≥ :data:`COPIES_FSC` everywhere): a map and a
      rounded, re-saved or lightly filtered copy of it;
    * an FSC ≥ 0.143 in every shell up to Nyquist (warning): the voxel size limits the resolution, and a resolution
      computed from these half maps is Nyquist, a bound and not a measurement.

    Returns :func:`half_map_statistics`.
    """
    st = half_map_statistics(h1, h2, voxel_size)
    names = {1: path1 or "half map 1", 2: path2 or "half map 2"}
    weak, strong = names[st["weaker"]], names[3 - st["weaker"]]
    fix = ("give the two independent half maps of the reconstruction (e.g. *_half_map_1 and *_half_map_2, both "
           "unfiltered and unmasked), not the full map or a copy of one half")
    if st["outer_cross_over_own"] >= NESTED_CROSS_POWER and st["outer_power_ratio"] <= NESTED_POWER_RATIO:
        raise LocScaleInputError(
            f"the half maps are not independent: {weak} looks like {strong} averaged with another map (the full map "
            f"given as a half map?): beyond {st['outer_from_A']:.2f} Å their cross-power is "
            f"{st['outer_cross_over_own']:.2f} of {weak}'s own power (independent halves: the FSC, ≈ 0 where noise "
            f"dominates) and {weak} has {st['outer_power_ratio']:.2f} of the other's power; FSC "
            f"{st['outer_fsc']:.2f} there, never below {st['fsc_min']:.2f} up to Nyquist ({st['nyquist_A']:.2f} Å)",
            fix, path2)
    if st["fsc_min"] >= COPIES_FSC:
        raise LocScaleInputError(
            f"the half maps are not independent: their FSC is at least {st['fsc_min']:.3f} in every shell up to "
            f"Nyquist ({st['nyquist_A']:.2f} Å), as for two copies of one map; independent halves correlate near 0 "
            "where noise dominates", fix, path2)
    if st["fsc_min"] >= 0.143:
        warn(f"{path1 or 'half map 1'}, {path2 or 'half map 2'}: the half maps' FSC never falls below 0.143 up to "
             f"Nyquist ({st['fsc_nyquist']:.2f} at {st['nyquist_A']:.2f} Å): the voxel size limits the resolution, so "
             "a resolution computed from them is Nyquist, a bound and not a measurement; give the resolution "
             "explicitly if you know it")
    return st


def check_model_content(positions: np.ndarray, b: np.ndarray, occupancy: np.ndarray, labels,
                        path: str | None = None, b_column: bool = True) -> None:
    """Refuse non-finite coordinates and a model whose occupancies are all 0; warn about missing, all-zero or
    negative B-factors. `labels` name the atoms (same order) for the messages."""
    bad = ~np.all(np.isfinite(positions), axis=1)
    if bad.any():
        names = [labels[i] for i in np.flatnonzero(bad)[:3]]
        raise LocScaleInputError(f"{int(bad.sum())} atom(s) have coordinates that are not finite numbers (e.g. "
                                 f"{', '.join(names)})",
                                 "fix or remove these atoms (PDB columns 31-54, mmCIF _atom_site.Cartn_x/y/z)",
                                 path)
    if occupancy.size and not np.any(occupancy > 0):
        raise LocScaleInputError("every atom has occupancy 0: the model map would be empty",
                                 "give the model with its occupancies (PDB columns 55-60, mmCIF "
                                 "_atom_site.occupancy)", path)
    where = path or "model"
    if not b_column:
        warn(f"{where}: the model has no B-factor column, so every atom was given B = {float(b[0]):g} Å²; "
             "LocScale needs refined B-factors (refine them, e.g. servalcat refine_spa_norefmac)")
    elif b.size and np.all(b == 0):
        warn(f"{where}: every atom has B = 0: the model map is unblurred and LocScale will over-sharpen; "
             "refine the B-factors first")
    elif b.size and np.any(b < 0):
        n = int(np.sum(b < 0))
        warn(f"{where}: {n} atom(s) have negative B (down to {float(b.min()):.3g} Å²), which is unphysical; "
             "the model map treats them as sharper than any real atom: refine the B-factors first")


#: a model whose polymer residues are mostly single atoms (CA or P) is a trace, not a model: refused above this
TRACE_FRACTION = 0.5
#: backbone atoms of an amino acid (anything else, CB included, is side chain)
_BACKBONE = {"N", "CA", "C", "O", "OXT"}


def check_model_atoms(structure, path: str | None = None) -> dict:
    """Refuse a CA-only (or P-only) trace and warn about a backbone without side chains.

    A model map needs the atoms that scatter: a trace of one atom per residue gives a density of isolated blobs
    (about a sixth of a residue's electrons), so the LocScale reference, the fit checks and refinement are all
    wrong. More than :data:`TRACE_FRACTION` of the polymer residues with one (non-hydrogen) atom is an error;
    more than half of the non-glycine amino acids without any side-chain atom (not even CB) is a warning (the
    reference lacks the side chains' density; the paper's poly-Ala control still sharpened side chains, but
    weaker). Returns the counts.
    """
    import gemmi

    residues = trace = aa = backbone_only = 0
    for chain in structure[0]:
        for res in chain:
            info = gemmi.find_tabulated_residue(res.name)
            if info is None or not (info.is_amino_acid() or info.is_nucleic_acid()):
                continue
            heavy = [at.name for at in res if not at.is_hydrogen()]
            residues += 1
            trace += len(heavy) <= 1
            if info.is_amino_acid() and res.name != "GLY" and len(heavy) > 1:
                aa += 1
                backbone_only += not (set(heavy) - _BACKBONE)
    where = path or "model"
    counts = {"polymer_residues": residues, "single_atom_residues": trace, "backbone_only_residues": backbone_only}
    if residues and trace > TRACE_FRACTION * residues:
        raise LocScaleInputError(
            f"{trace} of the model's {residues} polymer residues have a single atom (a CA or P trace): a model map "
            "from it is isolated blobs, not the molecule's density",
            "build the full model first (backbone and side chains, e.g. with Coot, ModelAngelo or PULCHRA for a CA "
            "trace), or give a model map of the complete molecule (locscale sharpen --model-map)", path)
    if aa and backbone_only > 0.5 * aa:
        warn(f"{where}: {backbone_only} of {aa} non-glycine amino acids have no side-chain atom (not even CB): the "
             "LocScale reference lacks the side chains' density, so they are sharpened less; complete the side "
             "chains first (Coot, or model_completion.mode coot in the workflow)")
    return counts


def check_model_map_differs(data: np.ndarray, model_data: np.ndarray, path: str | None = None,
                            model_path: str | None = None) -> None:
    """Refuse a model map that is the map itself (or a scaled/offset copy of it): every LocScale scale factor
    would be one number and the output the input, unsharpened."""
    a = np.asarray(data, dtype=np.float64).ravel()
    b = np.asarray(model_data, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    cc = float(np.dot(a, b) / den) if den > 0 else 0.0
    if cc >= 1 - 1e-6:
        raise LocScaleInputError(
            f"the model map is the map itself (correlation {cc:.7f} over the whole box): LocScale would return the "
            "map unchanged", "give a model map simulated from the atomic model (locscale simulate MODEL --like MAP), "
            "or the model itself with --model", model_path or path)

"""Degenerate inputs: refused with a clear error, or reported as an explicit warning.

Every check here either raises :class:`~locscale.errors.LocScaleInputError` (the input cannot give a
meaningful result) or emits a :class:`LocScaleWarning` (the result is computed but the user must know). The
command line turns warnings into one stderr line each and a ``warnings`` list in its JSON record
(:func:`locscale.records.collect_warnings`).

* maps (:func:`check_map_content`): all zero or constant → error; variation at float32 rounding level →
  error; very low relative variation → warning;
* half maps (:func:`check_half_maps_differ`): identical → error (every FSC would be 1);
* models (:func:`check_model_content`, called by :func:`locscale.models.read_model`): non-finite
  coordinates or every occupancy 0 → error; missing, all-zero or negative B → warning.
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

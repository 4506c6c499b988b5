"""Box-edge padding for rolling windows (shared by every scaling mode).

A window around a voxel near the box edge reaches outside the box. We pad each map by ⌊w/2⌋ voxels on the
low side and w−1−⌊w/2⌋ on the high side with the mean of that map's voxels *outside the mask* (the solvent
level, as LocScale 2 does), or the mean of the whole map when there is no mask or nothing lies outside it.
A padded window then sees flat solvent instead of a wrapped-around or zero edge.
"""

from __future__ import annotations

import numpy as np


def pad_widths(w: int) -> tuple[int, int]:
    """(low, high) padding so every window x−⌊w/2⌋ … x−⌊w/2⌋+w−1 of an unpadded voxel x lies in the box."""
    return w // 2, w - 1 - w // 2


def solvent_level(data: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of the voxels outside `mask` (whole-map mean when there is no mask or no outside voxel)."""
    if mask is not None:
        outside = ~np.asarray(mask, dtype=bool)
        if outside.any():
            return float(np.mean(data[outside], dtype=np.float64))
    return float(np.mean(data, dtype=np.float64))


def pad_for_window(data: np.ndarray, w: int, mask: np.ndarray | None = None,
                   value: float | None = None) -> np.ndarray:
    """`data` padded for a w-voxel window with the solvent level (or `value`), as float32."""
    lo, hi = pad_widths(w)
    fill = solvent_level(data, mask) if value is None else float(value)
    return np.pad(np.asarray(data, dtype=np.float32), [(lo, hi)] * 3, mode="constant", constant_values=fill)

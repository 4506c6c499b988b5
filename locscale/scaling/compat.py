"""LocScale-2 compatibility mode: LocScale 2.4.1's local scaling arithmetic (docs/design.md), for side-by-side
comparisons with that program. Not the paper's eq. 2 — use exact mode (``locscale.scaling.exact``) for that.

What LocScale 2.4.1 does, and so what this module does (the window w is always even there):

* window: ``ceil(25 Å / apix)`` rounded up to even by default; a given window is rounded up to even too;
* mask: binarised at ≥ 0.5; voxels outside it are 0 in the output;
* padding: only when a masked voxel lies closer than w/2 to a box edge (coordinate < w/2 or > n − w/2): both
  maps are padded by w/2 on every side, each with its own mean over the voxels outside the mask. Without
  padding, masked voxels at coordinate n − w/2 (whose window would still fit) are skipped and stay 0;
* window of voxel p: p − w/2 … p + w/2 − 1, its centre at index w/2;
* ``rfftn(norm="ortho")`` of both windows; the radial profile is the *mean |F|* per shell, the shell being the
  floor of the radius computed from the *unwrapped* rfft array indices (so only the (+,+,+) frequency octant
  falls into shells 0 … w/2 and is used — a LocScale-2 quirk); shells 0 … w/2 are kept;
* factors ``k = mean|F_model| / mean|F_map|`` per shell, non-finite → 0;
* each coefficient is multiplied by ``np.interp(|k|, rfftfreq(w), k)``, |k| its true (wrapped) frequency in
  cycles/voxel, so frequencies beyond 0.5 (the corners) take the last shell's factor; the DC term is scaled
  too, so the output takes the model map's absolute level; nothing is renormalised;
* the output is the centre voxel of the inverse transform.

The normalisation of the transform cancels in the ratio and the round trip, so the batched engine of exact
mode (``engine.scaled_centre_values``) computes the same numbers with unnormalised
transforms: the shell means and the interpolation are fixed matrices over the half spectrum, and the centre
value is a weighted sum of the map's coefficients (no inverse transform).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import LocScaleInputError
from ..padding import pad_for_window, solvent_level
from .engine import check_inputs, masked_voxel_chunks, scaled_centre_values
from .schemes import ShellScheme, SlabMatrix, centre_phase_rows, multiplicity

#: LocScale 2's default window in Å
DEFAULT_WINDOW_ANGSTROM = 25.0


def compat_window(apix: float | None = None, window: int | None = None) -> int:
    """LocScale 2.4.1's window in voxels: `window` rounded up to even, or ceil(25 Å / apix) rounded up to
    even."""
    if window is not None:
        w = int(math.ceil(window))
    elif apix is not None and apix > 0:
        w = int(math.ceil(DEFAULT_WINDOW_ANGSTROM / apix))
    else:
        raise LocScaleInputError("neither a window nor a pixel size was given", "give --window or a map")
    return w + w % 2


@lru_cache(maxsize=16)
def octant_shell_index(w: int) -> np.ndarray:
    """LocScale 2's shell of every rfft coefficient: floor of the radius of its *unwrapped* array index
    (i, j, l) ∈ [0, w) × [0, w) × [0, w//2], flattened (int64, read-only)."""
    i = np.arange(w)
    l_ = np.arange(w // 2 + 1)
    r = np.sqrt(i[:, None, None] ** 2 + i[None, :, None] ** 2 + l_[None, None, :] ** 2)
    idx = r.astype(np.int64).ravel()
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=16)
def interpolation_weights(w: int) -> np.ndarray:
    """(N, w//2+1) weights W with Σ_s W[k, s]·f_s = np.interp(|k|, rfftfreq(w), f) for every coefficient k of
    the half spectrum (|k| in cycles/voxel, wrapped; clamped at both ends as np.interp is)."""
    f = np.fft.fftfreq(w)
    fz = np.fft.rfftfreq(w)
    freq = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fz[None, None, :] ** 2).ravel()
    xp = np.fft.rfftfreq(w)
    n_sh = len(xp)
    weights = np.zeros((freq.size, n_sh))
    rows = np.arange(freq.size)
    beyond = freq >= xp[-1]
    weights[rows[beyond], n_sh - 1] = 1.0
    inside = ~beyond
    j = np.clip(np.searchsorted(xp, freq[inside], side="right") - 1, 0, n_sh - 2)
    t = (freq[inside] - xp[j]) / (xp[j + 1] - xp[j])
    weights[rows[inside], j] = 1.0 - t
    weights[rows[inside], j + 1] += t
    return weights


@lru_cache(maxsize=16)
def compat_scheme(w: int) -> ShellScheme:
    """LocScale 2.4.1's matrices for an even window w (module docstring)."""
    if w % 2:
        raise ValueError(f"LocScale 2 windows are even, got {w}")
    n_sh = w // 2 + 1
    idx = octant_shell_index(w)
    counts = np.bincount(idx)
    keep = idx < n_sh
    means = np.zeros((idx.size, n_sh))
    means[np.flatnonzero(keep), idx[keep]] = 1.0 / counts[idx[keep]]
    apply = interpolation_weights(w) * multiplicity(w)[:, None]
    re, im = centre_phase_rows(w, w // 2)
    return ShellScheme(w=w, profile=SlabMatrix(means, w), centre=SlabMatrix(apply, w), phase_re=re,
                       phase_im=im, centre_scale=1.0 / w**3, kind="amplitude")


def needs_padding(mask: np.ndarray, w: int) -> bool:
    """LocScale 2's window-bleed test: some masked voxel has a coordinate < w/2 or > n − w/2."""
    pts = np.argwhere(mask)
    if len(pts) == 0:
        return False
    n = np.array(mask.shape)
    return bool(np.any(pts.min(axis=0) < w / 2) or np.any(pts.max(axis=0) > n - w / 2))


def local_scale_compat(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                       batch_size: int | None = None, workers: int | None = None,
                       progress: bool = True) -> np.ndarray:
    """LocScale 2.4.1's local scaling of `emmap` against `modelmap` (module docstring); arrays in, array out.

    `window` in voxels is rounded up to even as LocScale 2 does (:func:`compat_window`). `mask`: bool or
    ≥ 0.5 (None = every voxel). Returns float32 of the map's shape, 0 outside the mask. `batch_size`,
    `workers` as in ``locscale.scaling.local_scale_exact``.
    """
    from tqdm.auto import tqdm

    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    w = compat_window(window=w)
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    half = w // 2
    padded = needs_padding(mask, w)
    if padded:
        # w/2 on both sides: the padding of an (odd) w+1 window, ⌊(w+1)/2⌋ = w/2 below and w − w/2 above
        pm = pad_for_window(emmap, w + 1, value=solvent_level(emmap, mask))
        pr = pad_for_window(modelmap, w + 1, value=solvent_level(modelmap, mask))
    else:
        pm, pr = emmap, modelmap
    scheme = compat_scheme(w)
    with tqdm(total=int(mask.sum()), desc="LocScale compat", unit="voxel", unit_scale=True,
              disable=not progress) as bar:
        for _, pts in masked_voxel_chunks(mask):
            if padded:
                starts = pts  # p + w/2 (padding) − w/2 (window start)
            else:
                # LocScale 2 scales only voxels with w/2 ≤ p < n − w/2 of the (unpadded) box
                keep = np.all((pts >= half) & (pts < np.array(emmap.shape) - half), axis=1)
                bar.update(int((~keep).sum()))
                pts = pts[keep]
                starts = pts - half
            out[tuple(pts.T)] = scaled_centre_values(pm, pr, starts, scheme, batch_size, workers, bar=bar)
    return out


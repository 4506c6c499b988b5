"""Exact-mode LocScale (paper eq. 2; its definition: docs/design.md "Exact mode").

For every masked voxel x the w³ window of the map M and of the model map R around x (x−⌊w/2⌋ … x−⌊w/2⌋+w−1
on each axis; both maps padded with their own solvent level, ``locscale.padding``) is Fourier transformed; in
each exact-mode shell s (``locscale.shells``: wrapped radius rounded, cube corners in the last shell)

    k_s(x) = sqrt( Σ_{k∈s} |F_R(k)|² / Σ_{k∈s} |F_M(k)|² )          (0 when the map's shell power is 0)

and the output is the centre voxel c = ⌊w/2⌋ of the inverse transform of k_s·F_M. That centre value needs no
inverse transform:

    out(x) = (1/w³) Σ_s k_s Σ_{k∈s} m(k) Re(F_M(k) e^{2πi k·c/w}),

with the sums over the rfft half spectrum and m(k) the multiplicity of each half-spectrum coefficient
(``shells.rfft_multiplicity``). The windows are transformed and reduced by a ``backends`` backend (the
threaded window engine of ``engine`` on the CPU, torch on a GPU); the factors follow the one rule of
``schemes.shell_factors``.
"""

from __future__ import annotations

import numpy as np

from ..padding import pad_for_window
from .backends import Backend, get_backend
from .engine import check_inputs, masked_voxel_chunks
from .schemes import power_floor


def local_scale_exact(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                      batch_size: int | None = None, workers: int | None = None,
                      progress: bool = True, backend: Backend | None = None) -> np.ndarray:
    """Exact-mode LocScale (module docstring): arrays in ([x, y, z], same shape), array out.

    Returns float32 of the map's shape: the scaled value at every voxel of `mask` (bool, or ≥ 0.5; None =
    every voxel), 0 elsewhere. Both maps are padded for the window with their solvent level (mean outside
    the mask; ``locscale.padding``). A shell whose map power is at the float32 noise level
    (``schemes.power_floor``) gets factor 0. `batch_size`: windows per transform batch (default:
    ``engine.default_batch_size``, what fits ``engine.BATCH_MEMORY_BYTES`` and the CPU cache); `workers`:
    threads (default: all cores). Neither changes the result beyond float32 rounding of the shell sums (≈1e-7
    relative). `backend`: where the windows are transformed (default: numpy with `batch_size` and `workers`).
    """
    from tqdm.auto import tqdm

    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    backend = backend or get_backend(None, batch_size, workers)
    pm = pad_for_window(emmap, w, mask)
    pr = pad_for_window(modelmap, w, mask)
    floor = power_floor(emmap, w)
    with tqdm(total=int(mask.sum()), desc="LocScale exact", unit="voxel", unit_scale=True,
              disable=not progress) as bar:
        for xs, pts in masked_voxel_chunks(mask):
            # padded by ⌊w/2⌋ below: voxel x's window starts at x in the padded array
            out[xs][mask[xs]] = backend.centre_values(pm, pr, pts, w, floor, bar)
    return out

"""Plain per-voxel reference of exact mode, shared by the exact- and near-exact-mode tests."""

from __future__ import annotations

import numpy as np


def naive_exact(emmap: np.ndarray, modelmap: np.ndarray, w: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Paper eq. 2 with exact mode's definition (docs/design.md "Exact mode"), one voxel at a time in float64,
    sharing no code with the module: pad each map by the window with its mean outside the mask (mean of the box's
    faces if nothing is outside); window x−⌊w/2⌋ … x−⌊w/2⌋+w−1; full complex FFT; shell = wrapped radius rounded,
    clipped to ⌊w/2⌋; k = sqrt(Σ|F_model|²/Σ|F_map|²) (0 where the map shell's power is ≤ 1e-9·w⁶·mean(map²));
    scale; inverse FFT; centre voxel ⌊w/2⌋."""
    if mask is None:
        mask = np.ones(emmap.shape, dtype=bool)
    lo, hi = w // 2, w - 1 - w // 2

    def padded(a):
        if (~mask).any():
            level = a[~mask].mean(dtype=np.float64)
        else:  # the six faces, each voxel once
            faces = np.ones(a.shape, dtype=bool)
            faces[1:-1, 1:-1, 1:-1] = False
            level = a[faces].mean(dtype=np.float64)
        return np.pad(a.astype(np.float64), [(lo, hi)] * 3, constant_values=level)

    pm, pr = padded(emmap), padded(modelmap)
    f = np.fft.fftfreq(w) * w
    radius = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    shell = np.minimum(np.rint(radius).astype(int), w // 2)
    out = np.zeros(emmap.shape)
    floor = 1e-9 * float(w) ** 6 * np.mean(emmap.astype(np.float64) ** 2)  # an empty shell at float32 precision
    c = w // 2
    for x, y, z in np.argwhere(mask):
        fm = np.fft.fftn(pm[x:x + w, y:y + w, z:z + w])
        fr = np.fft.fftn(pr[x:x + w, y:y + w, z:z + w])
        p_map = np.bincount(shell.ravel(), (np.abs(fm) ** 2).ravel(), w // 2 + 1)
        p_model = np.bincount(shell.ravel(), (np.abs(fr) ** 2).ravel(), w // 2 + 1)
        k = np.zeros_like(p_map)
        ok = p_map > floor
        k[ok] = np.sqrt(p_model[ok] / p_map[ok])
        out[x, y, z] = np.fft.ifftn(fm * k[shell]).real[c, c, c]
    return out

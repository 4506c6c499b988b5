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


def naive_tapered(emmap: np.ndarray, modelmap: np.ndarray, w: int, mask: np.ndarray | None = None,
                  half_maps=None) -> np.ndarray:
    """The tapered mode one voxel at a time in float64, sharing no code with the module: padding as
    :func:`naive_exact`; each window times the Hann taper g(u) = Π cos²(π(u − ⌊w/2⌋)/w); full complex FFT; soft
    shells φ_s(k) = max(0, 1 − |min(|k|, ⌊w/2⌋) − s|); k_s = sqrt(Σφ_s|F_model|² / Σφ_s|F_map|²) (0 at the power
    floor); with `half_maps` k_s·C_s for s ≥ 1, C_s = Σφ_s Re(F₁F₂*) / Σφ_s|F_map|² clipped to [0, 1];
    every coefficient scaled by Σ_s φ_s k_s; inverse FFT; centre voxel divided by g there (= 1)."""
    if mask is None:
        mask = np.ones(emmap.shape, dtype=bool)
    lo, hi = w // 2, w - 1 - w // 2

    def padded(a):
        a = np.asarray(a, dtype=np.float64)
        level = a[~mask].mean() if (~mask).any() else a[0].mean()
        return np.pad(a, [(lo, hi)] * 3, constant_values=level)

    maps = [padded(emmap), padded(modelmap)] + ([padded(h) for h in half_maps] if half_maps is not None else [])
    c = w // 2
    g1 = np.cos(np.pi * (np.arange(w) - c) / w) ** 2
    g = g1[:, None, None] * g1[None, :, None] * g1[None, None, :]
    f = np.fft.fftfreq(w) * w
    radius = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    n = w // 2 + 1
    phi = np.stack([np.maximum(0.0, 1.0 - np.abs(np.minimum(radius, n - 1) - s)) for s in range(n)])
    floor = 1e-9 * float(w) ** 6 * np.mean(np.asarray(emmap, dtype=np.float64) ** 2)
    out = np.zeros(emmap.shape)
    for x, y, z in np.argwhere(mask):
        spec = [np.fft.fftn(m[x:x + w, y:y + w, z:z + w] * g) for m in maps]
        p_map = (phi * np.abs(spec[0]) ** 2).sum(axis=(1, 2, 3))
        p_model = (phi * np.abs(spec[1]) ** 2).sum(axis=(1, 2, 3))
        ok = p_map > floor
        k = np.zeros(n)
        k[ok] = np.sqrt(p_model[ok] / p_map[ok])
        if half_maps is not None:
            cross = (phi * (spec[2] * np.conj(spec[3])).real).sum(axis=(1, 2, 3))
            frac = np.zeros(n)
            frac[ok] = np.clip(cross[ok] / p_map[ok], 0.0, 1.0)
            k[1:] *= frac[1:]
        factor = np.tensordot(k, phi, axes=1)
        out[x, y, z] = np.fft.ifftn(spec[0] * factor).real[c, c, c] / g[c, c, c]
    return out

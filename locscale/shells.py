"""Fourier-shell geometry of a cubic window of w voxels (the one definition every scaling mode shares).

Exact mode (docs/design.md "Exact mode"): a coefficient's shell is its *wrapped* radius |k| in Fourier pixels,
rounded to the nearest integer; radii beyond ⌊w/2⌋ (the cube's corners) belong to shell ⌊w/2⌋. The window
around voxel x spans x−⌊w/2⌋ … x−⌊w/2⌋+w−1 on each axis, so its centre sits at index ⌊w/2⌋.

Functions here work on the half spectrum of ``numpy.fft.rfftn`` (last axis w//2+1 long) and give the
multiplicity of each half-spectrum coefficient in the full spectrum, so shell sums over the half spectrum
equal shell sums over the full one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def centre_index(w: int) -> int:
    """Index of the window's centre voxel along each axis (⌊w/2⌋ for even and odd w)."""
    return w // 2


def n_shells(w: int) -> int:
    """Number of exact-mode shells: 0 … ⌊w/2⌋."""
    return w // 2 + 1


@lru_cache(maxsize=32)
def wrapped_radius(w: int, half: bool = True) -> np.ndarray:
    """|k| in Fourier pixels of every coefficient of a w³ transform (rfft half spectrum if `half`)."""
    f = np.fft.fftfreq(w) * w
    fz = np.fft.rfftfreq(w) * w if half else f
    r = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fz[None, None, :] ** 2)
    r.setflags(write=False)
    return r


@lru_cache(maxsize=32)
def exact_shell_index(w: int, half: bool = True) -> np.ndarray:
    """Exact-mode shell of every coefficient: round(|k|) clipped to ⌊w/2⌋ (int64, read-only)."""
    idx = np.minimum(np.rint(wrapped_radius(w, half)).astype(np.int64), w // 2)
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=32)
def rfft_multiplicity(w: int) -> np.ndarray:
    """How many full-spectrum coefficients each rfft coefficient stands for (1 or 2), shape (w//2+1,).

    Column 0 and, for even w, the Nyquist column are their own conjugates; every other column stands for
    itself and its conjugate partner.
    """
    m = np.full(w // 2 + 1, 2.0)
    m[0] = 1.0
    if w % 2 == 0:
        m[-1] = 1.0
    m.setflags(write=False)
    return m


@lru_cache(maxsize=32)
def centre_phase(w: int, half: bool = True) -> np.ndarray:
    """exp(2πi k·c/w) for the centre c = ⌊w/2⌋: the inverse transform's value at the centre is
    (1/w³) Σ_k F(k)·centre_phase(k)."""
    c = centre_index(w)
    f = np.fft.fftfreq(w) * w
    fz = np.fft.rfftfreq(w) * w if half else f
    ph = np.exp(2j * np.pi * c * (f[:, None, None] + f[None, :, None] + fz[None, None, :]) / w)
    ph.setflags(write=False)
    return ph


def default_window_voxels(resolution: float, apix: float) -> int:
    """The paper's rule: window ≈ 7 × resolution (Å), in voxels, rounded to the nearest integer whose
    prime factors are all ≤ 7 (fast FFT sizes), and at least 8."""
    return fast_window_voxels(7.0 * resolution / apix)


def fast_window_voxels(voxels: float) -> int:
    """The integer nearest to `voxels` whose prime factors are all ≤ 7 (fast FFT sizes), and at least 8."""
    candidates = [n for n in range(8, int(voxels) + 40) if _is_7smooth(n)]
    return int(min(candidates, key=lambda n: (abs(n - voxels), n)))


def window_from_angstrom(window_A: float, apix: float) -> int:
    """A window given in Å, in voxels (nearest integer; the caller checks it against the 8-voxel minimum,
    ``locscale.limits.check_window``, so a window too small is refused rather than silently enlarged)."""
    return int(round(window_A / apix))


def _is_7smooth(n: int) -> bool:
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1

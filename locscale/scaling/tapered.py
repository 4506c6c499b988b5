"""Tapered LocScale, the default: near-exact arithmetic over Hann-tapered windows, soft shells and noise weights.

It goes beyond the paper's eq. 2 (which ``exact``, ``near-exact`` and ``fast`` compute) in three ways, each
measured against the truth of realistic phantoms (README, "The default LocScale and the paper's"):

* **Tapered windows.** Each window is multiplied by a Hann taper (``schemes.hann_taper``: 1 at the centre, 0 at
  the faces) before its transform. A window with hard faces cuts through density; its transform spreads the
  strong low-frequency power into the high-frequency shells, so the map's high shells look stronger than they
  are, their factors come out too small and the best-ordered parts stay under-sharpened.
* **Soft shells.** Shells are hat functions of the radius (``schemes.soft_shell_weights``): a coefficient between
  two shell radii takes the factors of both, in proportion, so each coefficient's factor is interpolated
  linearly across frequency instead of being constant over a shell one Fourier pixel wide.
* **Noise weights.** Each shell's factor is multiplied by C, the fraction of the window shell's power that is
  signal (``schemes.noise_fraction``; :data:`NOISE_WEIGHT_POWER`). LocScale alone brings a shell's whole power,
  noise included, to the model's, so pure noise is raised as much as signal. √C would make the output's
  model-coherent part C times the model's amplitude, the Wiener filter when the reference has the truth's B;
  C itself also damps a reference that is sharper than the truth, which the workflow's is (its best-ordered
  atoms are put at B = 0, and refinement compresses the largest B): on realistic phantoms of four proteins
  C was within 0.002 of √C over the envelope and 0.005–0.009 better in the flexible third (README). C comes
  from the half maps, window by window (their cross power is the signal power), or without half maps from the
  noise spectrum of the map's solvent (the voxels outside the mask; none on a masked map, where C = 1).

Everything else is near-exact LocScale's (``near_exact``): the output at x is Σ_s k_s(x)·C_s(x), C_s the map
correlated with the fixed kernel h_s(u) = g(u)·(1/w³) Σ_k φ_s(k) e^{2πi k·(c−u)/w} (g the taper, φ_s the soft
shell, g(c) = 1), i.e. the centre value of the tapered window's shell-scaled transform; the factors are computed
exactly on a node grid of stride t ≈ w/6 and interpolated trilinearly; shell 0 (the tapered window mean) is exact
at every voxel. With stride 1 every masked voxel is its own node: the per-voxel computation (tested against a
naive one).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import shells
from ..errors import LocScaleInputError
from ..padding import pad_for_window, solvent_level
from .backends import Backend, get_backend
from .engine import check_inputs
from .grid import box_crop, check_stride, node_plan, node_region
from .near_exact import default_stride, shell_sum
from .schemes import (
    exact_shell_membership,
    hann_taper,
    noise_fraction,
    power_floor,
    shell_factors,
    soft_shell_membership,
    soft_shell_weights,
)

#: where the noise weights come from: the half maps (window by window), the map's solvent, or nowhere (C = 1)
NOISE_SOURCES = ("auto", "half-maps", "solvent", "none")
#: the factors are multiplied by C to this power (module docstring; 0.5 would be the Wiener weight for a reference
#: at the truth's B level)
NOISE_WEIGHT_POWER = 1.0


@lru_cache(maxsize=16)
def tapered_kernels(w: int, taper: bool = True, soft: bool = True) -> np.ndarray:
    """(S, w, w, w) float64: h_s(u) = g(u)·(1/w³) Re Σ_k φ_s(k) e^{2πi k·(c−u)/w} (module docstring), so that
    the tapered window's shell-s contribution to its centre value is Σ_u M(x+u)·h_s(u). They sum to δ(u − c).
    `taper` False: g = 1; `soft` False: the exact-mode shells (both only to measure each part's effect)."""
    if soft:
        phi = soft_shell_weights(w, half=False)
    else:
        idx = shells.exact_shell_index(w, half=False)
        phi = np.stack([(idx == s).astype(float) for s in range(shells.n_shells(w))])
    c = shells.centre_index(w)
    flip = (c - np.arange(w)) % w
    g = hann_taper(w) if taper else np.ones((w, w, w))
    out = np.empty(phi.shape)
    for s in range(phi.shape[0]):
        out[s] = np.fft.ifftn(phi[s]).real[np.ix_(flip, flip, flip)] * g
    out.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def _exact_membership(w: int) -> np.ndarray:
    out = exact_shell_membership(w)
    out.setflags(write=False)
    return out


def solvent_noise_power(emmap: np.ndarray, mask: np.ndarray, w: int, taper: bool = True,
                        member: np.ndarray | None = None) -> np.ndarray | None:
    """Expected noise power in each soft shell of a tapered w³ window, from the voxels outside `mask` (their mean
    removed): the map's noise spectrum per voxel (the solvent's power spectrum over its voxel count; noise
    assumed stationary) times Σ_u g(u)². None when nothing lies outside the mask or the solvent is flat (e.g.
    masked to 0): then there is no noise estimate."""
    outside = ~mask
    n_out = int(outside.sum())
    if n_out < 2:
        return None
    values = emmap[outside].astype(np.float64)
    if float(values.std()) == 0.0:
        return None
    from ..metrics import radial_profile  # here, not at the top: metrics imports pandas, scaling needs it only here

    solvent = np.where(outside, emmap - values.mean(), 0.0)
    freq, power = radial_profile(solvent, 1.0, power=True)  # cycles per voxel, unnormalised |F|²
    ok = np.isfinite(power)
    density = np.interp(shells.wrapped_radius(w) / w, freq[ok], power[ok] / n_out).ravel()
    g2 = float(np.square(hann_taper(w)).sum()) if taper else float(w) ** 3
    return (density * g2) @ (soft_shell_membership(w) if member is None else member)


def local_scale_tapered(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                        stride: int | None = None, half_maps: tuple[np.ndarray, np.ndarray] | None = None,
                        noise: str = "auto", progress: bool = True, batch_size: int | None = None,
                        workers: int | None = None, backend: Backend | None = None, taper: bool = True,
                        soft_shells: bool = True) -> np.ndarray:
    """Tapered LocScale (module docstring): arrays in ([x, y, z] float, same shape), float32 array out, 0
    outside `mask`.

    `half_maps` (two arrays on the map's grid whose mean is `emmap`) give the noise weights window by window.
    `noise`: "auto" (half maps when given, else the solvent), "half-maps", "solvent" or "none" (no weights).
    `stride` defaults to ≈ w/6 (1 = every masked voxel its own window); `batch_size`, `workers`, `backend` as in
    ``near_exact.local_scale_near_exact``. `taper` and `soft_shells` False switch those parts off, to measure
    each part's effect (with both off and noise "none" this is near-exact mode)."""
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    if noise not in NOISE_SOURCES:
        raise LocScaleInputError(f"unknown noise source {noise!r}", f"choose one of {', '.join(NOISE_SOURCES)}")
    if noise == "auto":
        noise = "half-maps" if half_maps is not None else "solvent"
    halves = None
    if noise == "half-maps":
        if half_maps is None:
            raise LocScaleInputError("noise weights from the half maps were asked for, but no half maps were given",
                                     "give the half maps, or noise 'solvent' or 'none'")
        halves = [check_inputs(h, modelmap, w, mask)[0] for h in half_maps]
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    backend = backend or get_backend(None, batch_size, workers)
    t = check_stride(default_stride(w) if stride is None else stride)
    plan = node_plan(mask, t)
    maps = [emmap, modelmap] + (halves or [])
    fills = [solvent_level(a, mask) for a in maps]
    padded = [pad_for_window(a, w, value=f) for a, f in zip(maps, fills, strict=True)]

    # 1. node factors: power of the map's and the model's tapered windows in soft shells; noise weights
    floor = power_floor(emmap, w)
    regions = [node_region(p, plan, w, f) for p, f in zip(padded, fills, strict=True)]
    member = soft_shell_membership(w) if soft_shells else _exact_membership(w)
    powers, cross = backend.window_profiles(regions, plan.nodes * t, w, member, hann_taper(w) if taper else None,
                                            [(2, 3)] if halves else [], progress)
    del regions
    p_map, p_model = powers[0], powers[1]
    factors = shell_factors(p_model, p_map, "power", floor)
    if noise == "half-maps":
        factors *= noise_fraction(p_map, cross[0], floor) ** NOISE_WEIGHT_POWER
    elif noise == "solvent":
        p_noise = solvent_noise_power(emmap, mask, w, taper, member)
        if p_noise is not None:
            factors *= noise_fraction(p_map, p_map - p_noise[None, :], floor) ** NOISE_WEIGHT_POWER
    factors = np.ascontiguousarray(factors.T, dtype=np.float32)  # (S, n_nodes)

    # 2. shell contributions by convolution; shell 0 (the tapered window mean) exactly at every voxel
    lo, ext, sel = plan.lo, plan.ext, plan.mask_local
    kernels = tapered_kernels(w, taper, soft_shells)
    crop = box_crop(padded[0], plan, w)
    c = shells.centre_index(w)
    centre = crop[c:, c:, c:][:ext[0], :ext[1], :ext[2]][sel]
    conv = backend.shell_convolver(crop, ext, sel)
    del crop
    c0 = conv(kernels[0])
    c0_model = backend.shell_convolver(box_crop(padded[1], plan, w), ext, sel)(kernels[0])
    del padded
    acc = shell_sum(factors, kernels, centre, c0, c0_model, conv, plan.interpolate, floor, w, progress)
    out[lo[0]:lo[0] + ext[0], lo[1]:lo[1] + ext[1], lo[2]:lo[2] + ext[2]][sel] = acc
    return out

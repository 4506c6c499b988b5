"""Global B-factor sharpening: the cycle-0 target of the refinement workflow.

Sign convention (one for the whole package): :func:`apply_bfactor` multiplies Fourier amplitudes by
``exp(-B·s²/4)`` with ``s = 1/d`` in 1/Å, so **positive B blurs and negative B sharpens**. A map's Guinier B
(:func:`guinier_bfactor`) is the B of its own fall-off: power ``∝ exp(-B·s²/2)`` between 10 Å and the resolution, so
``apply_bfactor(map, -B_guinier)`` flattens that fall-off (Rosenthal & Henderson 2003).

:func:`global_sharpen` does, in one Fourier pass:

1. B-factor correction: ``exp(-b·s²/4)`` with ``b = -B_guinier`` unless a B is given (``bfactor``, same convention;
   the workflow gives ``-B_data``, the data's own blur from a model refined against the unsharpened map,
   :func:`data_blur`);
2. with half maps, FSC weighting ``sqrt(2·FSC/(1+FSC))`` per one-voxel shell (Rosenthal & Henderson 2003; FSC < 0
   gives 0), FSC from the unmasked half maps;
3. low-pass at the resolution d with a raised-cosine edge: 1 below ``1/d - Δ``, 0 above ``1/d + Δ``, 0.5 at
   ``1/d``, with Δ = ``edge_shells`` (default 2) Fourier pixels of the box, i.e. ``Δ = edge_shells / L`` (RELION's
   ``--filter_edge_width`` convention).

Shells are the ones of :mod:`locscale.metrics` (``floor(|s|·L + 0.5)``, L = longest box edge).

**Which B.** A map's Guinier B over 10 Å–d is the data's blur *plus* the structure's own fall-off (its atoms' B and
the shape of a protein's spectrum), so sharpening by it over-sharpens: on realistic phantoms of five proteins
(truth B from deposited models, global blur 80–150 Å², 3.0–4.5 Å) it exceeded the data's blur by 2–42 Å², and
the FSC-weighted result fell below the unsharpened map in the flexible third of one of them. When a model is at
hand, :func:`data_blur` separates the two: every B refined against the unsharpened map is the atom's own B plus
the data's blur, only relative B are fixed by the data, and by the convention LocScale 2 uses too the
best-ordered atoms (the 1st percentile) get B = 0, so the data's blur is the 1st percentile of the refined B
(within −3 … +17 Å² of the true blur on those phantoms; ``benchmarks/bench_sharpening.py``).
"""

from __future__ import annotations

import numpy as np

from .errors import LocScaleInputError
from .mapio import Map
from .metrics import coefficient_shells, fsc, radial_profile, resolution_at, shell_sums

#: default half-width of the low-pass cosine edge, in Fourier pixels of the box
LOWPASS_EDGE_SHELLS = 2.0


def _frequencies_squared(shape, voxel_size: float) -> np.ndarray:
    _, s2 = coefficient_shells(tuple(int(n) for n in shape), float(voxel_size))
    return s2


def bfactor_filter(shape, voxel_size: float, b: float) -> np.ndarray:
    """``exp(-b·s²/4)`` on the rfft half spectrum of a map of `shape` (b > 0 blurs, b < 0 sharpens)."""
    return np.exp(-float(b) * _frequencies_squared(shape, voxel_size) / 4.0)


def lowpass_filter(shape, voxel_size: float, resolution: float, edge_shells: float = LOWPASS_EDGE_SHELLS
                   ) -> np.ndarray:
    """Raised-cosine low-pass on the rfft half spectrum: 0.5 at 1/`resolution`, edge ±`edge_shells`/L wide."""
    s = np.sqrt(_frequencies_squared(shape, voxel_size))
    L = max(shape) * float(voxel_size)
    half = float(edge_shells) / L
    s0 = 1.0 / float(resolution)
    if half <= 0:
        return (s <= s0).astype(float)
    t = np.clip((s - (s0 - half)) / (2 * half), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def apply_bfactor(data: np.ndarray, voxel_size: float, b: float) -> np.ndarray:
    """Multiply the Fourier amplitudes of `data` by ``exp(-b·s²/4)``: b > 0 blurs, b < 0 sharpens.

    Computed in float64; the result has the input's floating dtype (float32 for float32 input).
    """
    data = np.asarray(data)
    out_dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    f = np.fft.rfftn(data.astype(np.float64))
    f *= bfactor_filter(data.shape, voxel_size, b)
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2)).astype(out_dtype)


def guinier_bfactor(emap: Map, resolution: float, low: float = 10.0) -> tuple[float, dict]:
    """Guinier B of `emap` from a straight-line fit of ln(mean power) against s² between `low` Å and the
    resolution (one-voxel shells whose centre lies in [1/low, 1/resolution]; abscissa = each shell's mean s²).

    Power ∝ exp(-B·s²/2), so ``B = -2·slope``. Returns (B, info) with info: ``b_se`` (standard error of B from
    the fit), ``fit_low_A``, ``fit_high_A`` (the requested range), ``fit_shells``, ``fit_s2_range``, ``r2``,
    ``residual_rms`` (of ln power), ``intercept``.
    """
    apix = emap.apix
    if not (resolution > 0 and low > resolution):
        raise LocScaleInputError(f"Guinier fit range {low} Å to {resolution} Å is empty",
                                 "give a resolution (Å) smaller than the low end of the fit (10 Å by default)",
                                 emap.path)
    freq, power = radial_profile(emap.data, apix, power=True)
    shape = emap.shape
    with np.errstate(invalid="ignore", divide="ignore"):  # mean s² of each shell's coefficients (the abscissa)
        s2_mean = shell_sums(_frequencies_squared(shape, apix), shape, apix) / shell_sums(
            np.ones_like(_frequencies_squared(shape, apix)), shape, apix)
    sel = (freq >= 1.0 / low - 1e-12) & (freq <= 1.0 / resolution + 1e-12) & np.isfinite(power) & (power > 0)
    if np.count_nonzero(sel) < 3:
        raise LocScaleInputError(
            f"only {np.count_nonzero(sel)} Fourier shells lie between {low} Å and {resolution} Å in a box of "
            f"{max(emap.shape)} voxels at {apix:.3f} Å: too few for a Guinier fit",
            "use a larger box, or give the B-factor explicitly (--bfactor)", emap.path)
    x = s2_mean[sel]
    y = np.log(power[sel])
    n = len(x)
    A = np.vstack([x, np.ones(n)]).T
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - (slope * x + intercept)
    dof = max(n - 2, 1)
    sigma2 = float(resid @ resid) / dof
    sxx = float(np.sum((x - x.mean()) ** 2))
    slope_se = np.sqrt(sigma2 / sxx) if sxx > 0 else float("inf")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    info = {
        "b_se": float(2.0 * slope_se),
        "fit_low_A": float(low),
        "fit_high_A": float(resolution),
        "fit_shells": int(n),
        "fit_s2_range": [float(x.min()), float(x.max())],
        "r2": float(1.0 - float(resid @ resid) / ss_tot) if ss_tot > 0 else float("nan"),
        "residual_rms": float(np.sqrt(np.mean(resid ** 2))),
        "intercept": float(intercept),
    }
    return float(-2.0 * slope), info


#: the percentile of the B-factors refined against the unsharpened map that :func:`data_blur` takes as the data's
#: own blur (the best-ordered atoms end at B = 0: LocScale 2's convention)
DATA_BLUR_PERCENTILE = 1.0


def data_blur(b_unsharpened, percentile: float = DATA_BLUR_PERCENTILE) -> dict:
    """The data's own blur from the B-factors of a model refined (coordinates fixed) against the *unsharpened*
    full map (module docstring, "Which B").

    Returns ``b_data`` (the `percentile`-th percentile of the B, Å²; sharpen by ``bfactor = -b_data``),
    ``b_mean_unsharpened`` and ``b_mean_reference`` (= mean − b_data: the mean B of that model once the data's
    blur is taken out, the level a LocScale reference keeps), ``percentile`` and ``n_atoms``. A map that is
    already sharpened refines to B near 0 and is not sharpened further (b_data ≥ 0)."""
    b = np.asarray(b_unsharpened, dtype=float).ravel()
    if b.size == 0 or not np.all(np.isfinite(b)):
        raise ValueError("data_blur needs finite B-factors of at least one atom")
    b_data = max(0.0, float(np.percentile(b, percentile)))
    return {"b_data": b_data, "b_mean_unsharpened": float(b.mean()), "b_mean_reference": float(b.mean()) - b_data,
            "percentile": float(percentile), "n_atoms": int(b.size)}


def fsc_weights(half1: Map, half2: Map) -> tuple[np.ndarray, object]:
    """Per-coefficient weight ``sqrt(2·FSC/(1+FSC))`` (FSC ≤ 0 → 0) from two unmasked half maps, on the rfft half
    spectrum; coefficients beyond Nyquist take the last shell's weight. Returns (weights, half-map FSC curve)."""
    half1.require_same_grid(half2, "half maps")
    apix = half1.apix
    curve = fsc(half1.data, half2.data, apix)
    f = np.nan_to_num(curve.fsc, nan=0.0)
    f = np.clip(f, 0.0, 1.0)
    w_shell = np.sqrt(2.0 * f / (1.0 + f))
    shell, _ = coefficient_shells(half1.shape, apix)
    idx = np.where(shell >= 0, shell, len(w_shell) - 1)
    return w_shell[idx], curve


def global_sharpen(emap: Map, resolution: float, bfactor: float | None = None,
                   half_maps: tuple[Map, Map] | None = None, *, low: float = 10.0,
                   edge_shells: float = LOWPASS_EDGE_SHELLS) -> tuple[Map, dict]:
    """Globally sharpened, (optionally) FSC-weighted and low-passed copy of `emap` (see module docstring).

    `bfactor` is the B applied (negative sharpens); default ``-B_guinier`` from :func:`guinier_bfactor`.
    `half_maps` (on `emap`'s grid) switch on FSC weighting. Returns (map, info): ``bfactor_applied``,
    ``guinier_b`` and its fit (``guinier_*``, absent when `bfactor` is given), ``fsc_weighted``,
    ``half_map_fsc0143_A`` (with half maps), ``lowpass_A``, ``lowpass_edge_per_A``.
    """
    from .checks import check_map_content
    from .limits import check_resolution

    apix = emap.apix
    try:
        resolution = check_resolution(resolution, apix)
    except LocScaleInputError as err:
        raise LocScaleInputError(err.problem, err.fix, emap.path) from None
    check_map_content(emap.data, emap.path)
    info: dict = {}
    if bfactor is None:
        b_est, fit = guinier_bfactor(emap, resolution, low=low)
        bfactor = -b_est
        info["guinier_b"] = b_est
        info.update({f"guinier_{k}": v for k, v in fit.items()})
    info["bfactor_applied"] = float(bfactor)
    filt = bfactor_filter(emap.shape, apix, bfactor) * lowpass_filter(emap.shape, apix, resolution, edge_shells)
    info["fsc_weighted"] = half_maps is not None
    if half_maps is not None:
        h1, h2 = half_maps
        emap.require_same_grid(h1, "map and half map 1")
        emap.require_same_grid(h2, "map and half map 2")
        w, curve = fsc_weights(h1, h2)
        filt = filt * w
        info["half_map_fsc0143_A"] = resolution_at(curve, 0.143)
    info["lowpass_A"] = float(resolution)
    info["lowpass_edge_per_A"] = float(edge_shells) / (max(emap.shape) * apix)
    f = np.fft.rfftn(emap.data.astype(np.float64))
    f *= filt
    out = np.fft.irfftn(f, s=emap.shape, axes=(0, 1, 2))
    return emap.like(out.astype(np.float32)), info


def signal_matched(emap: Map, half1: Map, half2: Map, resolution: float, *,
                   edge_shells: float = LOWPASS_EDGE_SHELLS, fsc_floor: float = 0.143) -> tuple[Map, dict]:
    """`emap` (a LocScale map of the half maps' mean) with each Fourier shell divided by the FSC weight
    ``sqrt(2·FSC/(1+FSC))`` of the half maps, and low-passed at the resolution like :func:`global_sharpen`.

    Why: LocScale matches each window shell's *total* RMS amplitude, noise included, to the model, so the part of
    the map coherent with the model is weaker than the model by ``sqrt(2·FSC/(1+FSC))`` (the square root of the
    full map's signal fraction). Dividing by it restores the coherent part to the model's amplitude, so that B
    refined against the result stays where it is instead of rising towards the blur of the data (README, "Which
    map the B-factors are refined against"). Shells whose FSC is below `fsc_floor` are divided by the weight at
    `fsc_floor` (0.143: at most ×2), so noise beyond the resolution is not amplified further. Returns (map, info).
    """
    emap.require_same_grid(half1, "the map and half map 1")
    w, curve = fsc_weights(half1, half2)
    floor = float(np.sqrt(2.0 * fsc_floor / (1.0 + fsc_floor)))
    filt = lowpass_filter(emap.shape, emap.apix, resolution, edge_shells) / np.maximum(w, floor)
    f = np.fft.rfftn(emap.data.astype(np.float64))
    f *= filt
    out = np.fft.irfftn(f, s=emap.shape, axes=(0, 1, 2))
    info = {"fsc_floor": float(fsc_floor), "max_gain": float(1.0 / floor), "lowpass_A": float(resolution),
            "half_map_fsc0143_A": resolution_at(curve, 0.143)}
    return emap.like(out.astype(np.float32)), info

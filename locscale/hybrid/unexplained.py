"""Density the model does not explain: the model-subtracted, low-passed residual, the noise it is tested
against (half maps, or the residual below the solvent level), the Benjamini-Hochberg threshold at a false discovery
rate and the cluster rule (steps 1-3 of :mod:`locscale.hybrid`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import gemmi
import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import minimize_scalar
from scipy.special import ndtr, ndtri

from ..errors import LocScaleInputError
from ..mapio import Map
from ..metrics import coefficient_shells

#: default false discovery rate of the unexplained-density test
DEFAULT_FDR = 0.01


#: voxels closer than this to a model atom are never tested (Å): density there is the model's
EXCLUSION = 3.0


#: the model-to-map scale is fitted over the shells from this resolution (Å) to the map's resolution
SCALE_FIT_LOW = 10.0


#: a map with more than this fraction of its tested voxels in flat patches (a voxel equal to its next neighbours
#: along x, y and z) had its solvent masked or flattened: there is no noise to measure (noisy data never do that)
FLATTENED_FRACTION = 0.01


class NoiseNotMeasurable(LocScaleInputError):
    """The map's noise cannot be measured (its solvent was masked or flattened), so no density can be called
    significant."""


@dataclass
class UnexplainedDensity:
    """Where the map holds significant density the model does not explain (module docstring, steps 1-3)."""

    residual: np.ndarray  # the low-passed residual, map units
    tested: np.ndarray  # bool: voxels farther than `exclusion` from the model
    mask: np.ndarray  # bool: the unexplained-density mask (tested voxels above the threshold)
    level: float  # solvent level μ of the residual
    sigma: float  # noise σ of the residual
    z_threshold: float  # inf when nothing is significant
    scale: float  # A
    b_offset: float  # ΔB (Å²)
    record: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The residual value above which density is unexplained (map units)."""
        return self.level + self.z_threshold * self.sigma


def lowpass(shape, apix: float, resolution: float) -> np.ndarray:
    """Gaussian low-pass on the rfft half spectrum, amplitude exp(−ln2·s²·d²): 1/2 at s = 1/d."""
    _, s2 = coefficient_shells(shape, apix)
    return np.exp(-np.log(2.0) * s2 * resolution**2)


def _apply(data: np.ndarray, filt: np.ndarray) -> np.ndarray:
    f = np.fft.rfftn(np.asarray(data, dtype=np.float64))
    f *= filt
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2))


def fit_model_scale(fmap: np.ndarray, fmodel: np.ndarray, shape, apix: float, resolution: float,
                    low: float = SCALE_FIT_LOW) -> tuple[float, float]:
    """(A, ΔB) minimising Σ |F_map − A·exp(−ΔB s²/4)·F_model|² over the shells from `low` Å to `resolution`
    (rfft half spectra of the map and the model map). A is solved for each ΔB; ΔB is searched in [−300, 600] Å²."""
    shell, s2 = coefficient_shells(shape, apix)
    sel = (s2 >= 1.0 / low**2) & (s2 <= 1.0 / resolution**2) & (shell >= 0)
    if not sel.any():
        raise LocScaleInputError(f"the map has no Fourier coefficient between {low:g} Å and the resolution "
                                 f"{resolution:g} Å to scale the model to", "use a larger box")
    # sums over fine bins of s² (1/4096 of the range: exp(−ΔB s²/4) changes by < 0.1 % inside one for |ΔB| ≤ 600)
    lo2, hi2 = 1.0 / low**2, 1.0 / resolution**2
    nbins = 4096
    b = np.minimum(((s2[sel] - lo2) / (hi2 - lo2) * nbins).astype(np.int64), nbins - 1)
    cross = np.bincount(b, (fmap[sel] * fmodel[sel].conj()).real, nbins)
    power = np.bincount(b, np.abs(fmodel[sel]) ** 2, nbins)
    count = np.bincount(b, None, nbins)
    s2s = np.bincount(b, s2[sel], nbins) / np.maximum(count, 1)
    def solve(db):
        g = np.exp(-0.25 * db * s2s)
        a = float(np.dot(cross, g) / max(np.dot(power, g * g), 1e-300))
        return a, -a * float(np.dot(cross, g))  # the residual power minus Σ|F_map|², at the best A

    res = minimize_scalar(lambda db: solve(db)[1], bounds=(-300.0, 600.0), method="bounded",
                          options={"xatol": 0.1})
    a, _ = solve(res.x)
    return a, float(res.x)


def _clusters(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the 26-connected clusters of `mask`, voxels per label; label 0 is the background)."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    return labels, np.bincount(labels.ravel(), minlength=n + 1)


def _cluster_sizes(mask: np.ndarray) -> np.ndarray:
    """Voxels in each 26-connected cluster of `mask`."""
    return _clusters(mask)[1][1:]


def _prefix_median(sorted_values: np.ndarray, k: int) -> float:
    """The median of the `k` smallest values of a sorted array (as numpy's median of that prefix)."""
    k = max(int(k), 1)
    return float(sorted_values[k // 2]) if k % 2 else 0.5 * float(sorted_values[k // 2 - 1] + sorted_values[k // 2])


def flat_fraction(data: np.ndarray, where: np.ndarray) -> float:
    """Fraction of the voxels `where` that equal their next neighbours along x, y and z (masked or flattened
    solvent; noise never does that)."""
    if not where.any():
        return 0.0
    flat = np.ones(data.shape, dtype=bool)
    for axis in range(3):
        same = np.diff(data, axis=axis) == 0
        flat &= np.concatenate([same, np.zeros_like(same.take([0], axis=axis))], axis=axis)
    return float(flat[where].mean())


def _bh_z_threshold(z: np.ndarray, fdr: float) -> tuple[float, float]:
    """(z threshold, p threshold) of the Benjamini–Hochberg procedure at `fdr` over one-sided Gaussian p-values
    of `z`; (inf, 0) when nothing is significant. Only values with p ≤ fdr can pass, so only those are sorted."""
    m = z.size
    zmin = float(ndtri(1.0 - fdr))
    top = np.sort(z[z >= zmin])[::-1]
    if top.size == 0:
        return float("inf"), 0.0
    p = ndtr(-top)
    ok = np.nonzero(p <= fdr * np.arange(1, top.size + 1) / m)[0]
    if ok.size == 0:
        return float("inf"), 0.0
    k = ok.max()
    return float(top[k]), float(p[k])


def unexplained_density(emap: Map, structure: gemmi.Structure, resolution: float, *,
                        half_maps: tuple[Map, Map] | None = None, fdr: float = DEFAULT_FDR,
                        exclusion: float = EXCLUSION, modelmap: Map | None = None) -> UnexplainedDensity:
    """Steps 1-3 of the module docstring: the residual, its noise, and the voxels whose unexplained density is
    significant at false discovery rate `fdr`. `emap` is the map LocScale sharpens (with half maps: their mean);
    `modelmap` (the model's map on `emap`'s grid) is simulated when not given."""
    from ..models import envelope_mask
    from ..simulate import simulate_model_map

    if not 0.0 < fdr < 1.0:
        raise LocScaleInputError(f"false discovery rate {fdr} is not between 0 and 1", "use e.g. 0.01")
    apix = emap.apix
    if modelmap is None:
        modelmap = simulate_model_map(structure, emap)
    emap.require_same_grid(modelmap, "the map and the model map")
    fmap = np.fft.rfftn(emap.data.astype(np.float64))
    fmodel = np.fft.rfftn(modelmap.data.astype(np.float64))
    a, db = fit_model_scale(fmap, fmodel, emap.shape, apix, resolution)
    if not a > 0:
        raise LocScaleInputError("the model map does not correlate with the map in the shells from "
                                 f"{SCALE_FIT_LOW:g} Å to {resolution:g} Å (fitted scale {a:.3g})",
                                 "check that the model is in the map's frame ('locscale check')")
    _, s2 = coefficient_shells(emap.shape, apix)
    filt = lowpass(emap.shape, apix, resolution)
    fres = (fmap - a * np.exp(-0.25 * db * s2) * fmodel) * filt
    residual = np.fft.irfftn(fres, s=emap.shape, axes=(0, 1, 2))
    tested = ~envelope_mask(structure, emap, exclusion)
    if tested.sum() < 1000:
        raise LocScaleInputError(f"fewer than 1000 voxels of the box are farther than {exclusion:g} Å from the "
                                 "model: there is no room to look for density it does not explain",
                                 "use a box with solvent around the model, or sharpen without --hybrid")
    flat = flat_fraction(emap.data, tested)
    if flat > FLATTENED_FRACTION:
        raise NoiseNotMeasurable(f"{100 * flat:.0f} % of the map's voxels away from the model lie in flat patches "
                                 "(its solvent was masked or flattened), so its noise cannot be measured and no "
                                 "density can be called significant", "give the unmasked map or the half maps, "
                                 "or sharpen without the hybrid reference", emap.path)
    v = residual[tested]
    vs = np.sort(v)  # medians of "the values below a level" are then prefixes of one sorted array
    level = _prefix_median(vs, vs.size)
    if half_maps is not None:
        h1, h2 = half_maps
        emap.require_same_grid(h1, "the map and half map 1")
        emap.require_same_grid(h2, "the map and half map 2")
        noise = _apply(0.5 * (h1.data.astype(np.float64) - h2.data), filt)[tested]
        sigma = float(np.sqrt(np.mean(noise**2)))
        noise_from = ("half maps: RMS of (half1 − half2)/2 through the same low-pass, over the voxels tested "
                      "(the noise of the half maps' mean)")
        for _ in range(50):
            new = _prefix_median(vs, int(np.searchsorted(vs, level + 3.0 * sigma)))
            if abs(new - level) <= 1e-6 * sigma:
                break
            level = new
    else:
        sigma = 1.4826 * float(np.median(np.abs(v - level)))
        noise_from = ("the map: RMS deviation of the residual below its median over the voxels tested "
                      "(unexplained density only adds positive values)")
        csum, csq = np.cumsum(vs), np.cumsum(vs**2)
        for _ in range(50):
            new = _prefix_median(vs, int(np.searchsorted(vs, level + 3.0 * sigma))) if sigma > 0 else level
            k = int(np.searchsorted(vs, new))  # the values below `new`
            sigma_new = float(np.sqrt(max(csq[k - 1] - 2 * new * csum[k - 1] + k * new**2, 0.0) / k)) if k else 0.0
            done = abs(new - level) <= 1e-6 * max(sigma, 1e-30) and abs(sigma_new - sigma) <= 1e-6 * sigma_new
            level, sigma = new, sigma_new
            if done:
                break
    if not sigma > 0:
        raise NoiseNotMeasurable("the map has no measurable noise away from the model",
                                 "give the unmasked map or the half maps, or sharpen without the hybrid reference",
                                 emap.path)
    z = (v - level) / sigma
    z_thr, p_thr = _bh_z_threshold(z, fdr)
    mask = np.zeros(emap.shape, dtype=bool)
    clusters = {"kept": 0, "dropped": 0, "min_voxels": None}
    if np.isfinite(z_thr):
        mask[tested] = z >= z_thr
        # cluster size: the noise alone, through the same filter and above the same threshold, forms clusters
        # too (about fdr of the voxels declared); keep only clusters larger than the largest one it forms -- in
        # the half maps' noise, or without half maps below the solvent level (noise is symmetric, unexplained
        # density positive)
        if half_maps is not None:
            null = np.zeros(emap.shape, dtype=bool)
            null[tested] = noise >= z_thr * sigma
            null_from = "the half maps' noise above the same threshold"
        else:
            null = np.zeros(emap.shape, dtype=bool)
            null[tested] = v <= level - z_thr * sigma
            null_from = "the residual below the solvent level by the same margin"
        largest_null = int(_cluster_sizes(null).max(initial=0))
        labels, sizes = _clusters(mask)
        big = sizes > largest_null
        big[0] = False
        mask = big[labels]
        clusters = {"kept": int(big.sum()), "dropped": int(len(sizes) - 1 - big.sum()),
                    "min_voxels": largest_null + 1,
                    "rule": f"clusters (26-connected) larger than the largest that {null_from} forms"}
    n_mask = int(mask.sum())
    record = {
        "unexplained_voxels": n_mask,
        "unexplained_volume_A3": round(n_mask * float(np.prod(emap.voxel_size)), 1),
        "threshold": {
            "rule": f"Benjamini-Hochberg at false discovery rate {fdr:g} over the {v.size} voxels farther than "
                    f"{exclusion:g} Å from the model (one-sided Gaussian p-values of z = (residual - level) / sigma)",
            "fdr": float(fdr),
            "z": z_thr if np.isfinite(z_thr) else None,
            "p": p_thr,
            "map_value": level + z_thr * sigma if np.isfinite(z_thr) else None,
            "noise_sigma": sigma,
            "noise_from": noise_from,
            "solvent_level": level,
        },
        "residual": {"model_scale": a, "model_b_offset_A2": db,
                     "lowpass": f"Gaussian, amplitude 1/2 at {resolution:g} Å",
                     "scale_fit_shells_A": [SCALE_FIT_LOW, float(resolution)]},
        "clusters": clusters,
        "exclusion_A": float(exclusion),
        "voxels_tested": int(v.size),
    }
    return UnexplainedDensity(residual, tested, mask, level, sigma, z_thr, a, db, record)

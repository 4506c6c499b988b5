"""Map and model-vs-map metrics: one definition each, used in every cycle (docs/design.md "Metrics: one
definition each").

Arrays are in the package's [x, y, z] frame with an isotropic voxel size ``apix`` (Å).

Fourier shells (one-voxel shells, servalcat's binning)
    A coefficient with physical frequency |s| (1/Å) belongs to shell ``floor(|s|·L + 0.5)`` with
    ``L = max(shape)·apix`` the longest box edge (servalcat ``setup_relion_binning``: ``int(max_edge/d + 0.5)``).
    For a cubic box this is |k| in Fourier pixels rounded to the nearest integer; for a non-cubic box every axis
    is rescaled to the longest edge's Fourier pixel, so shells are spheres in physical frequency (an exact tie,
    |s|·L = m + ½, goes to shell m + 1). Shells run
    0 … ⌊max(shape)/2⌋ (Nyquist); the cube's corners beyond Nyquist are left out. Shell sums run over the full
    spectrum (each rfft coefficient weighted by its multiplicity), so ``n_coeffs`` counts full-spectrum
    coefficients and Friedel mates count twice. ``freq`` is the shell centre ``shell / L``.

FSC
    ``FSC_s = Re Σ F1·F2* / sqrt(Σ|F1|² Σ|F2|²)`` over the shell (no mean subtraction; servalcat's per-bin
    complex Pearson correlation differs from it only by the tiny mean of a shell's coefficients).
    ``fsc_average`` = Σ N_s·FSC_s / Σ N_s over shells 1 … ⌊L/d + 0.5⌋ (servalcat's FSCaverage; the DC term is left
    out as servalcat does). Servalcat keeps only coefficients with |s| ≤ 1/d; here the last shell is whole.

RSCC
    Pearson correlation between the map and the model map simulated at the resolution ``d`` (model B-factors),
    inside the model envelope (CC_mask), over the whole box (CC_box) and per residue (voxels within
    ``max(3 Å, d)`` of the residue's atoms). The envelope radius is :func:`envelope_radius`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from .shells import rfft_multiplicity

#: Smallest envelope / per-residue radius in Å. CC_mask and per-residue CC use voxels within
#: ``max(ENVELOPE_MIN_RADIUS, d)`` of the model's atoms (docs/design.md "Metrics: one definition each"). The
#: model/simulate helper calibrates CC_mask (0.74 for 5me2 at 3.2 Å) against the same definition; keep the two in
#: step through this constant and :func:`envelope_radius` (the lead reconciles).
ENVELOPE_MIN_RADIUS = 3.0


def envelope_radius(resolution: float) -> float:
    """Radius (Å) of the model envelope used for CC_mask, per-residue CC and the kurtosis mask."""
    return max(ENVELOPE_MIN_RADIUS, float(resolution))



# ---------------------------------------------------------------------------------------------- shells
#: Sub-shells per one-voxel shell kept in an FSCCurve, so FSCaverage can cut the coefficients at exactly 1/d
#: (to 1/64 of a Fourier pixel) as servalcat does, whatever resolution it is asked for later. Even, so shell
#: boundaries (m + 0.5) fall on sub-shell edges.
FINE_BINS = 64


@lru_cache(maxsize=16)
def _shell_geometry(shape: tuple[int, int, int], apix: float):
    """(shell index, multiplicity, s² in 1/Å², n_shells, L, sub-shell index) for an rfft half spectrum.

    Shell (and sub-shell) index is -1 beyond the Nyquist shell. Arrays are read-only and cached.
    """
    shape = tuple(int(n) for n in shape)
    nmax = max(shape)
    L = nmax * apix
    # frequency index along each axis, in Fourier pixels of the longest edge (k·nmax/n)
    kx, ky = (np.fft.fftfreq(n) * nmax for n in shape[:2])
    kz = np.fft.rfftfreq(shape[2]) * nmax
    r2 = kx[:, None, None] ** 2 + ky[None, :, None] ** 2 + kz[None, None, :] ** 2
    s2 = r2 / (L * L)
    r = np.sqrt(r2)  # |s|·L
    n_shells = nmax // 2 + 1
    # ties (r exactly on a shell or sub-shell edge, possible in non-cubic boxes) go up; 1e-7 ≫ rounding of r
    fine = np.floor(r * FINE_BINS + 1e-7).astype(np.int64)
    shell = (fine + FINE_BINS // 2) // FINE_BINS  # = floor(r + 0.5), servalcat's int(L/d + 0.5)
    outside = shell >= n_shells
    shell[outside] = -1
    fine[outside] = -1
    mult = np.broadcast_to(rfft_multiplicity(shape[2])[None, None, :], shell.shape)
    for a in (s2, shell, fine):
        a.setflags(write=False)
    return shell, mult, s2, n_shells, L, fine


def shell_sums(values: np.ndarray, shape, apix: float) -> np.ndarray:
    """Full-spectrum sum of a half-spectrum array `values` in each one-voxel shell (0 … Nyquist)."""
    shell, mult, _, n_shells, _, _ = _shell_geometry(tuple(int(n) for n in shape), float(apix))
    inside = shell >= 0
    return np.bincount(shell[inside], weights=(mult * values)[inside], minlength=n_shells)


def shell_frequencies(shape, apix: float) -> np.ndarray:
    """Centre frequency (1/Å) of every one-voxel shell 0 … Nyquist."""
    _, _, _, n_shells, L, _ = _shell_geometry(tuple(int(n) for n in shape), float(apix))
    return np.arange(n_shells) / L


def coefficient_shells(shape, apix: float) -> tuple[np.ndarray, np.ndarray]:
    """(shell index, s²) of every rfft half-spectrum coefficient (shell -1 beyond Nyquist); read-only."""
    shell, _, s2, _, _, _ = _shell_geometry(tuple(int(n) for n in shape), float(apix))
    return shell, s2


def _rfft(data: np.ndarray) -> np.ndarray:
    return np.fft.rfftn(np.asarray(data, dtype=np.float64))


# ---------------------------------------------------------------------------------------------- FSC
@dataclass
class FSCCurve:
    """Fourier shell correlation in one-voxel shells (see module docstring).

    Besides the per-shell values it keeps the shell sums in sub-shells of 1/FINE_BINS Fourier pixel
    (``fine_sums``: rows Σ Re F1·F2*, Σ|F1|², Σ|F2|², N), which :func:`fsc_average` uses to cut at exactly 1/d.
    """

    shell: np.ndarray  # shell index 0 … Nyquist
    freq: np.ndarray  # shell centre, 1/Å
    resolution: np.ndarray  # 1/freq, Å (inf for shell 0)
    fsc: np.ndarray  # NaN where a shell is empty or has zero power in either map
    n_coeffs: np.ndarray  # full-spectrum coefficients in the shell
    box_length: float = float("nan")  # L = longest box edge, Å (shell m has centre m / L)
    fine_sums: np.ndarray | None = field(default=None, repr=False)  # (4, n_shells·FINE_BINS)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"shell": self.shell, "freq": self.freq, "resolution": self.resolution,
                             "fsc": self.fsc, "n_coeffs": self.n_coeffs})


def _correlation(num: np.ndarray, pa: np.ndarray, pb: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        f = num / np.sqrt(pa * pb)
    f[(n == 0) | (pa <= 0) | (pb <= 0)] = np.nan
    return f


def fsc(a: np.ndarray, b: np.ndarray, voxel_size: float, mask: np.ndarray | None = None) -> FSCCurve:
    """FSC between two maps on the same grid (arrays [x,y,z], isotropic `voxel_size` Å).

    `mask` (boolean or soft, same shape) multiplies both maps before the transform.
    """
    return fsc_against(a, [b], voxel_size, mask)[0]


def fsc_against(a: np.ndarray, others, voxel_size: float, mask: np.ndarray | None = None) -> list[FSCCurve]:
    """:func:`fsc` of `a` against each map of `others` (e.g. a model map against both half maps), with `a`
    masked and transformed once: the same curves as one :func:`fsc` call per pair."""
    a = np.asarray(a)
    others = [np.asarray(b) for b in others]
    for b in others:
        if a.shape != b.shape or a.ndim != 3:
            raise ValueError(f"FSC needs two 3-D maps of the same shape, got {a.shape} and {b.shape}")
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        if m.shape != a.shape:
            raise ValueError(f"mask shape {m.shape} does not match the maps' {a.shape}")
        a = a * m
    apix = float(voxel_size)
    _, mult, _, n_shells, L, fine = _shell_geometry(tuple(int(n) for n in a.shape), apix)
    fa = _rfft(a)
    inside = fine >= 0
    idx = fine[inside]
    w = mult[inside]
    nfine = n_shells * FINE_BINS
    power_a = np.bincount(idx, weights=w * (np.abs(fa) ** 2)[inside], minlength=nfine)
    count = np.bincount(idx, weights=w, minlength=nfine)
    shell_of_fine = (np.arange(nfine) + FINE_BINS // 2) // FINE_BINS
    freq = shell_frequencies(a.shape, apix)
    with np.errstate(divide="ignore"):
        res = 1.0 / freq
    curves = []
    for b in others:
        fb = _rfft(b if m is None else b * m)
        sums = np.stack([
            np.bincount(idx, weights=w * (fa * fb.conj()).real[inside], minlength=nfine),
            power_a,
            np.bincount(idx, weights=w * (np.abs(fb) ** 2)[inside], minlength=nfine),
            count,
        ])[:, :nfine]
        num, pa, pb, n = (np.bincount(shell_of_fine, weights=row, minlength=n_shells)[:n_shells] for row in sums)
        curves.append(FSCCurve(shell=np.arange(n_shells), freq=freq, resolution=res,
                               fsc=_correlation(num, pa, pb, n), n_coeffs=np.rint(n).astype(np.int64),
                               box_length=L, fine_sums=sums))
    return curves


def _servalcat_bins(n_half: np.ndarray) -> np.ndarray:
    """Bin label per shell after servalcat's merging (``setup_relion_binning``), for shells with data.

    Leading bins with fewer than 10 (half-spectrum) coefficients merge into the next; trailing bins with less than
    half the previous bin's count merge into the previous one. `n_half` excludes the DC shell.
    """
    label = np.arange(len(n_half))
    order = [i for i in range(len(n_half)) if n_half[i] > 0]
    counts = {i: float(n_half[i]) for i in order}
    for k in range(len(order) - 1):  # inner merges
        i, j = order[k], order[k + 1]
        if counts[i] < 10:
            counts[j] += counts[i]
            label[label == i] = j
        else:
            break
    for k in range(len(order) - 1, 0, -1):  # outer merges
        i, j = order[k], order[k - 1]
        if counts[i] / counts[j] < 0.5:
            counts[j] += counts[i]
            label[label == i] = j
        else:
            break
    return label


def fsc_average(curve: FSCCurve, resolution: float) -> float:
    """servalcat's FSCaverage: Σ N_b·FSC_b / Σ N_b over the Fourier coefficients with 1/d ≥ |s| > 0.

    Coefficients are cut at |s| = 1/`resolution` (to 1/FINE_BINS Fourier pixel, from ``curve.fine_sums``) and
    binned as servalcat does (one-voxel shells ``floor(|s|·L + 0.5)``, DC left out, a partial last shell holding
    less than half the previous one merged into it, sparse inner shells merged outward). Without
    ``fine_sums`` (a curve built by hand) whole shells 1 … ⌊L/d + 0.5⌋ are averaged.
    """
    if curve.fine_sums is None:
        last = np.floor(float(resolution) ** -1 / curve.freq[1] + 0.5) if len(curve.freq) > 1 else 0
        sel = (curve.shell >= 1) & (curve.shell <= last) & np.isfinite(curve.fsc)
        n = curve.n_coeffs[sel].astype(float)
        return float(np.sum(n * curve.fsc[sel]) / n.sum()) if n.sum() > 0 else float("nan")
    nfine = curve.fine_sums.shape[1]
    cut = curve.box_length / float(resolution) * FINE_BINS  # 1/d in sub-shell units
    keep = (np.arange(nfine) + 0.5) <= cut  # sub-shells whose centre lies inside 1/d
    keep[:FINE_BINS // 2] = False  # the DC shell
    shell_of_fine = (np.arange(nfine) + FINE_BINS // 2) // FINE_BINS
    n_shells = len(curve.shell)
    num, pa, pb, n = (np.bincount(shell_of_fine[keep], weights=row[keep], minlength=n_shells)[:n_shells]
                      for row in curve.fine_sums)
    label = _servalcat_bins(n / 2.0)
    num, pa, pb, n = (np.bincount(label, weights=v, minlength=n_shells) for v in (num, pa, pb, n))
    f = _correlation(num, pa, pb, n)
    ok = np.isfinite(f)
    if n[ok].sum() == 0:
        return float("nan")
    return float(np.sum(n[ok] * f[ok]) / n[ok].sum())


def resolution_at(curve: FSCCurve, threshold: float) -> float:
    """Resolution (Å) where the FSC first falls below `threshold`, linearly interpolated in frequency.

    The DC shell is ignored. If shell 1 is already below, its resolution (the box size) is returned; if the curve
    never falls below, the last (Nyquist) shell's resolution is returned (a bound, not a measurement).
    """
    valid = np.flatnonzero((curve.shell >= 1) & np.isfinite(curve.fsc))
    if len(valid) == 0:
        return float("nan")
    prev = None
    for i in valid:
        if curve.fsc[i] < threshold:
            if prev is None:
                return float(curve.resolution[i])
            f0, f1 = curve.fsc[prev], curve.fsc[i]
            t = (f0 - threshold) / (f0 - f1)
            freq = curve.freq[prev] + t * (curve.freq[i] - curve.freq[prev])
            return float(1.0 / freq)
        prev = i
    return float(curve.resolution[valid[-1]])


# ---------------------------------------------------------------------------------------------- real space
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equally long value sets (float64; NaN when either is constant or < 2 values)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 2:
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / den) if den > 0 else float("nan")


def per_residue_cc(emap, model_data: np.ndarray, structure, radius: float) -> pd.DataFrame:
    """Pearson CC of `emap` and `model_data` over the voxels within `radius` Å of each residue's atoms
    (first model). Residues whose neighbourhood lies outside the box get NaN."""
    shape = np.array(emap.shape)
    vs = np.asarray(emap.voxel_size, dtype=float)
    origin = np.asarray(emap.origin, dtype=float)
    rows = []
    for chain in structure[0]:
        for res in chain:
            xyz = np.array([a.pos.tolist() for a in res], dtype=float)
            row = {"chain": chain.name, "resnum": int(res.seqid.num), "icode": res.seqid.icode.strip(),
                   "resname": res.name, "n_voxels": 0, "cc": float("nan")}
            if len(xyz):
                idx = (xyz - origin) / vs
                lo = np.maximum(np.floor(idx.min(0) - radius / vs).astype(int), 0)
                hi = np.minimum(np.ceil(idx.max(0) + radius / vs).astype(int) + 1, shape)
                if np.all(hi > lo):
                    grids = [origin[i] + vs[i] * np.arange(lo[i], hi[i]) for i in range(3)]
                    near = np.zeros(tuple(hi - lo), dtype=bool)
                    for p in xyz:
                        d2 = ((grids[0] - p[0])[:, None, None] ** 2 + (grids[1] - p[1])[None, :, None] ** 2
                              + (grids[2] - p[2])[None, None, :] ** 2)
                        near |= d2 <= radius * radius
                    sl = tuple(slice(lo[i], hi[i]) for i in range(3))
                    row["n_voxels"] = int(near.sum())
                    row["cc"] = pearson(emap.data[sl][near], model_data[sl][near])
            rows.append(row)
    return pd.DataFrame(rows, columns=["chain", "resnum", "icode", "resname", "n_voxels", "cc"])


def excess_kurtosis(data: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Excess kurtosis m4/m2² − 3 (population moments) of the values inside `mask` (whole array if None).

    0 for Gaussian values; its sampling standard deviation is about sqrt(24/N) for N Gaussian values.
    """
    v = np.asarray(data, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != v.shape:
            raise ValueError(f"mask shape {mask.shape} does not match the data's {v.shape}")
        v = v[mask.astype(bool)]
    v = v.ravel()
    if v.size < 4:
        return float("nan")
    d = v - v.mean()
    m2 = np.mean(d * d)
    if m2 <= 0:
        return float("nan")
    return float(np.mean(d ** 4) / m2 ** 2 - 3.0)


def radial_profile(data: np.ndarray, voxel_size: float, power: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(shell centre frequency 1/Å, mean |F| per shell) in one-voxel shells 0 … Nyquist.

    With ``power=True`` the second array is the mean power |F|² per shell. Unnormalised ``numpy.fft.rfftn``
    coefficients; empty shells give NaN.
    """
    data = np.asarray(data)
    apix = float(voxel_size)
    f = _rfft(data)
    vals = np.abs(f) ** 2 if power else np.abs(f)
    s = shell_sums(vals, data.shape, apix)
    n = shell_sums(np.ones(f.shape), data.shape, apix)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(n > 0, s / n, np.nan)
    return shell_frequencies(data.shape, apix), prof


def map_statistics(data: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Summary statistics of the values inside `mask` (whole array if None), JSON-ready."""
    v = np.asarray(data, dtype=np.float64)
    if mask is not None:
        v = v[np.asarray(mask).astype(bool)]
    v = v.ravel()
    if v.size == 0:
        return {"n_voxels": 0}
    sd = float(v.std())
    skew = float(np.mean((v - v.mean()) ** 3) / sd ** 3) if sd > 0 else float("nan")
    return {
        "n_voxels": int(v.size),
        "mean": float(v.mean()),
        "std": sd,
        "rms": float(np.sqrt(np.mean(v * v))),
        "min": float(v.min()),
        "max": float(v.max()),
        "fraction_zero": float(np.mean(v == 0)),
        "skewness": skew,
        "excess_kurtosis": excess_kurtosis(v),
    }


# ---------------------------------------------------------------------- contour levels
def level_for_enclosed_volume(data: np.ndarray, volume: float, voxel_volume: float = 1.0) -> float:
    """The contour level whose isosurface encloses `volume` (same units as `voxel_volume`, e.g. Å³).

    Returns the value of the k-th highest voxel, k = round(volume / voxel_volume): exactly k voxels are
    ≥ the level when values are distinct (ties can only add voxels). Non-finite voxels are ignored.
    """
    flat = np.asarray(data, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise ValueError("the map has no finite values")
    if not volume > 0 or not voxel_volume > 0:
        raise ValueError(f"volume ({volume}) and voxel_volume ({voxel_volume}) must be positive")
    k = int(np.clip(round(volume / voxel_volume), 1, flat.size))
    return float(np.partition(flat, flat.size - k)[flat.size - k])


def sigma_level(data: np.ndarray, n_sigma: float = 3.0, mask: np.ndarray | None = None) -> float:
    """mean + n_sigma·std of the map (inside `mask` if given): a contour level by the usual σ convention."""
    v = np.asarray(data, dtype=np.float64)
    v = v[np.asarray(mask, dtype=bool)] if mask is not None else v.ravel()
    v = v[np.isfinite(v)]
    return float(v.mean() + n_sigma * v.std())

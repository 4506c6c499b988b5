"""Local resolution from windowed half-map FSC, and local Guinier B sharpening with FOM weighting.

**Windowed FSC.** Around a point x, both half maps are cut to a w³ cube (window centre at index ⌊w/2⌋, as in
exact-mode LocScale), the cube's weighted mean is removed, the cube is multiplied by a soft spherical window
(1 inside radius w/2 − e, a raised-cosine edge of e voxels down to 0 at radius w/2, default e = w/4), zero-padded
to p ≥ ``pad_factor``·w voxels and Fourier transformed. The FSC between the two transforms is taken in shells
one Fourier pixel of the padded cube wide (1/(p·apix) Å⁻¹), up to p/2. Windows that reach beyond the box see
zeros there (the maps are zero-padded).

**Local resolution** at x is where that FSC first falls below the threshold: a fixed value (0.5 by default,
0.143) or ``"3sigma"``, FSC = 3/√(n_eff/2) with n_eff the shell's coefficient count scaled by the window's
effective volume (Σw²)²/Σw⁴ over p³ (zero-padding adds coefficients but no independent ones). The crossing is
interpolated linearly between shells; a curve that never crosses gives Nyquist (2·apix).

**Vectorised on a coarse grid.** Window transforms are done in batches, but only at the nodes of a grid of
stride t (default round(w/6), at least 1) anchored at the mask's bounding box, those that are corners of a cell
holding a masked voxel; every masked voxel's value is the trilinear interpolation of its 8 surrounding nodes.
The grid, the interpolation and the padding are near-exact LocScale's (``locscale.scaling.grid``,
``locscale.padding``). The window averages over w³ voxels, so its result varies on the scale
of w, and t ≈ w/6 samples it finely (t = 1 evaluates every voxel exactly).

**Local Guinier sharpening with FOM weighting** (the comparison method of Jakobi et al. 2017): at each node,
the local half-map FSC gives the local resolution d(x) (at 0.143) and the figure-of-merit weight
FOM(s) = √(2·FSC/(1+FSC)) (Rosenthal & Henderson 2003; 0 where FSC ≤ 0); a straight line fitted to
ln(mean |F|) against s² of the averaged half maps' window between 1/``low`` and 1/d(x) gives the local B
(|F| ∝ exp(−B s²/4); B = 0 where fewer than 3 shells lie in that range, e.g. in solvent whose local
resolution is worse than ``low``; B clipped to 0 … ``b_max``). The local filter is
f(s, x) = FOM(s)·exp(B(x) s²/4) up to 1/d(x), then 0 (a raised-cosine edge one shell wide). It is applied to
the full map as Σ_j f_j(x)·band_j(x), where band_j is the full map filtered with the triangular ("hat")
function of frequency centred on window shell j; the hats sum to 1, so for a spatially constant filter this is
exactly the filter linearly interpolated in s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.fft
import scipy.sparse
from numpy.lib.stride_tricks import sliding_window_view

from .errors import LocScaleInputError
from .mapio import Map
from .padding import pad_for_window
from .scaling.grid import interpolate_grid, node_plan, node_region, stride_for_window


@dataclass
class LocalResolution:
    """A local-resolution map and the coarse grid it was interpolated from."""

    map: Map  # local resolution in Å at every masked voxel, 0 elsewhere
    nodes: np.ndarray  # node values (Å) on the stride-t grid (node j at origin + j·t); NaN where not computed
    stride: int
    window: int
    fft_size: int
    threshold: float | str
    mask: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=int))  # voxel index of node (0, 0, 0)

    def at(self, ijk: np.ndarray) -> np.ndarray:
        """Local resolution at continuous voxel indices (N×3), interpolated trilinearly between nodes.

        Positions whose surrounding nodes were not all computed (far outside the mask) give NaN."""
        return interpolate_grid(self.nodes, self.origin, self.stride, ijk)

    def summary(self) -> dict:
        v = self.map.data[self.mask]
        return {"window_voxels": self.window, "stride": self.stride, "fft_size": self.fft_size,
                "threshold": self.threshold, "median": float(np.median(v)), "p5": float(np.percentile(v, 5)),
                "p95": float(np.percentile(v, 95)), "voxels": int(v.size)}


# ---------------------------------------------------------------------- windows
def soft_sphere(w: int, edge: float | None = None) -> np.ndarray:
    """A w³ soft spherical window centred at ⌊w/2⌋: 1 inside radius w/2 − edge, raised cosine to 0 at w/2."""
    e = max(1.0, w / 4.0) if edge is None else float(edge)
    c = w // 2
    g = np.arange(w) - c
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    r_out = w / 2.0
    r_in = max(r_out - e, 0.0)
    win = np.where(r <= r_in, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip((r - r_in) / max(e, 1e-9), 0, 1))))
    return np.where(r <= r_out, win, 0.0)


class _ShellSums:
    """Per-shell sums over a padded p³ rfft spectrum (shells one Fourier pixel wide, up to p/2)."""

    def __init__(self, p: int):
        f = np.fft.fftfreq(p) * p
        fz = np.fft.rfftfreq(p) * p
        r = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fz[None, None, :] ** 2)
        idx = np.rint(r).astype(np.int64).ravel()
        mult = np.full(p // 2 + 1, 2.0)
        mult[0] = 1.0
        if p % 2 == 0:
            mult[-1] = 1.0
        mult = np.broadcast_to(mult, r.shape).ravel()
        self.n = p // 2 + 1
        keep = idx < self.n  # corners beyond Nyquist on some axis are left out
        self.matrix = scipy.sparse.csr_matrix((mult[keep], (np.nonzero(keep)[0], idx[keep])),
                                              shape=(idx.size, self.n))
        self.count = np.asarray(self.matrix.sum(axis=0)).ravel()

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """(B, p, p, p//2+1) real values → (B, n_shells) shell sums."""
        return np.asarray(values.reshape(values.shape[0], -1) @ self.matrix)


def _windowed_spectra(r1: np.ndarray, r2: np.ndarray, starts: np.ndarray, w: int, p: int,
                      win: np.ndarray, sums: _ShellSums, batch: int):
    """Yield, per batch of windows: (start, FSC numerator, power 1, power 2, mean |F_avg| per shell).

    `r1`, `r2`: the node regions of the zero-padded half maps (``scaling.grid.node_region``); the windows start
    at `starts` (n, 3) in them."""
    v1 = sliding_window_view(r1, (w, w, w))
    v2 = sliding_window_view(r2, (w, w, w))
    wsum = float(win.sum())
    for start in range(0, len(starts), batch):
        c = starts[start:start + batch]
        cubes = []
        for v in (v1, v2):
            x = v[c[:, 0], c[:, 1], c[:, 2]].astype(np.float32)
            mean = np.einsum("bijk,ijk->b", x, win) / wsum
            x = (x - mean[:, None, None, None]) * win
            cubes.append(scipy.fft.rfftn(x, s=(p, p, p), axes=(1, 2, 3), workers=-1))
        F1, F2 = cubes
        num = sums((F1 * F2.conj()).real)
        pw1 = sums(np.abs(F1) ** 2)
        pw2 = sums(np.abs(F2) ** 2)
        amp = sums(np.abs(0.5 * (F1 + F2))) / np.maximum(sums.count, 1)
        yield start, num, pw1, pw2, amp


def _params(h1: Map, h2: Map, window: int | None, resolution: float | None, stride: int | None,
            pad_factor: float):
    h1.require_same_grid(h2, "half maps")
    apix = h1.apix
    if window is None:
        if resolution is None:
            raise LocScaleInputError("neither a window nor a resolution was given for the local FSC",
                                     "give window (voxels) or resolution (window = 7 × resolution)")
        from .shells import default_window_voxels

        window = default_window_voxels(resolution, apix)
    w = int(window)
    if w < 8:
        raise LocScaleInputError(f"local-FSC window of {w} voxels is too small", "use at least 8 voxels")
    t = stride_for_window(w) if stride is None else int(stride)
    p = scipy.fft.next_fast_len(int(np.ceil(pad_factor * w)), real=True)
    p += p % 2
    return apix, w, t, p


def _fsc_curves(h1: Map, h2: Map, mask: np.ndarray | None, w: int, t: int, p: int, edge, batch, progress):
    """FSC, mean amplitude and shell counts at the needed nodes."""
    from tqdm import tqdm

    mask = np.ones(h1.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != h1.shape:
        raise LocScaleInputError(f"mask shape {mask.shape} differs from the map's {h1.shape}",
                                 "give a mask on the half maps' grid")
    if not mask.any():
        raise LocScaleInputError("the mask is empty", "give a mask with at least one voxel")
    plan = node_plan(mask, t)
    # zero padding (windows past the box see zeros); node j's window starts at j·t in the node region
    r1, r2 = (node_region(pad_for_window(h.data, w, value=0.0), plan, w, 0.0) for h in (h1, h2))
    starts = plan.nodes * t
    win = soft_sphere(w, edge).astype(np.float32)
    sums = _ShellSums(p)
    if batch is None:
        batch = max(1, int(2e8 // (16 * p * p * (p // 2 + 1) * 3)))
    n = len(starts)
    fsc = np.zeros((n, sums.n))
    amp = np.zeros((n, sums.n))
    bar = tqdm(total=n, desc="local FSC windows", unit="win", disable=not progress)
    for start, num, pw1, pw2, a in _windowed_spectra(r1, r2, starts, w, p, win, sums, batch):
        den = np.sqrt(pw1 * pw2)
        fsc[start:start + len(num)] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        amp[start:start + len(num)] = a
        bar.update(len(num))
    bar.close()
    wd = win.astype(float)
    n_eff = sums.count * float((wd ** 2).sum()) ** 2 / float((wd ** 4).sum()) / p ** 3
    return mask, plan, fsc, amp, n_eff, sums


def _crossing(fsc: np.ndarray, thr: np.ndarray, s: np.ndarray, nyquist_s: float) -> np.ndarray:
    """Frequency (1/Å) where each row of `fsc` first drops below `thr`, interpolated. Shells 0 and those
    below the first shell whose threshold is under 1 (a 3σ threshold exceeds 1 in the lowest shells, where
    the window holds too few independent coefficients) are not searched."""
    first = int(np.argmax(thr[1:] < 1.0)) + 1 if np.any(thr[1:] < 1.0) else len(thr) - 1
    below = fsc[:, 1:] < thr[None, 1:]
    below[:, : first - 1] = False
    any_below = below.any(axis=1)
    j = np.argmax(below, axis=1) + 1  # first shell below
    rows = np.arange(len(fsc))
    jm = np.maximum(j - 1, 0)
    f0, f1 = fsc[rows, jm], fsc[rows, j]
    t0, t1 = thr[jm], thr[j]
    d = (f0 - t0) - (f1 - t1)
    frac = np.clip(np.where(d > 0, (f0 - t0) / np.where(d > 0, d, 1), 0.0), 0, 1)
    sc = s[jm] + frac * (s[j] - s[jm])
    sc = np.where(j == 1, np.minimum(sc, s[1]), sc)
    return np.where(any_below, np.maximum(sc, s[1]), nyquist_s)


def local_resolution(half1: Map, half2: Map, *, window: int | None = None, resolution: float | None = None,
                     mask: np.ndarray | None = None, threshold: float | str = 0.5, stride: int | None = None,
                     edge: float | None = None, pad_factor: float = 2.0, batch_size: int | None = None,
                     progress: bool = True) -> LocalResolution:
    """Local resolution (Å) from the windowed FSC of two half maps (module docstring).

    `window` in voxels (default: 7 × `resolution`, the LocScale rule); `threshold` 0.5 (default), 0.143 or
    "3sigma"; `stride` of the node grid (default round(w/6); 1 = every voxel). Voxels outside `mask` are 0.
    """
    apix, w, t, p = _params(half1, half2, window, resolution, stride, pad_factor)
    mask, plan, fsc, _, n_eff, sums = _fsc_curves(half1, half2, mask, w, t, p, edge, batch_size, progress)
    s = np.arange(sums.n) / (p * apix)
    if threshold == "3sigma":
        thr = 3.0 / np.sqrt(np.maximum(n_eff, 1e-9) / 2.0)
    else:
        thr = np.full(sums.n, float(threshold))
    sc = _crossing(fsc, thr, s, 1.0 / (2 * apix))
    res = 1.0 / sc
    out = np.zeros(half1.shape, dtype=np.float32)
    out[mask] = plan.interpolate(res)
    return LocalResolution(map=half1.like(out), nodes=plan.grid(res), stride=t, window=w, fft_size=p,
                           threshold=threshold, mask=mask, origin=plan.lo)


def per_residue_local_resolution(locres: LocalResolution, structure, like: Map) -> pd.DataFrame:
    """Mean local resolution at each residue's atoms (trilinear between nodes), with the residue's mean B."""
    rows = []
    for ch in structure[0]:
        for r in ch:
            xyz = np.array([a.pos.tolist() for a in r], dtype=float)
            if xyz.size == 0:
                continue
            vals = locres.at(like.frac_to_xyz_index(xyz))
            rows.append({"chain": ch.name, "resseq": r.seqid.num, "icode": r.seqid.icode.strip(),
                         "resname": r.name, "local_resolution": float(np.nanmean(vals)) if np.isfinite(vals).any()
                         else np.nan, "b_mean": float(np.mean([a.b_iso for a in r]))})
    return pd.DataFrame(rows)


def local_resolution_b_correlation(table: pd.DataFrame) -> dict:
    """Pearson and Spearman correlation between per-residue local resolution and mean B."""
    t = table[["local_resolution", "b_mean"]].dropna()
    if len(t) < 3 or t["b_mean"].std() == 0 or t["local_resolution"].std() == 0:
        return {"n": int(len(t)), "pearson": float("nan"), "spearman": float("nan")}
    return {"n": int(len(t)), "pearson": float(t.corr(method="pearson").iloc[0, 1]),
            "spearman": float(t.corr(method="spearman").iloc[0, 1])}


# ---------------------------------------------------------------------- local Guinier sharpening
def local_guinier_sharpen(half1: Map, half2: Map, *, window: int | None = None, resolution: float | None = None,
                          mask: np.ndarray | None = None, low: float = 10.0, fsc_threshold: float = 0.143,
                          b_max: float = 500.0, stride: int | None = None, edge: float | None = None,
                          pad_factor: float = 2.0, batch_size: int | None = None,
                          progress: bool = True) -> tuple[Map, dict]:
    """Local Guinier B sharpening of the half maps' average with local FOM weighting and a low-pass at the
    local resolution (module docstring). Voxels outside `mask` are 0. Returns (map, info)."""
    from tqdm import tqdm

    apix, w, t, p = _params(half1, half2, window, resolution, stride, pad_factor)
    mask, plan, fsc, amp, _, sums = _fsc_curves(half1, half2, mask, w, t, p, edge, batch_size, progress)
    nsh = sums.n
    s = np.arange(nsh) / (p * apix)
    s_loc = _crossing(fsc, np.full(nsh, fsc_threshold), s, 1.0 / (2 * apix))
    # local Guinier B: ln(mean |F|) vs s² between 1/low and the local resolution
    x = s ** 2
    y = np.log(np.maximum(amp, 1e-30))
    sel = (s[None, :] >= 1.0 / low) & (s[None, :] <= s_loc[:, None])
    n = sel.sum(axis=1)
    xm = np.where(sel, x[None, :], 0).sum(1) / np.maximum(n, 1)
    ym = np.where(sel, y, 0).sum(1) / np.maximum(n, 1)
    sxy = np.where(sel, (x[None, :] - xm[:, None]) * (y - ym[:, None]), 0).sum(1)
    sxx = np.where(sel, (x[None, :] - xm[:, None]) ** 2, 0).sum(1)
    slope = np.where((n >= 3) & (sxx > 0), sxy / np.where(sxx > 0, sxx, 1), 0.0)
    b_loc = np.clip(-4.0 * slope, 0.0, b_max)  # no fit (local resolution worse than `low`): no sharpening
    fitted = (n >= 3) & (sxx > 0)
    b_fit = b_loc[fitted] if fitted.any() else np.zeros(1)
    fom = np.sqrt(np.clip(2 * fsc / (1 + np.clip(fsc, 0, None)), 0, None))
    # low-pass at the local resolution: 1 up to s_loc, raised cosine over one shell
    ds = s[1] - s[0]
    lp = 0.5 * (1 + np.cos(np.pi * np.clip((s[None, :] - s_loc[:, None]) / ds, 0, 1)))
    filt = fom * np.exp(b_loc[:, None] * x[None, :] / 4.0) * lp  # (nodes, shells)

    full = 0.5 * (half1.data.astype(np.float64) + half2.data.astype(np.float64))
    F = scipy.fft.rfftn(full, workers=-1)
    fx = np.fft.fftfreq(full.shape[0], d=apix)
    fy = np.fft.fftfreq(full.shape[1], d=apix)
    fz = np.fft.rfftfreq(full.shape[2], d=apix)
    sfull = np.sqrt(fx[:, None, None] ** 2 + fy[None, :, None] ** 2 + fz[None, None, :] ** 2)
    u = sfull / ds  # position in window-shell units
    out = np.zeros(int(mask.sum()))
    for j in tqdm(range(nsh), desc="local Guinier bands", disable=not progress):
        hat = np.clip(1.0 - np.abs(u - j), 0, None)
        if j == nsh - 1:
            hat = np.where(u >= j, 1.0, hat)
        if j == 0:
            hat = np.where(u <= 0, 1.0, hat)
        if not hat.any():
            continue
        band = scipy.fft.irfftn(F * hat, s=full.shape, workers=-1)
        out += plan.interpolate(filt[:, j]) * band[mask]
    data = np.zeros(half1.shape, dtype=np.float32)
    data[mask] = out
    info = {"method": "local Guinier B sharpening with FOM weighting", "window_voxels": w, "stride": t,
            "fft_size": p, "low": low, "fsc_threshold": fsc_threshold,
            "nodes": int(len(b_loc)), "nodes_fitted": int(fitted.sum()),
            "local_b_median": float(np.median(b_fit)), "local_b_p5": float(np.percentile(b_fit, 5)),
            "local_b_p95": float(np.percentile(b_fit, 95)),
            "local_resolution_median": float(np.median(1.0 / s_loc))}
    return half1.like(data), info

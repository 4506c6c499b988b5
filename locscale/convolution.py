"""Near-exact and fast LocScale: per-shell convolutions with scale factors from a coarse grid of windows.

Exact mode (DESIGN.md §1) keeps, for the window around every masked voxel x, the centre value of the window's
shell-scaled transform. That value splits over the exact-mode shells s (``locscale.shells``):

    out(x) = Σ_s k_s(x) · C_s(x),
    C_s(x) = (1/w³) Re Σ_{k∈s} F_x(k) e^{2πi k·c/w} = Σ_u M(x+u) h_s(u),

where F_x is the transform of the padded map M's window at x, c = ⌊w/2⌋ the centre index, and h_s the real
kernel (1/w³) Σ_{k∈s} e^{2πi k·(c−u)/w} on the window's support u ∈ [0, w)³. So C_s is a correlation of the
padded map with a fixed kernel: one large zero-padded FFT convolution per shell gives it *exactly* at every
voxel. Because Σ_s h_s(u) = δ(u−c), the last shell needs no convolution:
Σ_{s>0} k_s C_s = Σ_{0<s<S} (k_s − k_S) C_s + k_S (M(x+c) − C_0).

The factors k_s(x) = sqrt(P_model,s(x) / P_map,s(x)) (P = shell power of the window; a zero-power map shell
gets 0) need per-window transforms, except shell 0: it is the window mean, so C_0 and k_0 = |mean R| / |mean M|
come exactly at every voxel from box sums of both maps (cumulative sums). k_0 flips with the sign of the
window mean and could not be interpolated. The other factors are averages over heavily overlapping windows
and vary slowly, so they are computed exactly (batched window FFTs, exact mode's shell matrices) on the nodes
of a grid of stride t and interpolated trilinearly to every masked voxel. Only nodes that touch a masked voxel
are transformed. With t = 1 the nodes are the masked voxels themselves and the result is exact mode to
float32 rounding.

Memory: the cropped padded map and model map, the map's spectrum, one shell's product/convolution and the
interpolation plan (a few map copies), whatever the window; shells are streamed.

Padding and shells are the exact-mode ones (``locscale.padding``, ``locscale.shells``); voxels outside the mask
are 0 in the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from . import shells
from .errors import LocScaleInputError
from .localscale import (
    check_inputs,
    default_batch_size,
    default_workers,
    exact_scheme,
    power_floor,
    rfft_windows,
    shell_factors,
)
from .padding import pad_widths, solvent_level

#: near-exact default: stride ≈ w/6 (w = 24 → t = 4); measured CCs in ``local_scale_near_exact``'s docstring
NEAR_EXACT_STRIDE_PER_WINDOW = 1.0 / 6.0
#: fast default: stride ≈ w/3 (w = 24 → t = 8) and a low-rank shell approximation (see ``local_scale_fast``)
FAST_STRIDE_PER_WINDOW = 1.0 / 3.0
#: fast mode keeps the smallest number of shell profiles whose discarded (output-weighted) energy is below this
FAST_RANK_TOLERANCE = 1e-3


def default_stride(window: int, mode: str = "near-exact") -> int:
    """Node spacing t of the scale-factor grid for a window of `window` voxels (near-exact: ≈ w/6, fast: ≈ w/3)."""
    per = NEAR_EXACT_STRIDE_PER_WINDOW if mode == "near-exact" else FAST_STRIDE_PER_WINDOW
    return max(1, int(round(window * per)))


# ---------------------------------------------------------------------------------------------- shell kernels
@lru_cache(maxsize=16)
def shell_kernels(w: int) -> np.ndarray:
    """(n_shells, w, w, w) float64: h_s(u) = (1/w³) Re Σ_{k∈s} e^{2πi k·(c−u)/w}, so that the window centre's
    contribution from shell s is C_s(x) = Σ_u M(x+u)·h_s(u) (M padded, window at x spans x … x+w−1)."""
    idx = shells.exact_shell_index(w, half=False)
    c = shells.centre_index(w)
    flip = (c - np.arange(w)) % w
    out = np.empty((shells.n_shells(w), w, w, w))
    for s in range(shells.n_shells(w)):
        g = np.fft.ifftn((idx == s).astype(np.float64)).real
        out[s] = g[np.ix_(flip, flip, flip)]
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------------------------- node grid
@dataclass
class _Plan:
    """Cropped geometry, coarse node grid and trilinear interpolation plan for one (mask, w, t)."""

    lo: np.ndarray            # (3,) first voxel of the mask's bounding box (unpadded index)
    ext: np.ndarray           # (3,) bounding-box extent (voxels)
    t: int
    mask_local: np.ndarray    # bool, shape ext: the mask inside the bounding box
    nodes: np.ndarray         # (n_nodes, 3) node indices on the coarse grid (node j at lo + j·t)
    corner_ids: np.ndarray    # (n_masked, 8) int32: row of each masked voxel's 8 cell corners in `nodes`
    corner_w: np.ndarray      # (n_masked, 8) float32 trilinear weights


def _plan(mask: np.ndarray, t: int) -> _Plan:
    """The plan for `mask` and stride `t`. Index arrays are int32 (the plan holds 8 corners per masked voxel:
    at 4 M voxels int64 would cost 256 MB more)."""
    coords = np.nonzero(mask)
    lo = np.array([int(c.min()) for c in coords])
    hi = np.array([int(c.max()) for c in coords])
    ext = hi - lo + 1
    mask_local = mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    q = [(c - lo[a]).astype(np.int32) for a, c in enumerate(coords)]
    del coords
    j0 = [qa // np.int32(t) for qa in q]
    frac = [(qa - j * np.int32(t)).astype(np.float32) / np.float32(t) for qa, j in zip(q, j0, strict=True)]
    del q
    # a voxel on a node plane uses that plane only (its upper corner would get weight 0)
    j1 = [j + (f > 0).astype(np.int32) for j, f in zip(j0, frac, strict=True)]
    gshape = tuple(int(x) for x in (ext - 1) // t + 2)
    node_id = np.full(gshape, -1, dtype=np.int32)
    corners = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    for a, b, c in corners:
        node_id[(j0, j1)[a][0], (j0, j1)[b][1], (j0, j1)[c][2]] = 0
    nodes = np.argwhere(node_id == 0)
    node_id[tuple(nodes.T)] = np.arange(len(nodes), dtype=np.int32)
    n = len(j0[0])
    corner_ids = np.empty((n, 8), dtype=np.int32)
    corner_w = np.empty((n, 8), dtype=np.float32)
    for i, (a, b, c) in enumerate(corners):
        corner_ids[:, i] = node_id[(j0, j1)[a][0], (j0, j1)[b][1], (j0, j1)[c][2]]
        wx = frac[0] if a else 1 - frac[0]
        wy = frac[1] if b else 1 - frac[1]
        wz = frac[2] if c else 1 - frac[2]
        corner_w[:, i] = wx * wy * wz
    return _Plan(lo, ext, t, mask_local, nodes, corner_ids, corner_w)


def _node_region(padded: np.ndarray, plan: _Plan, w: int, fill: float) -> np.ndarray:
    """The part of a padded map that the node windows read, extended with `fill` where the last nodes'
    windows run past the padded box (nodes may lie up to t−1 voxels beyond the bounding box)."""
    lo = plan.lo
    need = (plan.nodes.max(axis=0) * plan.t if len(plan.nodes) else np.zeros(3, int)) + w
    stop = lo + need
    region = padded[lo[0]:stop[0], lo[1]:stop[1], lo[2]:stop[2]]
    short = need - np.array(region.shape)
    if short.any():
        region = np.pad(region, [(0, int(s)) for s in short], mode="constant", constant_values=fill)
    return region


def node_factors(map_region: np.ndarray, model_region: np.ndarray, nodes: np.ndarray, t: int, w: int,
                 batch_size: int | None = None, workers: int | None = None,
                 progress: bool = True, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact-mode scale factors and map shell powers of the windows at `nodes` (node j's window starts at j·t
    in the region arrays), with exact mode's shell matrices, ratio, power floor and FFT (``locscale.localscale``).
    Returns (factors (n_shells, n_nodes) float32, map shell power (n_shells, n_nodes) float64)."""
    from tqdm.auto import tqdm

    scheme = exact_scheme(w)
    n_sh = scheme.profile.shape[1]
    views = [sliding_window_view(r, (w, w, w))[::t, ::t, ::t] for r in (map_region, model_region)]
    factors = np.empty((n_sh, len(nodes)), dtype=np.float32)
    p_map_all = np.empty((n_sh, len(nodes)), dtype=np.float64)
    bs = default_batch_size(w, batch_size)
    workers = default_workers(workers)
    for start in tqdm(range(0, len(nodes), bs), desc="scale factors", unit="batch", disable=not progress):
        ix = nodes[start:start + bs]
        powers = []
        for v in views:
            spec = rfft_windows(v[ix[:, 0], ix[:, 1], ix[:, 2]], workers)
            sq = spec.view(np.float32).reshape(len(ix), -1)
            np.square(sq, out=sq)
            powers.append((sq @ scheme.profile).astype(np.float64))
        p_map, p_model = powers
        factors[:, start:start + len(ix)] = shell_factors(p_model, p_map, scheme.kind, floor).T
        p_map_all[:, start:start + len(ix)] = p_map.T
    return factors, p_map_all


# ---------------------------------------------------------------------------------------------- convolutions
def _kernel_spectrum(h: np.ndarray, shape: tuple[int, int, int], workers: int) -> np.ndarray:
    """rfftn of the w³ kernel zero-padded to `shape`, pruned: the first two passes run on the w-thick slab."""
    k = scipy.fft.rfft(h.astype(np.float32), n=shape[2], axis=2, workers=workers)
    k = scipy.fft.fft(k, n=shape[1], axis=1, workers=workers)
    return scipy.fft.fft(k, n=shape[0], axis=0, workers=workers)


def _box_mean(padded_crop: np.ndarray, w: int, ext: np.ndarray) -> np.ndarray:
    """C_0: the mean of the w³ window starting at every voxel of the bounding box `ext` (float32).

    Sums in float64: per x plane a 2-D summed-area table gives the w² box sums in y and z, then a running sum
    over x planes gives the w³ sums. Memory: one float64 array of the planes' box sums and the float32
    output (about 12 bytes per voxel) instead of a full 3-D summed-area table and its temporaries."""
    e0, e1, e2 = (int(n) for n in ext)
    planes = np.empty((e0 + w - 1, e1, e2))
    table = np.zeros((padded_crop.shape[1] + 1, padded_crop.shape[2] + 1))
    for i in range(e0 + w - 1):
        np.cumsum(padded_crop[i], axis=0, dtype=np.float64, out=table[1:, 1:])
        np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
        planes[i] = table[w:w + e1, w:w + e2] - table[:e1, w:w + e2] - table[w:w + e1, :e2] + table[:e1, :e2]
    np.cumsum(planes, axis=0, out=planes)
    out = np.empty((e0, e1, e2), dtype=np.float32)
    out[0] = planes[w - 1] / w**3
    for i in range(1, e0):
        out[i] = (planes[i + w - 1] - planes[i - 1]) / w**3
    return out


class _ShellConvolver:
    """C(x) = Σ_u M(x+u)·h(u) for x in the bounding box, for any w³ kernel h, by zero-padded FFT (no wrap:
    the FFT length is ≥ extent + w − 1)."""

    def __init__(self, padded_crop: np.ndarray, ext: np.ndarray, workers: int):
        self.ext = ext
        self.workers = workers
        self.shape = tuple(scipy.fft.next_fast_len(int(n), real=True) for n in padded_crop.shape)
        self.spec = scipy.fft.rfftn(padded_crop, s=self.shape, workers=workers)

    def __call__(self, h: np.ndarray) -> np.ndarray:
        k = _kernel_spectrum(h, self.shape, self.workers)
        np.conjugate(k, out=k)
        k *= self.spec
        c = scipy.fft.irfftn(k, s=self.shape, workers=self.workers)
        return c[:self.ext[0], :self.ext[1], :self.ext[2]]


# ---------------------------------------------------------------------------------------------- public API
def _check_stride(stride) -> int:
    try:
        t = int(stride)
    except (TypeError, ValueError):
        t = 0
    if t < 1 or t != stride:
        raise LocScaleInputError(f"the stride must be a whole number of voxels ≥ 1, got {stride!r}",
                                 "give a stride of 1 (exact) or more, or leave it out for the default")
    return t


def _padded(data: np.ndarray, w: int, mask: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = pad_widths(w)
    fill = solvent_level(data, mask)
    return np.pad(data, [(lo, hi)] * 3, mode="constant", constant_values=fill), fill


def _crop(padded: np.ndarray, lo: np.ndarray, ext: np.ndarray, w: int) -> np.ndarray:
    """The padded voxels that the windows of the bounding box [lo, lo + ext) read (contiguous copy)."""
    return np.ascontiguousarray(padded[lo[0]:lo[0] + ext[0] + w - 1, lo[1]:lo[1] + ext[1] + w - 1,
                                       lo[2]:lo[2] + ext[2] + w - 1])


def _scale(emmap, modelmap, window, mask, stride, rank_tol, batch_size, workers, progress) -> np.ndarray:
    from tqdm.auto import tqdm

    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    t = _check_stride(stride)
    workers = default_workers(workers)
    pm, fill_m = _padded(emmap, w, mask)
    pr, fill_r = _padded(modelmap, w, mask)
    plan = _plan(mask, t)

    # 1. exact factors on the nodes
    floor = power_floor(emmap, w)
    factors, p_map = node_factors(_node_region(pm, plan, w, fill_m), _node_region(pr, plan, w, fill_r),
                                  plan.nodes, t, w, batch_size, workers, progress, floor)
    n_sh = factors.shape[0]

    # 2. shell profiles: all shells (near-exact) or a low-rank basis (fast)
    lo, ext = plan.lo, plan.ext
    crop = _crop(pm, lo, ext, w)
    del pm
    kern = shell_kernels(w)
    sel = plan.mask_local
    centre = crop[shells.centre_index(w):, shells.centre_index(w):, shells.centre_index(w):][
        :ext[0], :ext[1], :ext[2]][sel]

    def interp(node_values: np.ndarray) -> np.ndarray:
        """Trilinear interpolation of one value per node to the masked voxels."""
        return np.einsum("ij,ij->i", node_values[plan.corner_ids], plan.corner_w)

    # shell 0 (the window means) exactly at every voxel: k_0 = |mean model| / |mean map| (0 if the map's is 0)
    c0 = _box_mean(crop, w, ext)[sel]
    c0_model = _box_mean(_crop(pr, lo, ext, w), w, ext)[sel]
    del pr
    # shell 0's power is (w³·mean)², so the floor in mean² units is floor / w⁶
    acc = shell_factors(c0_model.astype(np.float64) ** 2, c0.astype(np.float64) ** 2, "power", floor / w**6) * c0
    conv = _ShellConvolver(crop, ext, workers)
    if rank_tol is None:
        # Σ_{s>0} k_s C_s = Σ_{0<s<S} (k_s − k_S) C_s + k_S·(M(x+c) − C_0)
        last = factors[-1]
        acc += interp(last) * (centre - c0)
        for s in tqdm(range(1, n_sh - 1), desc="shell convolutions", unit="shell", disable=not progress):
            acc += interp(factors[s] - last) * conv(kern[s])[sel]
    else:
        # fast: k(x, s) ≈ Σ_r a_r(x) b_r(s) for s > 0, fitted by least squares weighted with each node's
        # typical contribution to the output, α_j·σ_s: σ_s = rms C_s ≈ sqrt(mean P_map,s) / w³ per shell and
        # α_j = the node's rms map amplitude over shells relative to the mean node's. Without α_j, nodes with
        # little map power but large factors (windows at the edge of zeroed solvent) dominated the fit: in-box
        # CC to exact 0.959 on EMD-3488 scaled over the whole box, 0.99904 with it.
        fac = factors[1:].astype(np.float64)
        sigma = np.sqrt(np.maximum(p_map[1:].mean(axis=1), 0.0)) / w**3
        sigma = np.where(sigma > 0, sigma, 1.0)
        node_power = np.maximum(p_map[1:], 0.0).sum(axis=0)
        alpha = np.sqrt(node_power / node_power.mean()) if node_power.mean() > 0 else np.ones_like(node_power)
        weighted = fac * sigma[:, None] * alpha[None, :]
        gram = weighted @ weighted.T
        evals, evecs = np.linalg.eigh(gram)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
        total = evals.sum()
        resid = (total - np.cumsum(evals)) / total if total > 0 else np.zeros_like(evals)
        rank = int(np.argmax(resid <= rank_tol)) + 1
        for r in tqdm(range(rank), desc="shell profiles", unit="profile", disable=not progress):
            v = evecs[:, r]
            # a_r at the nodes: the weighted projection divided by α_j (0 where the node has no map power)
            a = np.divide(v @ weighted, alpha, out=np.zeros_like(alpha), where=alpha > 0).astype(np.float32)
            b = v / sigma                                  # b_r(s): the r-th shell profile
            ker = np.tensordot(b, kern[1:], axes=1)
            acc += interp(a) * conv(ker)[sel]
    out[lo[0]:lo[0] + ext[0], lo[1]:lo[1] + ext[1], lo[2]:lo[2] + ext[2]][sel] = acc
    return out


def local_scale_near_exact(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                           stride: int | None = None, progress: bool = True, batch_size: int | None = None,
                           workers: int | None = None) -> np.ndarray:
    """Near-exact LocScale: exact per-shell convolutions, exact scale factors on a grid of stride t, trilinear
    interpolation of the factors in between (module docstring).

    Arrays in ([x, y, z] float, same shape), array out; voxels outside `mask` are 0. `stride` defaults to
    ≈ w/6 (:func:`default_stride`); stride 1 reproduces exact mode to float32 rounding (measured max deviation
    2e-7 of the largest value). `batch_size` bounds the window FFT batches, `workers` the FFT threads (default:
    all cores).

    Measured in-mask CC to exact mode at the default stride (tests check ≥ 0.999):
    EMD-3488 with LocScale 2's 55 206-voxel mask, w = 24, t = 4: 0.99965 (t = 2, 3: 0.99990, 0.99976);
    the same map Fourier-resampled to 160³, w = 40, t = 7: 0.99970;
    TRPV1 chain-A phantom (56³, 1.2156 Å, locscale.phantom), w = 20, t = 3: 0.99989; w = 24, t = 4: 0.99978;
    TRPV1 phantom 256³ with a 20 Å envelope (1.05 M voxels), w = 24, t = 4: 0.99996 (benchmarks/);
    EMD-3488 over the whole 100³ box (71 % exact-zero solvent, no mask): 0.99964; the same with the solvent
    flattened to 0.0123: 0.99958.
    The window-mean shell (s = 0) is computed exactly at every voxel (its factor flips sign with the window
    mean and cannot be interpolated); all other shells' factors are interpolated.
    """
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    t = default_stride(w, "near-exact") if stride is None else stride
    return _scale(emmap, modelmap, w, mask, t, None, batch_size, workers, progress)


def local_scale_fast(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                     stride: int | None = None, progress: bool = True, batch_size: int | None = None,
                     workers: int | None = None, rank_tol: float = FAST_RANK_TOLERANCE) -> np.ndarray:
    """Fast LocScale for screening (e.g. window sweeps): an approximation, not exact mode.

    As near-exact, with two further approximations: factors on a coarser grid (default stride ≈ w/3), and the
    factor profile over shells replaced by its best low-rank fit — k(x, s) ≈ Σ_r a_r(x)·b_r(s), from the SVD of
    the node factors weighted by each shell's rms contribution — so only one convolution per profile b_r
    (6 on EMD-3488 at w = 24 and 40) is needed instead of one per shell. `rank_tol` is the discarded weighted
    energy fraction.

    Measured in-mask CC to exact mode at the defaults (tests check ≥ 0.995):
    EMD-3488 with LocScale 2's mask, w = 24, t = 8: 0.99906; resampled to 160³, w = 40, t = 13: 0.99920;
    TRPV1 chain-A phantom, w = 20, t = 7: 0.99937; w = 24, t = 8: 0.99956; TRPV1 phantom 256³, w = 24: 0.99986;
    EMD-3488 at w = 12 / 16 / 20 / 32 / 40: 0.9981 / 0.9987 / 0.9988 / 0.9993 / 0.9994 (benchmarks/bench_scaling.py);
    EMD-3488 over the whole box (no mask): 0.99904 (zeroed solvent), 0.99867 (solvent flattened to 0.0123).
    """
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    t = default_stride(w, "fast") if stride is None else stride
    return _scale(emmap, modelmap, w, mask, t, rank_tol, batch_size, workers, progress)

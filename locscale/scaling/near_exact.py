"""Near-exact and fast LocScale: per-shell convolutions with scale factors from a coarse grid of windows.

Exact mode (docs/design.md) keeps, for the window around every masked voxel x, the centre value of the window's
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

Padding and shells are the exact-mode ones (``locscale.padding``, ``locscale.shells``), the node grid and
interpolation ``grid``'s; voxels outside the mask are 0 in the output. The heavy steps (window transforms at
the nodes, box means, shell convolutions) go through a ``backends`` backend: numpy on the CPU, torch on a GPU,
with this one skeleton for both.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import shells
from ..padding import pad_for_window, solvent_level
from .backends import Backend, get_backend
from .engine import check_inputs
from .grid import STRIDE_PER_WINDOW, box_crop, check_stride, node_plan, node_region, stride_for_window
from .schemes import power_floor, shell_factors

#: near-exact default: stride ≈ w/6 (w = 24 → t = 4); measured CCs in ``local_scale_near_exact``'s docstring
NEAR_EXACT_STRIDE_PER_WINDOW = STRIDE_PER_WINDOW
#: fast default: stride ≈ w/3 (w = 24 → t = 8) and a low-rank shell approximation (see ``local_scale_fast``)
FAST_STRIDE_PER_WINDOW = 1.0 / 3.0
#: fast mode keeps the smallest number of shell profiles whose discarded (output-weighted) energy is below this
FAST_RANK_TOLERANCE = 1e-3


def default_stride(window: int, mode: str = "near-exact") -> int:
    """Node spacing t of the scale-factor grid for a window of `window` voxels (near-exact: ≈ w/6, fast: ≈ w/3)."""
    per = NEAR_EXACT_STRIDE_PER_WINDOW if mode == "near-exact" else FAST_STRIDE_PER_WINDOW
    return stride_for_window(window, per)


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


# ---------------------------------------------------------------------------------------------- the skeleton
def dc_term(c0: np.ndarray, c0_model: np.ndarray, floor: float, w: int) -> np.ndarray:
    """Shell 0's contribution at every voxel: k_0·C_0 with k_0 = |C_0 of the model| / |C_0 of the map| (0 where
    the map's is at the power floor; shell 0's power is (w³·C_0)², so the floor in C_0² units is floor / w⁶)."""
    return shell_factors(c0_model.astype(np.float64) ** 2, c0.astype(np.float64) ** 2, "power", floor / w**6) * c0


def shell_sum(factors: np.ndarray, kernels: np.ndarray, centre: np.ndarray, c0: np.ndarray, c0_model: np.ndarray,
              conv, interp, floor: float, w: int, progress: bool) -> np.ndarray:
    """out(x) = Σ_s k_s(x)·C_s(x) at the masked voxels: shell 0 exactly (:func:`dc_term`), the others with node
    factors `factors` (S, n_nodes) interpolated by `interp` and shell contributions C_s = `conv`(kernels[s]).
    The kernels sum to δ(u − c) over the shells, so the last shell needs no convolution:
    Σ_{s>0} k_s C_s = Σ_{0<s<S} (k_s − k_S) C_s + k_S·(M(x+c) − C_0), `centre` being M(x+c)."""
    from tqdm.auto import tqdm

    acc = dc_term(c0, c0_model, floor, w)
    last = factors[-1]
    acc += interp(last) * (centre - c0)
    for s in tqdm(range(1, factors.shape[0] - 1), desc="shell convolutions", unit="shell", disable=not progress):
        acc += interp(factors[s] - last) * conv(kernels[s])
    return acc


def scale(emmap, modelmap, window, mask, stride, rank_tol, backend: Backend, progress) -> np.ndarray:
    """Near-exact (`rank_tol` None) or fast LocScale of checked inputs with `backend` (module docstring)."""
    from tqdm.auto import tqdm

    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    t = check_stride(stride)
    fill_m, fill_r = solvent_level(emmap, mask), solvent_level(modelmap, mask)
    pm = pad_for_window(emmap, w, value=fill_m)
    pr = pad_for_window(modelmap, w, value=fill_r)
    plan = node_plan(mask, t)

    # 1. exact factors on the nodes
    floor = power_floor(emmap, w)
    p_map, p_model = backend.shell_powers(node_region(pm, plan, w, fill_m), node_region(pr, plan, w, fill_r),
                                          plan.nodes * t, w, progress)
    factors = np.ascontiguousarray(shell_factors(p_model, p_map, "power", floor).T, dtype=np.float32)
    p_map = np.ascontiguousarray(p_map.T)  # (n_shells, n_nodes), as the factors

    # 2. shell profiles: all shells (near-exact) or a low-rank basis (fast)
    lo, ext = plan.lo, plan.ext
    crop = box_crop(pm, plan, w)
    del pm
    kern = shell_kernels(w)
    sel = plan.mask_local
    c = shells.centre_index(w)
    centre = crop[c:, c:, c:][:ext[0], :ext[1], :ext[2]][sel]
    interp = plan.interpolate

    # shell 0 (the window means) exactly at every voxel: k_0 = |mean model| / |mean map| (0 if the map's is 0)
    c0 = backend.box_means(crop, w, ext, sel)
    c0_model = backend.box_means(box_crop(pr, plan, w), w, ext, sel)
    del pr
    conv = backend.shell_convolver(crop, ext, sel)
    del crop
    if rank_tol is None:
        acc = shell_sum(factors, kern, centre, c0, c0_model, conv, interp, floor, w, progress)
    else:
        acc = dc_term(c0, c0_model, floor, w)
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
            acc += interp(a) * conv(ker)
    out[lo[0]:lo[0] + ext[0], lo[1]:lo[1] + ext[1], lo[2]:lo[2] + ext[2]][sel] = acc
    return out


def local_scale_near_exact(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                           stride: int | None = None, progress: bool = True, batch_size: int | None = None,
                           workers: int | None = None, backend: Backend | None = None) -> np.ndarray:
    """Near-exact LocScale: exact per-shell convolutions, exact scale factors on a grid of stride t, trilinear
    interpolation of the factors in between (module docstring).

    Arrays in ([x, y, z] float, same shape), array out; voxels outside `mask` are 0. `stride` defaults to
    ≈ w/6 (:func:`default_stride`); stride 1 reproduces exact mode to float32 rounding (measured max deviation
    2e-7 of the largest value). `batch_size` bounds the window FFT batches, `workers` the FFT threads (default:
    all cores). `backend`: where the transforms and convolutions run (default: numpy on the CPU with
    `batch_size` and `workers`; ``backends.TorchBackend`` for a GPU).

    Measured in-mask CC to exact mode at the default stride (tests check ≥ 0.999):
    EMD-3488 with LocScale 2's 55 206-voxel mask, w = 24, t = 4: 0.99965 (t = 2, 3: 0.99990, 0.99976);
    the same map Fourier-resampled to 160³, w = 40, t = 7: 0.99970;
    TRPV1 chain-A phantom (56³, 1.2156 Å, locscale.phantoms.phantom), w = 20, t = 3: 0.99989; w = 24, t = 4: 0.99978;
    TRPV1 phantom 256³ with a 20 Å envelope (1.05 M voxels), w = 24, t = 4: 0.99996 (benchmarks/);
    EMD-3488 over the whole 100³ box (71 % exact-zero solvent, no mask): 0.99964; the same with the solvent
    flattened to 0.0123: 0.99958.
    The window-mean shell (s = 0) is computed exactly at every voxel (its factor flips sign with the window
    mean and cannot be interpolated); all other shells' factors are interpolated.
    """
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    t = default_stride(w, "near-exact") if stride is None else stride
    return scale(emmap, modelmap, w, mask, t, None, backend or get_backend(None, batch_size, workers), progress)


def local_scale_fast(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                     stride: int | None = None, progress: bool = True, batch_size: int | None = None,
                     workers: int | None = None, rank_tol: float = FAST_RANK_TOLERANCE,
                     backend: Backend | None = None) -> np.ndarray:
    """Fast LocScale for screening (e.g. window sweeps): an approximation, not exact mode.

    As near-exact, with two further approximations: factors on a coarser grid (default stride ≈ w/3), and the
    factor profile over shells replaced by its best low-rank fit — k(x, s) ≈ Σ_r a_r(x)·b_r(s), from the SVD of
    the node factors weighted by each shell's rms contribution — so only one convolution per profile b_r
    (6 on EMD-3488 at w = 24 and 40) is needed instead of one per shell. `rank_tol` is the discarded weighted
    energy fraction. `batch_size`, `workers`, `backend` as in :func:`local_scale_near_exact`.

    Measured in-mask CC to exact mode at the defaults (tests check ≥ 0.995):
    EMD-3488 with LocScale 2's mask, w = 24, t = 8: 0.99906; resampled to 160³, w = 40, t = 13: 0.99920;
    TRPV1 chain-A phantom, w = 20, t = 7: 0.99937; w = 24, t = 8: 0.99956; TRPV1 phantom 256³, w = 24: 0.99986;
    EMD-3488 at w = 12 / 16 / 20 / 32 / 40: 0.9981 / 0.9987 / 0.9988 / 0.9993 / 0.9994 (benchmarks/bench_scaling.py);
    EMD-3488 over the whole box (no mask): 0.99904 (zeroed solvent), 0.99867 (solvent flattened to 0.0123).
    """
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    t = default_stride(w, "fast") if stride is None else stride
    return scale(emmap, modelmap, w, mask, t, rank_tol, backend or get_backend(None, batch_size, workers),
                 progress)

"""Optional PyTorch backend: exact and near-exact LocScale on a GPU (or on CPU torch).

Install with ``pip install 'locscale[gpu]'``. torch is imported only when one of these functions runs.

The arithmetic is the one of the numpy modes, moved to torch tensors:

* exact mode: windows gathered from an ``unfold`` view of the padded maps (no Python loop per voxel), one
  batched ``rfftn`` per map, shell powers and the centre's per-shell contributions as two matrix products with
  the multiplicity-weighted shell matrix (in float64), then out(x) = Σ_s k_s(x)·C_s(x) — no inverse transform;
* near-exact mode: the factors of :mod:`locscale.convolution` on the node grid with the same batched window
  transforms, the window means by cumulative sums, and one zero-padded FFT convolution per shell, all on the
  device; the node grid and interpolation plan are the numpy ones (``locscale.convolution``).

Batches are sized from the device's free memory. Results equal the numpy modes within float32 tolerance.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from . import convolution as cv
from . import shells
from .localscale import check_inputs, exact_scheme, power_floor

_INSTALL_HINT = "pip install 'locscale[gpu]'  (or follow https://pytorch.org/get-started for a CUDA build)"


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"the GPU backend needs PyTorch, which is not installed: {_INSTALL_HINT}") from exc
    return torch


def torch_available() -> bool:
    try:
        _torch()
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if not torch_available():
        return False
    return bool(_torch().cuda.is_available())


def resolve_device(device: str | None = None):
    """A torch.device from "cpu", "cuda", "cuda:N" or None/"auto" (CUDA if present, else CPU).

    Raises RuntimeError naming the fix when CUDA is asked for but unavailable."""
    torch = _torch()
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but torch {torch.__version__} sees no CUDA GPU; "
                           "use --device cpu, or install a CUDA build of torch on a machine with a GPU")
    return dev


def _auto_batch(dev, w: int, batch_size: int | None) -> int:
    if batch_size is not None:
        return max(1, int(batch_size))
    nh = w * w * (w // 2 + 1)
    # per window: gathered window (f32), spectrum (c64), power/phase products (f32) and their f64 copies
    per_window = 4 * w**3 + 8 * nh + 2 * 4 * nh + 2 * 8 * nh
    if dev.type == "cuda":
        torch = _torch()
        free, _ = torch.cuda.mem_get_info(dev)
        budget = int(0.3 * free)
    else:
        budget = 256 * 2**20
    return int(max(16, min(32768, budget // per_window)))


class _WindowTransformer:
    """Batched window transforms of the padded map and model map on one device, reduced with exact mode's
    shell matrices (``locscale.localscale.exact_scheme``) in float64."""

    def __init__(self, map_region: np.ndarray, model_region: np.ndarray, w: int, t: int, dev, floor: float = 0.0):
        torch = _torch()
        self.torch, self.w, self.t, self.dev, self.floor = torch, w, t, dev, float(floor)
        self.views = []
        for r in (map_region, model_region):
            x = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float32)).to(dev)
            self.views.append(x.unfold(0, w, t).unfold(1, w, t).unfold(2, w, t))
        # exact mode's matrices act on interleaved (re, im) spectra with identical re and im rows for the
        # power; their even rows are the (half-spectrum coefficient × shell) multiplicity matrix
        power = exact_scheme(w).profile[0::2].astype(np.float64)
        self.power = torch.from_numpy(power).to(dev)
        self.centre = torch.from_numpy(power / w**3).to(dev)
        ph = shells.centre_phase(w).ravel()
        self.ph_re = torch.from_numpy(ph.real.astype(np.float32)).to(dev)
        self.ph_im = torch.from_numpy(ph.imag.astype(np.float32)).to(dev)

    def __call__(self, ix, centre: bool = False):
        """Factors (B, n_shells) float64 for the windows at node indices `ix` (B, 3 long tensor) and either the
        map's shell powers or, with `centre`, C_s: each shell's contribution to the window's centre value,
        (1/w³) Σ_{k∈s} m(k) Re(F(k) e^{2πi k·c/w}). Elementwise work in float32, shell sums in float64."""
        torch = self.torch
        b = ix.shape[0]
        powers, contrib = [], None
        for i, v in enumerate(self.views):
            f = torch.fft.rfftn(v[ix[:, 0], ix[:, 1], ix[:, 2]], dim=(1, 2, 3)).reshape(b, -1)
            powers.append((f.real.square() + f.imag.square()).double() @ self.power)
            if i == 0 and centre:
                contrib = (f.real * self.ph_re - f.imag * self.ph_im).double() @ self.centre
            del f
        p_map, p_model = powers
        ok = p_map > self.floor
        factors = torch.where(ok, torch.sqrt(torch.clamp(p_model, min=0) / torch.where(ok, p_map, 1.0)), 0.0)
        return factors, (contrib if centre else p_map)


def _prepare(emmap, modelmap, window, mask):
    """Checked inputs and both maps padded with their solvent level, exactly as the numpy modes do."""
    emmap, modelmap, w, mask = check_inputs(emmap, modelmap, window, mask)
    (pm, fill_m), (pr, fill_r) = cv._padded(emmap, w, mask), cv._padded(modelmap, w, mask)
    return emmap, modelmap, w, mask, (pm, pr), (fill_m, fill_r)


def local_scale_exact_torch(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                            batch_size: int | None = None, device: str | None = "cuda",
                            progress: bool = True, workers: int | None = None) -> np.ndarray:
    """Exact-mode LocScale (DESIGN.md §1) with torch on `device` ("cuda", "cuda:N", "cpu", or None = auto).

    Arrays in, array out (float32, voxels outside `mask` are 0), as ``locscale.localscale.local_scale_exact``.
    `batch_size` windows per transform (default: sized to 30 % of the GPU's free memory); `workers` is accepted
    for a uniform call signature and ignored (torch manages its own threads).
    """
    from tqdm.auto import tqdm

    torch = _torch()
    dev = resolve_device(device)
    emmap, modelmap, w, mask, (pm, pr), _ = _prepare(emmap, modelmap, window, mask)
    out = np.zeros(emmap.shape, dtype=np.float32)
    pts = np.argwhere(mask)
    if len(pts) == 0:
        return out
    tr = _WindowTransformer(pm, pr, w, 1, dev, power_floor(emmap, w))
    bs = _auto_batch(dev, w, batch_size)
    pts_t = torch.from_numpy(pts).to(dev)
    vals = torch.empty(len(pts), dtype=torch.float64, device=dev)
    with torch.no_grad():
        for start in tqdm(range(0, len(pts), bs), desc="exact (torch)", unit="batch", disable=not progress):
            k, c = tr(pts_t[start:start + bs], centre=True)
            vals[start:start + len(k)] = (k * c).sum(dim=1)
    out[mask] = vals.cpu().numpy().astype(np.float32)
    return out


def local_scale_near_exact_torch(emmap: np.ndarray, modelmap: np.ndarray, window: int,
                                 mask: np.ndarray | None = None, stride: int | None = None,
                                 batch_size: int | None = None, device: str | None = "cuda",
                                 progress: bool = True, workers: int | None = None) -> np.ndarray:
    """Near-exact LocScale (:func:`locscale.convolution.local_scale_near_exact`) with torch on `device`."""
    from tqdm.auto import tqdm

    torch = _torch()
    dev = resolve_device(device)
    emmap, modelmap, w, mask, (pm, pr), (fill_m, fill_r) = _prepare(emmap, modelmap, window, mask)
    out = np.zeros(emmap.shape, dtype=np.float32)
    if not mask.any():
        return out
    t = cv.default_stride(w, "near-exact") if stride is None else cv._check_stride(stride)
    plan = cv._plan(mask, t)
    lo, ext = plan.lo, plan.ext
    with torch.no_grad():
        # factors on the nodes
        floor = power_floor(emmap, w)
        tr = _WindowTransformer(cv._node_region(pm, plan, w, fill_m), cv._node_region(pr, plan, w, fill_r),
                                w, t, dev, floor)
        nodes = torch.from_numpy(plan.nodes).to(dev)
        n_sh = shells.n_shells(w)
        factors = torch.empty((n_sh, len(nodes)), dtype=torch.float64, device=dev)
        bs = _auto_batch(dev, w, batch_size)
        for start in tqdm(range(0, len(nodes), bs), desc="scale factors (torch)", unit="batch",
                          disable=not progress):
            k, _ = tr(nodes[start:start + bs])
            factors[:, start:start + len(k)] = k.T
        del tr
        factors = factors.float()
        cid = torch.from_numpy(plan.corner_ids.astype(np.int64)).to(dev)
        cw = torch.from_numpy(plan.corner_w).to(dev)

        def interp(node_values):
            return (node_values[cid] * cw).sum(dim=1).double()

        sel = torch.from_numpy(plan.mask_local).to(dev)
        crop = torch.from_numpy(cv._crop(pm, lo, ext, w)).to(dev)
        crop_r = torch.from_numpy(cv._crop(pr, lo, ext, w)).to(dev)
        c = shells.centre_index(w)
        centre = crop[c:c + ext[0], c:c + ext[1], c:c + ext[2]][sel].double()
        c0 = _box_mean_torch(crop, w, ext)[sel]
        c0r = _box_mean_torch(crop_r, w, ext)[sel]
        del crop_r
        ok = c0.square() > floor / w**6  # shell 0's power is (w³·mean)²
        acc = torch.where(ok, torch.abs(c0r) / torch.where(ok, torch.abs(c0), 1.0), 0.0) * c0
        last = factors[-1]
        acc += interp(last) * (centre - c0)
        shape = tuple(scipy.fft.next_fast_len(int(n), real=True) for n in crop.shape)
        spec = torch.fft.rfftn(crop, s=shape)
        del crop
        kern = cv.shell_kernels(w)
        for s in tqdm(range(1, n_sh - 1), desc="shell convolutions (torch)", unit="shell", disable=not progress):
            h = torch.from_numpy(kern[s].astype(np.float32)).to(dev)
            k = torch.fft.rfft(h, n=shape[2], dim=2)
            k = torch.fft.fft(k, n=shape[1], dim=1)
            k = torch.fft.fft(k, n=shape[0], dim=0)
            conv = torch.fft.irfftn(spec * k.conj(), s=shape)[:ext[0], :ext[1], :ext[2]]
            acc += interp(factors[s] - last) * conv[sel].double()
            del k, conv
        vals = acc.cpu().numpy().astype(np.float32)
    out[lo[0]:lo[0] + ext[0], lo[1]:lo[1] + ext[1], lo[2]:lo[2] + ext[2]][plan.mask_local] = vals
    return out


def local_scale_torch(emmap: np.ndarray, modelmap: np.ndarray, window: int, mask: np.ndarray | None = None,
                      mode: str = "exact", device: str | None = "cuda", **kw) -> np.ndarray:
    """Dispatch to the torch implementation of `mode` ("exact" or "near-exact") on `device`."""
    if mode == "exact":
        kw.pop("stride", None)
        return local_scale_exact_torch(emmap, modelmap, window, mask, device=device, **kw)
    if mode == "near-exact":
        return local_scale_near_exact_torch(emmap, modelmap, window, mask, device=device, **kw)
    from .errors import LocScaleInputError

    raise LocScaleInputError(f"mode {mode!r} has no GPU implementation", "use mode exact or near-exact with "
                             "--device, or run this mode on the CPU")


def _box_mean_torch(padded_crop, w: int, ext: np.ndarray):
    """C_0 on the device: the mean of the w³ window starting at every voxel (float64 cumulative sums)."""
    torch = _torch()
    s = torch.nn.functional.pad(padded_crop.double(), (1, 0, 1, 0, 1, 0))
    for a in range(3):
        s = torch.cumsum(s, dim=a)
    e0, e1, e2 = (int(x) for x in ext)
    a0, a1 = slice(0, e0), slice(w, w + e0)
    b0, b1 = slice(0, e1), slice(w, w + e1)
    c0, c1 = slice(0, e2), slice(w, w + e2)
    box = (s[a1, b1, c1] - s[a0, b1, c1] - s[a1, b0, c1] - s[a1, b1, c0]
           + s[a0, b0, c1] + s[a0, b1, c0] + s[a1, b0, c0] - s[a0, b0, c0])
    return box / w**3

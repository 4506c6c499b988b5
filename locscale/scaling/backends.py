"""Array backends of the scaling modes: the few heavy steps the mode skeletons (``exact``, ``near_exact``) leave
to numpy on the CPU or to PyTorch on a GPU.

A backend does four things, each on padded maps and returning numpy arrays:

* ``centre_values(padded_map, padded_model, starts, w, floor, bar)``: exact mode's shell-scaled centre value
  of the windows starting at `starts` (transform windows; factors by ``schemes.scaled_values``);
* ``shell_powers(map_region, model_region, starts, w, progress)``: the windows' exact-mode shell powers
  (transform windows; near-exact and fast modes' node factors);
* ``box_means(crop, w, ext, sel)``: the mean of the w³ window starting at every voxel of the box `ext`, at the
  voxels `sel` (box means: shell 0 of near-exact mode);
* ``shell_convolver(crop, ext, sel)``: a function h ↦ Σ_u crop(x+u)·h(u) at the voxels `sel` of the box, for
  any w³ kernel h (convolve a shell);
* ``window_profiles(regions, starts, w, member, taper, pairs, progress)``: the tapered mode's node profiles:
  each region's windows at `starts`, multiplied by `taper`, transformed and reduced with the (N, S) matrix
  `member` (powers |F|², and cross powers Re F_a·F_b* of the region pairs `pairs`).

:class:`NumpyBackend` runs them with the threaded window engine (``engine``) and its FFTs (ducc0, else scipy);
:class:`TorchBackend` on a torch device. torch is imported only when a TorchBackend is made (install with
``pip install 'locscale[gpu]'``): this module imports without it. Both reduce spectra with the one shell-matrix
layout of ``schemes`` (the torch backend uses its dense matrix in float64), so results agree within float32
rounding.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .. import shells
from .engine import (
    default_workers,
    fast_length,
    irfft3,
    padded_rfft3,
    scaled_centre_values,
    tapered_window_profiles,
    window_shell_profiles,
)
from .schemes import exact_shell_membership, exact_shell_scheme, scaled_values, slab_matrix

_INSTALL_HINT = "pip install 'locscale[gpu]'  (or follow https://pytorch.org/get-started for a CUDA build)"


class Backend(Protocol):
    name: str

    def centre_values(self, padded_map: np.ndarray, padded_model: np.ndarray, starts: np.ndarray, w: int,
                      floor: float, bar=None) -> np.ndarray: ...

    def shell_powers(self, map_region: np.ndarray, model_region: np.ndarray, starts: np.ndarray, w: int,
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]: ...

    def box_means(self, crop: np.ndarray, w: int, ext: np.ndarray, sel: np.ndarray) -> np.ndarray: ...

    def shell_convolver(self, crop: np.ndarray, ext: np.ndarray, sel: np.ndarray): ...

    def window_profiles(self, regions: list[np.ndarray], starts: np.ndarray, w: int, member: np.ndarray,
                        taper: np.ndarray | None, pairs: list[tuple[int, int]] = (), progress: bool = True
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]: ...


def get_backend(device: str | None = None, batch_size: int | None = None, workers: int | None = None) -> Backend:
    """numpy for `device` None or "cpu", else torch on `device` ("cuda", "cuda:N", "auto")."""
    if device in (None, "cpu"):
        return NumpyBackend(batch_size, workers)
    return TorchBackend(device, batch_size)


# ---------------------------------------------------------------------------------------------- numpy
def box_mean(padded_crop: np.ndarray, w: int, ext: np.ndarray) -> np.ndarray:
    """The mean of the w³ window starting at every voxel of the bounding box `ext` (float32).

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


def _kernel_spectrum(h: np.ndarray, shape: tuple[int, int, int], workers: int) -> np.ndarray:
    """rfftn of the w³ kernel zero-padded to `shape`, pruned: the first two passes run on the w-thick slab."""
    return padded_rfft3(h.astype(np.float32), shape, workers)


def convolution_shape(crop_shape) -> tuple[int, ...]:
    """FFT length per axis for the box convolutions: ≥ the crop (extent + w − 1), so nothing wraps."""
    return tuple(fast_length(int(n)) for n in crop_shape)


class ShellConvolver:
    """C(x) = Σ_u M(x+u)·h(u) for x in the bounding box, for any w³ kernel h, by zero-padded FFT (no wrap:
    the FFT length is ≥ extent + w − 1)."""

    def __init__(self, padded_crop: np.ndarray, ext: np.ndarray, workers: int):
        self.ext = ext
        self.workers = workers
        self.shape = convolution_shape(padded_crop.shape)
        self.spec = padded_rfft3(np.asarray(padded_crop, dtype=np.float32), self.shape, workers)

    def __call__(self, h: np.ndarray) -> np.ndarray:
        k = _kernel_spectrum(h, self.shape, self.workers)
        np.conjugate(k, out=k)
        k *= self.spec
        c = irfft3(k, self.shape, self.workers)
        return c[:self.ext[0], :self.ext[1], :self.ext[2]]


class NumpyBackend:
    """The CPU backend: the threaded window engine (`batch_size` windows per batch, `workers` threads) and
    FFT convolutions (ducc0, else scipy)."""

    name = "numpy"

    def __init__(self, batch_size: int | None = None, workers: int | None = None):
        self.batch_size = batch_size
        self.workers = default_workers(workers)

    def centre_values(self, padded_map, padded_model, starts, w, floor, bar=None):
        return scaled_centre_values(padded_map, padded_model, starts, exact_shell_scheme(w), self.batch_size,
                                    self.workers, bar=bar, power_floor=floor)

    def shell_powers(self, map_region, model_region, starts, w, progress=True):
        return window_shell_profiles(map_region, model_region, starts, w=w, batch_size=self.batch_size,
                                     workers=self.workers, progress=progress, desc="scale factors")

    def box_means(self, crop, w, ext, sel):
        return box_mean(crop, w, ext)[sel]

    def shell_convolver(self, crop, ext, sel):
        conv = ShellConvolver(crop, ext, self.workers)
        return lambda h: conv(h)[sel]

    def window_profiles(self, regions, starts, w, member, taper, pairs=(), progress=True):
        return tapered_window_profiles(regions, starts, w, slab_matrix(member, w), taper, pairs, self.batch_size,
                                       self.workers, progress)


# ---------------------------------------------------------------------------------------------- torch
def _torch():
    try:
        import torch
    except ImportError as exc:
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


def torch_batch_size(dev, w: int, batch_size: int | None) -> int:
    """Windows per batch on a torch device: `batch_size`, or what fits 30 % of a GPU's free memory (256 MiB on
    a CPU device), between 16 and 32 768."""
    if batch_size is not None:
        return max(1, int(batch_size))
    nh = w * w * (w // 2 + 1)
    # per window: gathered window (f32), spectrum (c64), power/phase products (f32) and their f64 copies
    per_window = 4 * w**3 + 8 * nh + 2 * 4 * nh + 2 * 8 * nh
    if dev.type == "cuda":
        free, _ = _torch().cuda.mem_get_info(dev)
        budget = int(0.3 * free)
    else:
        budget = 256 * 2**20
    return int(max(16, min(32768, budget // per_window)))


class TorchBackend:
    """The torch backend on `device` ("cuda", "cuda:N", "cpu" for CPU torch, None/"auto"): windows gathered
    from ``unfold`` views of the padded maps, one batched ``rfftn`` per map, shell sums with the dense
    exact-mode shell matrix in float64, ``rfftn``/``irfftn`` box convolutions and cumulative-sum box means.
    Results come back as numpy arrays; the skeletons combine them as on the CPU."""

    name = "torch"

    def __init__(self, device: str | None = "cuda", batch_size: int | None = None):
        self.torch = _torch()
        self.dev = resolve_device(device)
        self.batch_size = batch_size
        self._views_of: tuple | None = None

    def _tensor(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.dev)

    def _views(self, padded_map, padded_model, w: int):
        """Window views of both arrays (kept for the next call on the same arrays)."""
        if self._views_of is None or self._views_of[0] is not padded_map or self._views_of[1] is not padded_model:
            views = [self._tensor(a).unfold(0, w, 1).unfold(1, w, 1).unfold(2, w, 1)
                     for a in (padded_map, padded_model)]
            self._views_of = (padded_map, padded_model, views)
        return self._views_of[2]

    def _window_sums(self, padded_map, padded_model, starts, w: int, centre: bool, bar=None, progress=False,
                     desc=""):
        """Shell powers of both maps' windows at `starts` and, with `centre`, each shell's unscaled contribution
        to the map window's centre value, Σ_{k∈s} m(k) Re(F(k) e^{2πi k·c/w}); numpy float64 (n, S) each."""
        from tqdm.auto import tqdm

        torch = self.torch
        views = self._views(padded_map, padded_model, w)
        member = torch.from_numpy(exact_shell_membership(w)).to(self.dev)
        ph = shells.centre_phase(w).ravel()
        ph_re = torch.from_numpy(ph.real.astype(np.float32)).to(self.dev)
        ph_im = torch.from_numpy(ph.imag.astype(np.float32)).to(self.dev)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
        n, n_sh = len(starts), member.shape[1]
        out = [np.empty((n, n_sh)) for _ in range(3 if centre else 2)]
        bs = torch_batch_size(self.dev, w, self.batch_size)
        ix_all = torch.from_numpy(starts).to(self.dev)
        with torch.no_grad():
            for lo in tqdm(range(0, n, bs), desc=desc, unit="batch", disable=not progress):
                ix = ix_all[lo:lo + bs]
                b = ix.shape[0]
                for i, v in enumerate(views):
                    f = torch.fft.rfftn(v[ix[:, 0], ix[:, 1], ix[:, 2]], dim=(1, 2, 3)).reshape(b, -1)
                    out[i][lo:lo + b] = ((f.real.square() + f.imag.square()).double() @ member).cpu().numpy()
                    if i == 0 and centre:
                        contrib = (f.real * ph_re - f.imag * ph_im).double() @ member
                        out[2][lo:lo + b] = contrib.cpu().numpy()
                    del f
                if bar is not None:
                    bar.update(b)
        return out

    def centre_values(self, padded_map, padded_model, starts, w, floor, bar=None):
        p_map, p_model, contrib = self._window_sums(padded_map, padded_model, starts, w, True, bar)
        return scaled_values(p_map, p_model, contrib, "power", floor, 1.0 / w**3)

    def shell_powers(self, map_region, model_region, starts, w, progress=True):
        p_map, p_model = self._window_sums(map_region, model_region, starts, w, False, progress=progress,
                                           desc="scale factors (torch)")
        return p_map, p_model

    def box_means(self, crop, w, ext, sel):
        torch = self.torch
        s = torch.nn.functional.pad(self._tensor(crop).double(), (1, 0, 1, 0, 1, 0))
        for a in range(3):
            s = torch.cumsum(s, dim=a)
        e0, e1, e2 = (int(x) for x in ext)
        a0, a1 = slice(0, e0), slice(w, w + e0)
        b0, b1 = slice(0, e1), slice(w, w + e1)
        c0, c1 = slice(0, e2), slice(w, w + e2)
        box = (s[a1, b1, c1] - s[a0, b1, c1] - s[a1, b0, c1] - s[a1, b1, c0]
               + s[a0, b0, c1] + s[a0, b1, c0] + s[a1, b0, c0] - s[a0, b0, c0])
        sel_t = torch.from_numpy(np.ascontiguousarray(sel)).to(self.dev)
        return (box / w**3)[sel_t].float().cpu().numpy()

    def window_profiles(self, regions, starts, w, member, taper, pairs=(), progress=True):
        from tqdm.auto import tqdm

        torch = self.torch
        views = [self._tensor(r).unfold(0, w, 1).unfold(1, w, 1).unfold(2, w, 1) for r in regions]
        mat = torch.from_numpy(np.ascontiguousarray(member, dtype=np.float64)).to(self.dev)
        tap = None if taper is None else self._tensor(taper)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
        n, n_sh = len(starts), mat.shape[1]
        powers = [np.empty((n, n_sh)) for _ in regions]
        cross = [np.empty((n, n_sh)) for _ in pairs]
        bs = torch_batch_size(self.dev, w, self.batch_size)
        ix_all = torch.from_numpy(starts).to(self.dev)
        with torch.no_grad():
            for lo in tqdm(range(0, n, bs), desc="scale factors (torch)", unit="batch", disable=not progress):
                ix = ix_all[lo:lo + bs]
                b = ix.shape[0]
                specs = []
                for v, out in zip(views, powers, strict=True):
                    win = v[ix[:, 0], ix[:, 1], ix[:, 2]]
                    if tap is not None:
                        win = win * tap
                    f = torch.fft.rfftn(win, dim=(1, 2, 3)).reshape(b, -1)
                    out[lo:lo + b] = ((f.real.square() + f.imag.square()).double() @ mat).cpu().numpy()
                    specs.append(f)
                for (a, c), out in zip(pairs, cross, strict=True):
                    fa, fb = specs[a], specs[c]
                    out[lo:lo + b] = ((fa.real * fb.real + fa.imag * fb.imag).double() @ mat).cpu().numpy()
                del specs
        return powers, cross

    def shell_convolver(self, crop, ext, sel):
        torch = self.torch
        shape = convolution_shape(crop.shape)
        spec = torch.fft.rfftn(self._tensor(crop), s=shape)
        sel_t = torch.from_numpy(np.ascontiguousarray(sel)).to(self.dev)

        def convolve(h: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                k = torch.fft.rfft(self._tensor(h), n=shape[2], dim=2)
                k = torch.fft.fft(k, n=shape[1], dim=1)
                k = torch.fft.fft(k, n=shape[0], dim=0)
                conv = torch.fft.irfftn(spec * k.conj(), s=shape)[:ext[0], :ext[1], :ext[2]]
                return conv[sel_t].cpu().numpy()

        return convolve

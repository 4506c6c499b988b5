"""The window engine every CPU scaling mode runs on: FFT backend, batch sizing and threaded window batches.

Batches of w³ windows are gathered from a strided ``sliding_window_view`` of each padded map by fancy
indexing (one indexing operation per batch, no per-voxel Python loop), transformed in one call into a reused
buffer (ducc0 when importable, else ``scipy.fft``; ``benchmarks/bench_fft_backends.py`` compares them with
pyFFTW, which wins only at power-of-two windows), reduced element-wise to per-coefficient rows (|F|² or |F|,
and Re(F·phase)) and summed into shells with a ``schemes.ShellScheme``'s slab matrices. Batches run in a pool
of `workers` threads, each with its own reused buffers and a single-threaded FFT, so gathering, transforms and
reductions all scale with the thread count; memory is bounded by `batch_size` × `workers` windows, and the
default batch keeps those buffers inside the last-level cache (:func:`default_batch_size`).

:func:`scaled_centre_values` gives the shell-scaled centre value of each window (exact and compat modes);
:func:`window_shell_profiles` gives the windows' shell profiles only (near-exact and fast modes' node factors).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import LocScaleInputError
from .schemes import ShellScheme, SlabMatrix, exact_shell_scheme, scaled_values

#: memory for all batches in flight (window pairs, their spectra and temporaries) when no batch size is given
BATCH_MEMORY_BYTES = 256 * 2**20
#: largest default batch (measured fastest here: 16–32 windows; larger batches fall out of cache)
MAX_DEFAULT_BATCH = 32
#: smallest batch the cache bound may choose (per-batch overhead: batches of 2 windows ran 2–3× slower per
#: voxel than batches of 8–32 at w = 24)
MIN_DEFAULT_BATCH = 4
#: last-level cache assumed when the system does not report one
DEFAULT_CACHE_BYTES = 32 * 2**20
#: masked voxels handled per chunk of the map (bounds the index and value arrays for huge masks)
MASK_CHUNK_VOXELS = 2**20

try:  # optional, faster FFT (same algorithm family as scipy's pocketfft)
    import ducc0.fft as _ducc_fft
except ImportError:  # pragma: no cover - depends on the environment
    _ducc_fft = None


# ------------------------------------------------------------------------------------------ FFT backend
def fft_backends() -> tuple[str, ...]:
    """FFT libraries available for the window transforms, the default first."""
    return ("ducc0", "scipy") if _ducc_fft is not None else ("scipy",)


def _scipy_fft():
    """scipy.fft, imported on first use: the import takes about 0.2 s (more than near-exact's transforms of a
    small map), and with ducc0 installed nothing needs it."""
    import scipy.fft

    return scipy.fft


def fast_length(n: int) -> int:
    """The smallest length ≥ `n` that the FFT library transforms fast (2, 3, 5-smooth), for real input."""
    if _ducc_fft is not None:
        return int(_ducc_fft.good_size(int(n), True))
    return int(_scipy_fft().next_fast_len(int(n), real=True))


def padded_rfft(a: np.ndarray, n: int, axis: int, threads: int = 1) -> np.ndarray:
    """Unnormalised rfft of real `a` along `axis`, zero-padded to length `n` (complex64 for float32 input)."""
    if _ducc_fft is None:
        return _scipy_fft().rfft(a, n=n, axis=axis, workers=threads)
    return _ducc_fft.r2c(_zero_pad(a, n, axis), axes=(axis,), nthreads=threads)


def padded_fft(a: np.ndarray, n: int, axis: int, threads: int = 1) -> np.ndarray:
    """Unnormalised forward fft of complex `a` along `axis`, zero-padded to length `n`."""
    if _ducc_fft is None:
        return _scipy_fft().fft(a, n=n, axis=axis, workers=threads)
    return _ducc_fft.c2c(_zero_pad(a, n, axis), axes=(axis,), forward=True, nthreads=threads)


def padded_rfft3(a: np.ndarray, shape: tuple[int, int, int], threads: int = 1) -> np.ndarray:
    """Unnormalised 3-D rfft of real `a`, zero-padded to `shape` (as ``scipy.fft.rfftn(a, s=shape)``), one axis
    at a time so that each pass pads only its own axis."""
    spec = padded_rfft(a, int(shape[2]), 2, threads)
    spec = padded_fft(spec, int(shape[1]), 1, threads)
    return padded_fft(spec, int(shape[0]), 0, threads)


def irfft3(spec: np.ndarray, shape: tuple[int, int, int], threads: int = 1) -> np.ndarray:
    """Inverse of a 3-D rfftn of real data of `shape` (normalised by 1/N, as ``numpy.fft.irfftn``)."""
    if _ducc_fft is None:
        return _scipy_fft().irfftn(spec, s=shape, workers=threads)
    return _ducc_fft.c2r(spec, axes=(0, 1, 2), lastsize=int(shape[2]), forward=False, inorm=2, nthreads=threads)


def _zero_pad(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """`a` with zeros appended along `axis` up to length `n` (itself when already that long)."""
    if a.shape[axis] == n:
        return a
    out_shape = list(a.shape)
    out_shape[axis] = n
    out = np.zeros(out_shape, dtype=a.dtype)
    out[tuple(slice(0, m) for m in a.shape)] = a
    return out


def rfft_windows(windows: np.ndarray, threads: int = 1, backend: str | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Unnormalised rfftn over the last three axes of a (B, w, w, w) float32 batch → complex64
    (B, w, w, w//2+1), with the default (or the given) FFT library, into `out` when given."""
    backend = backend or fft_backends()[0]
    if backend == "ducc0" and _ducc_fft is not None:
        return _ducc_fft.r2c(windows, axes=(1, 2, 3), nthreads=threads, out=out)
    if backend == "scipy":
        spec = _scipy_fft().rfftn(windows, axes=(1, 2, 3), workers=threads)
        if out is None:
            return spec
        out[...] = spec
        return out
    raise ValueError(f"unknown FFT backend {backend!r}; available: {', '.join(fft_backends())}")


def default_workers(workers: int | None) -> int:
    """Threads: `workers`, or every core this process may use."""
    if workers is not None:
        if int(workers) < 1 or int(workers) != workers:
            raise LocScaleInputError(f"workers must be a whole number ≥ 1, got {workers!r}",
                                     "give a positive thread count")
        return int(workers)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def bytes_per_window(w: int) -> int:
    """Memory one window pair holds in a batch: its gathered float32 window, two complex64 spectra and three
    float32 reduction rows."""
    n_half = w * w * (w // 2 + 1)
    return 4 * w**3 + 2 * 8 * n_half + 3 * 4 * n_half


@lru_cache(maxsize=1)
def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache Linux reports for cpu0 (the shared L3 on current x86 machines), else
    :data:`DEFAULT_CACHE_BYTES`."""
    best = 0
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (entry / "size").read_text().strip().upper()
            kind = (entry / "type").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction" or not text:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
        digits = text[:-1] if text[-1] in "KMG" else text
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best or DEFAULT_CACHE_BYTES


def default_batch_size(w: int, batch_size: int | None = None, workers: int = 1,
                       memory_bytes: int = BATCH_MEMORY_BYTES, cache_bytes: int | None = None) -> int:
    """Windows per batch: `batch_size`, or the largest batch (at most :data:`MAX_DEFAULT_BATCH`) whose working
    set over `workers` threads fits `memory_bytes` and, down to :data:`MIN_DEFAULT_BATCH` windows, the
    last-level cache (`cache_bytes`, default :func:`last_level_cache_bytes`); at least 1.

    The cache bound matters for large windows: at w = 40 with 2 threads, batches of 32 windows (2 × 37 MB of
    buffers against a 32 MB L3) ran 2.7× slower than batches of 8–13 (``benchmarks/bench_scaling.py``)."""
    if batch_size is not None:
        if int(batch_size) < 1 or int(batch_size) != batch_size:
            raise LocScaleInputError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}",
                                     "give a positive batch size")
        return int(batch_size)
    cache_bytes = last_level_cache_bytes() if cache_bytes is None else cache_bytes
    per_batch = workers * bytes_per_window(w)
    in_cache = max(MIN_DEFAULT_BATCH, cache_bytes // per_batch)
    return int(max(1, min(MAX_DEFAULT_BATCH, memory_bytes // per_batch, in_cache)))


# ------------------------------------------------------------------------------------------ engine
class _Workspace:
    """One thread's reusable buffers for batches of up to `b` windows. They are allocated once: fresh memory
    for every batch costs page faults that (measured here) take as long as the transforms themselves."""

    def __init__(self, b: int, w: int, n_specs: int = 2, n_rows: int = 3):
        n_half = w * w * (w // 2 + 1)
        self.specs = [np.empty((b, w, w, w // 2 + 1), dtype=np.complex64) for _ in range(n_specs)]
        self.rows = np.empty((n_rows * b, n_half), dtype=np.float32)  # e.g. profiles (map, model), centre (map)


def _transform(view, ix: np.ndarray, out: np.ndarray, threads: int, backend: str,
               taper: np.ndarray | None = None) -> np.ndarray:
    """rfftn of the w³ windows starting at `ix` (b, 3), multiplied by `taper` (w³ float32) when given, into `out`
    (b, w, w, w//2+1) complex64.

    `view` is the padded map's ``sliding_window_view``; one fancy-indexing operation gathers the batch (a
    temporary of b windows; measured faster here than gathering plane by plane into a reused buffer)."""
    windows = view[ix[:, 0], ix[:, 1], ix[:, 2]]
    if taper is not None:
        windows *= taper
    return rfft_windows(windows, threads, backend, out)


def _batch_sums(views, ix: np.ndarray, scheme: ShellScheme, ws: _Workspace, threads: int, backend: str,
                centre: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Shell profiles of the map's and the model map's windows starting at `ix` (b, 3) ((b, S) float64 each)
    and, with `centre`, each shell's (unscaled) contribution to the map window's centre value (b, S)."""
    b = len(ix)
    specs = [_transform(v, ix, spec[:b], threads, backend) for v, spec in zip(views, ws.specs, strict=True)]
    rows = ws.rows[:(3 if centre else 2) * b]
    for i, spec in enumerate(specs):
        out = rows[i * b:(i + 1) * b]
        np.abs(spec, out=out.reshape(spec.shape))  # |F|
        if scheme.kind == "power":
            np.square(out, out=out)  # |F|²
    if not centre:
        sums = scheme.profile.rmatmul(rows)
        return sums[:b], sums[b:], None
    flat = specs[0].view(np.float32).reshape(b, -1)
    centre_rows = rows[2 * b:]
    np.multiply(flat[:, 0::2], scheme.phase_re, out=centre_rows)  # Re(F·phase)
    if scheme.phase_im is not None:
        centre_rows -= flat[:, 1::2] * scheme.phase_im
    if scheme.profile is scheme.centre:
        sums = scheme.profile.rmatmul(rows)
        return sums[:b], sums[b:2 * b], sums[2 * b:]
    profiles = scheme.profile.rmatmul(rows[:2 * b])
    return profiles[:b], profiles[b:], scheme.centre.rmatmul(centre_rows)


def _run_batches(arrays, starts, w: int, batch_size, workers, progress, desc, backend, work, bar=None,
                 n_rows: int = 3) -> None:
    """Call `work(lo, hi, workspace, fft_threads, backend, views)` for every batch [lo, hi) of `starts`, in a
    pool of `workers` threads each holding one workspace (a spectrum buffer per array of `arrays`, the padded
    maps whose windows are read, and `n_rows` reduction rows per window)."""
    from tqdm.auto import tqdm

    n = len(starts)
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("the padded maps differ in shape")
    if n and (np.any(starts < 0) or np.any(starts + w > np.array(arrays[0].shape))):
        raise ValueError("a window reaches outside the padded map")
    views = [sliding_window_view(np.asarray(a, dtype=np.float32), (w, w, w)) for a in arrays]
    workers = default_workers(workers)
    backend = backend or fft_backends()[0]
    # the cache-bounded batch of a window pair, for as many spectra as arrays
    bs = max(1, min(default_batch_size(w, batch_size, workers) * 2 // max(2, len(arrays)), n))
    chunks = [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]
    threads = max(1, min(workers, len(chunks)))
    fft_threads = max(1, workers // threads)
    spaces: queue.SimpleQueue[_Workspace] = queue.SimpleQueue()
    for _ in range(threads):
        spaces.put(_Workspace(bs, w, len(arrays), n_rows))

    def run(chunk):
        lo, hi = chunk
        ws = spaces.get()
        try:
            work(lo, hi, ws, fft_threads, backend, views)
        finally:
            spaces.put(ws)
        return hi - lo

    if bar is None:
        context = tqdm(total=n, desc=desc, unit="voxel", unit_scale=True, disable=not progress)
    else:
        context = nullcontext(bar)
    with context as bar:
        if threads == 1:
            for chunk in chunks:
                bar.update(run(chunk))
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for done in pool.map(run, chunks):
                    bar.update(done)


def scaled_centre_values(padded_map: np.ndarray, padded_model: np.ndarray, starts: np.ndarray,
                         scheme: ShellScheme, batch_size: int | None = None, workers: int | None = None,
                         progress: bool = True, desc: str = "LocScale", backend: str | None = None,
                         bar=None, power_floor: float = 0.0) -> np.ndarray:
    """Centre values of the shell-scaled map windows whose first voxel is at `starts` (n, 3) in the padded
    arrays (every window must lie inside them). Returns float64 (n,).

    The result does not depend on `batch_size` or `workers` beyond float32 rounding of the shell sums.
    `bar`: a tqdm bar to advance instead of opening one; `power_floor`: map shell power counted as empty
    (``schemes.shell_factors``)."""
    starts = np.asarray(starts, dtype=np.intp).reshape(-1, 3)
    values = np.empty(len(starts), dtype=np.float64)

    def work(lo, hi, ws, threads, backend, views):
        p_map, p_model, contrib = _batch_sums(views, starts[lo:hi], scheme, ws, threads, backend, True)
        values[lo:hi] = scaled_values(p_map, p_model, contrib, scheme.kind, power_floor, scheme.centre_scale)

    _run_batches((padded_map, padded_model), starts, scheme.w, batch_size, workers, progress, desc, backend, work,
                 bar)
    return values


def window_shell_profiles(padded_map: np.ndarray, padded_model: np.ndarray, starts: np.ndarray,
                          scheme: ShellScheme | None = None, w: int | None = None,
                          batch_size: int | None = None, workers: int | None = None, progress: bool = True,
                          desc: str = "shell profiles", backend: str | None = None,
                          bar=None) -> tuple[np.ndarray, np.ndarray]:
    """Shell profiles (exact mode: shell powers) of the map's and the model map's windows whose first voxel is
    at `starts` (n, 3): (p_map, p_model), each (n, S) float64. Give `scheme`, or `w` for exact mode's.
    Factors follow with ``schemes.shell_factors``. Same engine as :func:`scaled_centre_values`, without the
    centre sums."""
    if scheme is None:
        if w is None:
            raise ValueError("give a scheme or a window size")
        scheme = exact_shell_scheme(int(w))
    starts = np.asarray(starts, dtype=np.intp).reshape(-1, 3)
    n_sh = scheme.profile.shape[1]
    p_map = np.empty((len(starts), n_sh), dtype=np.float64)
    p_model = np.empty_like(p_map)

    def work(lo, hi, ws, threads, backend, views):
        pm, pr, _ = _batch_sums(views, starts[lo:hi], scheme, ws, threads, backend, False)
        p_map[lo:hi], p_model[lo:hi] = pm, pr

    _run_batches((padded_map, padded_model), starts, scheme.w, batch_size, workers, progress, desc, backend, work,
                 bar)
    return p_map, p_model


def tapered_window_profiles(regions, starts: np.ndarray, w: int, profile: SlabMatrix, taper: np.ndarray | None,
                            pairs=(), batch_size: int | None = None, workers: int | None = None,
                            progress: bool = True, desc: str = "scale factors", backend: str | None = None
                            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Profiles of the windows of every padded array in `regions` starting at `starts` (n, 3), each window
    multiplied by `taper` before its transform: per array the powers |F|² reduced by the slab matrix `profile`
    (n, S), and per pair (a, b) of `pairs` the cross powers Re F_a·F_b* reduced the same way. float64."""
    starts = np.asarray(starts, dtype=np.intp).reshape(-1, 3)
    n_arr, n_sh = len(regions), profile.shape[1]
    n_rows = n_arr + len(pairs)
    outs = [np.empty((len(starts), n_sh)) for _ in range(n_rows)]
    tap = None if taper is None else np.ascontiguousarray(taper, dtype=np.float32)

    def work(lo, hi, ws, threads, backend, views):
        b = hi - lo
        specs = [_transform(v, starts[lo:hi], spec[:b], threads, backend, tap)
                 for v, spec in zip(views, ws.specs, strict=True)]
        rows = ws.rows[:n_rows * b]
        for i, spec in enumerate(specs):
            out = rows[i * b:(i + 1) * b]
            np.abs(spec, out=out.reshape(spec.shape))
            np.square(out, out=out)
        for j, (a, c) in enumerate(pairs):
            out = rows[(n_arr + j) * b:(n_arr + j + 1) * b]
            fa = specs[a].view(np.float32).reshape(b, -1)
            fc = specs[c].view(np.float32).reshape(b, -1)
            np.multiply(fa[:, 0::2], fc[:, 0::2], out=out)
            out += fa[:, 1::2] * fc[:, 1::2]
        sums = profile.rmatmul(rows)
        for i in range(n_rows):
            outs[i][lo:hi] = sums[i * b:(i + 1) * b]

    _run_batches(regions, starts, w, batch_size, workers, progress, desc, backend, work, n_rows=n_rows)
    return outs[:n_arr], outs[n_arr:]


def masked_voxel_chunks(mask: np.ndarray,
                        max_voxels: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
    """The masked voxels in chunks of whole x planes with at most `max_voxels` (default
    :data:`MASK_CHUNK_VOXELS`) each, one plane at least: yields (x slice, (n, 3) coordinates in the full map,
    in C order)."""
    max_voxels = MASK_CHUNK_VOXELS if max_voxels is None else max_voxels
    counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
    x0 = 0
    while x0 < mask.shape[0]:
        x1, total = x0, 0
        while x1 < mask.shape[0] and (x1 == x0 or total + counts[x1] <= max_voxels):
            total += int(counts[x1])
            x1 += 1
        if total:
            pts = np.argwhere(mask[x0:x1])
            pts[:, 0] += x0
            yield slice(x0, x1), pts
        x0 = x1


# ------------------------------------------------------------------------------------------ inputs
def check_inputs(emmap, modelmap, window, mask) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Arrays as float32 3-D of one shape, window as int ≥ 2, mask as bool (≥ 0.5 unless already bool;
    None → every voxel)."""
    emmap = np.asarray(emmap, dtype=np.float32)
    modelmap = np.asarray(modelmap, dtype=np.float32)
    if emmap.ndim != 3 or emmap.shape != modelmap.shape:
        raise LocScaleInputError(f"the map {emmap.shape} and the model map {modelmap.shape} must be 3-D "
                                 "arrays of one shape", "simulate the model map on the map's grid")
    try:
        w = int(window)
    except (TypeError, ValueError):
        w = -1
    if w < 2 or w != window:
        raise LocScaleInputError(f"the window must be a whole number of voxels ≥ 2, got {window!r}",
                                 "give the window in voxels (the paper suggests 7 × resolution)")
    if mask is None:
        mask = np.ones(emmap.shape, dtype=bool)
    else:
        mask = np.asarray(mask)
        if mask.shape != emmap.shape:
            raise LocScaleInputError(f"the mask {mask.shape} and the map {emmap.shape} differ in shape",
                                     "give a mask on the map's grid")
        mask = mask if mask.dtype == bool else mask >= 0.5
    if not (np.isfinite(emmap).all() and np.isfinite(modelmap).all()):
        raise LocScaleInputError("the map or the model map contains NaN or infinite values",
                                 "replace the non-finite voxels (e.g. by 0) or use another map")
    return emmap, modelmap, w, mask

"""Value limits in one place: parameter ranges, memory, and the compute device.

The command line, the library (:func:`locscale.sharpen.sharpen_map`, :func:`locscale.sharpen.choose_window`,
...) and the workflow's config check (:mod:`locscale.cycle.config`, with ``workflow/schemas/config.schema.yaml``,
whose bounds ``tests/test_limits.py`` compares with the constants here) all use these checks, so a value refused
by one is refused by all. Each check raises :class:`~locscale.errors.LocScaleInputError` (a problem and a fix,
printed on one line by the CLI).

* **Values** (:func:`check_resolution`, :func:`check_window`, :func:`check_window_angstrom`,
  :func:`check_mask_radius`, :func:`check_dmin`): finite, positive, and within the range where the method
  means something.
* **Memory** (:func:`estimate_sharpen_bytes`, :func:`check_memory`): refuse before allocating when the
  estimate exceeds the memory available, with the figure and a fix.
* **Devices** (:func:`check_device`): a GPU asked for without PyTorch or CUDA is refused before any work.

Outputs (never over an input, written atomically) are guarded by :mod:`locscale.outputs`.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from .errors import LocScaleInputError

#: coarsest resolution accepted (Å). LocScale scales against an atomic model's amplitudes; at 50 Å the model
#: holds no more than its envelope, and the default window (7 × d) would exceed any realistic box.
RESOLUTION_MAX = 50.0
#: smallest window in voxels (the paper found windows under 8 voxels unusable)
WINDOW_MIN = 8
#: a resolution finer than NYQUIST_SLACK × Nyquist (2 × voxel) is refused; the slack absorbs float32 header rounding
NYQUIST_SLACK = 1 - 1e-6
#: memory estimates are refused above this fraction of the available memory (the rest: Python, the inputs)
MEMORY_FRACTION = 0.8
#: estimates below this are not checked (cheap enough whatever the machine)
MEMORY_CHECK_FLOOR = 2 * 2**30


def check_finite(value, name: str, fix: str) -> float:
    """`value` as a finite float, or an error naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LocScaleInputError(f"{name} {value!r} is not a number", fix) from None
    if not math.isfinite(v):
        raise LocScaleInputError(f"{name} {value!r} is not a finite number", fix)
    return v


# ---------------------------------------------------------------------- values
def check_resolution(resolution, apix: float | None = None) -> float:
    """A resolution in Å: finite, > 0, not finer than Nyquist (2 × `apix`, when given), at most
    :data:`RESOLUTION_MAX`. Returns it as float."""
    fix = "give the map's FSC-0.143 resolution in Å (e.g. 3.2)"
    d = check_finite(resolution, "resolution", fix)
    if d <= 0:
        raise LocScaleInputError(f"resolution {d:g} Å is not positive", fix)
    if apix is not None and d < NYQUIST_SLACK * 2 * apix:
        raise LocScaleInputError(
            f"resolution {d:g} Å is finer than the map's Nyquist limit {2 * apix:.3f} Å (2 × voxel size "
            f"{apix:.4f} Å); no map can resolve it", fix)
    if d > RESOLUTION_MAX:
        raise LocScaleInputError(
            f"resolution {d:g} Å is coarser than {RESOLUTION_MAX:g} Å; model-based local sharpening needs "
            "atomic detail", f"{fix}; at this resolution use global sharpening or none")
    return d


def check_window(window) -> int:
    """A window edge in voxels: a whole number ≥ :data:`WINDOW_MIN`."""
    fix = f"use a window of at least {WINDOW_MIN} voxels (ideally 25-35 Å)"
    v = check_finite(window, "window", fix)
    if v != int(v):
        raise LocScaleInputError(f"window {window!r} is not a whole number of voxels", fix)
    if v < WINDOW_MIN:
        raise LocScaleInputError(f"window of {int(v)} voxels is too small (the paper found windows under "
                                 f"{WINDOW_MIN} voxels unusable)", fix)
    return int(v)


def _positive_angstrom(value, name: str, label: str, fix: str) -> float:
    """A length in Å: finite (:func:`check_finite`, reported as `name`) and > 0 (reported as ``label {v} Å``)."""
    v = check_finite(value, name, fix)
    if v <= 0:
        raise LocScaleInputError(f"{label} {v:g} Å is not positive", fix)
    return v


def check_window_angstrom(window_A) -> float:
    """A window edge in Å: finite and > 0 (the voxel count it gives is checked by :func:`check_window`)."""
    return _positive_angstrom(window_A, "window", "window of",
                              "give the window in Å (the paper found 25-35 Å best), e.g. --window-angstrom 25")


def check_mask_radius(radius) -> float:
    """A mask radius in Å: finite and > 0."""
    return _positive_angstrom(radius, "mask radius", "mask radius",
                              "give a positive radius in Å (e.g. --mask-radius 3), or --no-mask to scale the "
                              "whole box")


def check_dmin(dmin) -> float:
    """A model-map band limit in Å: finite and > 0."""
    return _positive_angstrom(dmin, "dmin", "dmin", "give a band limit in Å (default: Nyquist, 2 × voxel size)")


def check_cycles(min_cycles: int, max_cycles: int) -> None:
    """The workflow's cycle counts: 1 ≤ min_cycles ≤ max_cycles."""
    if min_cycles > max_cycles:
        raise LocScaleInputError(f"min_cycles ({min_cycles}) is larger than max_cycles ({max_cycles}): no cycle "
                                 "could ever count as converged",
                                 "set min_cycles ≤ max_cycles in the config")


def warn_window_exceeds_box(window: int, shape) -> str | None:
    """Warn (and return the message) when the window is larger than the map box along some axis."""
    if window > min(shape):
        msg = (f"the window ({window} voxels) is larger than the map box {tuple(int(n) for n in shape)}: every "
               "window is mostly padding, and the run is far slower than with a window inside the box; use a "
               "smaller window (the paper: 25-35 Å) or a larger box")
        warnings.warn(msg, stacklevel=2)
        return msg
    return None


# ---------------------------------------------------------------------- memory
def available_memory_bytes() -> int:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit when there is one."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 2**62
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            avail = min(avail, max(int(limit) - usage, 0))
        break
    return int(avail)


def estimate_sharpen_bytes(shape, window: int, mode: str, mask_voxels: int | None = None, *,
                           workers: int | None = None, batch_size: int | None = None) -> int:
    """Peak memory (bytes) of a LocScale run on a map of `shape` with a `window`-voxel window, by mode.

    Every mode pads both maps by the window ((n + w − 1)³ float32 each) and transforms batches of windows,
    `workers` threads × the batch size (``locscale.scaling.engine.default_batch_size``) × the buffers of one window
    (``bytes_per_window``: a float32 window, two complex64 spectra, three float32 rows), plus the shell
    matrices over one window's half spectrum. near-exact and fast also hold the padded crops, the map's
    spectrum and one shell's kernel spectrum, product and convolution (complex64 and float32 arrays of the
    padded box), the per-shell kernels (float64, ⌊w/2⌋+1 of w³) and the interpolation plan (8 corners × 8 bytes
    per masked voxel). Within about a factor 2 of the measured peak (EMD-3488, 100³ at w = 21: 0.08 GiB
    estimated, 0.25 GB measured with the interpreter; 400³ at w = 36: 3.3 GiB estimated, 1.7 GB measured); it
    is meant to refuse runs that cannot fit (a window of hundreds of voxels), not to budget tightly."""
    from .scaling import MODES
    from .scaling.engine import bytes_per_window, default_batch_size, default_workers

    n = [int(s) for s in shape]
    w = int(window)
    voxels = math.prod(n)
    padded = math.prod(s + w - 1 for s in n)
    masked = voxels if mask_voxels is None else int(mask_voxels)
    half = w * w * (w // 2 + 1)
    threads = default_workers(workers)
    batch = default_batch_size(w, batch_size, threads)
    total = 2 * 4 * padded + 4 * voxels + voxels  # padded maps, output, mask
    total += threads * batch * bytes_per_window(w) + 24 * half  # window batches, shell matrices
    if MODES[mode].strided:  # near-exact, fast
        fft = math.prod(s + w - 1 for s in n[:2]) * ((n[2] + w - 1) // 2 + 1)  # half-spectrum coefficients
        total += 2 * 4 * padded + 3 * 8 * fft + 2 * 4 * padded  # crops; spectra; product + convolution
        total += 8 * (w // 2 + 1) * w**3  # shell kernels
        total += 64 * masked  # interpolation plan
    else:
        total += 24 * masked  # voxel index and values
    return int(total)


def check_memory(need_bytes: int, what: str, fix: str, available: int | None = None) -> None:
    """Refuse (with the figures and `fix`) when `need_bytes` exceeds :data:`MEMORY_FRACTION` of the memory
    available; estimates under :data:`MEMORY_CHECK_FLOOR` always pass."""
    if need_bytes < MEMORY_CHECK_FLOOR:
        return
    avail = available_memory_bytes() if available is None else int(available)
    if need_bytes > MEMORY_FRACTION * avail:
        raise LocScaleInputError(f"{what} needs about {need_bytes / 2**30:.1f} GiB of memory, but only "
                                 f"{avail / 2**30:.1f} GiB is available", fix)


def check_sharpen_memory(shape, window: int, mode: str, mask_voxels: int | None = None,
                         available: int | None = None, *, workers: int | None = None,
                         batch_size: int | None = None) -> int:
    """:func:`estimate_sharpen_bytes` checked against the available memory; returns the estimate."""
    need = estimate_sharpen_bytes(shape, window, mode, mask_voxels, workers=workers, batch_size=batch_size)
    check_memory(need, f"LocScale ({mode} mode) of a {'x'.join(str(int(s)) for s in shape)} map with a "
                 f"{window}-voxel window",
                 "use a smaller window (the paper: 25-35 Å, i.e. -w or --window-angstrom), check the resolution "
                 "(it sets the default window, 7 × resolution), crop the map around the model, or run on a "
                 "machine with more memory", available)
    return need


# ---------------------------------------------------------------------- devices
def check_device(device: str | None) -> None:
    """`device` None/'cpu' always works; anything else needs PyTorch (and CUDA for 'cuda')."""
    if device in (None, "cpu"):
        return
    from .scaling import backends

    if not backends.torch_available():
        raise LocScaleInputError(f"device {device!r} needs PyTorch, which is not installed",
                                 "install the GPU extra (pip install 'locscale[gpu]') or use --device cpu")
    try:
        backends.resolve_device(device)
    except RuntimeError as exc:
        raise LocScaleInputError(str(exc).split(";")[0], "use --device cpu, or install a CUDA build of torch on "
                                 "a machine with a GPU") from None
    except Exception as exc:  # torch.device("nonsense") raises RuntimeError/ValueError
        raise LocScaleInputError(f"device {device!r} is not a device torch knows ({exc})",
                                 "use 'cpu', 'cuda' or 'cuda:N'") from None


# ---------------------------------------------------------------------- outputs


# ---------------------------------------------------------------------- the workflow's config



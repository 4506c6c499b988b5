"""High-level LocScale sharpening of a map against a model map: window, mask and mode choices in one place.

The CLI (`locscale sharpen`) and the workflow's sharpen rule both call :func:`sharpen_map`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import limits, shells
from .errors import LocScaleInputError
from .mapio import Map
from .scaling import check_mode, local_scale

# near-exact: exact shell sums, per-window factors on a coarse grid; in-mask CC to exact >= 0.9996 on every case
# measured (benchmarks/README.md), 4-10x faster than exact. Exact mode is one flag away.
DEFAULT_MODE = "near-exact"


@dataclass
class WindowChoice:
    voxels: int
    angstrom: float
    rule: str


def choose_window(apix: float, resolution: float | None, window: int | None = None,
                  window_A: float | None = None, mode: str = DEFAULT_MODE) -> WindowChoice:
    """Window size in voxels: explicit voxels, explicit Å, or the default rule of the mode.

    Default (exact, near-exact, fast): the paper's rule, 7 × resolution in Å, rounded to a fast FFT size.
    Compat: LocScale 2.4.1's rule, ceil(25 Å / apix) rounded up to even.
    """
    if window is not None and window_A is not None:
        raise LocScaleInputError("both a window in voxels and a window in Å were given",
                                 "give only one of --window / --window-angstrom")
    if resolution is not None:
        resolution = limits.check_resolution(resolution, apix)
    if window is not None:
        w, rule = limits.check_window(window), "given in voxels"
    elif window_A is not None:
        window_A = limits.check_window_angstrom(window_A)
        w, rule = shells.window_from_angstrom(window_A, apix), f"given as {window_A:g} Å"
        if w < limits.WINDOW_MIN:
            raise LocScaleInputError(f"a window of {window_A:g} Å is {w} voxels of {apix:.4g} Å, too small (the "
                                     f"paper found windows under {limits.WINDOW_MIN} voxels unusable)",
                                     f"use a window of at least {limits.WINDOW_MIN * apix:.1f} Å (ideally 25-35 Å)")
    elif mode == "compat":
        w = math.ceil(25.0 / apix)
        w += w % 2
        rule = "LocScale 2 default: ceil(25 Å / apix), even"
    else:
        if resolution is None:
            raise LocScaleInputError("no resolution given, so the default window (7 × resolution) is unknown",
                                     "give --resolution (FSC 0.143 resolution in Å) or --window")
        w = shells.default_window_voxels(resolution, apix)
        rule = f"7 × {resolution:g} Å resolution, nearest fast FFT size"
    if mode == "compat" and w % 2:
        w += 1
        rule += "; rounded up to even as LocScale 2 does"
    w = limits.check_window(w)
    return WindowChoice(voxels=w, angstrom=w * apix, rule=rule)


def choose_mask(emap: Map, *, mask_path: str | None = None, structure=None, mask_radius: float | None = None,
                window_voxels: int | None = None, no_mask: bool = False) -> tuple[np.ndarray | None, str]:
    """The voxels to scale, and a sentence saying how they were chosen.

    Order: an explicit mask file (binarised at ≥ 0.5, must share the map's grid); ``no_mask`` (every voxel);
    otherwise the model envelope: voxels within `mask_radius` Å of an atom, by default half a window (the
    distance over which the model still informs the window, so density just beyond the model is sharpened
    too — paper, TRPV1 case). Without a model and without a mask file, every voxel is scaled.
    """
    from .mapio import read_map

    if mask_path is not None:
        m = read_map(mask_path)
        emap.require_same_grid(m, "the map and the mask")
        return m.data >= 0.5, f"mask file {mask_path} (≥ 0.5)"
    if no_mask or structure is None:
        why = "--no-mask" if no_mask else "no model and no mask given"
        return None, f"every voxel ({why})"
    from .models import envelope_mask

    if mask_radius is not None:
        mask_radius = limits.check_mask_radius(mask_radius)
    else:
        if window_voxels is None:
            raise ValueError("window_voxels is needed for the default mask radius")
        mask_radius = 0.5 * window_voxels * emap.apix
    if mask_radius >= float(np.linalg.norm(emap.box_size)):  # every voxel is that close to some atom
        return None, f"every voxel (mask radius {mask_radius:g} Å covers the whole box)"
    mask = envelope_mask(structure, emap, mask_radius)
    return mask, f"model envelope: voxels within {mask_radius:.1f} Å of an atom"


def sharpen_map(emap: Map, modelmap: Map, resolution: float | None = None, *, window: int | None = None,
                window_A: float | None = None, mask: np.ndarray | None = None, mode: str = DEFAULT_MODE,
                progress: bool = True, **mode_options) -> tuple[Map, dict]:
    """LocScale-sharpen `emap` against `modelmap` (same grid) and return (sharpened map, info).

    `mask` is a boolean array on the map's grid (voxels to scale); None scales every voxel. Voxels outside the
    mask are 0 in the output. `mode_options` go to the mode's function (batch_size, workers, stride, device).
    """
    check_mode(mode)
    emap.require_isotropic("LocScale")
    emap.require_same_grid(modelmap, "the map and the model map")
    win = choose_window(emap.apix, resolution, window, window_A, mode)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != emap.shape:
            raise LocScaleInputError(f"mask shape {mask.shape} differs from the map's {emap.shape}",
                                     "give a mask on the same grid as the map")
        if not mask.any():
            raise LocScaleInputError("the mask is empty (no voxel ≥ 0.5)",
                                     "check the mask file or its threshold, or use --mask-radius")
    from .checks import check_map_content, check_model_map_differs

    check_map_content(emap.data, emap.path, "map")
    check_map_content(modelmap.data, modelmap.path, "model map")
    check_model_map_differs(emap.data, modelmap.data, emap.path, modelmap.path)
    limits.warn_window_exceeds_box(win.voxels, emap.shape)
    limits.check_device(mode_options.get("device"))
    limits.check_sharpen_memory(emap.shape, win.voxels, mode, None if mask is None else int(mask.sum()),
                                workers=mode_options.get("workers"), batch_size=mode_options.get("batch_size"))
    t0 = time.perf_counter()
    out = local_scale(emap.data, modelmap.data, win.voxels, mask=mask, mode=mode, progress=progress,
                      **mode_options)
    seconds = time.perf_counter() - t0
    n_scaled = int(mask.sum()) if mask is not None else int(np.prod(emap.shape))
    info = {
        "mode": mode,
        "window_voxels": win.voxels,
        "window_angstrom": round(win.angstrom, 3),
        "window_rule": win.rule,
        "resolution": resolution,
        "voxels_scaled": n_scaled,
        "seconds": round(seconds, 3),
        **{k: v for k, v in mode_options.items() if isinstance(v, (int, float, str, type(None)))},
    }
    return emap.like(out), info


def sharpened_label(info: dict) -> str:
    """MRC header label describing how a LocScale map was made."""
    return f"LocScale {info['mode']} w={info['window_voxels']} ({info['window_angstrom']:.1f} A)"

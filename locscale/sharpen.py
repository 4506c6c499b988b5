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

# tapered: near-exact arithmetic over Hann-tapered windows with soft shells and noise weights; closer to the truth
# than the paper's eq. 2 on every realistic phantom measured (README, "The default LocScale and the paper's").
# The paper's eq. 2 is one flag away (exact, near-exact, fast).
DEFAULT_MODE = "tapered"
#: the tapered mode's default window (Å): the best or within 0.002 of the best CC to truth on realistic phantoms
#: of five proteins at 3.0-4.5 Å, from 20 to 45 Å (benchmarks/bench_sharpening.py --windows)
TAPERED_WINDOW_ANGSTROM = 30.0


@dataclass
class WindowChoice:
    voxels: int
    angstrom: float
    rule: str


def choose_window(apix: float, resolution: float | None, window: int | None = None,
                  window_A: float | None = None, mode: str = DEFAULT_MODE) -> WindowChoice:
    """Window size in voxels: explicit voxels, explicit Å, or the default rule of the mode.

    Default: tapered, :data:`TAPERED_WINDOW_ANGSTROM` (30 Å; the taper weights the window's centre, so it sees
    less than a hard window of the same edge), rounded to a fast FFT size; exact, near-exact and fast, the
    paper's rule, 7 × resolution in Å, rounded to a fast FFT size; compat, LocScale 2.4.1's rule,
    ceil(25 Å / apix) rounded up to even.
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
    elif mode == "tapered":
        w = shells.fast_window_voxels(TAPERED_WINDOW_ANGSTROM / apix)
        rule = f"{TAPERED_WINDOW_ANGSTROM:g} Å (tapered mode), nearest fast FFT size"
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
                half_maps: tuple[Map, Map] | None = None, progress: bool = True, **mode_options
                ) -> tuple[Map, dict]:
    """LocScale-sharpen `emap` against `modelmap` (same grid) and return (sharpened map, info).

    `mask` is a boolean array on the map's grid (voxels to scale); None scales every voxel. Voxels outside the
    mask are 0 in the output. `half_maps` (whose mean is `emap`): the tapered mode's noise weights come from
    them, window by window (without them: from the map's solvent); other modes ignore them. `mode_options` go
    to the mode's function (batch_size, workers, stride, device, noise). ``info["noise_weights"]`` says where the
    noise weights came from (tapered mode).
    """
    m = check_mode(mode)
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
    noise = None
    if m.noise_weights:
        if half_maps is not None:
            for h, what in zip(half_maps, ("half map 1", "half map 2"), strict=True):
                emap.require_same_grid(h, f"the map and {what}")
            mode_options["half_maps"] = tuple(h.data for h in half_maps)
        noise = mode_options.get("noise", "auto")
        if noise == "auto":
            noise = "half-maps" if half_maps is not None else "solvent"
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
        **({"noise_weights": _noise_rule(noise, emap.data, mask)} if noise is not None else {}),
        **{k: v for k, v in mode_options.items() if isinstance(v, (int, float, str, type(None)))},
    }
    return emap.like(out), info


def _noise_rule(noise: str, data: np.ndarray, mask: np.ndarray | None) -> str:
    """A sentence saying where the tapered mode's noise weights came from."""
    if noise == "half-maps":
        return "half maps (cross power of each window)"
    if noise == "solvent":
        outside = np.ones(data.shape, bool) if mask is None else ~mask
        if mask is None or not outside.any() or float(np.std(data[outside])) == 0.0:
            return "none (no solvent outside the mask to measure the noise in; give half maps)"
        return "solvent (noise spectrum of the voxels outside the mask)"
    return "none"


def sharpened_label(info: dict) -> str:
    """MRC header label describing how a LocScale map was made."""
    return f"LocScale {info['mode']} w={info['window_voxels']} ({info['window_angstrom']:.1f} A)"

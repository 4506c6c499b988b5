"""LocScale-sharpen a map against an atomic model (or a model map)

LocScale-sharpen MAP against an atomic model with refined B-factors (--model) or a precomputed model map on the same
grid (--model-map). Give the unsharpened, unfiltered map (or two half maps). The output overlays the input map (same
origin, voxel size and axis order); voxels outside the mask are 0.
"""

from __future__ import annotations

import argparse
import sys

from .common import DefaultsFormatter, check_inputs, map_inputs, read_density, write_json

NAME = "sharpen"
FORMATTER = DefaultsFormatter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("map", nargs="?", help="unsharpened map (MRC/CCP4); omit when giving --half-maps")
    p.add_argument("--half-maps", nargs=2, metavar=("HALF1", "HALF2"),
                   help="two half maps; their average is sharpened")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-m", "--model", help="atomic model (PDB/mmCIF) with refined B-factors, in the map's frame")
    src.add_argument("--model-map", help="precomputed model map on the same grid as the map")
    p.add_argument("-r", "--resolution", type=float,
                   help="resolution in Å (sets the default window, 7 × resolution)")
    p.add_argument("-o", "--output", required=True, help="output map (MRC)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("-w", "--window", type=int, help="window edge in voxels (default: 7 × resolution in voxels)")
    w.add_argument("--window-angstrom", type=float, help="window edge in Å (paper: 25-35 Å looked best)")
    mk = p.add_mutually_exclusive_group()
    mk.add_argument("--mask", help="mask map on the same grid (voxels ≥ 0.5 are scaled)")
    mk.add_argument("--mask-radius", type=float,
                    help="scale voxels within this many Å of an atom (default: half the window)")
    mk.add_argument("--no-mask", action="store_true", help="scale every voxel of the box")
    from ..scaling import MODES

    p.add_argument("--mode", default=None, choices=list(MODES),
                   help="near-exact (default): the paper's eq. 2 with exact shell sums at every voxel and the "
                   "per-window scale factors computed exactly on a grid of stride ~w/6, interpolated between "
                   "(in-mask CC to exact >= 0.9996 measured on EMD-3488, a 160^3 resampling and a 256^3 phantom); "
                   "exact: eq. 2 with two window FFTs per masked voxel; fast: approximation for screening, e.g. "
                   "window sweeps (stride ~w/3 plus a low-rank fit across shells; in-mask CC to exact >= 0.998 "
                   "measured: 0.9991 on EMD-3488 at w=24, 0.9992 at 160^3, 0.9999 on a 256^3 phantom); "
                   "compat: LocScale 2.4.1's arithmetic "
                   "(reproduces its output to 4e-7)")
    p.add_argument("--batch-size", type=int, help="windows per FFT batch (exact/compat; bounds memory)")
    p.add_argument("--workers", type=int, help="FFT threads (default: all cores)")
    p.add_argument("--stride", type=int, help="near-exact/fast: scale-factor grid stride in voxels")
    p.add_argument("--device", default=None, help="'cpu' or 'cuda' (GPU needs: pip install 'locscale[gpu]')")
    p.add_argument("--dmin", type=float, help="model-map band limit in Å (default: Nyquist)")
    p.add_argument("--info", help="write a JSON record of the run here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(a) -> int:
    import numpy as np

    from .. import limits, outputs, sharpen
    from ..mapio import read_map, write_map

    outputs.guard_outputs({"-o": a.output, "--info": a.info},
                         map_inputs(a) + [a.model, a.model_map, a.mask])
    # every value is range-checked before anything is read or computed
    if a.resolution is not None:
        limits.check_resolution(a.resolution)
    if a.window is not None:
        limits.check_window(a.window)
    if a.window_angstrom is not None:
        limits.check_window_angstrom(a.window_angstrom)
    if a.mask_radius is not None:
        limits.check_mask_radius(a.mask_radius)
    if a.dmin is not None:
        limits.check_dmin(a.dmin)
    limits.check_device(a.device)
    emap = read_density(a)
    emap.require_isotropic("LocScale")
    mode = a.mode or sharpen.DEFAULT_MODE
    win = sharpen.choose_window(emap.apix, a.resolution, a.window, a.window_angstrom, mode)
    structure = None
    if a.model:
        from ..models import read_model
        from ..simulate import simulate_model_map

        structure = read_model(a.model)
        # the checks of `locscale check`; without -r at the resolution the window implies (w = 7 × d / voxel)
        d = a.resolution if a.resolution is not None else max(2 * emap.apix, win.voxels * emap.apix / 7)
        cc = check_inputs(emap, structure, d)
        print(f"locscale sharpen: model fits the map (CC inside its envelope {cc:.3f} at {d:.3g} Å)",
              file=sys.stderr)
        modelmap = simulate_model_map(structure, emap, dmin=a.dmin)
    else:
        modelmap = read_map(a.model_map)
    mask, mask_rule = sharpen.choose_mask(emap, mask_path=a.mask, structure=structure, mask_radius=a.mask_radius,
                                          window_voxels=win.voxels, no_mask=a.no_mask)
    opts = {k: v for k, v in (("batch_size", a.batch_size), ("workers", a.workers), ("stride", a.stride),
                              ("device", a.device)) if v is not None}
    print(f"locscale sharpen: {mode} mode, window {win.voxels} voxels ({win.angstrom:.1f} Å; {win.rule}); "
          f"mask: {mask_rule}", file=sys.stderr)
    out, info = sharpen.sharpen_map(emap, modelmap, a.resolution, window=win.voxels, mask=mask, mode=mode,
                                    progress=not a.quiet, **opts)
    from ..metrics import excess_kurtosis

    kmask = mask if mask is not None else np.ones(emap.shape, bool)
    info["kurtosis_input"] = excess_kurtosis(emap.data, kmask)
    info["kurtosis_output"] = excess_kurtosis(out.data, kmask)
    write_map(a.output, out, label=sharpen.sharpened_label(info))
    info.update(map=a.map or list(a.half_maps), model=a.model, model_map=a.model_map, mask=mask_rule,
                output=a.output)
    write_json(a.info, info, a)
    print(f"wrote {a.output} ({info['voxels_scaled']} voxels scaled in {info['seconds']:.1f} s; excess kurtosis in "
          f"the mask {info['kurtosis_input']:.2f} -> {info['kurtosis_output']:.2f})", file=sys.stderr)
    return 0

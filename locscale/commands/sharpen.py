"""LocScale-sharpen a map against an atomic model (or a model map)

LocScale-sharpen MAP against an atomic model with refined B-factors (--model) or a precomputed model map on the same
grid (--model-map). Give the unsharpened, unfiltered map (or two half maps). The output overlays the input map (same
origin, voxel size and axis order); voxels outside the mask are 0. With --hybrid, density the model does not explain
(significant at a false discovery rate, against the map's own noise) is filled with pseudo-atoms in the reference and
the mask, so it is sharpened instead of attenuated; the pseudo-atoms and the unexplained-density mask are written
beside the output.
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
                   help="two half maps; their average is sharpened (tapered mode: and its noise weights come from "
                   "them)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-m", "--model", help="atomic model (PDB/mmCIF) with refined B-factors, in the map's frame")
    src.add_argument("--model-map", help="precomputed model map on the same grid as the map")
    p.add_argument("-r", "--resolution", type=float,
                   help="resolution in Å (exact, near-exact, fast: sets the default window, 7 × resolution)")
    p.add_argument("-o", "--output", required=True, help="output map (MRC)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("-w", "--window", type=int,
                   help="window edge in voxels (default: 30 Å in tapered mode, 7 × resolution in exact, near-exact "
                   "and fast)")
    w.add_argument("--window-angstrom", type=float, help="window edge in Å (paper: 25-35 Å looked best)")
    mk = p.add_mutually_exclusive_group()
    mk.add_argument("--mask", help="mask map on the same grid (voxels ≥ 0.5 are scaled)")
    mk.add_argument("--mask-radius", type=float,
                    help="scale voxels within this many Å of an atom (default: half the window)")
    mk.add_argument("--no-mask", action="store_true", help="scale every voxel of the box")
    from ..scaling import MODES

    p.add_argument("--mode", default=None, choices=list(MODES),
                   help="tapered (default): beyond the paper's eq. 2, measured closer to the truth on phantoms -- "
                   "Hann-tapered windows, scale factors interpolated across frequency (soft shells) and noise "
                   "weights from the half maps (else from the noise of the map's solvent), with near-exact's "
                   "arithmetic; "
                   "near-exact: the paper's eq. 2 with exact shell sums at every voxel and the "
                   "per-window scale factors computed exactly on a grid of stride ~w/6, interpolated between "
                   "(in-mask CC to exact >= 0.9996 measured on EMD-3488, a 160^3 resampling and a 256^3 phantom); "
                   "exact: eq. 2 with two window FFTs per masked voxel; fast: approximation for screening, e.g. "
                   "window sweeps (stride ~w/3 plus a low-rank fit across shells; in-mask CC to exact >= 0.998 "
                   "measured: 0.9991 on EMD-3488 at w=24, 0.9992 at 160^3, 0.9999 on a 256^3 phantom); "
                   "compat: LocScale 2.4.1's arithmetic "
                   "(reproduces its output to 4e-7)")
    p.add_argument("--batch-size", type=int, help="windows per FFT batch (exact/compat; bounds memory)")
    p.add_argument("--workers", type=int, help="FFT threads (default: all cores)")
    p.add_argument("--stride", type=int, help="tapered/near-exact/fast: scale-factor grid stride in voxels")
    p.add_argument("--noise", choices=["auto", "half-maps", "solvent", "none"], default=None,
                   help="tapered mode: where the noise weights come from (auto: the half maps when given, else the "
                   "solvent outside the mask)")
    p.add_argument("--device", default=None, help="'cpu' or 'cuda' (GPU needs: pip install 'locscale[gpu]')")
    p.add_argument("--dmin", type=float, help="model-map band limit in Å (default: Nyquist)")
    h = p.add_argument_group("hybrid reference (model + pseudo-atoms where the model explains no density)")
    h.add_argument("--hybrid", action="store_true",
                   help="add pseudo-atoms where the map has density the model does not explain: voxels farther than "
                   "3 Å from the model whose model-subtracted, low-passed density is significant against the map's "
                   "noise (half maps: their difference; one map: its values away from the model) at the false "
                   "discovery rate --hybrid-fdr; they take the model's median B. Needs --model and --resolution")
    h.add_argument("--hybrid-fdr", type=float, default=0.01,
                   help="false discovery rate of the unexplained-density test (Benjamini-Hochberg)")
    h.add_argument("--pseudo-atoms", metavar="PATH",
                   help="where to write the pseudo-atoms (mmCIF; default: OUTPUT_pseudo_atoms.cif beside -o)")
    h.add_argument("--unexplained-mask", metavar="PATH",
                   help="where to write the unexplained-density mask (default: OUTPUT_unexplained.mrc beside -o)")
    p.add_argument("--info", help="write a JSON record of the run here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(a) -> int:
    import numpy as np

    from .. import limits, outputs, sharpen
    from ..mapio import read_map, write_map

    hybrid_paths = _hybrid_paths(a)
    outputs.guard_outputs({"-o": a.output, "--info": a.info, **hybrid_paths},
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
    if a.hybrid:
        _check_hybrid_args(a)
    emap = read_density(a)
    emap.require_isotropic("LocScale")
    half = None
    if a.half_maps:
        from ..mapio import read_half_maps

        half = read_half_maps(*a.half_maps)
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
    hybrid = None
    if a.hybrid:
        from ..hybrid import hybrid_reference

        half_maps = None
        if a.half_maps:
            from ..mapio import read_half_maps

            half_maps = read_half_maps(*a.half_maps)
        hybrid = hybrid_reference(emap, structure, a.resolution, half_maps=half_maps, fdr=a.hybrid_fdr,
                                  modelmap=modelmap)
        modelmap = hybrid.reference_map(modelmap, a.dmin)
        structure = hybrid.reference_structure(structure)  # the mask's envelope covers the pseudo-atoms too
        t = hybrid.record["threshold"]
        print(f"locscale sharpen: hybrid reference: {hybrid.count} pseudo-atoms (B {hybrid.record['pseudo_atom_b']:.1f}"
              f" Å², the model's median) in {hybrid.record['unexplained_volume_A3']:.0f} Å³ of unexplained density "
              + (f"(z ≥ {t['z']:.2f} at false discovery rate {t['fdr']:g}; noise from the "
                 f"{'half maps' if half_maps else 'map'})" if t["z"] is not None
                 else f"(none significant at false discovery rate {t['fdr']:g})"), file=sys.stderr)
    mask, mask_rule = sharpen.choose_mask(emap, mask_path=a.mask, structure=structure, mask_radius=a.mask_radius,
                                          window_voxels=win.voxels, no_mask=a.no_mask)
    if hybrid is not None:
        from ..hybrid import mask_rule as hybrid_mask_rule

        mask_rule = hybrid_mask_rule(mask_rule, hybrid.count)
    opts = {k: v for k, v in (("batch_size", a.batch_size), ("workers", a.workers), ("stride", a.stride),
                              ("device", a.device), ("noise", a.noise)) if v is not None}
    print(f"locscale sharpen: {mode} mode, window {win.voxels} voxels ({win.angstrom:.1f} Å; {win.rule}); "
          f"mask: {mask_rule}", file=sys.stderr)
    out, info = sharpen.sharpen_map(emap, modelmap, a.resolution, window=win.voxels, mask=mask, mode=mode,
                                    half_maps=half, progress=not a.quiet, **opts)
    if "noise_weights" in info:
        print(f"locscale sharpen: noise weights: {info['noise_weights']}", file=sys.stderr)
    from ..metrics import excess_kurtosis

    kmask = mask if mask is not None else np.ones(emap.shape, bool)
    info["kurtosis_input"] = excess_kurtosis(emap.data, kmask)
    info["kurtosis_output"] = excess_kurtosis(out.data, kmask)
    if hybrid is not None:
        from ..models import write_model

        write_model(hybrid.pseudo_atoms, hybrid_paths["--pseudo-atoms"])
        write_map(hybrid_paths["--unexplained-mask"], emap, hybrid.unexplained.astype(np.float32),
                  label="locscale unexplained density (hybrid reference)")
        info["hybrid"] = {**hybrid.record, "pseudo_atoms_file": str(hybrid_paths["--pseudo-atoms"]),
                          "unexplained_mask_file": str(hybrid_paths["--unexplained-mask"])}
    write_map(a.output, out, label=sharpen.sharpened_label(info) + (" hybrid" if hybrid is not None else ""))
    info.update(map=a.map or list(a.half_maps), model=a.model, model_map=a.model_map, mask=mask_rule,
                output=a.output)
    write_json(a.info, info, a)
    print(f"wrote {a.output} ({info['voxels_scaled']} voxels scaled in {info['seconds']:.1f} s; excess kurtosis in "
          f"the mask {info['kurtosis_input']:.2f} -> {info['kurtosis_output']:.2f})", file=sys.stderr)
    return 0


def _hybrid_paths(a) -> dict:
    """The hybrid reference's outputs ({option: path}; empty without --hybrid): beside -o unless given."""
    if not a.hybrid:
        for opt in ("pseudo_atoms", "unexplained_mask"):
            if getattr(a, opt):
                from ..errors import LocScaleInputError

                raise LocScaleInputError(f"--{opt.replace('_', '-')} is an output of the hybrid reference",
                                         "add --hybrid, or drop the option")
        return {}
    from pathlib import Path

    out = Path(a.output)
    stem = out.with_suffix("") if out.suffix.lower() in (".mrc", ".map", ".ccp4") else out
    return {"--pseudo-atoms": a.pseudo_atoms or f"{stem}_pseudo_atoms.cif",
            "--unexplained-mask": a.unexplained_mask or f"{stem}_unexplained.mrc"}


def _check_hybrid_args(a) -> None:
    from ..errors import LocScaleInputError

    if not a.model:
        raise LocScaleInputError("--hybrid needs the atomic model (--model): pseudo-atoms are placed where the "
                                 "model explains no density", "give --model instead of --model-map, or drop --hybrid")
    if a.resolution is None:
        raise LocScaleInputError("--hybrid needs the resolution: the unexplained density is low-passed at it",
                                 "give --resolution (FSC 0.143 resolution in Å)")
    if not 0.0 < a.hybrid_fdr < 1.0:
        raise LocScaleInputError(f"--hybrid-fdr {a.hybrid_fdr} is not between 0 and 1", "use e.g. 0.01")
    if a.pseudo_atoms and not a.pseudo_atoms.lower().endswith((".cif", ".mmcif", ".pdb")):
        raise LocScaleInputError("--pseudo-atoms must be a model file", "name it .cif (mmCIF) or .pdb",
                                 a.pseudo_atoms)

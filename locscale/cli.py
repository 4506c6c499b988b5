"""The `locscale` command line.

Every subcommand reads maps/models with the library, does one job and writes its outputs atomically.
Bad input ends with exit status 2 and a message naming the file, the problem and the fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CITATION, __version__
from .errors import LocScaleInputError
from .records import collect_warnings, dumps, write_json

EPILOG = f"Please cite: {CITATION}"


def _add_common_map_args(p: argparse.ArgumentParser, resolution_required: bool = True) -> None:
    p.add_argument("map", help="cryo-EM map (MRC/CCP4), unsharpened and unfiltered for LocScale")
    p.add_argument("-r", "--resolution", type=float, required=resolution_required,
                   help="FSC-0.143 resolution of the map in Å")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="locscale",
        description="Model-based local sharpening of cryo-EM maps (LocScale, Jakobi et al. 2017). "
        "Scales the map's amplitudes, in a window rolling over every voxel, to those of a map simulated from "
        "a refined atomic model; phases stay those of the experimental map.",
        epilog=EPILOG,
    )
    ap.add_argument("--version", action="version", version=f"locscale {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # ---- sharpen
    p = sub.add_parser(
        "sharpen", help="LocScale-sharpen a map against an atomic model (or a model map)",
        description="LocScale-sharpen MAP against an atomic model with refined B-factors (--model) or a "
        "precomputed model map on the same grid (--model-map). Give the unsharpened, unfiltered map (or two half "
        "maps). The output overlays the input map (same origin, voxel size and axis order); voxels outside the "
        "mask are 0.",
        epilog=EPILOG, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    from .scaling import MODES

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

    # ---- simulate
    p = sub.add_parser("simulate", help="simulate a model map on a map's grid",
                       description="Simulate the density of an atomic model (electron form factors, the atoms' "
                       "B-factors and occupancies) on exactly the grid of a reference map, band-limited at --dmin "
                       "(default Nyquist).", epilog=EPILOG)
    p.add_argument("model", help="atomic model (PDB/mmCIF)")
    p.add_argument("--like", required=True, help="map whose grid (shape, voxel size, origin) to use")
    p.add_argument("--dmin", type=float, help="band limit in Å (default: Nyquist, 2 × voxel size)")
    p.add_argument("-o", "--output", required=True, help="output model map (MRC)")

    # ---- global-sharpen
    p = sub.add_parser("global-sharpen", help="global B-factor sharpening (Guinier fit), optional FSC weighting",
                       description="Sharpen a map with one global B-factor: estimated from the Guinier plot "
                       "between 10 Å and the resolution (or given), optionally FSC-weighted with half maps, and "
                       "low-pass filtered at the resolution. This is the workflow's cycle-0 target.",
                       epilog=EPILOG)
    _add_common_map_args(p)
    p.add_argument("-b", "--bfactor", type=float,
                   help="B-factor to apply in Å² (negative sharpens; default: minus the Guinier estimate)")
    p.add_argument("--half-maps", nargs=2, metavar=("HALF1", "HALF2"), help="half maps for FSC weighting")
    p.add_argument("-o", "--output", required=True, help="output map (MRC)")
    p.add_argument("--info", help="write a JSON record (B-factor, fit range) here")

    # ---- metrics
    p = sub.add_parser("metrics", help="model-map validation metrics (RSCC, FSC, kurtosis) as JSON/TSV",
                       description="Validate a model against a map: RSCC (CC_mask, CC_box, per residue), "
                       "model-vs-map FSC and FSCaverage up to the resolution, and excess kurtosis inside a fixed "
                       "mask.", epilog=EPILOG)
    _add_common_map_args(p)
    p.add_argument("-m", "--model", required=True, help="atomic model (PDB/mmCIF)")
    p.add_argument("--kurtosis-mask", help="mask map for kurtosis (default: the model envelope)")
    p.add_argument("-o", "--output", required=True, help="metrics JSON")
    p.add_argument("--fsc-tsv", help="write the FSC curve here (TSV)")
    p.add_argument("--per-residue-tsv", help="write per-residue CC here (TSV)")

    # ---- check
    p = sub.add_parser("check", help="check that a map and model belong together (grid, frame, fit)",
                       description="Read a map (or half maps) and a model, report their geometry, and fail "
                       "clearly when the model lies outside the box or does not fit the map.", epilog=EPILOG)
    p.add_argument("map", help="map (MRC/CCP4)")
    p.add_argument("-m", "--model", required=True, help="atomic model (PDB/mmCIF)")
    p.add_argument("-r", "--resolution", type=float, required=True, help="resolution in Å")
    from .phantom import add_phantom_parser

    add_phantom_parser(sub)
    return ap


# ---------------------------------------------------------------------- commands
def _write_json(path: str | None, record: dict, a) -> None:
    if path:
        write_json(path, record, warnings=getattr(a, "warnings", []))


def _map_inputs(a) -> list[str]:
    return [p for p in ([getattr(a, "map", None)] + list(getattr(a, "half_maps", None) or [])) if p]


def _read_density(a):
    """The map to work on (MAP, or the mean of --half-maps), checked for degenerate content."""
    from .checks import check_map_content
    from .mapio import average_half_maps, read_half_maps, read_map

    if a.half_maps and a.map:
        raise LocScaleInputError("both a map and --half-maps were given", "give either MAP or --half-maps")
    if a.half_maps:
        emap = average_half_maps(*read_half_maps(*a.half_maps))
    elif a.map:
        emap = read_map(a.map)
    else:
        raise LocScaleInputError("no map given", "give MAP or --half-maps HALF1 HALF2")
    check_map_content(emap.data, emap.path or "the mean of the half maps", "map")
    return emap


def check_inputs(emap, structure, resolution: float, min_inside: float = 0.9) -> float:
    """The checks `locscale check` runs (and `sharpen` with a model): model inside the box, model fits the map.
    Returns the CC inside the model envelope."""
    from .models import check_model_in_map
    from .simulate import check_model_fits_map

    check_model_in_map(structure, emap, min_inside)
    return check_model_fits_map(structure, emap, resolution)


def cmd_sharpen(a) -> int:
    import numpy as np

    from . import limits, sharpen
    from .mapio import read_map, write_map

    limits.guard_outputs({"-o": a.output, "--info": a.info},
                         _map_inputs(a) + [a.model, a.model_map, a.mask])
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
    emap = _read_density(a)
    emap.require_isotropic("LocScale")
    mode = a.mode or sharpen.DEFAULT_MODE
    win = sharpen.choose_window(emap.apix, a.resolution, a.window, a.window_angstrom, mode)
    structure = None
    if a.model:
        from .models import read_model
        from .simulate import simulate_model_map

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
    from .metrics import excess_kurtosis

    kmask = mask if mask is not None else np.ones(emap.shape, bool)
    info["kurtosis_input"] = excess_kurtosis(emap.data, kmask)
    info["kurtosis_output"] = excess_kurtosis(out.data, kmask)
    write_map(a.output, out, label=sharpen.sharpened_label(info))
    info.update(map=a.map or list(a.half_maps), model=a.model, model_map=a.model_map, mask=mask_rule,
                output=a.output)
    _write_json(a.info, info, a)
    print(f"wrote {a.output} ({info['voxels_scaled']} voxels scaled in {info['seconds']:.1f} s; excess kurtosis in "
          f"the mask {info['kurtosis_input']:.2f} -> {info['kurtosis_output']:.2f})", file=sys.stderr)
    return 0


def cmd_simulate(a) -> int:
    from . import limits
    from .mapio import read_map, write_map
    from .models import check_model_in_map, read_model
    from .simulate import simulate_model_map

    limits.guard_outputs({"-o": a.output}, [a.model, a.like])
    if a.dmin is not None:
        limits.check_dmin(a.dmin)
    like = read_map(a.like)
    structure = read_model(a.model)
    check_model_in_map(structure, like)
    mm = simulate_model_map(structure, like, dmin=a.dmin)
    write_map(a.output, mm, label=f"model map of {Path(a.model).name}")
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


def cmd_global_sharpen(a) -> int:
    from . import limits
    from .global_sharpen import global_sharpen
    from .mapio import read_half_maps, read_map, write_map

    limits.guard_outputs({"-o": a.output, "--info": a.info}, _map_inputs(a))
    limits.check_resolution(a.resolution)
    if a.bfactor is not None:
        limits.check_finite(a.bfactor, "B-factor", "give a finite B-factor in Å² (negative sharpens)")
    emap = read_map(a.map)
    half = read_half_maps(*a.half_maps) if a.half_maps else None
    out, info = global_sharpen(emap, a.resolution, bfactor=a.bfactor, half_maps=half)
    write_map(a.output, out, label=f"global sharpening B={info.get('bfactor_applied', float('nan')):.1f}")
    _write_json(a.info, info, a)
    print(dumps(info), file=sys.stderr)
    return 0


def cmd_metrics(a) -> int:
    from . import limits
    from .mapio import read_map
    from .models import check_model_in_map, read_model
    from .validation import validation_metrics

    limits.guard_outputs({"-o": a.output, "--fsc-tsv": a.fsc_tsv, "--per-residue-tsv": a.per_residue_tsv},
                         [a.map, a.model, a.kurtosis_mask])
    limits.check_resolution(a.resolution)
    emap = read_map(a.map)
    structure = read_model(a.model)
    check_model_in_map(structure, emap)  # a model outside the box would give NaN metrics
    kmask = None
    if a.kurtosis_mask:
        km = read_map(a.kurtosis_mask)
        emap.require_same_grid(km, "the map and the kurtosis mask")
        kmask = km.data >= 0.5
    record, fsc_curve, per_residue = validation_metrics(emap, structure, a.resolution, kurtosis_mask=kmask)
    record.update(map=a.map, model=a.model)
    _write_json(a.output, record, a)
    if a.fsc_tsv:
        _write_tsv(fsc_curve.to_frame(), a.fsc_tsv)
    if a.per_residue_tsv:
        _write_tsv(per_residue, a.per_residue_tsv)
    print(dumps({k: v for k, v in record.items() if not isinstance(v, (list, dict))}))
    return 0


def _write_tsv(frame, path) -> None:
    from .mapio import atomic_output

    with atomic_output(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


def cmd_check(a) -> int:
    from . import limits
    from .checks import check_map_content
    from .mapio import read_map
    from .models import model_summary, read_model

    limits.check_resolution(a.resolution)
    emap = read_map(a.map)
    print(f"map   {a.map}: {emap.shape} voxels of {emap.voxel_size.round(4).tolist()} Å, origin "
          f"{emap.origin.round(3).tolist()} Å, axis order {emap.axis_order}, origin from {emap.origin_convention}")
    check_map_content(emap.data, emap.path)
    if emap.is_isotropic:
        limits.check_resolution(a.resolution, emap.apix)
    structure = read_model(a.model)
    summ = model_summary(structure)
    print(f"model {a.model}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in summ.items()))
    cc = check_inputs(emap, structure, a.resolution)
    print(f"model fits the map: CC inside the model envelope = {cc:.3f}")
    return 0


def cmd_phantom(a) -> int:
    import os

    from . import limits
    from .phantom import cmd_phantom as run

    outdir = Path(a.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise LocScaleInputError("the output folder (-o) is a file", "give a folder for the phantom's files",
                                 outdir)
    # every file the phantom writes is named PREFIX*: an input of that name in the folder would be replaced
    for p in (a.model, a.like):
        if p and os.path.realpath(Path(p).parent) == os.path.realpath(outdir) and Path(p).name.startswith(a.prefix):
            raise LocScaleInputError(f"the input {p} lies in the output folder and starts with the prefix "
                                     f"{a.prefix!r}: the phantom's files could replace it",
                                     "give another output folder (-o) or --prefix", p)
    limits.guard_outputs({"-o": outdir / f"{a.prefix}_phantom.json"}, [a.model, a.like])
    limits.check_resolution(a.resolution)
    return run(a)


COMMANDS = {"sharpen": cmd_sharpen, "simulate": cmd_simulate, "global-sharpen": cmd_global_sharpen,
            "metrics": cmd_metrics, "check": cmd_check, "phantom": cmd_phantom}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input, a value out of range, too little memory or an output that cannot be
    written ends with one message (problem, then the fix) and exit status 2, never a traceback; warnings about
    degenerate inputs are printed one line each and kept in the command's JSON record."""
    args = _parser().parse_args(argv)
    prog = f"locscale {args.command}"

    def echo(text):
        print(f"{prog}: warning: {text}", file=sys.stderr)

    try:
        with collect_warnings(echo) as caught:
            args.warnings = caught
            return COMMANDS[args.command](args)
    except LocScaleInputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except MemoryError:
        print(f"{prog}: error: ran out of memory\n  fix: use a smaller window or crop the map around the model, "
              "or run on a machine with more memory", file=sys.stderr)
    except OSError as exc:  # e.g. a disk that fills up while writing
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}\n  fix: check the file and the folder it is in "
              "(space, permissions)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""build a SIMULATED phantom (truth + noisy half maps) from an atomic model

Simulate a truth map from an atomic model, then two half maps with a spatially varying blur (B rising from core to
periphery, or per chain), a global B and independent coloured noise set so that the half-map FSC crosses the
threshold at the requested resolution. Optionally remove parts of the model handed out. Seeded and deterministic;
every file is named SIMULATED_* and a JSON records everything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import LocScaleInputError
from .common import DefaultsFormatter, add_subcommand

NAME = "phantom"
FORMATTER = DefaultsFormatter
EPILOG = None  # (no citation line in its help)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="atomic model (PDB/mmCIF)")
    p.add_argument("-o", "--outdir", required=True, help="output folder")
    p.add_argument("--prefix", default="SIMULATED", help="file name prefix (must contain SIMULATED)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--like", help="map whose grid (shape, voxel size, origin) to use")
    g.add_argument("--box", type=int, help="build a cubic box of this many voxels around the model")
    p.add_argument("--apix", type=float, default=1.2, help="voxel size in Å with --box")
    p.add_argument("--chains", help="comma-separated chains to keep (default: all)")
    p.add_argument("--radius", type=float, help="keep residues within this many Å of the model centre")
    p.add_argument("--keep-ligands", action="store_true", help="keep ligands and waters")
    p.add_argument("-r", "--resolution", type=float, default=3.5, help="half-map FSC resolution in Å")
    p.add_argument("--fsc-threshold", type=float, default=0.143, help="FSC threshold defining the resolution")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--b-global", type=float, default=100.0,
                   help="global B added to every atom (Å²): the reconstruction's falloff, which sharpening removes")
    p.add_argument("--b-core", type=float, default=0.0,
                   help="STRESS CASE: extra blur B at the model centre (Å²), on top of --b-global")
    p.add_argument("--b-periphery", type=float, default=0.0,
                   help="STRESS CASE: extra blur B at the model's edge (Å²); 0 (default) = realistic phantom")
    p.add_argument("--gradient-power", type=float, default=1.0, help="extra blur ΔB ∝ (r/r_max)^power")
    p.add_argument("--chain-b", help="STRESS CASE: per-chain extra blur B instead of the radial one, e.g. A=0,B=80")
    tb = p.add_mutually_exclusive_group()
    tb.add_argument("--truth-b", type=float, help="set every atom's truth B to this (default: the model's B)")
    tb.add_argument("--truth-b-gradient", type=float, nargs=3, metavar=("B_CENTRE", "B_EDGE", "POWER"),
                    help="truth B = B_CENTRE + (B_EDGE − B_CENTRE)·(r/r_max)^POWER: flexibility that the truth "
                    "keeps (realistic phantom, e.g. 20 140 1.5)")
    p.add_argument("--noise-b", type=float, default=50.0,
                   help="noise colour: amplitude falloff B (0 = white, negative = rising with frequency)")
    p.add_argument("--remove-fraction", type=float, default=0.0,
                   help="remove a contiguous stretch of this fraction of residues from the handed-out model")
    p.add_argument("--remove-chains", help="comma-separated chains to remove from the handed-out model")


def run(a) -> int:
    """`locscale phantom`: checks the output folder, the prefix and the resolution, then builds the phantom."""
    import os

    from .. import limits, outputs

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
    from ..phantoms.phantom import phantom_files

    files = phantom_files(outdir, a.prefix)
    outputs.guard_outputs({f"-o/--prefix ({p.name})": p for p in files.values()}, [a.model, a.like])
    limits.check_resolution(a.resolution)
    return make(a)


def make(args: argparse.Namespace) -> int:
    """Build and write the phantom from parsed arguments (after :func:`run`'s checks of the output folder)."""
    from ..mapio import read_map
    from ..models import read_model
    from ..phantoms.phantom import crop_model, make_phantom

    st = read_model(args.model)
    chains = _split(args.chains)
    st = crop_model(st, chains, protein_only=not args.keep_ligands, radius=args.radius)
    like = read_map(args.like) if args.like else (int(args.box), float(args.apix))
    chain_b = None
    if args.chain_b:
        try:
            chain_b = {k.strip(): float(v) for k, v in (kv.split("=") for kv in args.chain_b.split(","))}
        except ValueError as exc:
            raise LocScaleInputError(f"cannot read --chain-b {args.chain_b!r}",
                                     "write it as CHAIN=B pairs separated by commas, e.g. A=0,B=80") from exc
    res = make_phantom(st, like, args.seed, resolution=args.resolution, fsc_threshold=args.fsc_threshold,
                       b_global=args.b_global, b_core=args.b_core, b_periphery=args.b_periphery,
                       gradient_power=args.gradient_power, chain_b=chain_b, truth_b=args.truth_b,
                       truth_b_gradient=args.truth_b_gradient,
                       noise_b=args.noise_b, remove_fraction=args.remove_fraction,
                       remove_chains=_split(args.remove_chains), source=str(args.model))
    paths = res.write(args.outdir, args.prefix)
    n = res.info["noise"]
    print(f"SIMULATED phantom written to {args.outdir}: half-map FSC {n['fsc_threshold']} at "
          f"{n['measured_resolution']:.2f} Å (requested {n['requested_resolution']:.2f} Å); "
          f"{len(res.removed)} residues removed from {paths['model'].name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`locscale phantom` as a stand-alone entry point, ``main(["MODEL", "-o", "DIR", ...])`` (it was
    ``locscale.phantoms.phantom.phantom_main``): the same checks and output guards as :func:`run`."""
    ap = argparse.ArgumentParser(prog="locscale")
    sub = ap.add_subparsers(dest="command", required=True)
    add_subcommand(sub, sys.modules[__name__])
    args = ap.parse_args([NAME, *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except LocScaleInputError as exc:
        print(f"locscale phantom: error: {exc}", file=sys.stderr)
        return 2


def _split(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


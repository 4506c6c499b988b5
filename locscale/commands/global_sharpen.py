"""global B-factor sharpening (Guinier fit), optional FSC weighting

Sharpen a map with one global B-factor: estimated from the Guinier plot between 10 Å and the resolution (or given),
optionally FSC-weighted with half maps, and low-pass filtered at the resolution. This is the workflow's cycle-0
target.
"""

from __future__ import annotations

import argparse
import sys

from ..records import dumps
from .common import add_map_args, map_inputs, write_json

NAME = "global-sharpen"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_map_args(p)
    p.add_argument("-b", "--bfactor", type=float,
                   help="B-factor to apply in Å² (negative sharpens; default: minus the Guinier estimate)")
    p.add_argument("--half-maps", nargs=2, metavar=("HALF1", "HALF2"), help="half maps for FSC weighting")
    p.add_argument("-o", "--output", required=True, help="output map (MRC)")
    p.add_argument("--info", help="write a JSON record (B-factor, fit range) here")


def run(a) -> int:
    from .. import limits, outputs
    from ..global_sharpen import global_sharpen
    from ..mapio import read_half_maps, read_map, write_map

    outputs.guard_outputs({"-o": a.output, "--info": a.info}, map_inputs(a))
    limits.check_resolution(a.resolution)
    if a.bfactor is not None:
        limits.check_finite(a.bfactor, "B-factor", "give a finite B-factor in Å² (negative sharpens)")
    emap = read_map(a.map)
    half = read_half_maps(*a.half_maps) if a.half_maps else None
    out, info = global_sharpen(emap, a.resolution, bfactor=a.bfactor, half_maps=half)
    write_map(a.output, out, label=f"global sharpening B={info.get('bfactor_applied', float('nan')):.1f}")
    write_json(a.info, info, a)
    print(dumps(info), file=sys.stderr)
    return 0

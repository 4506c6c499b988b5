"""simulate a model map on a map's grid

Simulate the density of an atomic model (electron form factors, the atoms' B-factors and occupancies) on exactly the
grid of a reference map, band-limited at --dmin (default Nyquist).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "simulate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="atomic model (PDB/mmCIF)")
    p.add_argument("--like", required=True, help="map whose grid (shape, voxel size, origin) to use")
    p.add_argument("--dmin", type=float, help="band limit in Å (default: Nyquist, 2 × voxel size)")
    p.add_argument("-o", "--output", required=True, help="output model map (MRC)")


def run(a) -> int:
    from .. import limits, outputs
    from ..mapio import read_map, write_map
    from ..models import check_model_in_map, read_model
    from ..simulate import simulate_model_map

    outputs.guard_outputs({"-o": a.output}, [a.model, a.like])
    if a.dmin is not None:
        limits.check_dmin(a.dmin)
    like = read_map(a.like)
    structure = read_model(a.model)
    check_model_in_map(structure, like)
    mm = simulate_model_map(structure, like, dmin=a.dmin)
    write_map(a.output, mm, label=f"model map of {Path(a.model).name}")
    print(f"wrote {a.output}", file=sys.stderr)
    return 0

"""check that a map and model belong together (grid, frame, fit)

Read a map (or half maps) and a model, report their geometry, and fail clearly when the model lies outside the box
or does not fit the map.
"""

from __future__ import annotations

import argparse

from .common import check_inputs

NAME = "check"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("map", help="map (MRC/CCP4)")
    p.add_argument("-m", "--model", required=True, help="atomic model (PDB/mmCIF)")
    p.add_argument("-r", "--resolution", type=float, required=True, help="resolution in Å")


def run(a) -> int:
    from .. import limits
    from ..checks import check_map_content
    from ..mapio import read_map
    from ..models import model_summary, read_model

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

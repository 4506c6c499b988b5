"""Make reference.npz, the compact copy of LocScale 2.4.1's own output on EMD-3488 that tests/test_compat.py
compares the compatibility mode with (a fresh clone has it; the full 12 MB output is not committed).

Usage: python tests/data/locscale2_emd3488/make_reference.py DIR  (DIR holds locscale2_output.mrc,
locscale2_modelmap.mrc and locscale2_mask.mrc, made as its README.md says).

Kept exactly (float32, as LocScale 2 wrote them), so the test's tolerance is that of the full comparison:
* the mask (binarised at 0.5, bit-packed): it decides which voxels are scaled, whether the box is padded and
  the padding value (each map's mean outside the mask);
* the model map inside REGION, a 48-voxel box in the middle of the map touching one box face (y = 100), and the
  model map's mean outside the mask (a LocScale output voxel depends only on the maps inside its 24-voxel window
  and on that padding value);
* LocScale 2's output inside COMPARED: the voxels of REGION whose windows lie inside REGION or cross the box face
  (into the padding), i.e. every voxel computed from kept values only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from locscale.mapio import read_map

W = 24  # LocScale 2's window on EMD-3488: ceil(25 Å / 1.05 Å), rounded up to even
REGION = (slice(32, 80), slice(52, 100), slice(28, 76))  # x, y, z (locscale.mapio's frame)
# window of voxel p: p - 12 ... p + 11, inside REGION or beyond the box face at y = 100 (in the padding)
COMPARED = (slice(44, 69), slice(64, 100), slice(40, 65))


def main(folder: str) -> None:
    d = Path(folder)

    def load(name):
        return read_map(d / name).data

    modelmap, mask = load("locscale2_modelmap.mrc"), load("locscale2_mask.mrc") >= 0.5
    output = load("locscale2_output.mrc")
    out = Path(__file__).with_name("reference.npz")
    np.savez_compressed(
        out, shape=np.array(mask.shape), mask_bits=np.packbits(mask.ravel()), window=W,
        region=np.array([[s.start, s.stop] for s in REGION]), compared=np.array([[s.start, s.stop] for s in COMPARED]),
        modelmap_region=modelmap[REGION], modelmap_outside_mean=np.mean(modelmap[~mask], dtype=np.float64),
        output_compared=output[COMPARED])
    print(f"{out}: {out.stat().st_size} bytes; {int(mask[COMPARED].sum())} masked voxels compared")


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python
"""Near-exact and fast mode against exact mode where the map has flat solvent inside the mask.

    nice python benchmarks/bench_whole_box.py      # ~1.5 min

EMD-3488 is a masked deposition: 71 % of its box is exactly 0. Rows:
  whole box, zeroed solvent      every voxel of the 100³ box (no mask), the map as deposited;
  whole box, flat solvent        the same with the zeros replaced by 0.0123 (a flattened, non-zero solvent);
  crop, flat solvent + step      a 40³ crop with flat 0.0123 solvent and a mask that leaves out a 6³ block of
                                 density, so the box is padded at that block's mean (0.01238): a small step
                                 between the padding and the flat solvent (the documented limitation).
Model map and inputs: benchmarks/out/inputs/bundled (LocScale 2's model map when ../shared/data has it). CC is
the Pearson correlation over the scaled voxels; max|·| shows whether anything blew up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

COLUMNS = ["case", "voxels", "fill", "cc_near_exact", "cc_fast", "max_exact", "max_near_exact", "max_fast"]
FLAT = np.float32(0.0123)


def main() -> int:
    from locscale.padding import solvent_level
    from locscale.scaling import local_scale_exact, local_scale_fast, local_scale_near_exact

    emap, model, _ = C.case_bundled().load()
    print(f"# {C.machine_note()}")
    flat = np.where(emap == 0, FLAT, emap)
    crop = (slice(14, 54),) * 3
    step_mask = np.ones((40, 40, 40), dtype=bool)
    step_mask[18:24, 18:24, 18:24] = False
    cases = [("whole box, zeroed solvent", emap, model, None),
             ("whole box, flat solvent", flat, model, None),
             ("crop, flat solvent + step", flat[crop].copy(), model[crop].copy(), step_mask)]
    rows = []
    for name, m, r, mask in cases:
        sel = np.ones(m.shape, dtype=bool) if mask is None else mask
        exact = local_scale_exact(m, r, 24, mask, progress=False)
        near = local_scale_near_exact(m, r, 24, mask, progress=False)
        fast = local_scale_fast(m, r, 24, mask, progress=False)
        rows.append({"case": name, "voxels": int(sel.sum()), "fill": round(solvent_level(m, mask), 6),
                     "cc_near_exact": round(C.cc(near, exact, sel), 5), "cc_fast": round(C.cc(fast, exact, sel), 5),
                     "max_exact": round(float(np.abs(exact).max()), 4),
                     "max_near_exact": round(float(np.abs(near).max()), 4),
                     "max_fast": round(float(np.abs(fast).max()), 4)})
        print(C.table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    print()
    print(C.table(rows, COLUMNS))
    print(f"# wrote {C.write_tsv('whole_box.tsv', rows, COLUMNS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

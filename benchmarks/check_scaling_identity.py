"""Byte-identity check for refactors of the scaling code: run every LocScale mode (and the local-resolution
functions) on small fixed inputs and save the outputs, or compare them with a saved run.

    python benchmarks/check_scaling_identity.py save DIR      # write DIR/<case>_<mode>.npy
    python benchmarks/check_scaling_identity.py compare DIR   # rerun and compare with np.array_equal

Inputs (small, so a run takes well under a minute on 2 cores):
* ``emd3488``: a 34³ crop of the bundled EMD-3488 map, the model map simulated from the bundled 5me2 model
  on the full map's grid (cropped the same way), and a 3 Å model envelope as the mask; w = 12;
* ``phantom``: a 28³ synthetic map of seeded Gaussian blobs plus noise, its noiseless sharper version as the
  model map, and a spherical mask reaching the box edge; w = 11 (odd), compat at w = 10.
Local resolution and local Guinier sharpening run on two noisy halves of each map.

The locscale package imported is the one of the checkout this script is in. Every run uses workers=1 and a
fixed batch size so the float32 shell sums are reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's locscale, not an installed one
MODES = ("exact", "near-exact", "fast", "compat")


def emd3488_case():
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model
    from locscale.simulate import simulate_model_map

    ex = REPO / "examples" / "emd3488"
    emap = read_map(ex / "emd_3488.mrc")
    st = read_model(ex / "5me2.pdb")
    model = simulate_model_map(st, emap).data
    mask = envelope_mask(st, emap, 3.0)
    sl = (slice(33, 67),) * 3
    return emap.data[sl].astype(np.float32), model[sl].astype(np.float32), mask[sl].copy(), 12, emap.apix


def phantom_case():
    rng = np.random.default_rng(1234)
    n = 28
    g = np.indices((n, n, n)).astype(np.float64)
    sharp = np.zeros((n, n, n))
    blurred = np.zeros((n, n, n))
    for _ in range(40):
        c = rng.uniform(4, n - 4, 3)
        r2 = sum((g[a] - c[a]) ** 2 for a in range(3))
        amp = rng.uniform(0.5, 2.0)
        sharp += amp * np.exp(-r2 / (2 * 1.0**2))
        blurred += amp * 0.4 * np.exp(-r2 / (2 * 1.8**2))
    emap = (blurred + 0.05 * rng.standard_normal(blurred.shape)).astype(np.float32)
    r = np.sqrt(sum((g[a] - (n - 1) / 2) ** 2 for a in range(3)))
    mask = r < 13.0
    return emap, sharp.astype(np.float32), mask, 11, np.array([1.0, 1.0, 1.0])


def run_all() -> dict[str, np.ndarray]:
    from locscale.mapio import Map

    try:
        from locscale.scaling import local_scale
    except ImportError:
        from locscale.localscale import local_scale
    from locscale.localres import local_guinier_sharpen, local_resolution

    out = {}
    for name, (emap, model, mask, w, apix) in (("emd3488", emd3488_case()), ("phantom", phantom_case())):
        opts = {"progress": False, "workers": 1, "batch_size": 8}
        for mode in MODES:
            ww = w + w % 2 if mode == "compat" else w
            out[f"{name}_{mode}"] = local_scale(emap, model, ww, mask, mode=mode, **opts)
        # near-exact with stride 1 and 2 exercises the node grid at other strides
        for t in (1, 2):
            out[f"{name}_near-exact_t{t}"] = local_scale(emap, model, w, mask, mode="near-exact", stride=t, **opts)
        # localres: two noisy halves
        rng = np.random.default_rng(7)
        noise = 0.3 * float(np.std(emap))
        h1 = Map(data=(emap + noise * rng.standard_normal(emap.shape)).astype(np.float32),
                 voxel_size=np.broadcast_to(np.asarray(apix, float), (3,)).copy())
        h2 = h1.like((emap + noise * rng.standard_normal(emap.shape)).astype(np.float32))
        lr = local_resolution(h1, h2, window=max(w, 8) + 2, mask=mask, progress=False)
        out[f"{name}_localres_map"] = lr.map.data
        out[f"{name}_localres_nodes"] = lr.nodes
        lg, _ = local_guinier_sharpen(h1, h2, window=max(w, 8) + 2, mask=mask, low=8.0, progress=False)
        out[f"{name}_guinier"] = lg.data
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("save", "compare"):
        print(__doc__)
        return 2
    folder = Path(argv[2])
    results = run_all()
    if argv[1] == "save":
        folder.mkdir(parents=True, exist_ok=True)
        for key, arr in results.items():
            np.save(folder / f"{key}.npy", arr)
        print(f"saved {len(results)} arrays to {folder}")
        return 0
    bad = 0
    for key, arr in results.items():
        ref = np.load(folder / f"{key}.npy")
        same = ref.shape == arr.shape and ref.dtype == arr.dtype and np.array_equal(ref, arr, equal_nan=True)
        if same:
            print(f"{key:28s} identical")
        else:
            bad += 1
            diff = np.nanmax(np.abs(ref.astype(np.float64) - arr)) if ref.shape == arr.shape else float("nan")
            scale = np.nanmax(np.abs(ref))
            print(f"{key:28s} DIFFERENT: max |diff| {diff:.3g} (max |ref| {scale:.3g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

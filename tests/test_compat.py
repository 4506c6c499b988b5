"""LocScale-2 compatibility mode (locscale.scaling.compat): LocScale 2.4.1's arithmetic, checked against a naive
per-voxel reimplementation written here and against LocScale 2.4.1's own output on EMD-3488.

Tolerances: the module uses float32 windows, spectra and shell sums, the naive reference float64 (LocScale
2.4.1 itself float32 maps): a float32 FFT of a w³ window has relative rounding ~ε·log2(w³) ≈ 1e-6 of its
largest coefficient, so outputs agree to ~1e-6 of the largest value; 1e-5 leaves a factor 10 margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locscale.scaling import local_scale
from locscale.scaling.compat import (
    compat_window,
    interpolation_weights,
    local_scale_compat,
    needs_padding,
    octant_shell_index,
)

CROP = (slice(30, 70),) * 3
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- reference
def naive_locscale2(emmap: np.ndarray, modelmap: np.ndarray, mask: np.ndarray, wn: int) -> np.ndarray:
    """LocScale 2.4.1's steps as docs/design.md ("LocScale 2.4.1's arithmetic") describes them, one voxel at a
    time in float64."""
    emmap, modelmap = emmap.astype(np.float64), modelmap.astype(np.float64)
    mask = (mask >= 0.5).astype(np.int8)
    shape = np.array(emmap.shape)
    pts = np.argwhere(mask == 1)
    # pad by wn/2 with each map's mean outside the mask when a masked voxel is within wn/2 of an edge
    bleed = bool(np.any(pts.min(axis=0) < wn / 2) or np.any(pts.max(axis=0) > shape - wn / 2))
    if bleed:
        half = wn // 2
        emmap = np.pad(emmap, half, constant_values=emmap[mask != 1].mean())
        modelmap = np.pad(modelmap, half, constant_values=modelmap[mask != 1].mean())
        mask = np.pad(mask, half, constant_values=0)
    n = np.array(mask.shape)
    # frequency of every rfft coefficient and the unwrapped-index radii
    fmap = np.sqrt(np.fft.fftfreq(wn)[:, None, None] ** 2 + np.fft.fftfreq(wn)[None, :, None] ** 2
                   + np.fft.rfftfreq(wn)[None, None, :] ** 2)
    x, y, z = np.indices((wn, wn, wn // 2 + 1))
    radii = np.sqrt(x**2 + y**2 + z**2).astype(int)
    frequencies = np.fft.rfftfreq(wn)

    def profile(vol):
        ps = np.abs(np.fft.rfftn(vol, norm="ortho"))
        return (np.bincount(radii.ravel(), ps.ravel()) / np.bincount(radii.ravel()))[:wn // 2 + 1]

    out = np.zeros(mask.shape)
    for p in np.argwhere(mask == 1):
        if np.any(p < wn / 2) or np.any(p >= n - wn / 2):
            continue
        k, j, i = p - wn // 2
        em_win = emmap[k:k + wn, j:j + wn, i:i + wn]
        mod_win = modelmap[k:k + wn, j:j + wn, i:i + wn]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.abs(profile(mod_win)) / np.abs(profile(em_win))
        scale[~np.isfinite(scale)] = 0
        spec = np.fft.rfftn(em_win, norm="ortho") * np.interp(fmap, frequencies, scale)
        c = wn // 2
        out[tuple(p)] = np.fft.irfftn(spec, em_win.shape, axes=(0, 1, 2), norm="ortho")[c, c, c]
    if bleed:
        half = wn // 2
        out = out[half:-half, half:-half, half:-half]
    return out


def rel_max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def crop(emd3488_map, model_5me2):
    """40³ crops of EMD-3488 and of a model map of 5me2 simulated on its grid."""
    from locscale.mapio import read_map
    from locscale.models import read_model
    from locscale.simulate import simulate_model_map

    emap = read_map(emd3488_map)
    modelmap = simulate_model_map(read_model(model_5me2), emap)
    return np.ascontiguousarray(emap.data[CROP]), np.ascontiguousarray(modelmap.data[CROP])


def sample_mask(shape, count, lo, hi, seed=0) -> np.ndarray:
    """`count` random voxels with every coordinate in [lo, hi]."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    pts = rng.integers(lo, hi + 1, size=(count, 3))
    mask[tuple(pts.T)] = True
    return mask


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("w", [10, 12])
def test_compat_equals_naive_with_padding(crop, w):
    """Mask reaching the box edges: both maps padded by w/2 with their mean outside the mask."""
    emap, modelmap = crop
    mask = sample_mask(emap.shape, 250, 0, 39, seed=w)
    mask[0, 0, 0] = mask[39, 39, 39] = True
    assert needs_padding(mask, w)
    out = local_scale_compat(emap, modelmap, w, mask, progress=False)
    ref = naive_locscale2(emap, modelmap, mask, w)
    assert np.all(out[~mask] == 0)
    assert rel_max_diff(out, ref) < 1e-5


def test_compat_equals_naive_without_padding(crop):
    """Mask inside [w/2, n − w/2]: no padding; voxels at n − w/2 are skipped (0), as in LocScale 2."""
    emap, modelmap = crop
    w = 10
    mask = sample_mask(emap.shape, 250, 5, 35, seed=1)
    mask[35, 20, 20] = mask[5, 5, 5] = True
    assert not needs_padding(mask, w)
    out = local_scale_compat(emap, modelmap, w, mask, progress=False)
    ref = naive_locscale2(emap, modelmap, mask, w)
    assert out[35, 20, 20] == 0 and ref[35, 20, 20] == 0
    assert out[5, 5, 5] != 0
    assert rel_max_diff(out, ref) < 1e-5


def test_odd_window_is_rounded_up_to_even(crop):
    emap, modelmap = crop
    mask = sample_mask(emap.shape, 50, 0, 39, seed=2)
    assert np.array_equal(local_scale_compat(emap, modelmap, 11, mask, progress=False),
                          local_scale_compat(emap, modelmap, 12, mask, progress=False))
    assert np.array_equal(local_scale(emap, modelmap, 12, mask, mode="compat", progress=False),
                          local_scale_compat(emap, modelmap, 12, mask, progress=False))


def test_compat_window():
    assert compat_window(apix=1.05) == 24          # ceil(23.8) = 24
    assert compat_window(apix=1.2156) == 22        # ceil(20.6) = 21 → 22
    assert compat_window(apix=1.0) == 26           # 25 → 26
    assert compat_window(window=25) == 26
    assert compat_window(window=24) == 24


def test_interpolation_weights_reproduce_np_interp():
    rng = np.random.default_rng(0)
    for w in (10, 24):
        f = np.fft.fftfreq(w)
        freq = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + np.fft.rfftfreq(w)[None, None, :] ** 2)
        prof = rng.random(w // 2 + 1)
        assert np.allclose(interpolation_weights(w) @ prof, np.interp(freq.ravel(), np.fft.rfftfreq(w), prof),
                           rtol=1e-12, atol=1e-14)


def test_octant_shells_are_symmetric_in_the_axes():
    """Shells 0 … w/2 of the unwrapped-index radius only hold indices ≤ w/2 on every axis, so the rfft axis
    plays no special role and the result does not depend on the array's axis order."""
    w = 12
    idx = octant_shell_index(w).reshape(w, w, w // 2 + 1)
    inner = idx[:w // 2 + 1, :w // 2 + 1, :]
    assert np.array_equal(inner, inner.transpose(2, 1, 0))
    assert np.all(idx[w // 2 + 1:] > w // 2) and np.all(idx[:, w // 2 + 1:] > w // 2)


def locscale2_reference(emd3488_map) -> dict:
    """LocScale 2.4.1's own output on EMD-3488, from tests/data/locscale2_emd3488/ (its mask, its model map
    inside a 48-voxel region and that map's mean outside the mask, its output where it depends on those alone),
    set up so that the compatibility mode computes only the compared voxels, from exactly LocScale 2's numbers:

    * ``mask``: the compared voxels of LocScale 2's mask (``full_mask``: all of it);
    * ``map``, ``modelmap``: the bundled map and LocScale 2's model map inside the region; outside it (where no
      compared voxel's window reaches) each is one constant, chosen so that its mean outside ``mask`` -- the
      value the box is padded with -- is its mean outside LocScale 2's mask, as LocScale 2 padded."""
    from locscale.mapio import read_map
    from locscale.padding import solvent_level

    ref = np.load(REPO / "tests" / "data" / "locscale2_emd3488" / "reference.npz")
    shape = tuple(ref["shape"])
    full_mask = np.unpackbits(ref["mask_bits"])[: np.prod(shape)].reshape(shape).astype(bool)
    region = tuple(slice(a, b) for a, b in ref["region"])
    compared = tuple(slice(a, b) for a, b in ref["compared"])
    mask = np.zeros(shape, bool)
    mask[compared] = full_mask[compared]
    inside = np.zeros(shape, bool)
    inside[region] = True

    def rebuilt(kept: np.ndarray, padding_value: float) -> np.ndarray:
        known = kept[~mask[region]].sum(dtype=np.float64)
        fill = (padding_value * (~mask).sum() - known) / (~inside).sum()
        out = np.full(shape, fill, np.float32)
        out[region] = kept
        assert solvent_level(out, mask) == pytest.approx(padding_value, rel=1e-6, abs=1e-9)
        return out

    emap = read_map(emd3488_map)
    emap_padding = solvent_level(emap.data, full_mask)
    return {"apix": emap.apix, "map": rebuilt(emap.data[region], emap_padding),
            "modelmap": rebuilt(ref["modelmap_region"], float(ref["modelmap_outside_mean"])),
            "mask": mask, "full_mask": full_mask, "window": int(ref["window"]), "compared": compared,
            "output": ref["output_compared"].astype(np.float64)}


def test_reproduces_locscale2_output(emd3488_map):
    """LocScale 2.4.1's own output on EMD-3488 (its model map and mask, w = 24 from 1.05 Å), on the 4 972 masked
    voxels of a 25 × 36 × 25 region kept in the repository (26 of them with windows in the box's padding): max
    difference ≤ 1e-5 of the largest |value| (float32 on both sides, kept exactly: ~1e-6 expected), CC > 0.99999."""
    ref = locscale2_reference(emd3488_map)
    mask, compared = ref["mask"], ref["compared"]
    assert ref["full_mask"].sum() == 55206 and mask.sum() == 4972
    w = compat_window(apix=ref["apix"])
    assert w == ref["window"] == 24
    assert needs_padding(ref["full_mask"], w) and needs_padding(mask, w)
    out = local_scale_compat(ref["map"], ref["modelmap"], w, mask, progress=False)[compared]
    inner = mask[compared]
    assert rel_max_diff(out, ref["output"]) < 1e-5
    assert np.corrcoef(out[inner], ref["output"][inner])[0, 1] > 0.99999
    assert np.all(out[~inner] == 0) and np.all(ref["output"][~inner] == 0)

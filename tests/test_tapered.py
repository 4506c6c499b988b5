"""The tapered mode (the default; locscale.scaling.tapered): its parts, against a naive per-voxel
implementation, and with its parts switched off against near-exact mode.

Inputs: the 40³ crop of the bundled EMD-3488 map and of a 5me2 model map used by the exact-mode tests, and half
maps made from it (the map ± seeded noise, so their mean is the map). Tolerances as in test_localscale.py:
float32 windows and spectra against float64, ~1e-6 of the largest value; 1e-5 leaves a factor 10.
"""

from __future__ import annotations

import numpy as np
import pytest
from naive_reference import naive_tapered

from locscale import shells
from locscale.errors import LocScaleInputError
from locscale.scaling import local_scale, local_scale_near_exact, local_scale_tapered
from locscale.scaling.schemes import hann_taper, soft_shell_membership, soft_shell_weights
from locscale.scaling.tapered import solvent_noise_power, tapered_kernels

CROP = (slice(30, 70),) * 3


@pytest.fixture(scope="module")
def crop(emd3488_map, model_5me2):
    """40³ crops, half maps whose mean is the map, and a mask: a seeded sample of 200 voxels where the model map
    is above its median plus the crop's 8 corners (their windows reach into the padding)."""
    from locscale.mapio import read_map
    from locscale.models import read_model
    from locscale.simulate import simulate_model_map

    emap = read_map(emd3488_map)
    model = simulate_model_map(read_model(model_5me2), emap)
    m, r = (np.ascontiguousarray(a[CROP]) for a in (emap.data, model.data))
    rng = np.random.default_rng(21)
    noise = rng.standard_normal(m.shape).astype(np.float32) * np.float32(0.5 * m.std())
    halves = (m + noise, m - noise)
    candidates = np.argwhere(r > np.median(r))
    mask = np.zeros(m.shape, dtype=bool)
    mask[tuple(candidates[rng.choice(len(candidates), 200, replace=False)].T)] = True
    for corner in np.ndindex(2, 2, 2):
        mask[tuple(np.array(corner) * 39)] = True
    return m, r, halves, mask


def rel_max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("w", [10, 11])
def test_soft_shells_and_taper(w):
    """The soft shells are a partition of unity with shell 0 the DC term alone; the taper is 1 at the centre and
    symmetric about it; the kernels sum to a delta at the centre (so the last shell needs no convolution)."""
    phi = soft_shell_weights(w, half=False)
    assert phi.shape[0] == shells.n_shells(w)
    np.testing.assert_allclose(phi.sum(axis=0), 1.0, atol=1e-12)
    assert phi[0].sum() == 1.0 and phi[0][0, 0, 0] == 1.0
    member = soft_shell_membership(w)
    assert member.sum() == pytest.approx(float(w) ** 3)  # every full-spectrum coefficient once
    g = hann_taper(w)
    c = shells.centre_index(w)
    assert g[c, c, c] == pytest.approx(1.0) and g.max() == pytest.approx(1.0)
    if w % 2:
        np.testing.assert_allclose(g, g[::-1, ::-1, ::-1], atol=1e-12)
    delta = tapered_kernels(w).sum(axis=0)
    expected = np.zeros((w, w, w))
    expected[c, c, c] = 1.0
    np.testing.assert_allclose(delta, expected, atol=1e-12)


@pytest.mark.parametrize("w", [10, 11])
@pytest.mark.parametrize("with_halves", [False, True])
def test_tapered_equals_naive_per_voxel(crop, w, with_halves):
    emap, model, halves, mask = crop
    sub = np.zeros_like(mask)
    sub[4:24, 4:24, 4:24] = mask[4:24, 4:24, 4:24]
    sub[0, 0, 0] = True  # a corner: its window reaches into the padding
    h = halves if with_halves else None
    ref = naive_tapered(emap, model, w, sub, h)
    got = local_scale_tapered(emap, model, w, sub, stride=1, half_maps=h, noise="half-maps" if h else "none",
                              progress=False)
    assert rel_max_diff(got[sub], ref[sub]) < 1e-5
    assert np.all(got[~sub] == 0)


def test_tapered_with_its_parts_off_is_near_exact(crop):
    emap, model, _, mask = crop
    for stride in (1, 3):
        ref = local_scale_near_exact(emap, model, 12, mask, stride=stride, progress=False)
        got = local_scale_tapered(emap, model, 12, mask, stride=stride, noise="none", taper=False,
                                  soft_shells=False, progress=False)
        assert rel_max_diff(got, ref) < 1e-5


def test_default_stride_agrees_with_every_voxel(crop):
    """Factors on the coarse grid (stride ≈ w/6) against every masked voxel its own node: the interpolation's
    in-mask CC (measured 0.99994 on a 5NI1 phantom at w = 25; here w = 12 on the crop)."""
    emap, model, halves, mask = crop
    dense = np.zeros_like(mask)
    dense[8:32, 8:32, 8:32] = True
    one = local_scale_tapered(emap, model, 12, dense, stride=1, half_maps=halves, progress=False)
    grid = local_scale_tapered(emap, model, 12, dense, half_maps=halves, progress=False)
    assert np.corrcoef(one[dense], grid[dense])[0, 1] > 0.999


def test_noise_weights_only_lower_the_factors(crop):
    """C ≤ 1: with noise weights every shell's factor is at most the paper's, so the output of pure noise is
    damped; the solvent of a masked map (flat) gives no noise estimate and changes nothing."""
    emap, model, halves, mask = crop
    rng = np.random.default_rng(0)
    noisy = [h + rng.standard_normal(h.shape).astype(np.float32) * np.float32(3 * emap.std()) for h in halves]
    mean = 0.5 * (noisy[0] + noisy[1])
    dense = np.zeros_like(mask)
    dense[10:30, 10:30, 10:30] = True
    plain = local_scale_tapered(mean, model, 12, dense, noise="none", progress=False)
    weighted = local_scale_tapered(mean, model, 12, dense, half_maps=noisy, progress=False)
    assert np.std(weighted[dense]) < 0.8 * np.std(plain[dense])
    flat = emap.copy()
    flat[~dense] = 0.0
    assert solvent_noise_power(flat, dense, 12) is None
    np.testing.assert_array_equal(local_scale_tapered(flat, model, 12, dense, noise="solvent", progress=False),
                                  local_scale_tapered(flat, model, 12, dense, noise="none", progress=False))


def test_noise_options_are_checked(crop):
    emap, model, halves, mask = crop
    with pytest.raises(LocScaleInputError, match="no half maps"):
        local_scale_tapered(emap, model, 12, mask, noise="half-maps", progress=False)
    with pytest.raises(LocScaleInputError, match="unknown noise source"):
        local_scale_tapered(emap, model, 12, mask, noise="loud", progress=False)
    with pytest.raises(LocScaleInputError, match="takes no noise weights"):
        local_scale(emap, model, 12, mask, mode="near-exact", half_maps=halves, progress=False)
    out = local_scale(emap, model, 12, mask, mode="tapered", half_maps=halves, progress=False)
    np.testing.assert_array_equal(out, local_scale_tapered(emap, model, 12, mask, half_maps=halves,
                                                           progress=False))

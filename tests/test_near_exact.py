"""Near-exact and fast modes (locscale.scaling.near_exact) against exact mode.

The reference is a naive per-voxel implementation of exact mode written here (full complex FFT of the window,
shells from the wrapped radius, RMS ratio per shell, scale, inverse FFT, keep the centre voxel), run on small
crops; on whole maps, ``locscale.scaling.local_scale_exact``.
"""

from __future__ import annotations

import numpy as np
import pytest
from naive_reference import naive_exact

from locscale import shells
from locscale.scaling import local_scale_exact
from locscale.scaling import near_exact as cv
from locscale.scaling.backends import box_mean
from locscale.scaling.grid import node_plan


def in_mask_cc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.corrcoef(a[mask].astype(np.float64), b[mask].astype(np.float64))[0, 1])


def exact_reference(emmap, modelmap, w, mask):
    """Exact mode on a whole map."""
    return local_scale_exact(emmap, modelmap, w, mask, progress=False)


# ---------------------------------------------------------------------------------------------- inputs
def crop_of(inputs):
    """A 26³ crop through the middle of the molecule, with the part of the mask inside it."""
    sl = (slice(38, 64),) * 3
    return tuple(a[sl].copy() for a in inputs)


@pytest.fixture(scope="module")
def bundled(emd3488_scaling_inputs):
    """EMD-3488, the simulated model map of 5ME2 and its 3 Å envelope (conftest.py)."""
    return emd3488_scaling_inputs


@pytest.fixture(scope="module")
def crop(bundled):
    return crop_of(bundled)


# ---------------------------------------------------------------------------------------------- identities
@pytest.mark.parametrize("w", [7, 8, 12])
def test_shell_kernels_sum_to_centre_delta(w):
    # Σ_s h_s(u) = (1/w³) Σ_k e^{2πik·(c−u)/w} = δ(u − c): the identity that lets the last shell skip its
    # convolution. float64 FFT of indicators: error ~1e-16 per coefficient, so 1e-12 is loose.
    total = cv.shell_kernels(w).sum(axis=0)
    delta = np.zeros((w, w, w))
    c = shells.centre_index(w)
    delta[c, c, c] = 1.0
    np.testing.assert_allclose(total, delta, atol=1e-12)


# ---------------------------------------------------------------------------------------------- stride 1 = exact
@pytest.mark.parametrize("w", [10, 11])
def test_stride_one_equals_naive_exact(crop, w):
    emap, modelmap, mask = crop
    sub = np.zeros_like(mask)
    sub[6:20, 6:20, 6:20] = mask[6:20, 6:20, 6:20]   # keeps the naive loop to ~1 s
    ref = naive_exact(emap, modelmap, w, sub)
    got = cv.local_scale_near_exact(emap, modelmap, w, sub, stride=1, progress=False)
    # float32 data, float32 FFTs of ≤ 64³ and float64 accumulation: rounding ~1e-7 relative to the largest
    # output; 1e-5 of the largest value leaves a wide margin (measured ~2e-7)
    scale = np.abs(ref[sub]).max()
    np.testing.assert_allclose(got[sub], ref[sub], rtol=0, atol=1e-5 * scale)
    assert np.all(got[~sub] == 0)


def test_stride_one_equals_exact_mode(crop):
    # near-exact with stride 1 vs the exact-mode module on the whole crop (mask reaching the crop's edges):
    # both float32 FFTs with float64 sums, so agreement to ~1e-7 of the largest value; 1e-5 is the contract
    emap, modelmap, mask = crop
    ref = local_scale_exact(emap, modelmap, 12, mask, progress=False)
    got = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=1, progress=False)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_stride_one_no_mask_and_box_edges(crop):
    # no mask: every voxel, including windows reaching past the box edge into the solvent padding
    emap, modelmap, _ = crop
    e, r = emap[:14, :14, :14].copy(), modelmap[:14, :14, :14].copy()
    ref = naive_exact(e, r, 9)
    got = cv.local_scale_near_exact(e, r, 9, None, stride=1, progress=False)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_batch_size_and_workers_do_not_change_output(crop):
    # batching only regroups identical per-window FFTs; workers only split them: equal to float32 rounding
    emap, modelmap, mask = crop
    a = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=2, progress=False, batch_size=7, workers=1)
    b = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=2, progress=False, batch_size=5000, workers=2)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(a).max())


def test_scaling_the_map_leaves_output_unchanged(crop):
    # out = Σ k_s C_s with k_s ∝ 1/|map| and C_s ∝ |map|: invariant to a constant factor on the map; the
    # interpolated factors keep this exactly, so the float32 tolerance applies
    emap, modelmap, mask = crop
    a = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=3, progress=False)
    b = cv.local_scale_near_exact(7.5 * emap, modelmap, 12, mask, stride=3, progress=False)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(a).max())


def test_map_equal_to_model_gives_input(crop):
    # every factor is 1 (at every node, so after interpolation too): the output is the input in the mask
    emap, _, mask = crop
    for fn in (cv.local_scale_near_exact, cv.local_scale_fast):
        got = fn(emap, emap, 12, mask, progress=False)
        np.testing.assert_allclose(got[mask], emap[mask], rtol=0, atol=1e-5 * np.abs(emap).max())
        assert np.all(got[~mask] == 0)


def test_empty_mask_and_bad_input(crop):
    emap, modelmap, mask = crop
    assert not cv.local_scale_near_exact(emap, modelmap, 12, np.zeros_like(mask), progress=False).any()
    with pytest.raises(ValueError, match="one shape"):
        cv.local_scale_near_exact(emap, modelmap[:-1], 12, mask, progress=False)
    with pytest.raises(ValueError, match="stride"):
        cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=0, progress=False)
    with pytest.raises(ValueError, match="window"):
        cv.local_scale_fast(emap, modelmap, 1, mask, progress=False)


def test_box_mean_equals_window_means():
    """C_0 (plane-wise summed-area tables) is the mean of every w³ window, to float32 rounding."""
    rng = np.random.default_rng(1)
    for shape, w in [((30, 31, 29), 8), ((27, 27, 27), 13)]:
        a = (5 + rng.standard_normal(shape)).astype(np.float32)
        ext = np.array(shape) - w + 1
        ref = np.lib.stride_tricks.sliding_window_view(a.astype(np.float64), (w, w, w)).mean(axis=(3, 4, 5))
        out = box_mean(a, w, ext)
        assert out.dtype == np.float32 and out.shape == tuple(ext)
        assert np.abs(out - ref).max() < 1e-6 * np.abs(ref).max()


def test_interpolation_plan_reproduces_linear_fields():
    """Trilinear interpolation from the node grid is exact for a linear field, and each voxel's weights sum
    to 1 (int32 corner indices)."""
    rng = np.random.default_rng(2)
    mask = rng.random((23, 19, 17)) < 0.3
    for t in (1, 3, 4):
        plan = node_plan(mask, t)
        assert plan.corner_ids.dtype == np.int32
        assert np.allclose(plan.corner_w.sum(axis=1), 1.0, atol=1e-6)
        nodes_xyz = plan.lo + plan.nodes * t
        field = nodes_xyz @ np.array([0.5, -1.25, 2.0]) + 3.0
        got = np.einsum("ij,ij->i", field[plan.corner_ids], plan.corner_w)
        want = np.argwhere(mask) @ np.array([0.5, -1.25, 2.0]) + 3.0
        assert np.abs(got - want).max() < 1e-4


def test_default_strides():
    assert cv.default_stride(24, "near-exact") == 4
    assert cv.default_stride(24, "fast") == 8
    assert cv.default_stride(5, "near-exact") == 1


# ---------------------------------------------------------------------------------------------- agreement
def test_bundled_map_agreement(bundled):
    """The agreement targets on EMD-3488 (the 5ME2 model map and its 3 Å envelope), at LocScale 2's 24-voxel
    window."""
    emap, modelmap, mask = bundled
    exact = exact_reference(emap, modelmap, 24, mask)
    near = cv.local_scale_near_exact(emap, modelmap, 24, mask, progress=False)
    fast = cv.local_scale_fast(emap, modelmap, 24, mask, progress=False)
    # measured: near-exact 0.99965, fast 0.99902 (see the functions' docstrings)
    assert in_mask_cc(near, exact, mask) >= 0.999
    assert in_mask_cc(fast, exact, mask) >= 0.995
    assert np.all(near[~mask] == 0) and np.all(fast[~mask] == 0)


def test_phantom_agreement(model_5ni1):
    """Same targets on a simulated phantom: chain A of 5NI1 (refined B-factors 1-317 Å²) blurred by a radial B
    gradient plus noise (locscale.phantoms.phantom), its true model map as the reference, an envelope mask."""
    from locscale import models, simulate
    from locscale.phantoms import phantom
    st = phantom.crop_model(models.read_model(model_5ni1), ["A"], radius=16.0)
    ph = phantom.make_phantom(st, (56, 1.2156), seed=1, resolution=3.5)
    modelmap = simulate.simulate_model_map(ph.model, ph.full)
    mask = models.envelope_mask(ph.model, ph.full, 3.0)
    w = 20
    exact = exact_reference(ph.full.data, modelmap.data, w, mask)
    near = cv.local_scale_near_exact(ph.full.data, modelmap.data, w, mask, progress=False)
    fast = cv.local_scale_fast(ph.full.data, modelmap.data, w, mask, progress=False)
    assert in_mask_cc(near, exact, mask) >= 0.999
    assert in_mask_cc(fast, exact, mask) >= 0.995


@pytest.mark.parametrize("solvent", ["zeroed", "flat"])
def test_whole_box_of_a_masked_map(bundled, solvent):
    """EMD-3488's solvent is exactly 0 (a masked deposition). Scaling every voxel of a 40³ crop that holds
    density and 18 % flat solvent (as 0, or flattened to 0.0123): near-exact and fast still meet their
    targets and nothing blows up. Before the box-face padding level, the power floor and the node-weighted
    fast fit, the whole 100³ box gave CC 0.002 (near-exact) and values 5·10⁵ times too large."""
    emap, modelmap, _ = bundled
    sl = (slice(14, 54),) * 3
    m, r = emap[sl].copy(), modelmap[sl].copy()
    assert 0.1 < np.mean(m == 0) < 0.5
    if solvent == "flat":
        m = np.where(m == 0, np.float32(0.0123), m)
    everything = np.ones(m.shape, dtype=bool)
    exact = exact_reference(m, r, 24, None)
    near = cv.local_scale_near_exact(m, r, 24, None, progress=False)
    fast = cv.local_scale_fast(m, r, 24, None, progress=False)
    # measured: near-exact 0.99963 / 0.99957, fast 0.99905 / 0.99881 (zeroed / flat)
    assert in_mask_cc(near, exact, everything) >= 0.999
    assert in_mask_cc(fast, exact, everything) >= 0.995
    top = np.abs(exact).max()
    assert np.abs(near).max() < 1.05 * top and np.abs(fast).max() < 1.05 * top



def test_equal_to_exact_at_the_nodes(crop):
    """At a node voxel (lo + j·t) the trilinear weights pick that node alone, its factors are computed exactly
    and every shell contribution is exact at every voxel, so near-exact equals exact mode there to float32
    rounding (1e-5 of the largest value, as at stride 1). A node grid shifted against the voxels, or an
    interpolation that does not reproduce node values, fails this. Off the nodes it does interpolate."""
    emap, modelmap, mask = crop
    w, t = 12, 3
    ref = local_scale_exact(emap, modelmap, w, mask, progress=False)
    got = cv.local_scale_near_exact(emap, modelmap, w, mask, stride=t, progress=False)
    plan = node_plan(mask, t)
    on_node = np.zeros_like(mask)
    lo, ext = plan.lo, plan.ext
    on_node[lo[0]:lo[0] + ext[0]:t, lo[1]:lo[1] + ext[1]:t, lo[2]:lo[2] + ext[2]:t] = True
    on_node &= mask
    assert on_node.sum() >= 20
    np.testing.assert_allclose(got[on_node], ref[on_node], rtol=0, atol=1e-5 * np.abs(ref).max())
    off = mask & ~on_node
    assert np.abs(got[off] - ref[off]).max() > 1e-3 * np.abs(ref).max()


def test_same_result_without_ducc0(crop, monkeypatch):
    """ducc0 does every transform when installed; without it scipy.fft stands in (engine's FFT helpers). Both are
    float32 FFTs with float64 sums, so the outputs agree to float32 rounding (1e-5 of the largest value)."""
    from locscale.scaling import engine

    emap, modelmap, mask = crop
    a = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=3, progress=False)
    monkeypatch.setattr(engine, "_ducc_fft", None)
    assert engine.fft_backends() == ("scipy",)
    b = cv.local_scale_near_exact(emap, modelmap, 12, mask, stride=3, progress=False)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.abs(a).max())

"""Global sharpening (cycle-0 target): Guinier B, B-factor filter, FSC weighting, low-pass."""

from __future__ import annotations

import numpy as np
import pytest

from locscale import metrics
from locscale.errors import LocScaleInputError
from locscale.global_sharpen import (
    apply_bfactor,
    bfactor_filter,
    fsc_weights,
    global_sharpen,
    guinier_bfactor,
    lowpass_filter,
    signal_matched,
)
from locscale.mapio import Map, read_map
from locscale.shells import rfft_multiplicity

APIX = 1.05


@pytest.fixture(scope="module")
def emd3488(emd3488_map) -> Map:
    return read_map(emd3488_map)


@pytest.fixture(scope="module")
def crop(emd3488) -> Map:
    """48³ crop through the protein of the bundled map (real density, fast transforms)."""
    return Map(emd3488.data[26:74, 26:74, 26:74].copy(), voxel_size=emd3488.voxel_size)


def _rms_gain(shape, b):
    """sqrt of the mean of exp(+b·s²/4)² over all full-spectrum coefficients (Parseval: the rms gain of
    un-blurring for white noise such as rounding error)."""
    g = bfactor_filter(shape, APIX, -b)
    w = np.broadcast_to(rfft_multiplicity(shape[2])[None, None, :], g.shape)
    return float(np.sqrt(np.sum(w * g ** 2) / np.sum(w)))


def test_apply_bfactor_sign_convention():
    d = np.zeros((32, 32, 32))
    d[0, 0, 0] = 1.0  # |F| = 1 everywhere, so the output's spectrum is the filter itself
    out = apply_bfactor(d, APIX, 50.0)
    _, s2 = metrics.coefficient_shells(d.shape, APIX)
    # positive B blurs: amplitudes exp(-B s²/4) (float64 in and out: FFT rounding only)
    np.testing.assert_allclose(np.fft.rfftn(out).real, np.exp(-50.0 * s2 / 4), atol=1e-13)
    np.testing.assert_allclose(np.abs(np.fft.rfftn(apply_bfactor(d, APIX, -50.0))), np.exp(50.0 * s2 / 4),
                               rtol=1e-12)
    assert apply_bfactor(d.astype(np.float32), APIX, 10.0).dtype == np.float32


def test_apply_bfactor_round_trip_float32(crop):
    x = crop.data  # float32
    b = 20.0
    y = apply_bfactor(x, APIX, b)
    z = apply_bfactor(y, APIX, -b)
    assert y.dtype == z.dtype == np.float32
    # float32 storage of y adds rounding error of rms ≤ 2^-24·rms(y) (half an ulp, white), which un-blurring
    # amplifies by the rms gain of exp(+B s²/4) (Parseval); z adds its own rounding ≤ 2^-24·rms(x). float64 FFT
    # error is 1e-16, negligible. Bound: 2^-23 × the root-sum-square (factor 2 margin).
    bound = 2.0 ** -23 * np.hypot(np.sqrt(np.mean(y.astype(float) ** 2)) * _rms_gain(x.shape, b),
                                  np.sqrt(np.mean(x.astype(float) ** 2)))
    err = np.sqrt(np.mean((z.astype(float) - x.astype(float)) ** 2))
    assert err <= bound


def test_apply_bfactor_round_trip_float64_b100(crop):
    # +100 then -100: in float64 the only error is FFT rounding (≈ 2^-53 · log2(N) relative), amplified by the rms
    # gain of exp(+100 s²/4) -- 2.7e5 at 1.05 Å because of the cube's corners. (In float32 the same round trip
    # amplifies float32 rounding by 2.7e5 too, so it is *not* an identity to float32 precision at B = 100.)
    x = crop.data.astype(np.float64)
    z = apply_bfactor(apply_bfactor(x, APIX, 100.0), APIX, -100.0)
    n_log = np.log2(x.size)
    bound = 2.0 ** -53 * n_log * np.sqrt(np.mean(x ** 2)) * _rms_gain(x.shape, 100.0) * 4
    assert np.sqrt(np.mean((z - x) ** 2)) <= bound


def test_guinier_b_of_blurred_white_noise_is_the_blur():
    # white noise has a flat expected power spectrum, so its blurred copy has Guinier B = 100 exactly in
    # expectation; the fit's standard error comes from the χ² scatter of shell powers: 3 SE (t with 8 dof: 98 %)
    rng = np.random.default_rng(2024)
    noise = Map(rng.standard_normal((48, 48, 48)), voxel_size=APIX)
    b, info = guinier_bfactor(noise.like(apply_bfactor(noise.data, APIX, 100.0)), 3.2)
    assert info["fit_shells"] >= 8
    assert b == pytest.approx(100.0, abs=3 * info["b_se"])
    assert info["b_se"] < 3.0  # the fit is informative


def test_guinier_b_recovers_a_known_blur_of_a_real_map(crop):
    b0, info0 = guinier_bfactor(crop, 3.2)
    b1, info1 = guinier_bfactor(crop.like(apply_bfactor(crop.data, APIX, 100.0)), 3.2)
    # blurring by +100 adds exactly 100 to the Guinier B up to the fit's standard error
    assert b1 - b0 == pytest.approx(100.0, abs=info1["b_se"])
    assert info0["fit_low_A"] == 10.0 and info0["fit_high_A"] == 3.2
    assert info1["fit_s2_range"][0] >= 1 / 10.0 ** 2 - 1e-3 and info1["fit_s2_range"][1] <= 1 / 3.2 ** 2 + 1e-2
    assert 0 <= info1["r2"] <= 1


def test_guinier_rejects_a_box_too_small_for_the_fit():
    with pytest.raises(LocScaleInputError, match="Guinier"):
        guinier_bfactor(Map(np.ones((8, 8, 8)), voxel_size=APIX), 3.2)


def test_lowpass_filter_edge():
    shape = (64, 64, 64)
    f = lowpass_filter(shape, APIX, 4.0, edge_shells=2.0)
    _, s2 = metrics.coefficient_shells(shape, APIX)
    s = np.sqrt(s2)
    L = 64 * APIX
    assert np.all(f[s <= 1 / 4.0 - 2 / L - 1e-9] == 1.0)
    assert np.all(f[s >= 1 / 4.0 + 2 / L + 1e-9] == 0.0)
    # raised cosine across the edge: 0.5·(1 + cos(π·(s - 1/d + Δ)/(2Δ))), 0.5 at 1/d, never increasing
    edge = (s > 1 / 4.0 - 2 / L) & (s < 1 / 4.0 + 2 / L)
    t = (s[edge] - (1 / 4.0 - 2 / L)) / (4 / L)
    np.testing.assert_allclose(f[edge], 0.5 * (1 + np.cos(np.pi * t)), rtol=0, atol=1e-12)
    order = np.argsort(s.ravel(), kind="stable")
    assert np.all(np.diff(f.ravel()[order]) <= 1e-15)


def test_global_sharpen_default_on_the_bundled_map(emd3488):
    out, info = global_sharpen(emd3488, 3.2)
    assert out.same_grid(emd3488) and out.data.dtype == np.float32
    assert info["bfactor_applied"] == pytest.approx(-info["guinier_b"])
    for key in ("guinier_b_se", "guinier_fit_low_A", "guinier_fit_high_A", "guinier_r2", "lowpass_A"):
        assert key in info
    assert info["fsc_weighted"] is False
    # the output's spectrum is the input's times exp(-b s²/4)·low-pass (float32 output: rtol 1e-5 of the max)
    filt = bfactor_filter(emd3488.shape, APIX, info["bfactor_applied"]) * lowpass_filter(emd3488.shape, APIX, 3.2)
    fin = np.fft.rfftn(emd3488.data.astype(float))
    fout = np.fft.rfftn(out.data.astype(float))
    np.testing.assert_allclose(fout, fin * filt, atol=1e-5 * np.abs(fin).max())


def test_global_sharpen_with_half_maps_applies_fsc_weights(crop):
    rng = np.random.default_rng(5)
    sigma = 2.0 * crop.data.std()
    h1 = crop.like(crop.data + sigma * rng.standard_normal(crop.shape))
    h2 = crop.like(crop.data + sigma * rng.standard_normal(crop.shape))
    full = crop.like(0.5 * (h1.data + h2.data))
    out, info = global_sharpen(full, 3.2, bfactor=0.0, half_maps=(h1, h2))
    assert info["fsc_weighted"] is True and "guinier_b" not in info
    curve = metrics.fsc(h1.data, h2.data, APIX)
    w, curve2 = fsc_weights(h1, h2)
    np.testing.assert_array_equal(curve.fsc, curve2.fsc)
    # Rosenthal & Henderson: the full map's FSC is 2F/(1+F); weight = its square root (0 where F ≤ 0)
    fh = np.clip(np.nan_to_num(curve.fsc), 0, 1)
    shell, _ = metrics.coefficient_shells(crop.shape, APIX)
    expected_w = np.sqrt(2 * fh / (1 + fh))[np.where(shell >= 0, shell, len(fh) - 1)]
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)
    fin = np.fft.rfftn(full.data.astype(float))
    fout = np.fft.rfftn(out.data.astype(float))
    np.testing.assert_allclose(fout, fin * w * lowpass_filter(crop.shape, APIX, 3.2),
                               atol=1e-5 * np.abs(fin).max())
    assert info["half_map_fsc0143_A"] == pytest.approx(metrics.resolution_at(curve, 0.143))


def test_global_sharpen_rejects_resolution_beyond_nyquist(crop):
    with pytest.raises(LocScaleInputError, match="Nyquist"):
        global_sharpen(crop, 1.5)


def test_signal_matched_undoes_the_fsc_weight_up_to_its_floor(crop):
    """locscale_signal's B target: every shell divided by sqrt(2F/(1+F)) (floored at F = 0.143, i.e. at most ×2),
    then low-passed at d. Applied to an FSC-weighted map it returns the unweighted map in every shell whose
    weight is above the floor, and never amplifies a coefficient by more than 2."""
    rng = np.random.default_rng(6)
    sigma = 1.5 * crop.data.std()
    h1 = crop.like(crop.data + sigma * rng.standard_normal(crop.shape))
    h2 = crop.like(crop.data + sigma * rng.standard_normal(crop.shape))
    full = crop.like(0.5 * (h1.data + h2.data))
    w, _ = fsc_weights(h1, h2)
    weighted = crop.like(np.fft.irfftn(np.fft.rfftn(full.data.astype(float)) * w, s=crop.shape))
    out, info = signal_matched(weighted, h1, h2, 3.2)
    assert info["max_gain"] == pytest.approx(1 / np.sqrt(2 * 0.143 / 1.143))  # 2.0
    lp = lowpass_filter(crop.shape, APIX, 3.2)
    fin = np.fft.rfftn(full.data.astype(float))
    fout = np.fft.rfftn(out.data.astype(float))
    floor = np.sqrt(2 * 0.143 / 1.143)
    above = w >= floor
    np.testing.assert_allclose(fout[above], (fin * lp)[above], atol=1e-5 * np.abs(fin).max())
    np.testing.assert_allclose(fout[~above], (fin * w * lp / floor)[~above], atol=1e-5 * np.abs(fin).max())

"""Model maps: exact structure factors on the map's grid, band limit, frames, and the model-fits-map check."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from locscale.errors import LocScaleInputError
from locscale.mapio import read_map
from locscale.metrics import envelope_radius, pearson
from locscale.models import envelope_mask, read_model, set_uniform_b, shift_model
from locscale.simulate import check_model_fits_map, nyquist_dmin, rscc, simulate_model_map

EDGE = ("origin_field", "axis321", "nstart_aniso")


@pytest.fixture(scope="module")
def emd3488(emd3488_map, model_5me2):
    return read_map(emd3488_map), read_model(model_5me2)


@pytest.fixture(params=EDGE)
def edge_case(request, edge_cases):
    case = edge_cases[request.param]
    return read_map(case.map), read_model(case.model), case.resolution




def _spectrum_freq(like):
    k = [np.fft.fftfreq(n, d=v) for n, v in zip(like.shape, like.voxel_size, strict=True)]
    return np.sqrt(k[0][:, None, None] ** 2 + k[1][None, :, None] ** 2 + k[2][None, None, :] ** 2)


def _direct_sf(structure, like, hkl):
    """gemmi's direct summation of electron structure factors, in the box frame of `like` (cell = box)."""
    box_model = shift_model(structure, -like.origin)[0]
    calc = gemmi.StructureFactorCalculatorE(gemmi.UnitCell(*like.box_size, 90, 90, 90))
    return np.array([calc.calculate_sf_from_model(box_model, [int(x) for x in h]) for h in hkl])


# ---------------------------------------------------------------------- required number
def test_cc_mask_5me2_emd3488(emd3488):
    """CC_mask (DESIGN §6): Pearson CC inside the model envelope, model map at d = 3.2 Å with the model's B.

    Envelope radius max(3 Å, d) = 3.2 Å (DESIGN §6's per-residue radius; phenix.map_model_cc's
    max(3, min(10, max(d, image radius))) gives the same 3.2 Å here, its C-atom image radius at 3.2 Å and
    B = 24 Å² being 2.55-3.13 Å). Measured with this code (2 cores, gemmi 0.7.5), CC_mask for other radii:
    2.0 Å 0.7415, 2.5 Å 0.7453, 3.0 Å 0.7301, 3.2 Å 0.7236, 3.5 Å 0.7156, 4.0 Å 0.7058, 5.0 Å 0.6968;
    CC_box 0.6582; a Nyquist-limited (2.1 Å) model map at 3.2 Å radius gives 0.6605.
    Required: within ±0.03 of 0.74.
    """
    emap, st = emd3488
    model_map = simulate_model_map(st, emap, dmin=3.2)
    mask = envelope_mask(st, emap, envelope_radius(3.2))
    assert envelope_radius(3.2) == 3.2
    cc_mask = pearson(emap.data[mask], model_map.data[mask])
    assert cc_mask == pytest.approx(0.74, abs=0.03)
    assert cc_mask == pytest.approx(0.7236, abs=2e-3)  # regression guard on the measured value
    # the package's metric and the fit check use the same definition (float32 vs float64 sums: 1e-6)
    assert rscc(emap, st, 3.2, model_map=model_map)["cc_mask"] == pytest.approx(cc_mask, abs=1e-6)
    assert check_model_fits_map(st, emap, 3.2) == pytest.approx(cc_mask, abs=1e-6)


# ---------------------------------------------------------------------- exactness and scale
def test_structure_factors_and_absolute_scale(emd3488):
    """The model map's Fourier coefficients are gemmi's directly summed structure factors (electron form
    factors, B, occupancy): numpy's DFT coefficient at index h is conj(F(h)) · N / V.

    Tolerance 1e-3 of max|F|: sampling at rate 1.5 with the refmac blur leaves aliased amplitude from
    |s| ≥ 2/dmin of at most exp(-3/4 · B_total/dmin²) ≤ exp(-6) ≈ 2.5e-3 of the signal per atom (B_total ≥
    8π²/1.1 · (dmin/3)²), and much less summed over incoherent atoms (measured 8e-5); rounding is ~1e-7.
    F(000) (sum × voxel volume) is exact up to gemmi's real-space cutoff (1e-5 of each atom's peak): 1e-3.
    """
    emap, st = emd3488
    model_map = simulate_model_map(st, emap)
    n, V = np.asarray(emap.shape), float(np.prod(emap.box_size))
    dft = np.fft.fftn(model_map.data.astype(np.float64))
    rng = np.random.default_rng(0)
    hkl = rng.integers(-49, 50, size=(200, 3))
    s = np.linalg.norm(hkl / emap.box_size, axis=1)
    hkl = np.vstack([[0, 0, 0], [1, 0, 0], [0, 3, -2], hkl[s < 1 / nyquist_dmin(emap)]])
    ours = np.conj(dft[tuple((hkl % n).T)]) * V / np.prod(n)
    direct = _direct_sf(st, emap, hkl)
    assert np.max(np.abs(ours - direct)) < 1e-3 * np.max(np.abs(direct))
    assert model_map.data.sum() * V / np.prod(n) == pytest.approx(direct[0].real, rel=1e-3)
    # F(000) = Σ occupancy · f_e(0): the sum of the 5-Gaussian electron form factors at s = 0
    f0 = sum(sum(a.element.c4322.a) * a.occ for ch in st[0] for r in ch for a in r)
    assert direct[0].real == pytest.approx(f0, rel=1e-6)


def test_structure_factors_on_anisotropic_shifted_grid(edge_cases):
    """Same check on the nstart=100, anisotropic, axis-order-3,2,1 map (box frame = model - origin)."""
    case = edge_cases["nstart_aniso"]
    emap, st = read_map(case.map), read_model(case.model)
    model_map = simulate_model_map(st, emap)
    n, V = np.asarray(emap.shape), float(np.prod(emap.box_size))
    dft = np.fft.fftn(model_map.data.astype(np.float64))
    idx = np.indices(n).reshape(3, -1).T
    hkl = (idx + n // 2) % n - n // 2
    s = np.linalg.norm(hkl / emap.box_size, axis=1)
    pick = np.random.default_rng(1).choice(np.flatnonzero(s < 1 / nyquist_dmin(emap)), 150, replace=False)
    hkl = hkl[pick]
    ours = np.conj(dft[tuple((hkl % n).T)]) * V / np.prod(n)
    direct = _direct_sf(st, emap, hkl)
    assert np.max(np.abs(ours - direct)) < 1e-3 * np.max(np.abs(direct))  # tolerance: see the test above


def test_band_limit(emd3488):
    """Nothing beyond 1/dmin: the out-of-band power fraction is float32 rounding (~(6e-8)² per voxel), so
    1e-10 is generous; an unfiltered atomic density at this sampling has ~1e-2 there."""
    emap, st = emd3488
    freq = _spectrum_freq(emap)
    for dmin in (None, 3.2):
        model_map = simulate_model_map(st, emap, dmin=dmin)
        d = nyquist_dmin(emap) if dmin is None else dmin
        power = np.abs(np.fft.fftn(model_map.data.astype(np.float64))) ** 2
        beyond = power[freq > (1 + 1e-6) / d].sum() / power.sum()
        assert beyond < 1e-10
        edge = (freq > 0.9 / d) & (freq <= 1 / d)
        assert power[edge].sum() / power.sum() > 1e-4  # the band edge is populated


def test_b_factors_and_blur_removal(emd3488):
    """With one B for all atoms, F_B1(s) / F_B2(s) = exp(-(B1 - B2) s² / 4) exactly; the internal blur differs
    between B = 5 (blur > 0) and B = 60 (blur = 0), so this also checks that the blur is removed exactly.
    Tolerance 1e-3 of max|F| as for the structure factors."""
    emap, st = emd3488
    lo = simulate_model_map(set_uniform_b(st, 5.0), emap)
    hi = simulate_model_map(set_uniform_b(st, 60.0), emap)
    s2 = _spectrum_freq(emap) ** 2
    f_lo = np.fft.fftn(lo.data.astype(np.float64)) * np.exp(-55.0 * s2 / 4)
    f_hi = np.fft.fftn(hi.data.astype(np.float64))
    assert np.max(np.abs(f_lo - f_hi)) < 1e-3 * np.max(np.abs(f_hi))


def test_occupancy_scales_density(edge_cases):
    case = edge_cases["axis321"]
    emap, st = read_map(case.map), read_model(case.model)
    full = simulate_model_map(st, emap).data
    for ch in st[0]:
        for r in ch:
            for a in r:
                a.occ *= 0.5
    half = simulate_model_map(st, emap).data
    # the density is linear in occupancy and nothing else changes: float32 rounding only
    np.testing.assert_allclose(half, 0.5 * full, rtol=0, atol=1e-6 * np.abs(full).max())


# ---------------------------------------------------------------------- frames and grids
def test_shifted_origin_gives_identical_data(emd3488, edge_cases):
    """The same model and grid moved together to a non-zero origin give the same model map."""
    emap, st = emd3488
    ref = simulate_model_map(st, emap)
    moved_map = emap.like(emap.data)
    moved_map.origin = emap.origin + np.array([10.5, -21.0, 137.3])
    moved = simulate_model_map(shift_model(st, [10.5, -21.0, 137.3]), moved_map)
    assert moved.same_grid(moved_map) and moved.axis_order == emap.axis_order
    # positions differ by the rounding of x + o - o (~1e-14 Å); output float32
    np.testing.assert_allclose(moved.data, ref.data, rtol=0, atol=1e-5 * np.abs(ref.data).max())

    case = edge_cases["nstart_aniso"]
    aniso, st2 = read_map(case.map), read_model(case.model)
    ref2 = simulate_model_map(st2, aniso)
    at_zero = aniso.like(aniso.data)
    at_zero.origin = np.zeros(3)
    moved2 = simulate_model_map(shift_model(st2, -aniso.origin), at_zero)
    np.testing.assert_allclose(moved2.data, ref2.data, rtol=0, atol=1e-5 * np.abs(ref2.data).max())
    assert ref2.origin_convention == "nstart" and ref2.axis_order == (3, 2, 1)
    np.testing.assert_array_equal(ref2.origin, aniso.origin)


def test_dmin_finer_than_nyquist_is_refused(emd3488):
    emap, st = emd3488
    with pytest.raises(LocScaleInputError, match="finer than this grid can hold"):
        simulate_model_map(st, emap, dmin=1.5)


def test_atoms_outside_box_are_left_out_with_warning(emd3488):
    emap, st = emd3488
    with pytest.warns(UserWarning, match="lie outside the map box and are left out"):
        simulate_model_map(shift_model(st, (30.0, 0.0, 0.0)), emap, dmin=4.0)


# ---------------------------------------------------------------------- does the model fit?
def test_edge_case_models_fit_their_maps(edge_case):
    """Each edge-case model correlates with its map far above the displaced-model null (null CCs measured
    within ±0.11 of 0; placed models 0.62-0.99) on the ORIGIN-field, 3,2,1 and nstart/anisotropic maps."""
    emap, st, d = edge_case
    cc = check_model_fits_map(st, emap, d)
    assert cc > 0.5


def test_model_shifted_30A_fails_clearly(emd3488, edge_case):
    emap, st = emd3488
    moved = shift_model(st, (30.0, 0.0, 0.0))  # 92 % of its atoms stay in the 105 Å box
    with pytest.raises(LocScaleInputError, match="does not fit this map") as exc:
        check_model_fits_map(moved, emap, 3.2)
    msg = str(exc.value)
    assert emap.path in msg and "5me2.pdb" in msg and "frame" in msg and "fix:" in msg

    emap, st, d = edge_case  # small crops: the displaced model leaves the box
    moved = shift_model(st, (30.0, 0.0, 0.0))
    with pytest.raises(LocScaleInputError, match="does not fit this map|no atom of"):
        check_model_fits_map(moved, emap, d)


def test_bad_resolution_is_refused(emd3488):
    emap, st = emd3488
    with pytest.raises(LocScaleInputError, match="not a positive number"):
        check_model_fits_map(st, emap, 0.0)

"""Exact-mode LocScale (locscale.scaling.exact) against a naive per-voxel implementation, and its invariances.

Inputs: a 40³ crop of the bundled EMD-3488 map and of a model map of 5me2 simulated on the map's grid, with a
mask of a few hundred voxels (a seeded sample over the molecule plus the crop's corners, so padding is
exercised).

Tolerances: the module works in float32 (float32 windows and spectra, float32 shell sums) while the naive
reference works in float64. A float32 FFT of a w³ window has relative rounding ~ε·log2(w³) ≈ 1e-6 of the
window's largest coefficient, and the shell sums add ~ε·√N; so differences stay ~1e-6 of the largest output
value: 1e-5 (relative to the largest |value|) leaves a factor 10 margin. Batch size and thread count only
change the blocking of the float32 shell sums: a few ε, hence 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from naive_reference import naive_exact

from locscale import shells
from locscale.errors import LocScaleInputError
from locscale.padding import box_face_mean, solvent_level
from locscale.scaling import MODES, local_scale, local_scale_exact
from locscale.scaling.engine import (
    MAX_DEFAULT_BATCH,
    MIN_DEFAULT_BATCH,
    bytes_per_window,
    default_batch_size,
    scaled_centre_values,
    window_shell_profiles,
)
from locscale.scaling.schemes import (
    POWER_FLOOR_RELATIVE,
    exact_shell_membership,
    exact_shell_scheme,
    power_floor,
    shell_factors,
)

CROP = (slice(30, 70),) * 3




def rel_max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def full_maps(emd3488_scaling_inputs):
    """The bundled EMD-3488 map and a model map of 5me2 simulated on its grid (Nyquist; conftest.py)."""
    return emd3488_scaling_inputs[:2]


@pytest.fixture(scope="module")
def crop(full_maps):
    """40³ crops and a mask of ~300 voxels: a seeded sample of the voxels where the model map is above its
    median, plus the 8 corners of the crop (their windows reach into the padding)."""
    emap, modelmap = (np.ascontiguousarray(a[CROP]) for a in full_maps)
    rng = np.random.default_rng(3488)
    candidates = np.argwhere(modelmap > np.median(modelmap))
    pick = candidates[rng.choice(len(candidates), 300, replace=False)]
    mask = np.zeros(emap.shape, dtype=bool)
    mask[tuple(pick.T)] = True
    for corner in np.ndindex(2, 2, 2):
        mask[tuple(np.array(corner) * 39)] = True
    return emap, modelmap, mask


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("w", [10, 11, 12, 13])
def test_exact_equals_naive(crop, w):
    emap, modelmap, mask = crop
    out = local_scale_exact(emap, modelmap, w, mask, progress=False)
    ref = naive_exact(emap, modelmap, w, mask)
    assert out.dtype == np.float32 and out.shape == emap.shape
    assert np.all(out[~mask] == 0)
    assert rel_max_diff(out[mask], ref[mask]) < 1e-5


def test_exact_without_mask_scales_every_voxel():
    """mask=None: every voxel, padded with the mean of the box faces (nothing lies outside the mask)."""
    rng = np.random.default_rng(0)
    emap = rng.normal(size=(9, 10, 11)).astype(np.float32)
    modelmap = (emap + 0.5 * rng.normal(size=emap.shape)).astype(np.float32)
    out = local_scale_exact(emap, modelmap, 6, None, progress=False)
    ref = naive_exact(emap, modelmap, 6, np.ones(emap.shape, dtype=bool))
    assert rel_max_diff(out, ref) < 1e-5


def test_invariant_to_map_scale(crop):
    """k_s ∝ 1/c and F_map ∝ c (padding level too), so the output does not change when the map is × c."""
    emap, modelmap, mask = crop
    base = local_scale_exact(emap, modelmap, 12, mask, progress=False)
    for c in (37.5, 1e-3):
        scaled = local_scale_exact(emap * np.float32(c), modelmap, 12, mask, progress=False)
        assert rel_max_diff(scaled[mask], base[mask].astype(np.float64)) < 1e-5


def test_map_equal_to_model_returns_the_map(crop):
    """With map = model map every shell factor is 1 (or 0 on a shell with no power, which holds nothing), so
    the centre value is the input voxel."""
    emap, _, mask = crop
    out = local_scale_exact(emap, emap, 11, mask, progress=False)
    assert rel_max_diff(out[mask], emap[mask].astype(np.float64)) < 1e-5


def test_batch_size_and_workers_do_not_change_the_output(crop):
    emap, modelmap, mask = crop
    base = local_scale_exact(emap, modelmap, 12, mask, progress=False)
    for batch_size, workers in [(1, 1), (7, 2), (64, 1), (1000, 2), (None, 3)]:
        out = local_scale_exact(emap, modelmap, 12, mask, batch_size=batch_size, workers=workers,
                                progress=False)
        assert rel_max_diff(out[mask], base[mask].astype(np.float64)) < 1e-6, (batch_size, workers)


def test_default_batch_fits_the_cache_and_memory():
    """The default batch keeps every thread's buffers inside the last-level cache (down to MIN_DEFAULT_BATCH
    windows) and inside the memory budget; an explicit batch size is used as given."""
    mib = 2**20
    assert default_batch_size(40, 5, workers=2, cache_bytes=mib) == 5
    for w in (12, 24, 32, 40, 48, 64):
        for workers in (1, 2, 16):
            bs = default_batch_size(w, workers=workers, cache_bytes=32 * mib)
            assert 1 <= bs <= MAX_DEFAULT_BATCH
            assert workers * bs * bytes_per_window(w) <= 256 * mib
            if bs > MIN_DEFAULT_BATCH:
                assert workers * bs * bytes_per_window(w) <= 32 * mib, (w, workers, bs)
            if bs < MAX_DEFAULT_BATCH:  # one more window would break a bound
                over = workers * (bs + 1) * bytes_per_window(w)
                assert over > 32 * mib or over > 256 * mib or bs < MIN_DEFAULT_BATCH, (w, workers, bs)
    # w = 40 on 2 threads with a 32 MiB cache: 14 windows (2 × 14 × 1.16 MB), not 32
    assert default_batch_size(40, workers=2, cache_bytes=32 * mib) == 14
    # a tiny memory budget wins over the cache floor
    assert default_batch_size(40, workers=1, memory_bytes=2 * bytes_per_window(40), cache_bytes=mib) == 2


def test_mask_chunks_do_not_change_the_output(crop, monkeypatch):
    """Huge masks are processed in chunks of x planes; chunking only regroups the same windows."""
    import locscale.scaling.engine as ls

    emap, modelmap, mask = crop
    chunks = list(ls.masked_voxel_chunks(mask, 17))
    assert np.array_equal(np.concatenate([pts for _, pts in chunks]), np.argwhere(mask))
    assert all(len(pts) <= 17 or xs.stop - xs.start == 1 for xs, pts in chunks)
    base = local_scale_exact(emap, modelmap, 10, mask, progress=False)
    monkeypatch.setattr(ls, "MASK_CHUNK_VOXELS", 17)
    out = local_scale_exact(emap, modelmap, 10, mask, progress=False)
    assert rel_max_diff(out[mask], base[mask].astype(np.float64)) < 1e-6


def test_scipy_backend_equals_default(crop):
    """Both FFT libraries give the same output (float32 rounding)."""
    emap, modelmap, mask = crop
    w = 12
    pm, pr = (np.pad(a, [(6, 5)] * 3, constant_values=a[~mask].mean()) for a in (emap, modelmap))
    starts = np.argwhere(mask)
    a = scaled_centre_values(pm, pr, starts, exact_shell_scheme(w), progress=False, backend="scipy")
    b = scaled_centre_values(pm, pr, starts, exact_shell_scheme(w), progress=False)
    assert rel_max_diff(a, b) < 1e-6


def test_shell_matrices_cover_every_coefficient_once():
    """Each half-spectrum coefficient counts in exactly one shell, with its rfft multiplicity, so the shell
    powers of exact mode add up to Σ|F|² over the full spectrum (Parseval: w³ Σ x²)."""
    for w in (8, 9, 24):
        dense = np.zeros((w * w * (w // 2 + 1), shells.n_shells(w)))
        for rows, lo, hi, block in exact_shell_scheme(w).profile.blocks:
            dense[rows, lo:hi] = block
        mult = np.broadcast_to(shells.rfft_multiplicity(w), (w, w, w // 2 + 1)).ravel()
        assert np.array_equal(dense.sum(axis=1), mult)
        assert np.count_nonzero(dense, axis=1).max() == 1
        x = np.random.default_rng(w).normal(size=(w, w, w))
        f = np.fft.rfftn(x).ravel()
        assert np.isclose(((np.abs(f) ** 2) @ dense).sum(), w**3 * (x**2).sum(), rtol=1e-10)


def naive_shell_powers(window: np.ndarray) -> np.ndarray:
    w = window.shape[0]
    f = np.fft.fftfreq(w) * w
    shell = np.minimum(np.rint(np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2))
                       .astype(int), w // 2)
    power = np.abs(np.fft.fftn(window.astype(np.float64))) ** 2
    return np.bincount(shell.ravel(), power.ravel(), w // 2 + 1)


@pytest.mark.parametrize("w", [9, 12])
def test_window_shell_profiles_and_dense_matrix(crop, w):
    """The shell powers of the engine (window_shell_profiles) and of the dense shell matrix the torch backend
    uses (exact_shell_membership) equal naive full-FFT shell powers, and the dense matrix applied to
    Re(F·centre phase) gives the naive centre value."""
    emap, modelmap, _ = crop
    starts = np.array([[0, 0, 0], [5, 17, 3], [28, 28, 28], [10, 2, 25]])
    p_map, p_model = window_shell_profiles(emap, modelmap, starts, w=w, progress=False)
    member = exact_shell_membership(w)
    phase = shells.centre_phase(w).ravel()
    for i, (x, y, z) in enumerate(starts):
        win_map = emap[x:x + w, y:y + w, z:z + w]
        win_model = modelmap[x:x + w, y:y + w, z:z + w]
        ref_map, ref_model = naive_shell_powers(win_map), naive_shell_powers(win_model)
        # float32 spectra: relative rounding ~1e-7 per coefficient, sums of positive terms keep it
        assert np.allclose(p_map[i], ref_map, rtol=1e-5)
        assert np.allclose(p_model[i], ref_model, rtol=1e-5)
        spec = np.fft.rfftn(win_map).astype(np.complex64).ravel().astype(np.complex128)
        assert np.allclose(np.abs(spec) ** 2 @ member, ref_map, rtol=1e-5)
        k = np.sqrt(ref_model / ref_map)
        fm = np.fft.fftn(win_map.astype(np.float64))
        fr = np.fft.fftfreq(w) * w
        shell = np.minimum(np.rint(np.sqrt(fr[:, None, None] ** 2 + fr[None, :, None] ** 2
                                           + fr[None, None, :] ** 2)).astype(int), w // 2)
        centre = np.fft.ifftn(fm * k[shell]).real[w // 2, w // 2, w // 2]
        scale = np.abs(win_map).max()
        assert abs(k @ ((spec * phase).real @ member) / w**3 - centre) < 1e-5 * scale


def test_dispatcher(crop):
    emap, modelmap, mask = crop
    exact = local_scale_exact(emap, modelmap, 10, mask, progress=False)
    assert np.array_equal(local_scale(emap, modelmap, 10, mask, progress=False), exact)
    from locscale.scaling import local_scale_compat

    assert np.array_equal(local_scale(emap, modelmap, 10, mask, mode="compat", progress=False),
                          local_scale_compat(emap, modelmap, 10, mask, progress=False))
    assert set(MODES) == {"tapered", "exact", "near-exact", "fast", "compat"}
    with pytest.raises(LocScaleInputError, match="unknown LocScale mode"):
        local_scale(emap, modelmap, 10, mask, mode="sharpest")


def test_dispatcher_routes_to_near_exact_modes(crop):
    from locscale.scaling import local_scale_fast, local_scale_near_exact

    emap, modelmap, mask = crop
    out = local_scale(emap, modelmap, 10, mask, mode="near-exact", stride=1, progress=False)
    ref = local_scale_near_exact(emap, modelmap, 10, mask, stride=1, progress=False)
    assert np.array_equal(out, ref)
    assert np.array_equal(local_scale(emap, modelmap, 10, mask, mode="fast", progress=False),
                          local_scale_fast(emap, modelmap, 10, mask, progress=False))
    with pytest.raises(LocScaleInputError, match="takes no stride"):
        local_scale(emap, modelmap, 10, mask, mode="exact", stride=2, progress=False)
    with pytest.raises(LocScaleInputError, match="no GPU implementation"):
        local_scale(emap, modelmap, 10, mask, mode="compat", device="cuda", progress=False)


def test_one_list_of_modes(repo_root):
    """The CLI's --mode choices and the workflow schema's sharpen.mode enum are the registry's modes."""
    import yaml

    from locscale.cli import _parser

    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert _find_mode_enum(schema) == list(MODES)
    sharpen = _parser()._subparsers._group_actions[0].choices["sharpen"]
    choices = next(a.choices for a in sharpen._actions if a.dest == "mode")
    assert list(choices) == list(MODES)


def _find_mode_enum(node):
    if isinstance(node, dict):
        if "mode" in node and isinstance(node["mode"], dict) and "enum" in node["mode"]:
            return node["mode"]["enum"]
        for v in node.values():
            found = _find_mode_enum(v)
            if found is not None:
                return found
    return None


def test_bad_inputs(crop):
    emap, modelmap, mask = crop
    with pytest.raises(LocScaleInputError, match="one shape"):
        local_scale_exact(emap, modelmap[:-1], 10, mask, progress=False)
    with pytest.raises(LocScaleInputError, match="window"):
        local_scale_exact(emap, modelmap, 1, mask, progress=False)
    with pytest.raises(LocScaleInputError, match="window"):
        local_scale_exact(emap, modelmap, 10.5, mask, progress=False)
    with pytest.raises(LocScaleInputError, match="mask"):
        local_scale_exact(emap, modelmap, 10, mask[:-1], progress=False)
    bad = emap.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(LocScaleInputError, match="NaN"):
        local_scale_exact(bad, modelmap, 10, mask, progress=False)
    with pytest.raises(LocScaleInputError, match="batch_size"):
        local_scale_exact(emap, modelmap, 10, mask, batch_size=0, progress=False)
    empty = local_scale_exact(emap, modelmap, 10, np.zeros_like(mask), progress=False)
    assert not empty.any()


def test_solvent_level_without_outside_voxels_is_the_box_face_mean():
    """Nothing outside the mask: the padding level is the mean of the six faces, exactly 0 for a masked map
    whose faces are 0 (a whole-map mean would put a step at the box edge)."""
    rng = np.random.default_rng(3)
    a = np.zeros((12, 13, 14), dtype=np.float32)
    a[2:-2, 2:-2, 2:-2] = rng.normal(size=(8, 9, 10))
    assert box_face_mean(a) == 0.0 and solvent_level(a, None) == 0.0
    b = rng.normal(size=(12, 13, 14)).astype(np.float32)
    faces = np.ones(b.shape, dtype=bool)
    faces[1:-1, 1:-1, 1:-1] = False
    assert abs(box_face_mean(b) - b[faces].mean(dtype=np.float64)) < 1e-12
    assert solvent_level(b, np.ones(b.shape, dtype=bool)) == box_face_mean(b)
    mask = np.zeros(b.shape, dtype=bool)
    mask[3:9, 3:9, 3:9] = True
    assert abs(solvent_level(b, mask) - b[~mask].mean(dtype=np.float64)) < 1e-12


def test_power_floor_zeroes_empty_shells():
    """A shell whose map power is at or below the floor gets factor 0; above it the ratio is kept."""
    m = np.full((10, 10, 10), 0.5)
    floor = power_floor(m, 8)
    assert floor == pytest.approx(POWER_FLOOR_RELATIVE * 8**6 * 0.25)
    k = shell_factors(np.array([4.0, 4.0, 4.0]), np.array([floor, 2 * floor, 1.0]), "power", floor)
    assert k[0] == 0 and k[1] == pytest.approx(np.sqrt(2 / floor)) and k[2] == 2.0


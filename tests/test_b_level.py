"""The overall B level of a cycle's model (locscale.cycle.b_level) and where servalcat is handed its maps
(locscale.engines.servalcat.servalcat_frame): no servalcat run needed."""

from __future__ import annotations

import warnings

import gemmi
import numpy as np
import pytest
from conftest import fragment

from locscale.cycle.b_level import B_FLOOR, held_level, place_refined_b, sharpen_model_map
from locscale.engines.servalcat import servalcat_frame
from locscale.errors import LocScaleInputError
from locscale.mapio import Map, read_map, write_map
from locscale.metrics import pearson
from locscale.models import atom_positions, b_factors
from locscale.simulate import simulate_model_map


def with_b(st: gemmi.Structure, b) -> gemmi.Structure:
    st = st.clone()
    atoms = [a for ch in st[0] for r in ch for a in r]
    for atom, value in zip(atoms, b, strict=True):
        atom.b_iso = float(value)
    return st


@pytest.fixture(scope="module")
def small(model_5me2) -> gemmi.Structure:
    return fragment(model_5me2, radius=8.0)


def test_a_target_below_the_floor_raises_the_model_and_warns(small):
    """B asked for down to -12 Å²: every B rises by one constant until the lowest sits at the floor, so the
    relative B are kept exactly (no atom clipped), and the warning gives the fraction."""
    n = small[0].count_atom_sites()
    asked = np.linspace(-12.0, 60.0, n)
    pct = 100 * np.count_nonzero(asked <= B_FLOOR) / n
    with pytest.warns(UserWarning, match=rf"sharper than any model can be: at the cycle's B level, {pct:.1f} % of "
                                         r"the atoms would have B ≤ 0\.5 Å² \(lowest -12\.0 Å²\); .* raised by "
                                         r"12\.5 Å²"):
        model, rec = place_refined_b(with_b(small, asked))
    b = b_factors(model)
    assert b.min() == pytest.approx(B_FLOOR, abs=1e-4)
    np.testing.assert_allclose(np.diff(b), np.diff(asked), atol=2e-4)  # float32 storage
    assert np.count_nonzero(b <= B_FLOOR + 1e-3) == 1  # one atom at the floor, none piled up on it
    assert rec["b_model_raise"] == pytest.approx(12.5)
    assert rec["b_below_floor_pct"] == pytest.approx(pct)
    assert rec["b_mean_reference"] == pytest.approx(asked.mean(), abs=1e-4)
    np.testing.assert_allclose(atom_positions(model), atom_positions(small))


def test_a_target_the_model_can_follow_changes_nothing(small):
    asked = np.linspace(10.0, 90.0, small[0].count_atom_sites())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, rec = place_refined_b(with_b(small, asked))
    np.testing.assert_allclose(b_factors(model), asked, atol=1e-4)
    assert rec["b_model_raise"] == 0 and rec["b_below_floor_pct"] == 0 and rec["b_shift_to_level"] == 0


def test_a_held_level_never_ratchets(small):
    """refine.b_level fixed: each later cycle is shifted to cycle 1's reference mean, taken from cycle 1's record.
    Even when the shift takes atoms below the floor (which the old shift clipped at 0, raising the mean and
    handing the raised mean to the next cycle: +6 to +8 Å² per cycle on the EMD-2566 crop), the reference keeps
    exactly cycle 1's mean in every cycle and the model's lowest atom sits at the floor."""
    n = small[0].count_atom_sites()
    rng = np.random.default_rng(0)
    relative = rng.normal(0.0, 15.0, n)
    with pytest.warns(UserWarning, match="sharper than any model"):
        _, first = place_refined_b(with_b(small, 30.0 + relative))
    assert held_level(1, "fixed", first) is None and held_level(3, "free", first) is None
    # cycle 1 takes the level of cycle 0's data-blur record (the unsharpened refinement less the data's blur)
    assert held_level(1, "fixed", None, {"b_mean_reference": 33.0, "b_data": 80.0}) == 33.0
    level = held_level(2, "fixed", first)
    assert level == pytest.approx(first["b_mean_reference"])
    for cycle, engine_mean in enumerate([160.0, 190.0, 205.0, 225.0], start=2):  # the engine's level wanders
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, rec = place_refined_b(with_b(small, engine_mean + relative), level=held_level(cycle, "fixed",
                                                                                                   first))
        assert rec["b_mean_reference"] == pytest.approx(first["b_mean_reference"], abs=1e-3)
        assert b_factors(model).mean() == pytest.approx(first["b_mean_reference"] + rec["b_model_raise"], abs=1e-3)
        assert b_factors(model).min() == pytest.approx(B_FLOOR, abs=1e-3)
    with pytest.raises(LocScaleInputError, match="b_mean_reference"):
        held_level(2, "fixed", {"b_mean": 40.0})
    # the record keeps the level it was asked for, so a cycle holding it with the same refined B makes the same
    # model to the last bit (a later cycle then takes the earlier one's maps: locscale.cycle.steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_1, rec_1 = place_refined_b(with_b(small, 190.0 + relative), level=33.0 + 1 / 3)
        model_2, rec_2 = place_refined_b(with_b(small, 190.0 + relative), level=held_level(2, "fixed", rec_1))
    assert rec_1["b_mean_reference"] == 33.0 + 1 / 3 and rec_2 == rec_1
    np.testing.assert_array_equal(b_factors(model_2), b_factors(model_1))


def test_the_sharpened_model_map_is_the_map_of_the_level_asked_for(small, emd3488_map):
    """A constant B on every atom multiplies the model's structure factors by exp(-B s²/4): the map of the raised
    model sharpened by the raise equals the map of the model at the level asked for."""
    emap = read_map(emd3488_map)
    pos = atom_positions(small)
    lo = np.floor((pos.min(0) - 6 - emap.origin) / emap.voxel_size).astype(int)
    box = Map(emap.data[lo[0]:lo[0] + 32, lo[1]:lo[1] + 32, lo[2]:lo[2] + 32], voxel_size=emap.voxel_size,
              origin=emap.origin + lo * emap.voxel_size)
    asked = np.linspace(5.0, 60.0, small[0].count_atom_sites())
    reference = simulate_model_map(with_b(small, asked), box)
    raised = simulate_model_map(with_b(small, asked + 25.0), box)
    back = sharpen_model_map(raised, 25.0)
    assert pearson(back.data.ravel(), reference.data.ravel()) > 0.9999
    assert np.abs(back.data - reference.data).max() < 1e-3 * np.abs(reference.data).max()
    assert sharpen_model_map(raised, 0.0) is raised


def test_servalcat_is_handed_maps_it_places_right(tmp_path, edge_cases):
    """Servalcat reads nstart only: a map located by the ORIGIN field alone is rewritten located by nstart (same
    voxels, same place); an origin between grid points leaves an offset the model must move by; maps already
    located by nstart are used as they are."""
    case = edge_cases["origin_field"]
    emap = read_map(case.map)
    assert emap.origin_convention == "origin" and np.any(emap.origin)
    (out,), offset = servalcat_frame([case.map], tmp_path)
    assert offset is None and out != str(case.map)
    gm = gemmi.read_ccp4_map(out)  # how servalcat (gemmi) reads it
    np.testing.assert_allclose(np.array(gm.header_i32(5), dtype=float) * emap.voxel_size[0], emap.origin[0],
                               atol=1e-3)
    placed = read_map(out)
    np.testing.assert_allclose(placed.origin, emap.origin, atol=1e-3)
    np.testing.assert_array_equal(placed.data, emap.data)

    off_grid = emap.like(emap.data)
    off_grid.origin = emap.origin + np.array([0.3, -0.2, 0.0])
    write_map(tmp_path / "off_grid.mrc", off_grid)
    (out,), offset = servalcat_frame([tmp_path / "off_grid.mrc"], tmp_path)
    np.testing.assert_allclose(offset, [0.3, -0.2, 0.0], atol=1e-3)
    np.testing.assert_allclose(read_map(out).origin + offset, off_grid.origin, atol=1e-3)

    nstart = edge_cases["nstart_aniso"].map
    assert servalcat_frame([nstart], tmp_path) == ([str(nstart.resolve())], None)


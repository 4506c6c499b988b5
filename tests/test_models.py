"""Atomic models: reading/writing, atom bookkeeping, copies that move atoms, and placement on map grids."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from locscale.errors import LocScaleInputError
from locscale.mapio import read_map
from locscale.metrics import sigma_level
from locscale.models import (
    atom_positions,
    b_factors,
    check_model_in_map,
    contour_level,
    envelope_mask,
    model_mass,
    model_path,
    model_summary,
    read_model,
    residue_table,
    set_uniform_b,
    shake_model,
    shift_b_to_mean,
    shift_model,
    write_model,
)

EDGE = ("origin_field", "axis321", "nstart_aniso")


@pytest.fixture(params=EDGE)
def edge_pair(request, edge_cases):
    case = edge_cases[request.param]
    return read_map(case.map), read_model(case.model)


# ---------------------------------------------------------------------- reading and writing
def test_read_pdb_and_mmcif(model_5me2, model_5ni1):
    st = read_model(model_5me2)
    s = model_summary(st)
    assert (s["atoms"], s["chains"], s["residues"]) == (4468, 4, 570)
    assert s["b_min"] == pytest.approx(23.13, abs=1e-3) and s["b_max"] == pytest.approx(43.13, abs=1e-3)
    assert model_path(st) == str(model_5me2)
    st = read_model(model_5ni1)
    s = model_summary(st)
    assert s["atoms"] == 4579 and s["waters"] == 24  # waters are kept by default
    assert s["b_min"] == pytest.approx(1.0) and s["b_max"] == pytest.approx(316.75)


def test_hydrogens_kept_unless_asked(edge_cases):
    case = edge_cases["origin_field"]  # the fragment carries one riding H per residue
    assert case.hydrogens > 10
    assert model_summary(read_model(case.model))["hydrogens"] == case.hydrogens
    no_h = model_summary(read_model(case.model, remove_hydrogens=True))
    assert no_h["hydrogens"] == 0 and no_h["atoms"] == case.atoms - case.hydrogens


def test_read_model_errors(tmp_path, emd3488_map):
    with pytest.raises(LocScaleInputError, match="model file not found"):
        read_model(tmp_path / "missing.pdb")
    (tmp_path / "empty.pdb").write_text("REMARK nothing here\nEND\n")
    with pytest.raises(LocScaleInputError, match="no atoms") as exc:
        read_model(tmp_path / "empty.pdb")
    assert "empty.pdb" in str(exc.value) and "fix:" in str(exc.value)
    (tmp_path / "broken.cif").write_text("data_x\n_loop garbage ;;\n")
    with pytest.raises(LocScaleInputError, match="not a readable PDB/mmCIF model"):
        read_model(tmp_path / "broken.cif")
    with pytest.raises(LocScaleInputError, match="not a readable PDB/mmCIF model"):
        read_model(emd3488_map)  # a map given as the model
    (tmp_path / "noelem.pdb").write_text(
        "ATOM      1  XX  UNK A   1      10.000  10.000  10.000  1.00 20.00\nEND\n")
    with pytest.raises(LocScaleInputError, match="no known chemical element"):
        read_model(tmp_path / "noelem.pdb")


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_write_model_round_trip(tmp_path, model_5ni1, suffix):
    st = read_model(model_5ni1)
    out = write_model(st, tmp_path / f"model{suffix}")
    back = read_model(out)
    # PDB stores coordinates to 1e-3 Å and B to 1e-2 Å²; mmCIF keeps at least as many digits
    np.testing.assert_allclose(atom_positions(back), atom_positions(st), atol=5e-4 + 1e-9)
    np.testing.assert_allclose(b_factors(back), b_factors(st), atol=5e-3 + 1e-9)
    names = [(r.name, a.name) for ch in st[0] for r in ch for a in r]
    assert names == [(r.name, a.name) for ch in back[0] for r in ch for a in r]
    assert "_locscale" not in out.read_text()  # the source path never reaches an output file
    assert model_path(back) == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model{suffix}"]


def test_write_model_unknown_suffix_writes_nothing(tmp_path, model_5me2):
    with pytest.raises(LocScaleInputError, match="unknown model file type"):
        write_model(read_model(model_5me2), tmp_path / "model.xyz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- atoms, residues, copies
def test_positions_and_residue_table_agree(model_5ni1):
    st = read_model(model_5ni1)
    pos = atom_positions(st)
    table = residue_table(st)
    assert pos.shape == (4579, 3) and int(table["n_atoms"].sum()) == len(pos)
    np.testing.assert_array_equal(np.concatenate(table["atoms"].to_list()), np.arange(len(pos)))
    residues = [(ch.name, res) for ch in st[0] for res in ch]
    for row, (chain, res) in zip(table.itertuples(), residues, strict=True):
        assert (row.chain, row.seqnum, row.name) == (chain, res.seqid.num, res.name)
        np.testing.assert_array_equal(pos[row.atoms], [a.pos.tolist() for a in res])


def test_shift_and_uniform_b_return_copies(model_5me2):
    st = read_model(model_5me2)
    pos, b = atom_positions(st), b_factors(st)
    moved = shift_model(st, (1.5, -2.0, 30.25))
    np.testing.assert_allclose(atom_positions(moved) - pos, np.broadcast_to([1.5, -2.0, 30.25], pos.shape),
                               atol=1e-9)
    uni = set_uniform_b(st, 55.0)
    np.testing.assert_array_equal(b_factors(uni), 55.0)
    np.testing.assert_array_equal(atom_positions(st), pos)  # the input is untouched
    np.testing.assert_array_equal(b_factors(st), b)
    assert model_path(moved) == str(model_5me2)


def test_shift_b_to_mean_keeps_relative_b(model_5me2):
    """refine.b_level fixed: one constant shift, so B differences between atoms are kept exactly (float32 storage)
    and the mean lands on the level; B below the floor is raised to it."""
    st = read_model(model_5me2)
    b = b_factors(st)
    out, shift = shift_b_to_mean(st, b.mean() + 37.5)
    assert shift == pytest.approx(37.5)
    np.testing.assert_allclose(b_factors(out) - b, 37.5, atol=1e-4)
    np.testing.assert_array_equal(b_factors(st), b)  # a copy
    low, shift = shift_b_to_mean(st, 0.0)  # half the atoms would go negative
    assert b_factors(low).min() == 0.0 and b_factors(low).mean() > 0.0
    assert shift == pytest.approx(-b.mean())


def test_shake_model_is_seeded_and_bounded(model_5me2):
    st = read_model(model_5me2)
    pos = atom_positions(st)
    a, b, c = shake_model(st, 0.5, seed=1), shake_model(st, 0.5, seed=1), shake_model(st, 0.5, seed=2)
    np.testing.assert_array_equal(atom_positions(a), atom_positions(b))
    assert not np.allclose(atom_positions(a), atom_positions(c))
    r = np.linalg.norm(atom_positions(a) - pos, axis=1)
    assert r.max() <= 0.5 + 1e-9
    # uniform in the 0.5 Å ball: E[r] = 3/4 · 0.5, s.d. 0.5·sqrt(3/5 - 9/16) = 0.097 Å; over 4468 atoms the
    # mean has s.e. 0.0015 Å -> 5 s.e. = 0.0073 Å. P(max r < 0.49) = (0.98³)^4468 ≈ 0.
    assert r.mean() == pytest.approx(0.375, abs=0.0073)
    assert r.max() > 0.49
    np.testing.assert_array_equal(atom_positions(st), pos)


# ---------------------------------------------------------------------- placement on the map
def test_models_lie_in_their_maps(edge_pair, emd3488_map, model_5me2):
    emap, st = edge_pair
    assert check_model_in_map(st, emap) == pytest.approx(1.0)
    assert check_model_in_map(read_model(model_5me2), read_map(emd3488_map)) == 1.0


def test_model_shifted_30A_is_reported(edge_pair):
    emap, st = edge_pair
    moved = shift_model(st, (30.0, 0.0, 0.0))
    with pytest.raises(LocScaleInputError, match="lie inside the map box") as exc:
        check_model_in_map(moved, emap)
    msg = str(exc.value)
    assert emap.path in msg and model_path(st) in msg
    assert "Å from the box centre" in msg and "moving it by" in msg
    # the suggested shift brings the model's centre to the box centre, i.e. about -30 Å along x
    suggested = np.array([float(v) for v in msg.split("moving it by (")[1].split(")")[0].split(",")])
    centre = atom_positions(moved).mean(axis=0)
    box_centre = emap.origin + (np.asarray(emap.shape) - 1) / 2 * emap.voxel_size
    np.testing.assert_allclose(centre + suggested, box_centre, atol=0.06)  # printed to 0.1 Å


def test_model_in_origin_zero_frame_gets_a_hint(edge_cases):
    """Like 3J5P vs EMD-5778: the model is in the frame of the map as if its origin were 0."""
    emap = read_map(edge_cases["nstart_aniso"].map)
    st = shift_model(read_model(edge_cases["nstart_aniso"].model), -emap.origin)
    with pytest.raises(LocScaleInputError, match=r"shifting it by \+origin"):
        check_model_in_map(st, emap)


def _brute_force_envelope(structure, like, radius):
    grid = like.origin + np.indices(like.shape).reshape(3, -1).T * like.voxel_size
    dist, _ = cKDTree(atom_positions(structure)).query(grid, distance_upper_bound=radius + 1.0)
    return dist.reshape(like.shape)


def test_envelope_mask_is_exact(edge_pair):
    """Voxels within `radius` of an atom, for non-zero origins, anisotropic voxels and axis order 3,2,1."""
    emap, st = edge_pair
    for radius in (2.0, 3.4):
        mask = envelope_mask(st, emap, radius)
        dist = _brute_force_envelope(st, emap, radius)
        decided = np.abs(dist - radius) > 1e-6  # a voxel exactly on the sphere may go either way
        np.testing.assert_array_equal(mask[decided], (dist <= radius)[decided])
        assert mask.any() and not mask.all()


def test_envelope_mask_no_wrap_for_atoms_outside(edge_cases):
    emap = read_map(edge_cases["nstart_aniso"].map)
    st = shift_model(read_model(edge_cases["nstart_aniso"].model), (12.0, 0.0, 0.0))
    mask = envelope_mask(st, emap, 3.0)
    dist = _brute_force_envelope(st, emap, 3.0)
    decided = np.abs(dist - 3.0) > 1e-6
    np.testing.assert_array_equal(mask[decided], (dist <= 3.0)[decided])
    outside = atom_positions(st)[:, 0] > emap.origin[0] + emap.box_size[0]
    assert outside.sum() > 10  # atoms beyond the +x face: a periodic fill would mark voxels at the -x face


def test_gemmi_atoms_count_matches(model_5me2):
    st = read_model(model_5me2)
    plain = gemmi.read_structure(str(model_5me2))
    assert len(atom_positions(st)) == st[0].count_atom_sites() == plain[0].count_atom_sites()


def test_model_mass(model_5me2):
    st = gemmi.read_structure(str(model_5me2))
    n_heavy = st[0].count_atom_sites()
    # gemmi's own sum of atomic weights (occupancy 1 throughout) + one hydrogen (1.008 Da) per heavy atom
    assert model_mass(st) == pytest.approx(st[0].calculate_mass() + 1.008 * n_heavy, rel=1e-9)
    # human HbA tetramer with 4 haems is 64.46 kDa; 5me2 lacks a few residues and the hydrogen estimate is
    # ±3 %: within 5 %
    assert model_mass(st) == pytest.approx(64458, rel=0.05)


def test_contour_level_on_emd3488(emd3488_map, model_5me2):
    emap = read_map(emd3488_map)
    st = gemmi.read_structure(str(model_5me2))
    level, volume = contour_level(emap, st)
    voxel_volume = float(np.prod(emap.voxel_size))
    assert volume == pytest.approx(model_mass(st) * 1.21, rel=1e-12)
    enclosed = np.count_nonzero(emap.data >= level) * voxel_volume
    # the k-th highest voxel: the enclosed volume is the target to half a voxel (rounding of k), plus ties
    assert abs(enclosed - volume) <= voxel_volume
    # a sensible level: most atoms sit inside the contour (measured: 90.8 % of 5me2's atoms at nearest
    # voxels), and it lies well above the deposited map's exact-zero solvent (71 % of the voxels)
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    idx = np.rint(emap.frac_to_xyz_index(xyz)).astype(int)
    inside = np.mean(emap.data[idx[:, 0], idx[:, 1], idx[:, 2]] >= level)
    assert inside > 0.85
    assert level > 0
    assert sigma_level(emap.data, 3.0) == pytest.approx(
        float(emap.data.astype(np.float64).mean() + 3 * emap.data.astype(np.float64).std()), rel=1e-9)
    nz = emap.data != 0
    assert sigma_level(emap.data, 1.0, nz) == pytest.approx(
        float(emap.data[nz].astype(np.float64).mean() + emap.data[nz].astype(np.float64).std()), rel=1e-9)

"""Map I/O: every header convention read into one frame, written back so it overlays the input.

Headers: the bundled EMD-3488 map (nstart 0, axes 1,2,3) and the three edge cases of deposited maps,
synthesised in conftest.py (ORIGIN field in Å with ISPG 0; axes 3,2,1; nstart 100 with anisotropic voxels and
axes 3,2,1). Synthetic headers are written with mrcfile so that every axis permutation, both origin
conventions, data modes int8/int16/uint16 and image stacks are covered with known answers.
"""

from __future__ import annotations

import itertools
import warnings

import gemmi
import mrcfile
import numpy as np
import pytest

from locscale.errors import LocScaleInputError
from locscale.mapio import Map, read_half_maps, read_map, write_map
from locscale.outputs import atomic_output

EDGE = ("origin_field", "axis321", "nstart_aniso")


@pytest.fixture(params=["emd3488", *EDGE])
def real_map_path(request, emd3488_map):
    if request.param == "emd3488":
        return emd3488_map
    return request.getfixturevalue("edge_cases")[request.param].map


def _raw_header(path):
    with mrcfile.open(path, permissive=True) as mrc:
        h = mrc.header
        return {
            "axes": (int(h.mapc), int(h.mapr), int(h.maps)),
            "nstart": (int(h.nxstart), int(h.nystart), int(h.nzstart)),
            "origin": np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)]),
            "angles": np.array([float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma)]),
            "data": np.array(mrc.data),
        }


# ---------------------------------------------------------------------- deposited-map headers
def test_real_headers_are_read_as_documented(emd3488_map, edge_cases):
    m = read_map(emd3488_map)
    assert m.shape == (100, 100, 100) and m.axis_order == (1, 2, 3) and m.origin_convention == "nstart"
    np.testing.assert_allclose(m.voxel_size, 1.05, rtol=1e-6)
    np.testing.assert_array_equal(m.origin, 0)

    for name in EDGE:
        case = edge_cases[name]
        m = read_map(case.map)
        assert m.shape == case.shape and m.axis_order == case.axis_order, name
        assert m.origin_convention == case.convention, name
        # header values are float32: voxel = cell / MX to ~1e-7 relative, ORIGIN (Å) to ~1e-7 of ~400 Å
        np.testing.assert_allclose(m.voxel_size, case.voxel_size, rtol=1e-6)
        np.testing.assert_allclose(m.origin, case.origin, rtol=1e-6, atol=1e-4)
    assert read_map(edge_cases["origin_field"].map).origin_convention == "origin"
    aniso = read_map(edge_cases["nstart_aniso"].map)
    assert not aniso.is_isotropic
    np.testing.assert_allclose(aniso.origin, 100 * aniso.voxel_size, rtol=1e-6)  # origin = nstart voxels


def test_round_trip_real_headers(real_map_path, tmp_path):
    """read → write → read: identical data, geometry and header convention; the file overlays the input."""
    a = read_map(real_map_path)
    out = write_map(tmp_path / f"rt_{real_map_path.name}", a)
    b = read_map(out)
    np.testing.assert_array_equal(b.data, a.data)
    # header values are float32: voxel = cell/MX to ~1e-7 relative, ORIGIN to ~1e-7 relative of ~400 Å
    np.testing.assert_allclose(b.voxel_size, a.voxel_size, rtol=1e-6)
    np.testing.assert_allclose(b.origin, a.origin, rtol=0, atol=1e-4)
    assert b.axis_order == a.axis_order and b.origin_convention == a.origin_convention
    ra, rb = _raw_header(real_map_path), _raw_header(out)
    assert rb["axes"] == ra["axes"] and rb["nstart"] == ra["nstart"]
    np.testing.assert_allclose(rb["origin"], ra["origin"], atol=1e-4)
    np.testing.assert_array_equal(rb["data"], ra["data"])  # same file-order array: same axis convention


def test_agrees_with_gemmi_for_maps_without_nstart(emd3488_map, edge_cases):
    """gemmi's setup() transposes to [x, y, z] too; for nstart = 0 its grid is exactly our array."""
    for path in (emd3488_map, edge_cases["origin_field"].map, edge_cases["axis321"].map):
        ours = read_map(path)
        ccp4 = gemmi.read_ccp4_map(str(path))
        ccp4.setup(float("nan"))
        theirs = np.array(ccp4.grid, copy=True)
        np.testing.assert_array_equal(theirs, ours.data)
        np.testing.assert_allclose(ccp4.grid.spacing, ours.voxel_size, rtol=1e-6)


def test_require_isotropic_on_anisotropic_map(edge_cases):
    m = read_map(edge_cases["nstart_aniso"].map)
    with pytest.raises(LocScaleInputError, match="voxel sizes differ.*LocScale needs cubic voxels") as exc:
        m.require_isotropic("LocScale")
    assert "nstart_aniso.mrc" in str(exc.value) and "resample" in str(exc.value)
    with pytest.raises(LocScaleInputError, match="voxel sizes differ"):
        _ = m.apix


@pytest.mark.parametrize("mode", ["int8", "uint16"])
def test_int8_and_uint16_modes(odd_mode_maps, mode):
    path, values = odd_mode_maps[mode]
    with mrcfile.open(path) as mrc:
        assert int(mrc.header.mode) == {"int8": 0, "uint16": 6}[mode]
    m = read_map(path)
    assert m.data.dtype == np.float32
    np.testing.assert_array_equal(m.data, values)


def test_image_stack_is_refused_as_a_stack(image_stack):
    """A stack of 2-D images (ISPG 0, MZ 1) was told to "resample to cubic voxels"."""
    with pytest.raises(LocScaleInputError, match="stack of 10 2-D images") as exc:
        read_map(image_stack)
    assert "resample" not in str(exc.value) and "fix:" in str(exc.value)


def test_image_stack_with_full_sampling_but_one_section_cell_is_a_stack(tmp_path):
    """The same stack written with MZ = NZ but a z cell of one pixel (what gave anisotropic voxels before)."""
    from conftest import write_mrc

    data = np.random.default_rng(1).standard_normal((20, 20, 10)).astype(np.float32)
    path = write_mrc(tmp_path / "stack.mrc", data, 1.5, ispg=0, full_z_cell=False)
    with pytest.raises(LocScaleInputError, match="2-D images"):
        read_map(path)
    # a volume written with ISPG 0 and a full z cell (as some programs do) is still a volume
    vol = write_mrc(tmp_path / "vol.mrc", data, 1.5, ispg=0)
    assert read_map(vol).shape == (20, 20, 10)


# ---------------------------------------------------------------------- synthetic headers
SHAPE = (5, 6, 7)  # x, y, z: all different, so any mix-up of axes changes the shape
VOXEL = np.array([1.0, 1.5, 2.0])


def _xyz_array(dtype=np.float32):
    i, j, k = np.indices(SHAPE)
    return (100 * i + 10 * j + k).astype(dtype)


def _write_raw(path, xyz, axes, *, nstart_xyz=(0, 0, 0), origin=(0.0, 0.0, 0.0), angles=(90.0, 90.0, 90.0),
               voxel=VOXEL):
    """An MRC file with the given MAPC/MAPR/MAPS holding the [x, y, z] array `xyz`."""
    # file array dims are (sections, rows, columns) = axes (maps, mapr, mapc)
    file_arr = np.ascontiguousarray(np.transpose(xyz, (axes[2] - 1, axes[1] - 1, axes[0] - 1)))
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(file_arr)
        h = mrc.header
        h.mapc, h.mapr, h.maps = axes
        h.mx, h.my, h.mz = xyz.shape  # MX/MY/MZ are along x, y, z
        h.cella.x, h.cella.y, h.cella.z = (float(c) for c in np.array(xyz.shape) * voxel)
        h.cellb.alpha, h.cellb.beta, h.cellb.gamma = angles
        h.nxstart, h.nystart, h.nzstart = (int(nstart_xyz[a - 1]) for a in axes)  # stored in c, r, s order
        h.origin.x, h.origin.y, h.origin.z = origin
    return path


@pytest.mark.parametrize("axes", list(itertools.permutations((1, 2, 3))))
@pytest.mark.parametrize("convention", ["nstart", "origin"])
def test_synthetic_axis_orders_and_origin_conventions(tmp_path, axes, convention):
    xyz = _xyz_array()
    if convention == "nstart":
        nstart, origin_field = (3, -4, 5), (0.0, 0.0, 0.0)
        expected_origin = np.array([3, -4, 5]) * VOXEL
    else:
        nstart, origin_field = (0, 0, 0), (12.5, -3.25, 7.0)
        expected_origin = np.array(origin_field)
    path = _write_raw(tmp_path / "syn.mrc", xyz, axes, nstart_xyz=nstart, origin=origin_field)
    m = read_map(path)
    np.testing.assert_array_equal(m.data, xyz)
    np.testing.assert_allclose(m.voxel_size, VOXEL, rtol=1e-6)
    np.testing.assert_allclose(m.origin, expected_origin, atol=1e-5)
    assert m.axis_order == axes and m.origin_convention == convention
    # write back: same axis order, same origin convention, same raw header fields
    out = write_map(tmp_path / "out.mrc", m)
    raw_in, raw_out = _raw_header(path), _raw_header(out)
    assert raw_out["axes"] == axes and raw_out["nstart"] == raw_in["nstart"]
    np.testing.assert_allclose(raw_out["origin"], raw_in["origin"], atol=1e-6)
    np.testing.assert_array_equal(raw_out["data"], raw_in["data"])
    if convention == "origin":  # gemmi ignores ORIGIN but must agree on the array for every axis order
        ccp4 = gemmi.read_ccp4_map(str(path))
        ccp4.setup(float("nan"))
        np.testing.assert_array_equal(np.array(ccp4.grid, copy=True), m.data)


def test_nstart_wins_over_disagreeing_origin_field(tmp_path):
    path = _write_raw(tmp_path / "both.mrc", _xyz_array(), (1, 2, 3), nstart_xyz=(2, 2, 2),
                      origin=(50.0, 0, 0))
    with pytest.warns(UserWarning, match="disagree; using nstart"):
        m = read_map(path)
    np.testing.assert_allclose(m.origin, 2 * VOXEL)


def test_int16_mode1_data(tmp_path):
    xyz = _xyz_array(np.int16)
    path = _write_raw(tmp_path / "int16.mrc", xyz, (2, 3, 1))
    with mrcfile.open(path) as mrc:
        assert int(mrc.header.mode) == 1
    m = read_map(path)
    assert m.data.dtype == np.float32
    np.testing.assert_array_equal(m.data, xyz.astype(np.float32))


def test_non_orthogonal_cell_is_refused(tmp_path):
    path = _write_raw(tmp_path / "hex.mrc", _xyz_array(), (1, 2, 3), angles=(90.0, 90.0, 120.0))
    with pytest.raises(LocScaleInputError, match="non-orthogonal cell") as exc:
        read_map(path)
    assert "hex.mrc" in str(exc.value) and "fix:" in str(exc.value)


def test_nan_data_is_refused(tmp_path):
    xyz = _xyz_array()
    xyz[1, 2, 3] = np.nan
    path = _write_raw(tmp_path / "nan.mrc", xyz, (1, 2, 3))
    with pytest.raises(LocScaleInputError, match="NaN or infinite"):
        read_map(path)


@pytest.mark.parametrize("content", [b"", b"this is not a map\n" * 20, bytes(range(256)) * 8],
                         ids=["empty", "text", "binary"])
def test_garbage_file_is_refused(tmp_path, content):
    path = tmp_path / "garbage.mrc"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LocScaleInputError, match="garbage.mrc") as exc:
            read_map(path)
    assert "fix:" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(LocScaleInputError, match="file not found"):
        read_map(tmp_path / "nope.mrc")


# ---------------------------------------------------------------------- half maps and atomic writes
def test_half_map_grid_mismatch(tmp_path):
    xyz = _xyz_array()
    # two independent halves (noise only: a copy of one map is refused, see test_checks)
    n1, n2 = (np.random.default_rng(seed).normal(size=xyz.shape).astype(np.float32) for seed in (1, 2))
    h1 = _write_raw(tmp_path / "h1.mrc", n1, (1, 2, 3))
    same = _write_raw(tmp_path / "h2.mrc", n2, (3, 2, 1))  # other axis order, same grid: fine
    a, b = read_half_maps(h1, same)
    np.testing.assert_array_equal(a.data, n1)
    np.testing.assert_array_equal(b.data, n2)
    shifted = _write_raw(tmp_path / "h2_shifted.mrc", xyz, (1, 2, 3), origin=(1.0, 0.0, 0.0))
    with pytest.raises(LocScaleInputError, match="half maps are not on the same grid") as exc:
        read_half_maps(h1, shifted)
    assert "h1.mrc" in str(exc.value) and "h2_shifted.mrc" in str(exc.value)
    other_voxel = _write_raw(tmp_path / "h2_voxel.mrc", xyz, (1, 2, 3), voxel=VOXEL * 1.01)
    with pytest.raises(LocScaleInputError, match="not on the same grid"):
        read_half_maps(h1, other_voxel)


def test_atomic_write_leaves_no_file_on_failure(tmp_path):
    m = Map(_xyz_array(), voxel_size=VOXEL)
    target = tmp_path / "out.mrc"
    with pytest.raises(TypeError):  # fails inside the write, after the temporary file was created
        write_map(target, m, label=12345)
    assert list(tmp_path.iterdir()) == []
    # an existing output is left untouched by a failed rewrite
    write_map(target, m)
    before = target.read_bytes()
    with pytest.raises(TypeError):
        write_map(target, m, data=m.data + 1, label=12345)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]
    # the same guarantee for other outputs
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "table.tsv") as tmp:
            tmp.write_text("half a table")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]


def test_gz_name_is_written_gzip_compressed(tmp_path, emd3488_map):
    """`-o out.mrc.gz` gives a gzip file (not an uncompressed one with a .gz name) that reads back identical."""
    import gzip

    src = read_map(emd3488_map)
    out = write_map(tmp_path / "out.mrc.gz", src)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    plain = write_map(tmp_path / "out.mrc", src)
    assert len(gzip.decompress(out.read_bytes())) == plain.stat().st_size  # the same MRC file inside
    back = read_map(out)
    np.testing.assert_array_equal(back.data, src.data)
    np.testing.assert_allclose(back.origin, src.origin)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc", "out.mrc.gz"]

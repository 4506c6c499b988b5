"""Shared fixtures: the bundled EMD-3488 example, synthetic edge-case maps, and the monomer library.

Everything the suite needs is in the repository (tests/data/ holds a compact copy of LocScale 2.4.1's output on
EMD-3488) or is synthesised here, so a fresh clone runs every test; only GPU, PHENIX and SLURM tests may skip.
Inputs several test modules share are session-scoped fixtures here (the bundled files, the chain-A crop, the
scaling inputs of the whole map, the edge cases): build them once, never change them (copy first).

Edge cases (:func:`edge_cases`): the header conventions real deposited maps use, written with mrcfile directly
(not with ``locscale.mapio``, which they test) around a compact fragment of 5ME2 chain A whose model map (plus
seeded noise) is the density:

* ``origin_field``: grid placed only by the MRC2014 ORIGIN field (Å), nstart 0, ISPG 0 with a full z cell
  (as EMD-2566 crops are written), axes 1,2,3, and a model with explicit hydrogens;
* ``axis321``: axis order MAPC/MAPR/MAPS = 3,2,1, origin 0 (as EMD-5778 crops);
* ``nstart_aniso``: nstart = (100, 100, 100) grid units, anisotropic voxels, axes 3,2,1.

Other synthetic maps: data modes int8 and uint16, and an image stack (ISPG 0, MZ 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "emd3488"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def emd3488_map() -> Path:
    return EXAMPLE / "emd_3488.mrc"


@pytest.fixture(scope="session")
def model_5me2() -> Path:
    return EXAMPLE / "5me2.pdb"


@pytest.fixture(scope="session")
def model_5ni1() -> Path:
    return EXAMPLE / "5ni1_updated.cif"


@pytest.fixture(scope="session")
def emd3488_scaling_inputs(emd3488_map, model_5me2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map, model map, mask) arrays for the LocScale modes on the whole bundled map: EMD-3488, the model map of
    5ME2 simulated on its grid, and the 3 Å envelope of 5ME2's atoms. Read-only: copy before changing them."""
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model
    from locscale.simulate import simulate_model_map

    emap = read_map(emd3488_map)
    st = read_model(model_5me2)
    arrays = (emap.data, simulate_model_map(st, emap).data, envelope_mask(st, emap, 3.0))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def crop_example(map_path, model_path, dest: Path, chains=("A",), margin: float = 6.0) -> tuple[Path, Path]:
    """A real crop of the bundled EMD-3488 map around some chains of 5ME2 (with the library's map/model I/O):
    the box of the chains' atoms ± `margin` Å, even-sized, keeping the map's grid (origin moves with the crop)."""
    from locscale.mapio import Map, read_map, write_map
    from locscale.models import atom_positions, read_model, write_model

    dest.mkdir(parents=True, exist_ok=True)
    emap = read_map(map_path)
    st = read_model(model_path)
    for name in [ch.name for ch in st[0]]:
        if name not in chains:
            st[0].remove_chain(name)
    pos = atom_positions(st)
    lo = np.maximum(np.floor((pos.min(0) - margin - emap.origin) / emap.voxel_size).astype(int), 0)
    hi = np.ceil((pos.max(0) + margin - emap.origin) / emap.voxel_size).astype(int) + 1
    size = hi - lo
    hi = np.minimum(lo + size + size % 2, emap.shape)
    crop = Map(emap.data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], voxel_size=emap.voxel_size,
               origin=emap.origin + lo * emap.voxel_size, axis_order=emap.axis_order,
               origin_convention=emap.origin_convention)
    write_map(dest / "crop.mrc", crop, label="crop of EMD-3488")
    write_model(st, dest / "crop.cif")
    return dest / "crop.mrc", dest / "crop.cif"


@pytest.fixture(scope="session")
def crop(tmp_path_factory, emd3488_map, model_5me2) -> tuple[Path, Path]:
    """(map, model): the crop of EMD-3488 around chain A of 5ME2 (56 × 50 × 48 voxels, 1 100 atoms) that the
    refinement, building, validation and workflow tests share. Read-only: copy before changing it."""
    return crop_example(emd3488_map, model_5me2, tmp_path_factory.mktemp("crop"))


def coot_monomer_library() -> Path | None:
    """The CCP4 monomer library inside the installed coot-headless-api wheel, or None if it is not installed."""
    from locscale.tools.restraints import installed_monlib

    return installed_monlib()


@pytest.fixture(scope="session")
def monlib() -> Path:
    """The monomer library of coot-headless-api==1.3.3rc1 (the `workflow` extra; tests need it installed)."""
    path = coot_monomer_library()
    if path is None:
        raise RuntimeError("coot-headless-api is not installed or has no monomer library: "
                           "pip install -e '.[test]' (the workflow extra pins coot-headless-api==1.3.3rc1)")
    return path


# ---------------------------------------------------------------------- synthetic maps
def write_mrc(path: Path, data_xyz: np.ndarray, voxel_size, *, origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0),
              axis_order=(1, 2, 3), dtype=np.float32, ispg: int = 1, full_z_cell: bool = True) -> Path:
    """Write `data_xyz` (indexed [x, y, z]) as an MRC file with exactly these header values, with mrcfile.

    The file array's dimensions are (sections, rows, columns) = axes (MAPS, MAPR, MAPC); nstart is given in
    x, y, z order and stored in column, row, section order; the ORIGIN field is x, y, z in Å."""
    voxel = np.broadcast_to(np.asarray(voxel_size, float), (3,))
    file_axes = (axis_order[2], axis_order[1], axis_order[0])
    file_data = np.ascontiguousarray(np.transpose(np.asarray(data_xyz), [a - 1 for a in file_axes]).astype(dtype))
    shape = np.asarray(data_xyz.shape)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(file_data)
        h = mrc.header
        h.mapc, h.mapr, h.maps = axis_order
        h.mx, h.my, h.mz = (int(n) for n in shape)
        cell = shape * voxel
        h.cella.x, h.cella.y, h.cella.z = (float(c) for c in cell)
        h.cellb.alpha = h.cellb.beta = h.cellb.gamma = 90.0
        h.nxstart, h.nystart, h.nzstart = (int(nstart[a - 1]) for a in axis_order)
        h.origin.x, h.origin.y, h.origin.z = (float(o) for o in origin)
        h.ispg = ispg
        if not full_z_cell:
            h.cella.z = float(voxel[2])
    return Path(path)


@dataclass
class EdgeCase:
    map: Path
    model: Path
    resolution: float
    voxel_size: np.ndarray
    origin: np.ndarray          # Å, x y z
    shape: tuple[int, int, int]  # x y z
    axis_order: tuple[int, int, int]
    convention: str
    hydrogens: int = 0
    atoms: int = 0


def fragment(model_path: Path, radius: float = 12.0) -> gemmi.Structure:
    """Residues of 5ME2 chain A within `radius` Å (CA) of the chain's centre: a compact ~25 Å piece."""
    from locscale.models import read_model

    st = read_model(model_path)
    for name in [ch.name for ch in st[0]]:
        if name != "A":
            st[0].remove_chain(name)
    ch = st[0]["A"]
    centre = np.mean([at.pos.tolist() for res in ch for at in res], axis=0)
    for i in reversed(range(len(ch))):
        ca = ch[i].find_atom("CA", "*")
        if ca is None or np.linalg.norm(np.array(ca.pos.tolist()) - centre) > radius:
            del ch[i]
    return st


def add_hydrogens(st: gemmi.Structure) -> int:
    """Add one riding H to every residue's N (1.0 Å along +z); returns how many."""
    n = 0
    for res in st[0]["A"]:
        at = res.find_atom("N", "*")
        if at is None:
            continue
        h = gemmi.Atom()
        h.name, h.element = "H", gemmi.Element("H")
        h.pos = gemmi.Position(at.pos.x, at.pos.y, at.pos.z + 1.0)
        h.b_iso, h.occ = at.b_iso, 1.0
        res.add_atom(h)
        n += 1
    return n


def _place(st: gemmi.Structure, origin, shape, voxel) -> gemmi.Structure:
    from locscale.models import atom_positions, shift_model

    centre = np.asarray(origin) + (np.asarray(shape) - 1) / 2 * np.asarray(voxel)
    return shift_model(st, centre - atom_positions(st).mean(axis=0))


def _density(st, shape, voxel, origin, resolution, seed) -> np.ndarray:
    from locscale.mapio import Map
    from locscale.simulate import simulate_model_map

    like = Map(np.zeros(shape, np.float32), voxel_size=voxel, origin=origin)
    data = simulate_model_map(st, like, dmin=resolution).data
    rng = np.random.default_rng(seed)
    return data + 0.2 * data.std() * rng.standard_normal(data.shape).astype(np.float32)


EDGE_SPECS = {
    # name: shape (x, y, z), voxel (Å), origin convention, origin or nstart, axis order, resolution
    "origin_field": dict(shape=(35, 40, 37), voxel=(1.34,) * 3, origin=(356.44, 155.44, 159.46), nstart=None,
                         axes=(1, 2, 3), d=3.2, ispg=0),
    "axis321": dict(shape=(27, 34, 30), voxel=(1.2156,) * 3, origin=(0.0, 0.0, 0.0), nstart=None, axes=(3, 2, 1),
                    d=3.4, ispg=1),
    "nstart_aniso": dict(shape=(40, 44, 42), voxel=(0.747, 0.723, 0.737), origin=None, nstart=(100, 100, 100),
                         axes=(3, 2, 1), d=3.0, ispg=1),
}


@pytest.fixture(scope="session")
def edge_cases(tmp_path_factory, model_5me2) -> dict[str, EdgeCase]:
    """The three header conventions of real deposited maps, each with a model that fits it (see module doc)."""
    from locscale.models import write_model

    folder = tmp_path_factory.mktemp("edge_cases")
    base = fragment(model_5me2)
    cases = {}
    for i, (name, sp) in enumerate(EDGE_SPECS.items()):
        voxel = np.asarray(sp["voxel"])
        if sp["nstart"] is not None:
            nstart = np.asarray(sp["nstart"])
            origin = nstart * voxel
        else:
            nstart, origin = np.zeros(3, int), np.asarray(sp["origin"])
        st = base.clone()
        n_h = add_hydrogens(st) if name == "origin_field" else 0
        st = _place(st, origin, sp["shape"], voxel)
        data = _density(st, sp["shape"], voxel, origin, sp["d"], seed=i)
        map_path = write_mrc(folder / f"{name}.mrc", data, voxel, origin=origin if sp["nstart"] is None else (0, 0, 0),
                             nstart=nstart, axis_order=sp["axes"], ispg=sp["ispg"])
        model_path = write_model(st, folder / f"{name}.pdb")
        cases[name] = EdgeCase(map_path, model_path, sp["d"], voxel, origin, tuple(sp["shape"]), sp["axes"],
                               "nstart" if sp["nstart"] is not None or not np.any(origin) else "origin",
                               hydrogens=n_h, atoms=st[0].count_atom_sites())
    return cases


@pytest.fixture(scope="session")
def odd_mode_maps(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """Maps in data modes 0 (int8) and 6 (uint16), with the values written (x, y, z order)."""
    folder = tmp_path_factory.mktemp("modes")
    rng = np.random.default_rng(3)
    out = {}
    for name, dtype, lo, hi in (("int8", np.int8, -128, 128), ("uint16", np.uint16, 0, 65536)):
        data = rng.integers(lo, hi, size=(6, 7, 8)).astype(dtype)
        out[name] = (write_mrc(folder / f"{name}.mrc", data, 1.1, dtype=dtype), data.astype(np.float32))
    return out


@pytest.fixture(scope="session")
def image_stack(tmp_path_factory) -> Path:
    """A stack of 10 images of 20 × 20 pixels: ISPG 0, MZ 1, z cell one pixel (MRC2014 image stack)."""
    path = tmp_path_factory.mktemp("stack") / "stack.mrcs"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(0).standard_normal((10, 20, 20)).astype(np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = 1.5
    return path

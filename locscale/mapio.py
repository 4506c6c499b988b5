"""Cryo-EM map I/O: one internal frame for every MRC/CCP4 header convention.

Internal frame (used by every module of this package):

* ``Map.data`` is a float32 array indexed ``[x, y, z]`` (gemmi's order), whatever the file's axis order
  (MAPC/MAPR/MAPS) was;
* voxel ``[i, j, k]`` sits at ``origin + (i, j, k) * voxel_size`` in Å, the frame the atomic model lives in;
* ``origin`` comes from ``nxstart/nystart/nzstart`` (grid units) when they are non-zero, otherwise from the
  MRC2014 ``ORIGIN`` field (Å) -- the rule ChimeraX follows, and the one gemmi follows when ORIGIN is 0.

Maps are written back with the source file's axis order and origin convention, so an output overlays its
input map and model in ChimeraX and Coot. Every write goes to a temporary name in the target folder and is
renamed into place only when complete.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import mrcfile
import numpy as np

from .errors import LocScaleInputError
from .outputs import atomic_output

_FLOAT_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}


@dataclass
class Map:
    """A 3-D density on a regular orthogonal grid, in the package's internal frame (see module docstring)."""

    data: np.ndarray
    voxel_size: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    axis_order: tuple[int, int, int] = (1, 2, 3)
    origin_convention: str = "nstart"  # "nstart" (grid units) or "origin" (MRC2014 ORIGIN field, Å)
    path: str | None = None

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 3:
            raise ValueError(f"a map must be 3-D, got shape {self.data.shape}")
        self.voxel_size = np.broadcast_to(np.asarray(self.voxel_size, dtype=float), (3,)).copy()
        self.origin = np.broadcast_to(np.asarray(self.origin, dtype=float), (3,)).copy()
        if self.origin_convention not in ("nstart", "origin"):
            raise ValueError(f"origin_convention must be 'nstart' or 'origin', not {self.origin_convention!r}")

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def box_size(self) -> np.ndarray:
        """Edge lengths of the box in Å (x, y, z)."""
        return np.asarray(self.shape) * self.voxel_size

    @property
    def is_isotropic(self) -> bool:
        return bool(np.allclose(self.voxel_size, self.voxel_size[0], rtol=1e-4, atol=0))

    @property
    def apix(self) -> float:
        """The (isotropic) voxel size in Å; raises if the voxels are anisotropic."""
        self.require_isotropic("this operation")
        return float(self.voxel_size[0])

    def require_isotropic(self, operation: str) -> None:
        if not self.is_isotropic:
            vs = ", ".join(f"{v:.4f}" for v in self.voxel_size)
            raise LocScaleInputError(
                f"voxel sizes differ between axes ({vs} Å); {operation} needs cubic voxels",
                "resample the map to cubic voxels first (e.g. ChimeraX: 'volume resample #1 spacing "
                f"{min(self.voxel_size):.4f}', then 'save resampled.mrc model #2')",
                self.path,
            )

    def like(self, data: np.ndarray, path: str | None = None) -> Map:
        """A new map with this map's geometry and header conventions and the given data."""
        data = np.asarray(data, dtype=np.float32)
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} does not match the map's {self.data.shape}")
        return replace(self, data=data, path=path)

    def same_grid(self, other: Map, tol: float = 1e-3) -> bool:
        """True when both maps sample the same points (shape, voxel size and origin within `tol` Å)."""
        return (
            self.shape == other.shape
            and np.allclose(self.voxel_size, other.voxel_size, atol=tol * 1e-1)
            and np.allclose(self.origin, other.origin, atol=tol)
        )

    def require_same_grid(self, other: Map, what: str = "maps") -> None:
        if not self.same_grid(other):
            raise LocScaleInputError(
                f"{what} are not on the same grid: {self.path or 'map 1'} has shape {self.shape}, "
                f"voxel {np.round(self.voxel_size, 4).tolist()} Å, origin {np.round(self.origin, 3).tolist()} Å; "
                f"{other.path or 'map 2'} has shape {other.shape}, voxel "
                f"{np.round(other.voxel_size, 4).tolist()} Å, origin {np.round(other.origin, 3).tolist()} Å",
                "resample one map onto the other's grid (ChimeraX: 'volume resample #2 onGrid #1')",
                other.path,
            )

    def frac_to_xyz_index(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (i, j, k) of Cartesian positions in Å (N×3)."""
        return (np.asarray(xyz, dtype=float) - self.origin) / self.voxel_size


# ---------------------------------------------------------------------- reading
def read_map(path: str | os.PathLike) -> Map:
    """Read an MRC/CCP4 map into the internal frame.

    Any axis order, nstart- or ORIGIN-based placement and data modes 0, 1, 2, 6 and 12 are supported.
    Non-orthogonal cells are refused (cryo-EM maps are always orthogonal). Anisotropic voxels are read;
    :attr:`Map.apix` refuses them where a step needs one voxel size.
    """
    path = Path(path)
    if not path.exists():
        raise LocScaleInputError("file not found", "check the path (relative paths are from the current folder)",
                                 path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.open(path, mode="r", permissive=True)
    except Exception as exc:  # mrcfile raises ValueError/OSError on garbage
        raise LocScaleInputError(f"not a readable MRC/CCP4 map ({exc})",
                                 "give an MRC/CCP4 map file (.mrc, .map, .ccp4)", path) from exc
    with mrc:
        if mrc.data is None:
            msgs = "; ".join(str(w.message) for w in caught) or "no data block"
            raise LocScaleInputError(f"not a valid MRC/CCP4 map ({msgs})",
                                     "check the file is a complete MRC/CCP4 map (re-download or re-export it)", path)
        h = mrc.header
        mode = int(h.mode)
        if mode not in _FLOAT_MODES:
            raise LocScaleInputError(f"MRC data mode {mode} is not a real-valued density",
                                     "convert the map to mode 2 (float32)", path)
        _refuse_image_stack(h, path)
        raw = np.asarray(mrc.data)
        if raw.ndim != 3 or min(raw.shape) < 2:
            raise LocScaleInputError(f"map must be a 3-D volume, got data of shape {raw.shape}",
                                     "give a 3-D map, not an image or image stack", path)
        angles = np.array([float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma)])
        if np.any(angles != 0) and not np.allclose(angles, 90.0, atol=1e-3):
            raise LocScaleInputError(f"non-orthogonal cell (angles {angles.tolist()})",
                                     "cryo-EM maps must have an orthogonal cell: resample it onto an orthogonal grid",
                                     path)
        axis_order = (int(h.mapc), int(h.mapr), int(h.maps))
        if sorted(axis_order) != [1, 2, 3]:
            raise LocScaleInputError(f"invalid axis order MAPC/MAPR/MAPS = {axis_order}",
                                     "fix the header (a permutation of 1,2,3) or re-export the map", path)
        # numpy dims of the file array are (sections, rows, columns) = axes (maps, mapr, mapc)
        file_axes = (axis_order[2], axis_order[1], axis_order[0])
        perm = [file_axes.index(a) for a in (1, 2, 3)]
        data = np.ascontiguousarray(np.transpose(raw, perm).astype(np.float32))
        if not np.all(np.isfinite(data)):
            raise LocScaleInputError("map contains NaN or infinite values",
                                     "replace non-finite values (e.g. with 0) and re-save the map", path)

        # voxel size: cell (x, y, z order) over sampling (mx, my, mz: x, y, z order)
        cell = np.array([float(h.cella.x), float(h.cella.y), float(h.cella.z)])
        sampling = np.array([int(h.mx), int(h.my), int(h.mz)], dtype=float)
        shape_xyz = np.array(data.shape, dtype=float)
        sampling = np.where(sampling > 0, sampling, shape_xyz)
        if np.any(cell <= 0):
            raise LocScaleInputError(f"cell dimensions {cell.tolist()} are not positive, so the voxel size is unknown",
                                     "set the voxel size in the header (ChimeraX: 'volume #1 voxelSize 1.05', "
                                     "then save)", path)
        voxel_size = cell / sampling

        # nstart is stored in column/row/section order
        start_crs = (int(h.nxstart), int(h.nystart), int(h.nzstart))
        nstart = np.zeros(3)
        for file_pos, axis in enumerate(axis_order):
            nstart[axis - 1] = start_crs[file_pos]
        origin_field = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if np.any(nstart != 0):
            origin = nstart * voxel_size
            convention = "nstart"
            if np.any(origin_field != 0) and not np.allclose(origin_field, origin, atol=1e-2):
                warnings.warn(
                    f"{path}: both nstart ({nstart.astype(int).tolist()}) and the ORIGIN field "
                    f"({origin_field.tolist()} Å) are set and disagree; using nstart (as gemmi and ChimeraX do)",
                    stacklevel=2,
                )
        else:
            origin = origin_field if np.all(np.isfinite(origin_field)) else np.zeros(3)
            convention = "origin" if np.any(origin != 0) else "nstart"
    return Map(data=data, voxel_size=voxel_size, origin=origin, axis_order=axis_order,
               origin_convention=convention, path=str(path))


def _refuse_image_stack(h, path) -> None:
    """MRC2014 image stacks have ISPG 0 and NZ > 1 images; their z cell is one image thick (MZ = 1, or a cell
    z of one section). A volume written with ISPG 0 but a full z cell is read as a volume."""
    nz, mz = int(h.nz), int(h.mz)
    if int(h.ispg) != 0 or nz <= 1:
        return
    cz, cx, mx = float(h.cella.z), float(h.cella.x), int(h.mx)
    section = cx / mx if mx > 0 and cx > 0 else None
    one_section = section is not None and abs(cz - section) <= 0.01 * section
    if mz <= 1 or one_section or cz == 0:
        raise LocScaleInputError(f"this is a stack of {nz} 2-D images (header: ISPG 0, NZ {nz}, MZ {mz}, z cell "
                                 f"{cz:g} Å), not a 3-D map",
                                 "give a 3-D reconstruction (a volume: ISPG 1, or 401 for a volume stack); if this "
                                 "is a volume with a wrong header, set ISPG 1 and the z cell to NZ × voxel size",
                                 path)


def read_half_maps(path1: str | os.PathLike, path2: str | os.PathLike) -> tuple[Map, Map]:
    """Read two half maps and check that they share a grid and are independent halves
    (:func:`locscale.checks.check_half_maps_independent`: not the full map given as a half map, not copies)."""
    from .checks import check_half_maps_differ, check_half_maps_independent

    h1, h2 = read_map(path1), read_map(path2)
    h1.require_same_grid(h2, "half maps")
    check_half_maps_differ(h1.data, h2.data, h1.path, h2.path)
    check_half_maps_independent(h1.data, h2.data, float(np.mean(h1.voxel_size)), h1.path, h2.path)
    return h1, h2


def average_half_maps(h1: Map, h2: Map) -> Map:
    """The full map as the mean of two half maps (on a shared grid)."""
    h1.require_same_grid(h2, "half maps")
    return h1.like(0.5 * (h1.data + h2.data))


# ---------------------------------------------------------------------- writing


def write_map(path: str | os.PathLike, emap: Map, data: np.ndarray | None = None, *,
              label: str | None = None) -> Path:
    """Write `data` (default ``emap.data``) with `emap`'s geometry and header conventions, atomically.

    The file keeps the source's axis order and origin convention (nstart or ORIGIN), so it overlays the input.
    `label` is stored as an MRC header label (e.g. "LocScale exact w=24"; phantoms say "SIMULATED"). A name
    ending in ``.gz`` is written gzip-compressed (read back by :func:`read_map`, ChimeraX and Coot).
    """
    path = Path(path)
    arr = emap.data if data is None else np.asarray(data, dtype=np.float32)
    if arr.shape != emap.data.shape:
        raise ValueError(f"data shape {arr.shape} does not match the map geometry {emap.data.shape}")
    axis_order = tuple(emap.axis_order)
    file_axes = (axis_order[2], axis_order[1], axis_order[0])  # numpy dims of the file array
    file_data = np.ascontiguousarray(np.transpose(arr, [a - 1 for a in file_axes]).astype(np.float32))
    shape_xyz = np.array(arr.shape)
    with atomic_output(path, size=1024 + file_data.nbytes) as tmp:
        compression = "gzip" if path.name.lower().endswith(".gz") else None
        with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
            mrc.set_data(file_data)
            h = mrc.header
            h.mapc, h.mapr, h.maps = axis_order
            h.mx, h.my, h.mz = (int(n) for n in shape_xyz)
            cell = shape_xyz * emap.voxel_size
            h.cella.x, h.cella.y, h.cella.z = (float(c) for c in cell)
            h.cellb.alpha = h.cellb.beta = h.cellb.gamma = 90.0
            if emap.origin_convention == "nstart":
                nstart = np.rint(emap.origin / emap.voxel_size)
                if not np.allclose(nstart * emap.voxel_size, emap.origin, atol=1e-3):
                    # origin is not on the grid: only the ORIGIN field can hold it
                    h.origin.x, h.origin.y, h.origin.z = (float(o) for o in emap.origin)
                    nstart = np.zeros(3)
                else:
                    h.origin.x = h.origin.y = h.origin.z = 0.0
                start_crs = [int(nstart[a - 1]) for a in axis_order]
                h.nxstart, h.nystart, h.nzstart = start_crs
            else:
                h.nxstart = h.nystart = h.nzstart = 0
                h.origin.x, h.origin.y, h.origin.z = (float(o) for o in emap.origin)
            if label:
                mrc.header.label[0] = label[:80].encode("ascii", "replace")
                mrc.header.nlabl = 1
            mrc.update_header_stats()
    return path

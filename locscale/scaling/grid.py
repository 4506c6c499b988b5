"""The coarse node grid and trilinear interpolation shared by near-exact/fast LocScale and ``locscale.localres``.

Quantities that a w³ window averages (scale factors, local FSC) vary on the scale of w, so they are computed
only at the nodes of a grid of stride t ≈ w/6 (:func:`stride_for_window`) anchored at the first voxel of the
mask's bounding box, and interpolated trilinearly to every masked voxel. Only the nodes that are corners of a
cell holding a masked voxel are computed (:func:`node_plan`). Node j's window, in a map padded for the window
(``locscale.padding``), starts at j·t in the array :func:`node_region` cuts out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LocScaleInputError

#: default node spacing per window voxel: t ≈ w/6 (w = 24 → t = 4)
STRIDE_PER_WINDOW = 1.0 / 6.0


def stride_for_window(window: int, per_window: float = STRIDE_PER_WINDOW) -> int:
    """Node spacing t for a window of `window` voxels: round(w·`per_window`), at least 1."""
    return max(1, int(round(window * per_window)))


def check_stride(stride) -> int:
    """`stride` as an int ≥ 1, or a LocScaleInputError."""
    try:
        t = int(stride)
    except (TypeError, ValueError):
        t = 0
    if t < 1 or t != stride:
        raise LocScaleInputError(f"the stride must be a whole number of voxels ≥ 1, got {stride!r}",
                                 "give a stride of 1 (exact) or more, or leave it out for the default")
    return t


@dataclass
class NodePlan:
    """Cropped geometry, coarse node grid and trilinear interpolation plan for one (mask, t)."""

    lo: np.ndarray            # (3,) first voxel of the mask's bounding box (unpadded index)
    ext: np.ndarray           # (3,) bounding-box extent (voxels)
    t: int
    mask_local: np.ndarray    # bool, shape ext: the mask inside the bounding box
    nodes: np.ndarray         # (n_nodes, 3) node indices on the coarse grid (node j at lo + j·t)
    corner_ids: np.ndarray    # (n_masked, 8) int32: row of each masked voxel's 8 cell corners in `nodes`
    corner_w: np.ndarray      # (n_masked, 8) float32 trilinear weights

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Shape of the full node grid over the bounding box (:meth:`grid`)."""
        return tuple(int(x) for x in (self.ext - 1) // self.t + 2)

    def interpolate(self, node_values: np.ndarray) -> np.ndarray:
        """Trilinear interpolation of one value per node to the masked voxels (in C order)."""
        return np.einsum("ij,ij->i", node_values[self.corner_ids], self.corner_w)

    def grid(self, node_values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """The node values on the full node grid (float64; `fill` at nodes not computed)."""
        arr = np.full(self.grid_shape, fill, dtype=float)
        arr[self.nodes[:, 0], self.nodes[:, 1], self.nodes[:, 2]] = node_values
        return arr


def node_plan(mask: np.ndarray, t: int) -> NodePlan:
    """The plan for a non-empty `mask` and stride `t`. Index arrays are int32 (the plan holds 8 corners per
    masked voxel: at 4 M voxels int64 would cost 256 MB more)."""
    coords = np.nonzero(mask)
    lo = np.array([int(c.min()) for c in coords])
    hi = np.array([int(c.max()) for c in coords])
    ext = hi - lo + 1
    mask_local = mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    q = [(c - lo[a]).astype(np.int32) for a, c in enumerate(coords)]
    del coords
    j0 = [qa // np.int32(t) for qa in q]
    frac = [(qa - j * np.int32(t)).astype(np.float32) / np.float32(t) for qa, j in zip(q, j0, strict=True)]
    del q
    # a voxel on a node plane uses that plane only (its upper corner would get weight 0)
    j1 = [j + (f > 0).astype(np.int32) for j, f in zip(j0, frac, strict=True)]
    gshape = tuple(int(x) for x in (ext - 1) // t + 2)
    node_id = np.full(gshape, -1, dtype=np.int32)
    corners = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    for a, b, c in corners:
        node_id[(j0, j1)[a][0], (j0, j1)[b][1], (j0, j1)[c][2]] = 0
    nodes = np.argwhere(node_id == 0)
    node_id[tuple(nodes.T)] = np.arange(len(nodes), dtype=np.int32)
    n = len(j0[0])
    corner_ids = np.empty((n, 8), dtype=np.int32)
    corner_w = np.empty((n, 8), dtype=np.float32)
    for i, (a, b, c) in enumerate(corners):
        corner_ids[:, i] = node_id[(j0, j1)[a][0], (j0, j1)[b][1], (j0, j1)[c][2]]
        wx = frac[0] if a else 1 - frac[0]
        wy = frac[1] if b else 1 - frac[1]
        wz = frac[2] if c else 1 - frac[2]
        corner_w[:, i] = wx * wy * wz
    return NodePlan(lo, ext, t, mask_local, nodes, corner_ids, corner_w)


def interpolate_grid(grid: np.ndarray, origin: np.ndarray, t: int, ijk: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a node grid (:meth:`NodePlan.grid`; node j at `origin` + j·t) at continuous
    voxel indices `ijk` (N, 3), clamped at the grid's edges; NaN where a surrounding node is NaN."""
    import scipy.ndimage as ndi  # here: its import takes 0.03 s and only localres interpolates this way

    pos = (np.asarray(ijk, dtype=float) - np.asarray(origin, dtype=float)) / t
    return ndi.map_coordinates(grid, pos.T, order=1, mode="nearest", prefilter=False)


def node_region(padded: np.ndarray, plan: NodePlan, w: int, fill: float) -> np.ndarray:
    """The part of a padded map that the node windows read, extended with `fill` where the last nodes'
    windows run past the padded box (nodes may lie up to t−1 voxels beyond the bounding box). Node j's window
    starts at j·t in it."""
    lo = plan.lo
    need = (plan.nodes.max(axis=0) * plan.t if len(plan.nodes) else np.zeros(3, int)) + w
    stop = lo + need
    region = padded[lo[0]:stop[0], lo[1]:stop[1], lo[2]:stop[2]]
    short = need - np.array(region.shape)
    if short.any():
        region = np.pad(region, [(0, int(s)) for s in short], mode="constant", constant_values=fill)
    return region


def box_crop(padded: np.ndarray, plan: NodePlan, w: int) -> np.ndarray:
    """The padded voxels that the windows of the bounding box [lo, lo + ext) read (contiguous copy)."""
    lo, ext = plan.lo, plan.ext
    return np.ascontiguousarray(padded[lo[0]:lo[0] + ext[0] + w - 1, lo[1]:lo[1] + ext[1] + w - 1,
                                       lo[2]:lo[2] + ext[2] + w - 1])

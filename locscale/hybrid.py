"""The hybrid reference: the model plus pseudo-atoms where the map holds significant density the model does not
explain.

LocScale scales each window's Fourier shells to those of the reference. Where the model has no atoms the reference
is empty, so density the model lacks is attenuated (and zeroed beyond the model's mask) exactly where the user still
has to build. The hybrid reference fills that density with pseudo-atoms, placed by the data's own noise statistics:

1. **Residual.** The model map (simulated from the model) is scaled to the map by one amplitude ``A`` and one
   B offset ``ΔB``, fitted by least squares over the Fourier shells from 10 Å to the resolution
   (``F_map ≈ A·exp(−ΔB s²/4)·F_model``). The difference ``F_map − A·exp(−ΔB s²/4)·F_model``, low-passed by a
   Gaussian whose amplitude is 1/2 at the resolution, is the density the model does not explain.
2. **Noise.** With half maps, the noise of their mean is measured from their half difference ``(h1 − h2)/2`` (for
   independent half-map noise of equal power it has the same distribution), passed through the same filter; σ is its
   RMS over the voxels tested. With one map, σ is the RMS deviation below the median of the residual over the
   voxels tested (unexplained density only adds positive values, so the lower half is noise). The solvent level
   μ is the median of the residual over those voxels, recomputed without values above μ + 3σ until it is stable.
   A map whose solvent was flattened (masked maps) has no measurable noise and is refused.
3. **Test.** The voxels tested are those farther than ``exclusion`` (3 Å) from every model atom. Each gets
   z = (r − μ)/σ and a one-sided Gaussian p-value; the Benjamini–Hochberg procedure at false discovery rate
   ``fdr`` (default 0.01: at most 1 % of the voxels declared unexplained density are expected to be noise) gives
   the z threshold. On pure noise the procedure declares nothing with probability ≥ 1 − fdr, so a complete model
   normally gets no pseudo-atom and its map is unchanged. Where much density is unexplained, about `fdr` of the
   voxels declared are noise, scattered in small clusters over the solvent; so only clusters (26-connected) larger
   than the largest one the noise alone forms above the same threshold are kept -- the noise being the half maps'
   half difference, or without half maps the residual below the solvent level. The voxels kept form the
   *unexplained-density mask*.
4. **Placement (matching pursuit).** Starting from the residual, a pseudo-atom is put on the highest voxel of the
   mask above the threshold and its footprint (one atom of the pseudo-atom B, through the same scale, B offset and
   filter) is subtracted; this repeats until no voxel of the mask is above the threshold. The pseudo-atoms thus carry
   the *amount* of unexplained density, not only its extent, and stop where what is left is no longer significant.
   They sit on voxel centres, at least :data:`MIN_DISTANCE` apart, as oxygen atoms (residue HOH) of one chain of
   their own.
5. **B-factors.** By default every pseudo-atom takes the median B of the model's atoms
   (:func:`pseudo_atom_b`): only the relative B is fixed by the data, so the model's own level is the one to
   match. Measured on phantoms (docs/science.md, "Density the model does not explain"), it gave maps as good as
   B refined for the pseudo-atoms with the model held (:func:`refine_pseudo_atom_b`): a refinement against the map
   lets pseudo-atoms, which stand at approximate positions, absorb their position errors into higher B.

Pseudo-atoms only shape the reference and the mask; they never enter a model file of the user or of a cycle.
"""

from __future__ import annotations

import shlex
import string
import time
from dataclasses import dataclass, field

import gemmi
import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import minimize_scalar
from scipy.special import ndtr, ndtri

from .errors import LocScaleInputError
from .mapio import Map
from .metrics import coefficient_shells

#: default false discovery rate of the unexplained-density test
DEFAULT_FDR = 0.01
#: voxels closer than this to a model atom are never tested (Å): density there is the model's
EXCLUSION = 3.0
#: pseudo-atoms are at least this far apart (Å; about a bond length)
MIN_DISTANCE = 1.2
#: the model-to-map scale is fitted over the shells from this resolution (Å) to the map's resolution
SCALE_FIT_LOW = 10.0
#: a map with more than this fraction of its tested voxels in flat patches (a voxel equal to its next neighbours
#: along x, y and z) had its solvent masked or flattened: there is no noise to measure (noisy data never do that)
FLATTENED_FRACTION = 0.01
#: residue name, atom name and element of a pseudo-atom
PSEUDO_RESIDUE, PSEUDO_ATOM, PSEUDO_ELEMENT = "HOH", "O", "O"
#: preferred chain names of the pseudo-atoms (the first one the model does not use)
PSEUDO_CHAINS = "XYZWVU"


class NoiseNotMeasurable(LocScaleInputError):
    """The map's noise cannot be measured (its solvent was masked or flattened), so no density can be called
    significant."""


@dataclass
class UnexplainedDensity:
    """Where the map holds significant density the model does not explain (module docstring, steps 1-3)."""

    residual: np.ndarray  # the low-passed residual, map units
    tested: np.ndarray  # bool: voxels farther than `exclusion` from the model
    mask: np.ndarray  # bool: the unexplained-density mask (tested voxels above the threshold)
    level: float  # solvent level μ of the residual
    sigma: float  # noise σ of the residual
    z_threshold: float  # inf when nothing is significant
    scale: float  # A
    b_offset: float  # ΔB (Å²)
    record: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The residual value above which density is unexplained (map units)."""
        return self.level + self.z_threshold * self.sigma


@dataclass
class HybridReference:
    """Pseudo-atoms placed in the unexplained density, and how (:func:`hybrid_reference`)."""

    pseudo_atoms: gemmi.Structure
    unexplained: np.ndarray  # bool mask on the map's grid
    record: dict

    @property
    def count(self) -> int:
        return self.pseudo_atoms[0].count_atom_sites() if len(self.pseudo_atoms) else 0

    def reference_structure(self, model: gemmi.Structure) -> gemmi.Structure:
        """`model` plus the pseudo-atoms (a copy): what the reference map and the mask are made from."""
        return merge(model, self.pseudo_atoms)

    def reference_map(self, modelmap: Map, dmin: float | None = None) -> Map:
        """The model's map plus the pseudo-atoms' map (:func:`add_pseudo_atom_map`)."""
        return add_pseudo_atom_map(modelmap, self.pseudo_atoms, dmin)


def lowpass(shape, apix: float, resolution: float) -> np.ndarray:
    """Gaussian low-pass on the rfft half spectrum, amplitude exp(−ln2·s²·d²): 1/2 at s = 1/d."""
    _, s2 = coefficient_shells(shape, apix)
    return np.exp(-np.log(2.0) * s2 * resolution**2)


def _apply(data: np.ndarray, filt: np.ndarray) -> np.ndarray:
    f = np.fft.rfftn(np.asarray(data, dtype=np.float64))
    f *= filt
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2))


def fit_model_scale(fmap: np.ndarray, fmodel: np.ndarray, shape, apix: float, resolution: float,
                    low: float = SCALE_FIT_LOW) -> tuple[float, float]:
    """(A, ΔB) minimising Σ |F_map − A·exp(−ΔB s²/4)·F_model|² over the shells from `low` Å to `resolution`
    (rfft half spectra of the map and the model map). A is solved for each ΔB; ΔB is searched in [−300, 600] Å²."""
    shell, s2 = coefficient_shells(shape, apix)
    sel = (s2 >= 1.0 / low**2) & (s2 <= 1.0 / resolution**2) & (shell >= 0)
    if not sel.any():
        raise LocScaleInputError(f"the map has no Fourier coefficient between {low:g} Å and the resolution "
                                 f"{resolution:g} Å to scale the model to", "use a larger box")
    # sums over fine bins of s² (1/4096 of the range: exp(−ΔB s²/4) changes by < 0.1 % inside one for |ΔB| ≤ 600)
    lo2, hi2 = 1.0 / low**2, 1.0 / resolution**2
    nbins = 4096
    b = np.minimum(((s2[sel] - lo2) / (hi2 - lo2) * nbins).astype(np.int64), nbins - 1)
    cross = np.bincount(b, (fmap[sel] * fmodel[sel].conj()).real, nbins)
    power = np.bincount(b, np.abs(fmodel[sel]) ** 2, nbins)
    count = np.bincount(b, None, nbins)
    s2s = np.bincount(b, s2[sel], nbins) / np.maximum(count, 1)
    def solve(db):
        g = np.exp(-0.25 * db * s2s)
        a = float(np.dot(cross, g) / max(np.dot(power, g * g), 1e-300))
        return a, -a * float(np.dot(cross, g))  # the residual power minus Σ|F_map|², at the best A

    res = minimize_scalar(lambda db: solve(db)[1], bounds=(-300.0, 600.0), method="bounded",
                          options={"xatol": 0.1})
    a, _ = solve(res.x)
    return a, float(res.x)


def _clusters(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the 26-connected clusters of `mask`, voxels per label; label 0 is the background)."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    return labels, np.bincount(labels.ravel(), minlength=n + 1)


def _cluster_sizes(mask: np.ndarray) -> np.ndarray:
    """Voxels in each 26-connected cluster of `mask`."""
    return _clusters(mask)[1][1:]


def _prefix_median(sorted_values: np.ndarray, k: int) -> float:
    """The median of the `k` smallest values of a sorted array (as numpy's median of that prefix)."""
    k = max(int(k), 1)
    return float(sorted_values[k // 2]) if k % 2 else 0.5 * float(sorted_values[k // 2 - 1] + sorted_values[k // 2])


def flat_fraction(data: np.ndarray, where: np.ndarray) -> float:
    """Fraction of the voxels `where` that equal their next neighbours along x, y and z (masked or flattened
    solvent; noise never does that)."""
    if not where.any():
        return 0.0
    flat = np.ones(data.shape, dtype=bool)
    for axis in range(3):
        same = np.diff(data, axis=axis) == 0
        flat &= np.concatenate([same, np.zeros_like(same.take([0], axis=axis))], axis=axis)
    return float(flat[where].mean())


def _bh_z_threshold(z: np.ndarray, fdr: float) -> tuple[float, float]:
    """(z threshold, p threshold) of the Benjamini–Hochberg procedure at `fdr` over one-sided Gaussian p-values
    of `z`; (inf, 0) when nothing is significant. Only values with p ≤ fdr can pass, so only those are sorted."""
    m = z.size
    zmin = float(ndtri(1.0 - fdr))
    top = np.sort(z[z >= zmin])[::-1]
    if top.size == 0:
        return float("inf"), 0.0
    p = ndtr(-top)
    ok = np.nonzero(p <= fdr * np.arange(1, top.size + 1) / m)[0]
    if ok.size == 0:
        return float("inf"), 0.0
    k = ok.max()
    return float(top[k]), float(p[k])


def unexplained_density(emap: Map, structure: gemmi.Structure, resolution: float, *,
                        half_maps: tuple[Map, Map] | None = None, fdr: float = DEFAULT_FDR,
                        exclusion: float = EXCLUSION, modelmap: Map | None = None) -> UnexplainedDensity:
    """Steps 1-3 of the module docstring: the residual, its noise, and the voxels whose unexplained density is
    significant at false discovery rate `fdr`. `emap` is the map LocScale sharpens (with half maps: their mean);
    `modelmap` (the model's map on `emap`'s grid) is simulated when not given."""
    from .models import envelope_mask
    from .simulate import simulate_model_map

    if not 0.0 < fdr < 1.0:
        raise LocScaleInputError(f"false discovery rate {fdr} is not between 0 and 1", "use e.g. 0.01")
    apix = emap.apix
    if modelmap is None:
        modelmap = simulate_model_map(structure, emap)
    emap.require_same_grid(modelmap, "the map and the model map")
    fmap = np.fft.rfftn(emap.data.astype(np.float64))
    fmodel = np.fft.rfftn(modelmap.data.astype(np.float64))
    a, db = fit_model_scale(fmap, fmodel, emap.shape, apix, resolution)
    if not a > 0:
        raise LocScaleInputError("the model map does not correlate with the map in the shells from "
                                 f"{SCALE_FIT_LOW:g} Å to {resolution:g} Å (fitted scale {a:.3g})",
                                 "check that the model is in the map's frame ('locscale check')")
    _, s2 = coefficient_shells(emap.shape, apix)
    filt = lowpass(emap.shape, apix, resolution)
    fres = (fmap - a * np.exp(-0.25 * db * s2) * fmodel) * filt
    residual = np.fft.irfftn(fres, s=emap.shape, axes=(0, 1, 2))
    tested = ~envelope_mask(structure, emap, exclusion)
    if tested.sum() < 1000:
        raise LocScaleInputError(f"fewer than 1000 voxels of the box are farther than {exclusion:g} Å from the "
                                 "model: there is no room to look for density it does not explain",
                                 "use a box with solvent around the model, or sharpen without --hybrid")
    flat = flat_fraction(emap.data, tested)
    if flat > FLATTENED_FRACTION:
        raise NoiseNotMeasurable(f"{100 * flat:.0f} % of the map's voxels away from the model lie in flat patches "
                                 "(its solvent was masked or flattened), so its noise cannot be measured and no "
                                 "density can be called significant", "give the unmasked map or the half maps, "
                                 "or sharpen without the hybrid reference", emap.path)
    v = residual[tested]
    vs = np.sort(v)  # medians of "the values below a level" are then prefixes of one sorted array
    level = _prefix_median(vs, vs.size)
    if half_maps is not None:
        h1, h2 = half_maps
        emap.require_same_grid(h1, "the map and half map 1")
        emap.require_same_grid(h2, "the map and half map 2")
        noise = _apply(0.5 * (h1.data.astype(np.float64) - h2.data), filt)[tested]
        sigma = float(np.sqrt(np.mean(noise**2)))
        noise_from = ("half maps: RMS of (half1 − half2)/2 through the same low-pass, over the voxels tested "
                      "(the noise of the half maps' mean)")
        for _ in range(50):
            new = _prefix_median(vs, int(np.searchsorted(vs, level + 3.0 * sigma)))
            if abs(new - level) <= 1e-6 * sigma:
                break
            level = new
    else:
        sigma = 1.4826 * float(np.median(np.abs(v - level)))
        noise_from = ("the map: RMS deviation of the residual below its median over the voxels tested "
                      "(unexplained density only adds positive values)")
        csum, csq = np.cumsum(vs), np.cumsum(vs**2)
        for _ in range(50):
            new = _prefix_median(vs, int(np.searchsorted(vs, level + 3.0 * sigma))) if sigma > 0 else level
            k = int(np.searchsorted(vs, new))  # the values below `new`
            sigma_new = float(np.sqrt(max(csq[k - 1] - 2 * new * csum[k - 1] + k * new**2, 0.0) / k)) if k else 0.0
            done = abs(new - level) <= 1e-6 * max(sigma, 1e-30) and abs(sigma_new - sigma) <= 1e-6 * sigma_new
            level, sigma = new, sigma_new
            if done:
                break
    if not sigma > 0:
        raise NoiseNotMeasurable("the map has no measurable noise away from the model",
                                 "give the unmasked map or the half maps, or sharpen without the hybrid reference",
                                 emap.path)
    z = (v - level) / sigma
    z_thr, p_thr = _bh_z_threshold(z, fdr)
    mask = np.zeros(emap.shape, dtype=bool)
    clusters = {"kept": 0, "dropped": 0, "min_voxels": None}
    if np.isfinite(z_thr):
        mask[tested] = z >= z_thr
        # cluster size: the noise alone, through the same filter and above the same threshold, forms clusters
        # too (about fdr of the voxels declared); keep only clusters larger than the largest one it forms -- in
        # the half maps' noise, or without half maps below the solvent level (noise is symmetric, unexplained
        # density positive)
        if half_maps is not None:
            null = np.zeros(emap.shape, dtype=bool)
            null[tested] = noise >= z_thr * sigma
            null_from = "the half maps' noise above the same threshold"
        else:
            null = np.zeros(emap.shape, dtype=bool)
            null[tested] = v <= level - z_thr * sigma
            null_from = "the residual below the solvent level by the same margin"
        largest_null = int(_cluster_sizes(null).max(initial=0))
        labels, sizes = _clusters(mask)
        big = sizes > largest_null
        big[0] = False
        mask = big[labels]
        clusters = {"kept": int(big.sum()), "dropped": int(len(sizes) - 1 - big.sum()),
                    "min_voxels": largest_null + 1,
                    "rule": f"clusters (26-connected) larger than the largest that {null_from} forms"}
    n_mask = int(mask.sum())
    record = {
        "unexplained_voxels": n_mask,
        "unexplained_volume_A3": round(n_mask * float(np.prod(emap.voxel_size)), 1),
        "threshold": {
            "rule": f"Benjamini-Hochberg at false discovery rate {fdr:g} over the {v.size} voxels farther than "
                    f"{exclusion:g} Å from the model (one-sided Gaussian p-values of z = (residual - level) / sigma)",
            "fdr": float(fdr),
            "z": z_thr if np.isfinite(z_thr) else None,
            "p": p_thr,
            "map_value": level + z_thr * sigma if np.isfinite(z_thr) else None,
            "noise_sigma": sigma,
            "noise_from": noise_from,
            "solvent_level": level,
        },
        "residual": {"model_scale": a, "model_b_offset_A2": db,
                     "lowpass": f"Gaussian, amplitude 1/2 at {resolution:g} Å",
                     "scale_fit_shells_A": [SCALE_FIT_LOW, float(resolution)]},
        "clusters": clusters,
        "exclusion_A": float(exclusion),
        "voxels_tested": int(v.size),
    }
    return UnexplainedDensity(residual, tested, mask, level, sigma, z_thr, a, db, record)


def _atom_footprint(apix: float, b: float, scale: float, b_offset: float, resolution: float) -> np.ndarray:
    """One pseudo-atom at a voxel centre as it appears in the residual: its density (B = `b`) times
    A·exp(−ΔB s²/4), low-passed; cropped where it falls below 1e-3 of its peak (odd edge, centred)."""
    from .simulate import simulate_model_map

    b_total = max(b + b_offset, 0.0) + 4.0 * np.log(2.0) * resolution**2 + 20.0  # + the atom's own width
    radius = min(3.5 * np.sqrt(b_total / (8 * np.pi**2)) + 2.0, 20.0)
    half = int(np.ceil(radius / apix))
    n = int(2 * (2 * half + 1))
    like = Map(np.zeros((n, n, n), dtype=np.float32), voxel_size=apix, origin=np.zeros(3))
    centre = n // 2
    atom = pseudo_atom_structure(np.full((1, 3), centre * apix), b)
    dens = simulate_model_map(atom, like).data.astype(np.float64)
    _, s2 = coefficient_shells(dens.shape, apix)
    dens = _apply(dens, scale * np.exp(-0.25 * b_offset * s2) * lowpass(dens.shape, apix, resolution))
    k = dens[centre - half:centre + half + 1, centre - half:centre + half + 1, centre - half:centre + half + 1]
    keep = np.abs(k) >= 1e-3 * np.abs(k).max()
    r = int(np.max(np.abs(np.argwhere(keep) - half)))
    return k[half - r:half + r + 1, half - r:half + r + 1, half - r:half + r + 1]


def place_pseudo_atoms(density: UnexplainedDensity, emap: Map, b: float, resolution: float,
                       min_distance: float = MIN_DISTANCE) -> np.ndarray:
    """Step 4 of the module docstring: pseudo-atom positions (Å, n × 3) by matching pursuit in the residual.

    Each pass takes the local maxima (over the 26 neighbours) of the residual among the voxels of the
    unexplained-density mask still above the threshold, highest first, and puts an atom on each whose residual is
    still above it (the atoms of the pass subtract their footprints as they go), at least `min_distance` from every
    atom placed; passes repeat until none is placed.
    """
    if not np.isfinite(density.z_threshold):
        return np.zeros((0, 3))
    kern = _atom_footprint(emap.apix, b, density.scale, density.b_offset, resolution)
    if not kern.max() > 0:
        raise LocScaleInputError("a pseudo-atom has no positive density after the model-to-map scale "
                                 f"(scale {density.scale:.3g}, B offset {density.b_offset:.0f} Å²)",
                                 "check the map and the model")
    h = kern.shape[0] // 2
    shape = np.array(density.residual.shape)
    dv = int(np.ceil(min_distance / emap.apix))
    pad = max(1, dv)
    # padding (never free, -inf) so that neighbours and the exclusion ball of edge voxels need no bounds checks
    r = np.full(shape + 2 * pad, -np.inf)
    inner = tuple(slice(pad, pad + n) for n in shape)
    r[inner] = density.residual
    free = np.zeros(shape + 2 * pad, dtype=bool)
    free[inner] = density.tested
    rf, ff = r.reshape(-1), free.reshape(-1)
    steps = np.array(r.strides) // r.itemsize
    offsets = np.array([i * steps[0] + j * steps[1] + k * steps[2] for i in (-1, 0, 1) for j in (-1, 0, 1)
                        for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    ball = np.array([i * steps[0] + j * steps[1] + k * steps[2] for i in range(-dv, dv + 1)
                     for j in range(-dv, dv + 1) for k in range(-dv, dv + 1)
                     if (i * i + j * j + k * k) * emap.apix**2 < min_distance**2])
    lo, hi = [pad] * 3, [pad + int(n) for n in shape]
    thr = density.threshold
    start = np.zeros(shape + 2 * pad, dtype=bool)
    start[inner] = density.mask
    active = np.flatnonzero(start)
    placed: list[tuple[int, int, int]] = []
    while active.size:
        vals = rf[active]
        keep = ff[active] & (vals >= thr)
        active, vals = active[keep], vals[keep]
        if not active.size:
            break
        neighbours = np.full(active.size, -np.inf)
        for o in offsets:
            q = active + o
            np.maximum(neighbours, np.where(ff[q], rf[q], -np.inf), out=neighbours)
        peaks = active[vals >= neighbours]
        peaks = peaks[np.argsort(-rf[peaks], kind="stable")]
        n_before = len(placed)
        for flat, x, y, z in zip(peaks.tolist(), *(c.tolist() for c in np.unravel_index(peaks, r.shape)),
                                 strict=True):
            if not ff[flat] or rf[flat] < thr:
                continue
            placed.append((x - pad, y - pad, z - pad))
            c = (x, y, z)
            if all(lo[i] <= c[i] - h and c[i] + h < hi[i] for i in range(3)):
                r[x - h:x + h + 1, y - h:y + h + 1, z - h:z + h + 1] -= kern
            else:
                s0 = [max(c[i] - h, lo[i]) for i in range(3)]
                s1 = [min(c[i] + h + 1, hi[i]) for i in range(3)]
                r[s0[0]:s1[0], s0[1]:s1[1], s0[2]:s1[2]] -= kern[
                    tuple(slice(s0[i] - c[i] + h, s1[i] - c[i] + h) for i in range(3))]
            ff[flat + ball] = False
        if len(placed) == n_before:
            break
    if not placed:
        return np.zeros((0, 3))
    ijk = np.array(placed, dtype=float)
    return emap.origin + ijk * np.asarray(emap.voxel_size, dtype=float)


def pseudo_atom_b(model: gemmi.Structure) -> float:
    """The pseudo-atoms' B-factor estimate: the median B of the model's atoms (module docstring, step 5)."""
    from .models import b_factors

    b = b_factors(model)
    if b.size == 0:
        raise LocScaleInputError("the model has no atoms", "give a model with atoms")
    return float(np.median(b))


def _free_chain_name(model: gemmi.Structure | None) -> str:
    used = {ch.name for ch in model[0]} if model is not None and len(model) else set()
    for name in PSEUDO_CHAINS + string.ascii_uppercase:
        if name not in used:
            return name
    for i in range(1000):
        if f"P{i}" not in used:
            return f"P{i}"
    raise LocScaleInputError("no free chain name for the pseudo-atoms", "rename some of the model's chains")


def pseudo_atom_structure(positions: np.ndarray, b, chain: str = PSEUDO_CHAINS[0],
                          cell: gemmi.UnitCell | None = None) -> gemmi.Structure:
    """A structure of pseudo-atoms (oxygen, residue HOH, numbered from 1) at `positions` (Å) with B `b` (one
    value or one per atom), all in chain `chain`."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    bs = np.broadcast_to(np.asarray(b, dtype=float), (len(positions),))
    st = gemmi.Structure()
    st.name = "pseudo-atoms"
    model = gemmi.Model("1")
    ch = gemmi.Chain(chain)
    for i, (p, bi) in enumerate(zip(positions, bs, strict=True)):
        res = gemmi.Residue()
        res.name = PSEUDO_RESIDUE
        res.seqid = gemmi.SeqId(i + 1, " ")
        res.het_flag = "H"
        atom = gemmi.Atom()
        atom.name = PSEUDO_ATOM
        atom.element = gemmi.Element(PSEUDO_ELEMENT)
        atom.pos = gemmi.Position(*p)
        atom.b_iso = float(bi)
        atom.occ = 1.0
        res.add_atom(atom)
        ch.add_residue(res)
    model.add_chain(ch)
    st.add_model(model)
    if cell is not None:
        st.cell = cell
    st.setup_entities()
    return st


def merge(model: gemmi.Structure, pseudo: gemmi.Structure) -> gemmi.Structure:
    """A copy of `model`'s first model with the chains of `pseudo` added."""
    st = model.clone()
    while len(st) > 1:
        del st[len(st) - 1]
    if len(pseudo) and pseudo[0].count_atom_sites():
        for ch in pseudo[0]:
            st[0].add_chain(ch)
    return st


def mask_rule(rule: str, count: int) -> str:
    """The sharpening mask's description (:func:`locscale.sharpen.choose_mask`) when the reference has `count`
    pseudo-atoms: the model envelope then surrounds them too."""
    if count and rule.startswith("model envelope"):
        return rule.replace("of an atom", "of an atom or pseudo-atom")
    return rule


def pseudo_atom_map(pseudo: gemmi.Structure, like: Map, dmin: float | None = None) -> Map:
    """The pseudo-atoms' map on `like`'s grid, band-limited at `dmin` (default Nyquist), as
    :func:`locscale.simulate.simulate_model_map` gives it. Pseudo-atoms as placed -- one element, one B, on voxel
    centres -- are one atom's density convolved with their count on the grid: the atom's electron form factor
    (gemmi's C4322 Gaussians, B added) times the Fourier transform of the counts, over the same coefficients the
    simulation keeps (one FFT pair instead of a simulation on a finer grid). Anything else is simulated."""
    from .models import atom_positions
    from .simulate import _kept_indices, nyquist_dmin, simulate_model_map

    pos = atom_positions(pseudo)
    b = pseudo_atom_b_values(pseudo)
    elements = {a.element.name for ch in pseudo[0] for r in ch for a in r}
    ijk = (pos - like.origin) / np.asarray(like.voxel_size, dtype=float)
    grid = np.rint(ijk).astype(int)
    usable = (b.size > 0 and np.ptp(b) == 0 and len(elements) == 1 and np.allclose(ijk, grid, atol=1e-3)
              and np.all((grid >= 0) & (grid < np.array(like.shape))) and np.ptp(like.voxel_size) == 0)
    if not usable:
        return simulate_model_map(pseudo, like, dmin=dmin)
    dmin = nyquist_dmin(like) if dmin is None else float(dmin)
    n = np.array(like.shape)
    counts = np.zeros(like.shape)
    np.add.at(counts, tuple(grid.T), 1.0)
    _, s2 = coefficient_shells(like.shape, like.apix)
    coef = gemmi.Element(elements.pop()).c4322
    form = sum(a * np.exp(-0.25 * (bi + b[0]) * s2) for a, bi in zip(coef.a, coef.b, strict=True))
    hmax = np.floor(like.box_size / dmin + 1e-9).astype(int)
    keep = np.zeros(s2.shape, dtype=bool)
    h0, h1 = _kept_indices(n[0], hmax[0]) % n[0], _kept_indices(n[1], hmax[1]) % n[1]
    h2 = np.arange(0, min(hmax[2], (n[2] - 1) // 2) + 1)
    keep[np.ix_(h0, h1, h2)] = True
    keep &= s2 <= (1 + 1e-9) / dmin**2
    f = np.fft.rfftn(counts) * np.where(keep, form, 0.0) / float(np.prod(like.voxel_size))
    return like.like(np.fft.irfftn(f, s=like.shape, axes=(0, 1, 2)).astype(np.float32))


def add_pseudo_atom_map(modelmap: Map, pseudo: gemmi.Structure, dmin: float | None = None) -> Map:
    """The model's map (`modelmap`, band-limited at `dmin`, default Nyquist) plus the map of the pseudo-atoms on its
    grid at the same band limit (:func:`pseudo_atom_map`): the hybrid reference map (model maps add atom by atom)."""
    if not len(pseudo) or pseudo[0].count_atom_sites() == 0:
        return modelmap
    return modelmap.like(modelmap.data + pseudo_atom_map(pseudo, modelmap, dmin).data)


def pseudo_atom_b_values(pseudo: gemmi.Structure) -> np.ndarray:
    """The B-factors of the pseudo-atoms, in file order."""
    return np.array([a.b_iso for ch in pseudo[0] for r in ch for a in r], dtype=float) if len(pseudo) else np.zeros(0)


def set_pseudo_atom_b(pseudo: gemmi.Structure, b) -> gemmi.Structure:
    """A copy of `pseudo` with B-factors `b` (one value or one per atom, file order)."""
    st = pseudo.clone()
    atoms = [a for ch in st[0] for r in ch for a in r] if len(st) else []
    for a, bi in zip(atoms, np.broadcast_to(np.asarray(b, dtype=float), (len(atoms),)), strict=True):
        a.b_iso = float(bi)
    return st


def refine_pseudo_atom_b(engine, model: gemmi.Structure, pseudo: gemmi.Structure, target_map, resolution: float,
                         workdir, *, threads: int = 1, log=None) -> tuple[gemmi.Structure, dict]:
    """The pseudo-atoms with B-factors refined by the refinement `engine` against `target_map`, the model's atoms
    held: coordinates of every atom fixed and the B-factors of the pseudo-atoms' chain(s) only (servalcat's
    ``refine_spa_norefmac --fix_xyz`` with an atom selection, ``run(..., adp_chains=...)``). Returns (pseudo-atoms,
    record)."""
    from pathlib import Path

    from .models import read_model, write_model

    if getattr(engine, "name", None) != "servalcat":
        raise LocScaleInputError(f"refining the pseudo-atoms' B needs the servalcat engine (refine.engine is "
                                 f"{getattr(engine, 'name', engine)!r})",
                                 "use sharpen.pseudo_atom_b: model_median, or refine.engine: servalcat")
    n = pseudo[0].count_atom_sites() if len(pseudo) else 0
    if n == 0:
        return pseudo, {"pseudo_atom_b_rule": "no pseudo-atom to refine"}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    chains = [ch.name for ch in pseudo[0]]
    merged = workdir / "model_and_pseudo_atoms.cif"
    write_model(merge(model, pseudo), merged)
    result = engine.run(merged, resolution, workdir / "servalcat", target_map=target_map, threads=threads, log=log,
                        step="adp", adp_chains=chains)
    refined = read_model(result.model)
    by_chain = {ch.name: [a.b_iso for r in ch for a in r] for ch in refined[0] if ch.name in chains}
    b = np.concatenate([np.asarray(by_chain.get(c, []), dtype=float) for c in chains])
    if b.size != n:
        raise RuntimeError(f"servalcat returned {b.size} of the {n} pseudo-atoms (see {result.workdir})")
    record = {"pseudo_atom_b_rule": "refined by servalcat against the B target, the model's atoms held (median "
                                    "given; the start value was the model's median B)",
              "pseudo_atom_b": float(np.median(b)), "pseudo_atom_b_range": [float(b.min()), float(b.max())],
              "refine_command": shlex.join(result.command), "refine_seconds": round(result.seconds, 3)}
    return set_pseudo_atom_b(pseudo, b), record


def hybrid_reference(emap: Map, model: gemmi.Structure, resolution: float, *,
                     half_maps: tuple[Map, Map] | None = None, fdr: float = DEFAULT_FDR,
                     b: float | None = None, modelmap: Map | None = None,
                     exclusion: float = EXCLUSION) -> HybridReference:
    """Pseudo-atoms where `emap` holds density `model` does not explain (module docstring).

    `b` is the pseudo-atoms' B (default :func:`pseudo_atom_b`, the model's median B). Returns the pseudo-atoms
    (their own structure, chain named so it does not clash with the model's), the unexplained-density mask and a
    JSON-ready record: how many pseudo-atoms, the threshold and how it was chosen, the B and its rule.
    """
    t0 = time.perf_counter()
    density = unexplained_density(emap, model, resolution, half_maps=half_maps, fdr=fdr, exclusion=exclusion,
                                  modelmap=modelmap)
    b_rule = "given" if b is not None else "median B of the model's atoms"
    b = pseudo_atom_b(model) if b is None else float(b)
    positions = place_pseudo_atoms(density, emap, b, resolution)
    pseudo = pseudo_atom_structure(positions, b, chain=_free_chain_name(model), cell=model.cell)
    record = {
        "pseudo_atoms": int(len(positions)),
        **density.record,
        "placement": "matching pursuit in the residual: an atom on the highest voxel above the threshold, its "
                     "footprint subtracted, until no tested voxel is above the threshold",
        "pseudo_atom_b": b,
        "pseudo_atom_b_rule": b_rule,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return HybridReference(pseudo, density.mask, record)

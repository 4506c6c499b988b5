"""Model maps: the density of an atomic model on exactly a map's grid, band-limited at `dmin`.

How (gemmi ``DensityCalculatorE``, electron form factors of International Tables Vol. C 4.3.2.2, with each
atom's B-factor -- anisotropic ADPs when present -- and occupancy):

1. The model is moved by ``-origin`` into a *box frame* whose periodic unit cell is the map's box
   (``shape × voxel_size``), so voxel ``[i, j, k]`` of the box is voxel ``[i, j, k]`` of the map for any
   origin convention, and anisotropic voxels are just a rectangular cell. Atoms outside the box are left out
   (a periodic cell would wrap their density onto the opposite face); the simulation warns when it drops any.
2. The density is summed in real space on an *internal* grid over the same cell, oversampled to a spacing of
   at most ``dmin / 3`` (gemmi's default rate 1.5), with gemmi's refmac-compatible extra blur
   ``B_blur = max(8π²/1.1 · spacing² − B_min, 0)``. Sampling a blurred atom finely keeps the aliasing of
   frequencies beyond the internal Nyquist limit back into ``|s| ≤ 1/dmin`` below ~1e-4 of the largest
   structure factor (measured against gemmi's direct summation, see tests). Sampling on the map grid itself
   (rate 1, as LocScale 2 does) errs by up to 9 % of the largest structure factor near Nyquist.
3. One FFT of the internal grid; the coefficients with ``|s| ≤ 1/dmin`` are copied to the map grid's spectrum
   (scaled by the ratio of grid point counts), the blur is removed (``× exp(B_blur |s|² / 4)``) and everything
   beyond ``1/dmin`` stays zero; one inverse FFT gives the map. The Nyquist plane of an even-sized axis
   (index −n/2) is always zero: on that grid a sine at Nyquist vanishes, so the plane cannot hold a real
   band-limited density faithfully.

Absolute scale: values are gemmi's electron-scattering density (form factors in Å, so Å⁻²): the sum over the
box times the voxel volume equals ``F(000) = Σ occupancy · f_e(0)`` of the atoms in the box.
"""

from __future__ import annotations

import warnings

import gemmi
import numpy as np
import scipy.fft

from . import metrics
from .errors import LocScaleInputError
from .mapio import Map
from .metrics import FSCCurve, envelope_radius, fsc, fsc_average, pearson
from .models import _model_label, atom_positions, envelope_mask, inside_box

#: internal oversampling rate: grid spacing ≤ dmin / (2 · RATE) (gemmi's and refmac's default)
RATE = 1.5


def nyquist_dmin(like: Map) -> float:
    """Finest resolution the grid can hold in every direction: 2 × the largest voxel size (Å)."""
    return 2.0 * float(np.max(like.voxel_size))


def _minimum_b(structure: gemmi.Structure) -> float:
    b_min = np.inf
    for ch in structure[0]:
        for res in ch:
            for at in res:
                b = at.b_iso
                if at.aniso.nonzero():
                    b = float(np.min(at.aniso.calculate_eigenvalues())) * 8 * np.pi**2
                b_min = min(b_min, b)
    return float(b_min)


def _kept_indices(n: int, hmax: int) -> np.ndarray:
    """Signed frequency indices |h| ≤ hmax that exist on an n-point axis without the Nyquist index −n/2."""
    hmax = min(hmax, (n - 1) // 2)
    return np.concatenate([np.arange(0, hmax + 1), np.arange(-hmax, 0)])


def simulate_model_map(structure: gemmi.Structure, like: Map, dmin: float | None = None) -> Map:
    """Model map of `structure` (first model) on exactly `like`'s grid, band-limited at `dmin` Å.

    `dmin` defaults to the grid's Nyquist limit, 2 × the largest voxel size. The result has `like`'s shape,
    origin, voxel size and header conventions (``like.like(data)``). See the module docstring for the method.
    """
    nyq = nyquist_dmin(like)
    if dmin is None:
        dmin = nyq
    dmin = float(dmin)
    if not np.isfinite(dmin) or dmin < nyq * (1 - 1e-6):
        raise LocScaleInputError(
            f"dmin = {dmin} Å is finer than this grid can hold (Nyquist limit {nyq:.4f} Å = 2 × the largest "
            f"voxel size {np.max(like.voxel_size):.4f} Å)",
            f"use dmin ≥ {nyq:.4f} Å (or leave it unset for the Nyquist limit)", like.path)
    n = np.asarray(like.shape)
    cell = like.box_size

    # 1. box frame; atoms outside the box left out
    st = structure.clone()
    for model in st:
        model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(-like.origin))))
    inside = inside_box(atom_positions(structure), like)
    if not np.all(inside):
        warnings.warn(f"{_model_label(structure)}: {np.count_nonzero(~inside)} of {inside.size} atoms lie "
                      f"outside the map box and are left out of the model map", stacklevel=2)
        flags = iter(inside)
        keep = [[[next(flags) for _ in res] for res in ch] for ch in st[0]]
        for ch, kc in zip(st[0], keep, strict=True):
            for res, kr in zip(ch, kc, strict=True):
                for i in reversed(range(len(kr))):
                    if not kr[i]:
                        del res[i]
        st.remove_empty_chains()
        if st[0].count_atom_sites() == 0:
            raise LocScaleInputError(f"no atom of {_model_label(structure)} lies inside the map box",
                                     "check that model and map are in the same frame ('locscale check MAP "
                                     "-m MODEL -r RES' shows the offsets)", like.path)

    # 2. density on the internal grid
    m = np.array([scipy.fft.next_fast_len(int(np.ceil(2 * RATE * c / dmin - 1e-9)), real=True) for c in cell])
    m = np.maximum(m, 2)
    spacing = float(np.max(cell / m))
    blur = max(8 * np.pi**2 / 1.1 * spacing**2 - _minimum_b(st), 0.0)
    dc = gemmi.DensityCalculatorE()
    dc.grid.set_unit_cell(gemmi.UnitCell(*cell, 90, 90, 90))
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.grid.set_size(*(int(x) for x in m))
    dc.d_min = 0.0  # keep our grid size (gemmi resizes the grid from d_min when it is set)
    dc.blur = blur
    dc.put_model_density_on_grid(st[0])
    fine = scipy.fft.rfftn(np.array(dc.grid, copy=False))

    # 3. copy |s| ≤ 1/dmin to the map grid, remove the blur, inverse FFT
    hmax = np.floor(cell / dmin + 1e-9).astype(int)
    h0, h1 = _kept_indices(n[0], hmax[0]), _kept_indices(n[1], hmax[1])
    h2 = np.arange(0, min(hmax[2], (n[2] - 1) // 2) + 1)
    block = fine[np.ix_(h0 % m[0], h1 % m[1], h2)].astype(np.complex128)
    s2 = ((h0[:, None, None] / cell[0]) ** 2 + (h1[None, :, None] / cell[1]) ** 2
          + (h2[None, None, :] / cell[2]) ** 2)
    unblur = np.where(s2 <= (1 + 1e-9) / dmin**2, np.exp(0.25 * blur * s2), 0.0)
    block *= unblur * (np.prod(n) / np.prod(m))  # DFT sums scale with the number of grid points
    spec = np.zeros((n[0], n[1], n[2] // 2 + 1), dtype=np.complex128)
    spec[np.ix_(h0 % n[0], h1 % n[1], h2)] = block
    data = scipy.fft.irfftn(spec, s=tuple(int(x) for x in n))
    return like.like(data.astype(np.float32))


# ---------------------------------------------------------------------- does the model fit the map?
#: null distribution: the same model map and envelope displaced (periodically) by N_NULL random vectors of
#: NULL_SHIFT Å (minimum-image length), seeded so the check is deterministic
N_NULL = 16
NULL_SHIFT = (10.0, 20.0)
NULL_SIGMAS = 4.0


def null_shift_range(resolution: float) -> tuple[float, float]:
    """Displacements (Å) of the null: NULL_SHIFT, widened to 2-4 × the resolution for maps coarser than 5 Å
    (a model map low-passed at d stays correlated with itself over about d, so a shift of 10 Å at d = 40 Å
    is no displacement at all and a correct model could not beat it)."""
    return max(NULL_SHIFT[0], 2.0 * resolution), max(NULL_SHIFT[1], 4.0 * resolution)


def _null_shifts(like: Map, rng: np.random.Generator, count: int,
                 span: tuple[float, float] = NULL_SHIFT) -> list[np.ndarray]:
    """Integer voxel shifts whose minimum-image length lies in `span` (fewer if the box is too small)."""
    n = np.asarray(like.shape)
    lo, top = span
    hi = min(top, float(np.linalg.norm(n // 2 * like.voxel_size)))
    shifts = []
    for _ in range(200 * count):
        if len(shifts) == count or hi < lo:
            break
        v = rng.normal(size=3)
        v *= rng.uniform(lo, hi) / np.linalg.norm(v)
        sh = np.rint(v / like.voxel_size).astype(int)
        wrapped = (sh + n // 2) % n - n // 2  # minimum image on the periodic box
        if lo <= np.linalg.norm(wrapped * like.voxel_size) <= top * 1.01:
            shifts.append(wrapped)
    return shifts


def check_model_fits_map(structure: gemmi.Structure, emap: Map, resolution: float) -> float:
    """CC between the map and the model map (low-passed at `resolution`) inside the model's envelope.

    The envelope is every voxel within :func:`locscale.metrics.envelope_radius` (max(3 Å, resolution)) of
    an atom, as for CC_mask (phenix.map_model_cc's radius is the same 3.2 Å for EMD-3488 at 3.2 Å); the map
    itself is used as given. Raises :class:`LocScaleInputError` when the CC is no better than noise.

    Null hypothesis "the model does not belong here": the same model map and envelope displaced by 16 random
    vectors of 10-20 Å (periodic shifts of the box, minimum-image length) put a model-shaped density at a
    wrong place while keeping the map's and the model's own spatial correlations (a CC over correlated voxels
    spreads far more than 1/sqrt(voxels); this measures the real spread). On EMD-3488 and the edge-case crops
    these CCs lie within ±0.11 of 0 (s.d. 0.01-0.05) while the placed models give 0.62-0.99. The model must
    beat both the largest null CC and the null mean + 4 null s.d. (one-sided Gaussian p ≈ 3e-5), so a correct
    model passes with a wide margin and a misplaced one fails.

    The fit must also be a peak (:func:`check_fit_is_a_peak`): the model moved by 1-3 voxels along each axis must
    not fit clearly better. The null above only asks whether the model is better than one 10-20 Å away, so a model
    a few Å off (a voxel-size or origin mistake, a model fitted to another copy of the map) passed it. Returns the
    CC.
    """
    resolution = float(resolution)
    if not np.isfinite(resolution) or resolution <= 0:
        raise LocScaleInputError(f"resolution {resolution} Å is not a positive number", "give the map's "
                                 "resolution in Å (e.g. the FSC-0.143 value)", emap.path)
    dmin = max(resolution, nyquist_dmin(emap))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # atoms outside the box: reported by check_model_in_map instead
        model_map = simulate_model_map(structure, emap, dmin=dmin).data
    mask = envelope_mask(structure, emap, envelope_radius(resolution))
    label = _model_label(structure)
    fix = ("check that the model belongs to this map and is in the map's frame (a model deposited in another "
           "frame, e.g. centred at the origin or fitted into an uncropped/unboxed copy of the map, must be "
           "moved into this map's frame first: 'locscale check MAP -m MODEL -r RES' shows the offsets), and "
           "that the map file is the one the model was built into")
    if np.count_nonzero(mask) < 10:
        raise LocScaleInputError(f"the envelope of {label} covers only {np.count_nonzero(mask)} voxels of "
                                 "the map box", fix, emap.path)
    # a CC over voxels where either map is constant is undefined (NaN): no correlation, count it as 0
    cc = float(np.nan_to_num(pearson(emap.data[mask], model_map[mask])))
    rng = np.random.default_rng(0)
    span = null_shift_range(resolution)
    nulls = np.nan_to_num([pearson(np.roll(emap.data, -sh, axis=(0, 1, 2))[mask], model_map[mask])
                           for sh in _null_shifts(emap, rng, N_NULL, span)])
    if nulls.size < 3:
        warnings.warn(f"{emap.path}: the box is too small to displace the model by ≥ {span[0]:g} Å; "
                      f"the fit of {label} was not checked against a null (CC {cc:.3f})", stacklevel=2)
    else:
        threshold = max(float(nulls.max()), float(nulls.mean() + NULL_SIGMAS * nulls.std(ddof=1)))
        if not cc > threshold:
            raise LocScaleInputError(
                f"{label} does not fit this map: CC inside its envelope = {cc:.3f} at {resolution:g} Å, no "
                f"better than the same model displaced by {span[0]:g}-{span[1]:g} Å (null CCs "
                f"{nulls.min():.3f} to {nulls.max():.3f}; needed > {threshold:.3f})",
                fix, emap.path)
    check_fit_is_a_peak(emap, model_map, mask, cc, label, fix)
    return cc


#: the model moved by these many voxels along each axis (both signs) must not fit clearly better than in place
FIT_SHIFTS = (1, 2, 3)
#: "clearly better": a moved copy's CC exceeds the in-place CC by more than FIT_GAIN and by more than FIT_GAIN_RELATIVE
#: of it. Measured (benchmarks/calibrate_input_checks.py) on EMD-3488 (5ME2, 5NI1 at 3.2 Å) and the three edge-case
#: crops: placed models lose 0.10-0.24 of CC when moved by one voxel; models off by 0.5 voxel gain 0.000-0.005
#: (ambiguous between two voxels, accepted), by 0.7 voxel 0.10-0.11, by one voxel 0.10-0.27, and 5ME2 six voxels off (CC
#: 0.054, which passed the null) 0.037.
FIT_GAIN = 0.02
FIT_GAIN_RELATIVE = 0.1


def _cc_moved(data: np.ndarray, model_data: np.ndarray, where: tuple, shift) -> float:
    """CC inside the envelope (voxel indices `where`) of the model map with the map read `shift` voxels away:
    the CC of the model (and its envelope) moved by `shift` (periodic box)."""
    moved = tuple((w + int(s)) % n for w, s, n in zip(where, shift, data.shape, strict=True))
    return float(np.nan_to_num(pearson(data[moved], model_data[where])))


def fit_shift_scan(data: np.ndarray, model_data: np.ndarray, mask: np.ndarray) -> dict:
    """CC of the model moved by ±:data:`FIT_SHIFTS` voxels along each axis, the best move per axis combined, and the
    best move overall (``best_shift`` in voxels, ``best_cc``; the in-place CC is ``cc``)."""
    where = np.nonzero(mask)
    cc0 = _cc_moved(data, model_data, where, (0, 0, 0))
    scan = {}
    for axis in range(3):
        for step in FIT_SHIFTS:
            for sign in (-1, 1):
                shift = [0, 0, 0]
                shift[axis] = sign * step
                scan[tuple(shift)] = _cc_moved(data, model_data, where, shift)
    per_axis = []
    for axis in range(3):
        moves = {sh[axis]: c for sh, c in scan.items() if sh[axis] != 0}
        step = max(moves, key=moves.get)
        per_axis.append(step if moves[step] > cc0 else 0)
    if sum(1 for s in per_axis if s) > 1:
        scan[tuple(per_axis)] = _cc_moved(data, model_data, where, per_axis)
    best = max(scan, key=scan.get)
    return {"cc": cc0, "best_shift": list(best), "best_cc": scan[best],
            "scan": {",".join(map(str, k)): v for k, v in scan.items()}}


def check_fit_is_a_peak(emap: Map, model_map: np.ndarray, mask: np.ndarray, cc: float, label: str,
                        fix: str) -> dict:
    """Raise :class:`LocScaleInputError` when the model moved by a few voxels (:func:`fit_shift_scan`) fits the map
    clearly better than in place (:data:`FIT_GAIN`, :data:`FIT_GAIN_RELATIVE`); the message gives the best move."""
    scan = fit_shift_scan(emap.data, model_map, mask)
    gain = scan["best_cc"] - cc
    if gain > max(FIT_GAIN, FIT_GAIN_RELATIVE * abs(cc)):
        shift = np.asarray(scan["best_shift"])
        angstrom = shift * emap.voxel_size
        edge = " or more (the search stops at 3 voxels)" if np.any(np.abs(shift) == max(FIT_SHIFTS)) else ""
        raise LocScaleInputError(
            f"{label} is not where it fits this map: moved by ({', '.join(f'{s:+d}' for s in shift)}) voxels = "
            f"({', '.join(f'{a:+.2f}' for a in angstrom)}) Å{edge} it fits clearly better (CC inside its envelope "
            f"{scan['best_cc']:.3f} against {cc:.3f} in place)",
            "move the model to where it fits (the workflow's model_shift adds a shift in Å to every atom) or refit "
            "it into this map (e.g. ChimeraX fitmap), and check the map's voxel size and origin; " + fix, emap.path)
    return scan


def model_map_fsc(structure, emap, resolution: float, mask: np.ndarray | None = None) -> tuple[FSCCurve, float]:
    """FSC between `emap` and the model map of `structure` simulated at Nyquist on `emap`'s grid.

    Returns (curve, FSCaverage up to `resolution`). With ``mask=None`` this is servalcat's unmasked
    ``servalcat fsc --model M --map F -d D --mask_radius 0``.
    """
    model = simulate_model_map(structure, emap)
    curve = fsc(model.data, emap.data, emap.apix, mask=mask)
    return curve, fsc_average(curve, resolution)


def rscc(emap, structure, resolution: float, envelope_radius: float | None = None, *,
         model_map=None) -> dict:
    """Real-space correlation of `emap` with the model map of `structure` simulated at `resolution`.

    Returns ``{"cc_mask", "cc_box", "per_residue", "envelope_radius", "mask_voxels"}``; ``per_residue`` is a
    DataFrame (chain, resnum, icode, resname, n_voxels, cc) with CC over voxels within ``max(3 Å, d)`` of each
    residue's atoms (``metrics.per_residue_cc``). `envelope_radius` defaults to ``metrics.envelope_radius``
    (``max(3 Å, d)``). `model_map`
    (simulated at `resolution` on `emap`'s grid) is simulated when not given.
    """
    radius = metrics.envelope_radius(resolution) if envelope_radius is None else float(envelope_radius)
    if model_map is None:
        model_map = simulate_model_map(structure, emap, dmin=float(resolution))
    mdata = np.asarray(model_map.data if hasattr(model_map, "data") else model_map)
    edata = emap.data
    if mdata.shape != edata.shape:
        raise ValueError(f"model map shape {mdata.shape} does not match the map's {edata.shape}")
    env = np.asarray(envelope_mask(structure, emap, radius), dtype=bool)
    return {
        "cc_mask": pearson(edata[env], mdata[env]),
        "cc_box": pearson(edata, mdata),
        "per_residue": metrics.per_residue_cc(emap, mdata, structure,
                                              max(metrics.ENVELOPE_MIN_RADIUS, float(resolution))),
        "envelope_radius": radius,
        "mask_voxels": int(np.count_nonzero(env)),
    }

"""Pseudo-atoms in the unexplained density: placement by matching pursuit, their B (the model's median, or refined
with the model held), their structure, map and merge with the model (steps 4-5 of :mod:`locscale.hybrid`)."""

from __future__ import annotations

import shlex
import string

import gemmi
import numpy as np

from ..errors import LocScaleInputError
from ..mapio import Map
from ..metrics import coefficient_shells
from .unexplained import UnexplainedDensity, _apply, lowpass

#: pseudo-atoms are at least this far apart (Å; about a bond length)
MIN_DISTANCE = 1.2


#: residue name, atom name and element of a pseudo-atom
PSEUDO_RESIDUE, PSEUDO_ATOM, PSEUDO_ELEMENT = "HOH", "O", "O"


#: preferred chain names of the pseudo-atoms (the first one the model does not use)
PSEUDO_CHAINS = "XYZWVU"


def _atom_footprint(apix: float, b: float, scale: float, b_offset: float, resolution: float) -> np.ndarray:
    """One pseudo-atom at a voxel centre as it appears in the residual: its density (B = `b`) times
    A·exp(−ΔB s²/4), low-passed; cropped where it falls below 1e-3 of its peak (odd edge, centred)."""
    from ..simulate import simulate_model_map

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
    from ..models import b_factors

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
    from ..models import atom_positions
    from ..simulate import _kept_indices, nyquist_dmin, simulate_model_map

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

    from ..models import read_model, write_model

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

"""Atomic models (PDB / mmCIF, via gemmi) and their placement on a map grid.

Conventions used by every function here:

* Only the **first model** of a file is used (cryo-EM models have one; an NMR-style ensemble gets a warning).
* Atoms are taken in file order: chain → residue → atom. :func:`atom_positions` and the atom indices of
  :func:`residue_table` both follow this order, so they index the same atoms.
* **Waters and hydrogens are kept** by default: they are part of the deposited/refined model and both scatter
  electrons (a hydrogen's electron form factor at low angle is about a fifth of a carbon's), so dropping them
  would bias the model map. ``read_model(..., remove_hydrogens=True, remove_waters=True)`` removes them on
  request; nothing else is ever removed. Measured: 3J6B chain 9 in the EMD-2566 crop at 3.2 Å correlates
  0.62 inside its envelope with its 1 437 riding hydrogens and 0.70 without (0.67 vs 0.70 on the same H-free
  envelope), so compare like with like, e.g. with models refined by ``servalcat --hydrogen no``.
* Functions that change a model (:func:`shift_model`, :func:`set_uniform_b`, :func:`shake_model`, and the
  model edits of the experiments' controls: :func:`truncate_to_ala`, :func:`mutate_to_trp`,
  :func:`perturb_coordinates`, :func:`sub_structure`, :func:`add_residues`, :func:`add_b`) return a modified
  **copy** and leave their input untouched.
* Coordinates are in Å in the frame of the map (see :mod:`locscale.mapio`: voxel ``[i, j, k]`` sits at
  ``origin + (i, j, k) * voxel_size``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd

from .errors import LocScaleInputError
from .mapio import Map
from .metrics import level_for_enclosed_volume
from .outputs import atomic_output

# gemmi keeps Structure.info items through clone() but writes only the mmCIF keys it knows, so the source path
# can travel with the structure (used in error messages) without ever reaching an output file.
_PATH_KEY = "_locscale.source_path"


def model_path(structure: gemmi.Structure) -> str | None:
    """The file a structure was read from (by :func:`read_model`), or None."""
    return dict(structure.info).get(_PATH_KEY)


def _model_label(structure: gemmi.Structure) -> str:
    return model_path(structure) or f"model {structure.name or '(unnamed)'}"


# ---------------------------------------------------------------------- reading and writing
def read_model(path: str | os.PathLike, *, remove_hydrogens: bool = False,
               remove_waters: bool = False) -> gemmi.Structure:
    """Read a PDB or mmCIF model (optionally gzipped) with gemmi.

    Raises :class:`LocScaleInputError` for a missing or unparsable file, a file without atoms, or atoms whose
    element is unknown (they would scatter nothing in a model map). Waters and hydrogens are kept unless
    asked otherwise (see the module docstring for why).
    """
    path = Path(path)
    if not path.exists():
        raise LocScaleInputError("model file not found",
                                 "check the path (relative paths are from the current folder)", path)
    if path.is_dir():
        raise LocScaleInputError("is a folder, not a model file", "give a PDB or mmCIF file", path)
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises ValueError/RuntimeError for garbage and unknown formats
        raise LocScaleInputError(f"not a readable PDB/mmCIF model ({exc})",
                                 "give a PDB (.pdb/.ent) or mmCIF (.cif/.mmcif) model file", path) from exc
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise LocScaleInputError("no atoms found in the model file",
                                 "check that this is the right file: a PDB file needs ATOM/HETATM records, "
                                 "an mmCIF file an _atom_site table", path)
    if len(st) > 1:
        warnings.warn(f"{path}: {len(st)} models in the file; only the first is used", stacklevel=2)
    st.setup_entities()  # polymer/ligand/water types, needed by gemmi's selection and clean-up functions
    if remove_hydrogens:
        st.remove_hydrogens()
    if remove_waters:
        st.remove_waters()
    st.remove_empty_chains()
    if st[0].count_atom_sites() == 0:
        raise LocScaleInputError("no atoms left after removing hydrogens/waters",
                                 "keep hydrogens/waters, or give a model with other atoms", path)
    unknown = [f"{ch.name}/{res.seqid.num}{res.seqid.icode.strip()}/{res.name}/{at.name}"
               for ch in st[0] for res in ch for at in res if at.element == gemmi.Element("X")]
    if unknown:
        raise LocScaleInputError(
            f"{len(unknown)} atom(s) have no known chemical element (e.g. {', '.join(unknown[:3])})",
            "fill in the element column (PDB columns 77-78, mmCIF _atom_site.type_symbol)", path)
    _check_model_file(st, path)
    st.info[_PATH_KEY] = str(path)
    return st


def _text_lines(path: Path) -> list[str]:
    if path.suffix.lower() == ".gz":
        import gzip

        with gzip.open(path, "rt", errors="replace") as f:
            return f.read().splitlines()
    return path.read_text(errors="replace").splitlines()


def _check_model_file(st: gemmi.Structure, path: Path) -> None:
    """Degenerate models (locscale.checks): garbled or non-finite coordinates and all-zero occupancies are
    refused; a missing B column, all B = 0 and negative B give warnings. gemmi reads an unparsable PDB
    coordinate as 0 or a prefix of it and a missing B as 20 Å², so the PDB columns are checked here."""
    from .checks import check_model_content

    lines = _text_lines(path)
    is_cif = any(line.startswith(("data_", "loop_", "_atom_site.")) for line in lines[:200]) or any(
        line.startswith("_atom_site.") for line in lines)
    if is_cif:
        b_column = any(line.strip().startswith("_atom_site.B_iso_or_equiv") for line in lines)
    else:
        b_column = False
        garbled = []
        for n, line in enumerate(lines, 1):
            if line.startswith("ENDMDL"):
                break
            if not line.startswith(("ATOM", "HETATM")):
                continue
            try:
                [float(line[a:b]) for a, b in ((30, 38), (38, 46), (46, 54))]
            except ValueError:
                garbled.append(f"line {n}: {line[30:54].strip()!r}")
            if line[60:66].strip():
                b_column = True
        if garbled:
            raise LocScaleInputError(f"{len(garbled)} atom(s) have unreadable coordinates (e.g. "
                                     f"{'; '.join(garbled[:3])})",
                                     "fix the coordinates (PDB columns 31-54: three numbers of 8 characters, "
                                     "e.g. '  45.985') or re-export the model", path)
    labels = [f"{ch.name}/{res.seqid.num}{res.seqid.icode.strip()}/{res.name}/{at.name}"
              for ch in st[0] for res in ch for at in res]
    occ = np.fromiter((at.occ for at in _atoms(st)), dtype=float)
    check_model_content(atom_positions(st), b_factors(st), occ, labels, str(path), b_column=b_column)


def write_model(structure: gemmi.Structure, path: str | os.PathLike) -> Path:
    """Write a model atomically: PDB for ``.pdb``/``.ent``, mmCIF for ``.cif``/``.mmcif`` (no ``.gz``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pdb", ".ent", ".cif", ".mmcif"):
        raise LocScaleInputError(f"unknown model file type {path.suffix!r}",
                                 "name the output .pdb or .cif (mmCIF)", path)
    st = structure.clone()
    if _PATH_KEY in dict(st.info):
        del st.info[_PATH_KEY]
    with atomic_output(path) as tmp:
        if suffix in (".pdb", ".ent"):
            try:
                st.write_pdb(str(tmp))
            except Exception as exc:  # e.g. chain names longer than 2 characters, > 99 999 atoms
                raise LocScaleInputError(f"the model cannot be written as PDB ({exc})",
                                         "write it as mmCIF instead (name the output .cif)", path) from exc
        else:
            st.setup_entities()
            st.make_mmcif_document().write_file(str(tmp))
    return path


# ---------------------------------------------------------------------- atoms and residues
def _atoms(structure: gemmi.Structure):
    return (at for ch in structure[0] for res in ch for at in res)


def atom_positions(structure: gemmi.Structure) -> np.ndarray:
    """(N, 3) atom positions in Å (first model, file order)."""
    pos = [at.pos.tolist() for at in _atoms(structure)]
    return np.asarray(pos, dtype=float).reshape(-1, 3)


def b_factors(structure: gemmi.Structure) -> np.ndarray:
    """Isotropic B (Å²) of every atom (first model, file order)."""
    return np.fromiter((at.b_iso for at in _atoms(structure)), dtype=float)


def residue_table(structure: gemmi.Structure) -> pd.DataFrame:
    """One row per residue of the first model: ``chain``, ``seqnum``, ``icode``, ``name``, ``n_atoms`` and
    ``atoms`` (int array of indices into :func:`atom_positions`)."""
    rows = []
    start = 0
    for ch in structure[0]:
        for res in ch:
            n = len(res)
            rows.append((ch.name, int(res.seqid.num), res.seqid.icode.strip(), res.name, n,
                         np.arange(start, start + n)))
            start += n
    return pd.DataFrame(rows, columns=["chain", "seqnum", "icode", "name", "n_atoms", "atoms"])


def model_summary(structure: gemmi.Structure) -> dict:
    """Counts and B-factor statistics of the first model."""
    b = b_factors(structure)
    n_h = sum(1 for at in _atoms(structure) if at.is_hydrogen())
    n_water = sum(1 for ch in structure[0] for res in ch if res.is_water())
    return {
        "atoms": int(b.size),
        "chains": len(structure[0]),
        "residues": int(sum(len(ch) for ch in structure[0])),
        "hydrogens": int(n_h),
        "waters": int(n_water),
        "b_mean": float(b.mean()),
        "b_median": float(np.median(b)),
        "b_min": float(b.min()),
        "b_max": float(b.max()),
    }


# ---------------------------------------------------------------------- changing a model (copies)
def _set_positions(structure: gemmi.Structure, positions: np.ndarray) -> None:
    for at, p in zip(_atoms(structure), positions, strict=True):
        at.pos = gemmi.Position(*p)


def shift_model(structure: gemmi.Structure, shift_xyz) -> gemmi.Structure:
    """A copy of the model translated by `shift_xyz` (Å; all models of the file)."""
    shift = np.broadcast_to(np.asarray(shift_xyz, dtype=float), (3,))
    st = structure.clone()
    tr = gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift))
    for model in st:
        model.transform_pos_and_adp(tr)
    return st


def set_uniform_b(structure: gemmi.Structure, b: float) -> gemmi.Structure:
    """A copy with every atom's isotropic B set to `b` (Å²) and anisotropic ADPs removed."""
    st = structure.clone()
    for model in st:
        for ch in model:
            for res in ch:
                for at in res:
                    at.b_iso = float(b)
                    at.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    return st


def shift_b_to_mean(structure: gemmi.Structure, mean_b: float, min_b: float = 0.0) -> tuple[gemmi.Structure, float]:
    """A copy with every isotropic B shifted by one constant so that the mean B is `mean_b` (Å²), keeping the
    relative B-factors; B below `min_b` is raised to it (the mean is then slightly above `mean_b`). Returns
    (structure, shift applied). Anisotropic ADPs are removed (the workflow refines isotropic B only)."""
    shift = float(mean_b) - float(b_factors(structure).mean())
    st = structure.clone()
    for model in st:
        for ch in model:
            for res in ch:
                for at in res:
                    at.b_iso = max(float(min_b), float(at.b_iso) + shift)
                    at.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    return st, shift


def shake_model(structure: gemmi.Structure, max_shift: float = 0.5, seed: int = 0) -> gemmi.Structure:
    """A copy with every atom of the first model moved by a random vector of length ≤ `max_shift` Å.

    The shifts are uniform in the ball of radius `max_shift` (random direction, radius ∝ u^(1/3)), drawn from
    ``numpy.random.default_rng(seed)``: the same seed gives the same model (the cross-validation protocol of
    Brown et al. 2015 shakes by up to 0.5 Å before refining against half map 1).
    """
    if max_shift < 0:
        raise ValueError("max_shift must be ≥ 0")
    st = structure.clone()
    pos = atom_positions(st)
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=pos.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = max_shift * rng.random(len(pos)) ** (1.0 / 3.0)
    _set_positions(st, pos + direction * radius[:, None])
    return st


# ---------------------------------------------------------------------- the model on a map grid
def inside_box(positions: np.ndarray, like: Map) -> np.ndarray:
    """Bool per position: inside the box covered by the map's voxels (centres ± half a voxel)."""
    idx = like.frac_to_xyz_index(positions)
    return np.all((idx >= -0.5) & (idx < np.asarray(like.shape) - 0.5), axis=1)


def check_model_in_map(structure: gemmi.Structure, emap: Map, min_inside: float = 0.9) -> float:
    """Fraction of atoms inside the map's box; raises :class:`LocScaleInputError` below `min_inside`.

    The error says where the model's centre is relative to the box centre and which shift would bring it in
    (a deposited model is often in another frame: e.g. 3J5P is centred at the origin while the EMD-5778 box
    spans 0-311 Å, and a map cropped or boxed after deposition keeps only an offset in its header).
    """
    pos = atom_positions(structure)
    frac = float(np.mean(inside_box(pos, emap)))
    if frac >= min_inside:
        return frac
    box_lo = emap.origin - 0.5 * emap.voxel_size
    box_hi = box_lo + emap.box_size
    box_centre = 0.5 * (box_lo + box_hi)
    centre = pos.mean(axis=0)
    shift = box_centre - centre

    def fmt(v):
        return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"

    hints = []
    if np.any(emap.origin != 0):
        for sign, word in ((1, "+"), (-1, "-")):
            if np.mean(inside_box(pos + sign * emap.origin, emap)) >= min_inside:
                hints.append(f"shifting it by {word}origin {fmt(sign * emap.origin)} Å puts it inside: the "
                             f"model is probably in the frame of the same map with origin 0")
    hint = ("; " + "; ".join(hints)) if hints else ""
    raise LocScaleInputError(
        f"only {frac:.0%} of the {len(pos)} atoms of {_model_label(structure)} lie inside the map box "
        f"(need ≥ {min_inside:.0%}): the box spans {fmt(box_lo)}-{fmt(box_hi)} Å, the model's centre is at "
        f"{fmt(centre)} Å, {np.linalg.norm(shift):.1f} Å from the box centre {fmt(box_centre)} Å{hint}",
        "check that model and map belong together and are in the same frame; if the model is only displaced, "
        f"moving it by {fmt(shift)} Å puts its centre at the box centre (e.g. python -c \"from "
        "locscale.models import *; "
        f"write_model(shift_model(read_model('IN.pdb'), {tuple(round(float(s), 3) for s in shift)}), "
        "'OUT.pdb')\") or fit it into the map in ChimeraX ('fitmap') and save it relative to the map",
        emap.path,
    )


def envelope_mask(structure: gemmi.Structure, like: Map, radius: float) -> np.ndarray:
    """Bool array on `like`'s grid: voxels whose centre lies within `radius` Å of any atom (first model).

    Exact distances for any origin and anisotropic voxels; atoms outside the box still mark voxels within
    `radius` of them (no periodic wrapping). Uses gemmi's per-atom sphere fill (C++), ~0.1 s for 256³ at 3 Å.
    """
    if radius <= 0:
        raise ValueError("radius must be > 0")
    pos = atom_positions(structure) - like.origin
    box = like.box_size
    # atoms farther than `radius` from the box cannot mark anything
    keep = np.all((pos > -radius - like.voxel_size) & (pos < box + radius), axis=1)
    grid = gemmi.Int8Grid()
    grid.set_unit_cell(gemmi.UnitCell(*box, 90, 90, 90))
    grid.set_size(*like.shape)
    for p in pos[keep]:
        grid.set_points_around(gemmi.Position(*p), radius, 1, use_pbc=False)
    return np.array(grid, copy=False).astype(bool)


# ---------------------------------------------------------------------- model edits (the experiments' controls)

# A tryptophan (PDB 5NI1 chain A residue 14, CC0) used as the side-chain template for "mutate to Trp" when the
# model holds no tryptophan of its own; it is superposed on the target residue's N, CA, C and CB.


# ---------------------------------------------------------------------- mass, molecular volume, contour level
#: Partial specific volume of protein, Å³ per Da (0.73 cm³/g; density 1.35 g/cm³, Fischer et al. 2004).
PROTEIN_VOLUME_PER_DALTON = 1.21


def model_mass(structure) -> float:
    """Mass of the model in Da (Σ atomic weight × occupancy over the first model); when the model has no
    hydrogen atoms, one hydrogen per heavy atom is added (≈ the ratio in proteins and nucleic acids)."""
    mass = 0.0
    heavy = 0
    hydrogens = 0
    for chain in structure[0]:
        for res in chain:
            for atom in res:
                mass += atom.element.weight * atom.occ
                if atom.element.name in ("H", "D"):
                    hydrogens += 1
                else:
                    heavy += 1
    if heavy == 0:
        raise LocScaleInputError("the model has no atoms", "give a model with atomic coordinates")
    if hydrogens == 0:
        mass += 1.008 * heavy
    return float(mass)


def contour_level(emap: Map, structure, scale: float = 1.0) -> tuple[float, float]:
    """A contour level at which the map encloses the model's molecular volume (`scale` times it).

    Volume = model mass × 1.21 Å³/Da (protein partial specific volume). Returns ``(level, volume Å³)``.
    Density the model does not explain (unmodelled parts, noise) takes part of that volume, so the contour
    then sits a little tighter than the model; `scale` > 1 loosens it.
    """
    volume = model_mass(structure) * PROTEIN_VOLUME_PER_DALTON * float(scale)
    voxel_volume = float(np.prod(emap.voxel_size))
    return level_for_enclosed_volume(emap.data, volume, voxel_volume), volume

"""The hybrid reference of one map and model: the unexplained density found and filled with pseudo-atoms, with the
record of how (:mod:`locscale.hybrid`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import gemmi
import numpy as np

from ..mapio import Map
from .pseudo_atoms import (
    _free_chain_name,
    add_pseudo_atom_map,
    merge,
    place_pseudo_atoms,
    pseudo_atom_b,
    pseudo_atom_structure,
)
from .unexplained import DEFAULT_FDR, EXCLUSION, unexplained_density


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

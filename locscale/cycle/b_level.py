"""The overall B level of a cycle's refined model, and what the model map needs to keep it.

Only the *relative* B-factors are fixed by the data; the overall level reflects how the target was sharpened
(docs/science.md, "Which map the B-factors are refined against"). The refine step hands this module the engine's model
with B-factors at the level the refinement asks for -- servalcat's (:mod:`locscale.engines.servalcat`) may be
≤ 0 where the target is sharper than any physical model -- and gets back:

* **the reference level** (:func:`held_level`): cycle 1 keeps the refinement's level; with ``refine.b_level:
  fixed`` every later cycle shifts all B by one constant to cycle 1's *reference* mean B, read from cycle 1's
  record, never from the model that enters the cycle (so nothing accumulates from cycle to cycle);
* **a model with physical B-factors** (:func:`place_refined_b`): if the reference puts atoms at or below
  :data:`B_FLOOR`, every B is raised by one constant until the lowest atom sits at the floor. No atom is clipped,
  so the relative B stay exactly those refined;
* **the model-map sharpening** that undoes that raise (:func:`sharpen_model_map`): the map of the raised model
  sharpened by the same B is exactly the map of the reference (a constant B added to every atom multiplies the
  model's structure factors by exp(-B·s²/4)), so LocScale sees the level the target asked for.

A target that asks for B at or below the floor is sharper than any model can be: the step warns with the
fraction of atoms and the raise. The cycle row records both (``b_below_floor_pct``, ``b_model_raise``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import gemmi
import numpy as np

from ..errors import LocScaleInputError
from ..mapio import Map
from ..models import b_factors

#: the lowest B (Å²) a cycle's model gets (servalcat's own lower bound)
B_FLOOR = 0.5
#: ``refine.b_level`` values
B_LEVEL_MODES = ("fixed", "free")


def level_is_held(cycle: int, mode: str, has_data_blur: bool) -> bool:
    """Whether cycle `cycle` shifts its refined B to a reference level (:func:`held_level` returns one), so the
    refinement's own level is not read: cycle 1 with a data-blur record, later cycles with ``mode`` fixed."""
    if mode not in B_LEVEL_MODES:
        raise ValueError(f"refine.b_level must be one of {B_LEVEL_MODES}, not {mode!r}")
    return bool(has_data_blur) if int(cycle) <= 1 else mode == "fixed"


def held_level(cycle: int, mode: str, first_cycle_record: Mapping | None = None,
               data_blur_record: Mapping | None = None) -> float | None:
    """The reference mean B (Å²) cycle `cycle` is shifted to, or None (keep the refinement's level).

    Cycle 1: the level of cycle 0's data-blur record (``b_mean_reference``: the model refined against the
    unsharpened map less the data's own blur, :func:`locscale.global_sharpen.data_blur`) when there is one, else
    None. Later cycles: None with ``mode`` free; with fixed, cycle 1's reference mean (``b_mean_reference`` of cycle
    1's refine record)."""
    if not level_is_held(cycle, mode, data_blur_record is not None):
        return None
    if int(cycle) <= 1:
        return float(data_blur_record["b_mean_reference"])
    level = None if first_cycle_record is None else first_cycle_record.get("b_mean_reference")
    if level is None or not np.isfinite(level):
        raise LocScaleInputError(
            "cycle 1's refine record has no reference B level (b_mean_reference), which refine.b_level: fixed "
            "keeps in later cycles (a record written by an older version)",
            "delete the dataset's cycle_01 folder (and later ones) under results/ and run snakemake again")
    return float(level)


def place_refined_b(structure: gemmi.Structure, *, level: float | None = None, floor: float = B_FLOOR
                    ) -> tuple[gemmi.Structure, dict]:
    """The refined `structure` (B at the level the refinement asks for, possibly ≤ `floor`) as a model with
    physical B-factors, and the record of what was done (module docstring).

    `level` (from :func:`held_level`): shift every B by one constant so the mean is `level` first. Returns
    (model, record) with ``b_mean_refined`` (the engine's mean B), ``b_shift_to_level``, ``b_mean_reference``
    (the level LocScale's reference keeps), ``b_lowest_reference``, ``b_below_floor_pct`` (atoms whose reference
    B is at or below the floor, %), ``b_model_raise`` (Å² added to every B of the model, and taken off again by
    sharpening its model map) and ``b_floor``. Anisotropic ADPs are removed (the cycle refines isotropic B)."""
    b = b_factors(structure)
    if b.size == 0:
        raise ValueError("the refined model has no atoms")
    shift = 0.0 if level is None else float(level) - float(b.mean())
    reference = b + shift
    below = float(np.count_nonzero(reference <= floor)) / b.size
    raise_b = max(0.0, float(floor) - float(reference.min()))
    model = structure.clone()
    for ch in model[0]:
        for res in ch:
            for atom in res:
                atom.b_iso = float(atom.b_iso) + shift + raise_b
                atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    if below > 0:
        warnings.warn(
            f"the B-factor target is sharper than any model can be: at the cycle's B level, {100 * below:.1f} % "
            f"of the atoms would have B ≤ {floor:g} Å² (lowest {reference.min():.1f} Å²); the model's B-factors "
            f"were raised by {raise_b:.1f} Å² and its model map sharpened by the same amount (the target, or the "
            "map it was made from, is over-sharpened)", UserWarning, stacklevel=2)
    return model, {"b_mean_refined": float(b.mean()), "b_shift_to_level": shift,
                   # the level asked for itself (the mean it sets, without the sum's rounding): a later cycle that
                   # holds it shifts by exactly the same constant, so the same refined B give the same model
                   "b_mean_reference": float(reference.mean()) if level is None else float(level),
                   "b_lowest_reference": float(reference.min()),
                   "b_below_floor_pct": 100.0 * below, "b_model_raise": raise_b, "b_floor": float(floor)}


def sharpen_model_map(model_map: Map, model_raise: float) -> Map:
    """`model_map` sharpened by `model_raise` Å² (the record's ``b_model_raise``): the map of the reference level
    (module docstring). Unchanged when the raise is 0."""
    from ..global_sharpen import apply_bfactor

    if not model_raise:
        return model_map
    return model_map.like(apply_bfactor(model_map.data, model_map.apix, -float(model_raise)))

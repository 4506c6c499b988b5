"""The :class:`Bench` every experiment runs on (see :mod:`locscale.experiments`), and the workflow's cycle-0
target."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from .. import metrics
from ..mapio import Map, read_map
from ..phantoms.truth import soft_mask, truth_scores

DEFAULT_MODE = "exact"


@dataclass
class Bench:
    """What every experiment needs (module docstring)."""

    half1: Map
    half2: Map
    truth: Map
    structure: gemmi.Structure  # complete true model (truth B)
    resolution: float
    window: int
    eval_mask: np.ndarray
    scale_mask: np.ndarray
    mode: str = DEFAULT_MODE
    blurred: gemmi.Structure | None = None  # true coordinates with the B of the blurred signal, when known
    info: dict = field(default_factory=dict)
    _soft: np.ndarray | None = field(default=None, repr=False)

    @property
    def full(self) -> Map:
        return self.half1.like(0.5 * (self.half1.data + self.half2.data))

    @classmethod
    def build(cls, half1: Map, half2: Map, truth: Map, structure: gemmi.Structure, resolution: float, *,
              window: int | None = None, mode: str = DEFAULT_MODE, blurred=None, info=None) -> Bench:
        from ..models import envelope_mask
        from ..sharpen import choose_window

        w = choose_window(half1.apix, resolution, window, mode=mode).voxels
        eval_mask = envelope_mask(structure, half1, metrics.envelope_radius(resolution))
        scale_mask = envelope_mask(structure, half1, 0.5 * w * half1.apix) | eval_mask
        return cls(half1, half2, truth, structure, float(resolution), w, eval_mask, scale_mask, mode, blurred,
                   dict(info or {}))

    @classmethod
    def from_phantom(cls, ph, resolution: float | None = None, **kw) -> Bench:
        """From a :class:`locscale.phantoms.phantom.PhantomResult` (resolution defaults to the requested one)."""
        res = ph.info["noise"]["requested_resolution"] if resolution is None else resolution
        from ..phantoms.edits import add_b

        blurred = add_b(ph.structure, ph.delta_b, ph.info["blur"]["b_global"])
        return cls.build(ph.half1, ph.half2, ph.truth, ph.structure, res, blurred=blurred, info=ph.info, **kw)

    @classmethod
    def from_dir(cls, folder: str | Path, prefix: str = "SIMULATED", resolution: float | None = None,
                 **kw) -> Bench:
        """From the files :meth:`PhantomResult.write` wrote (maps, true model, JSON)."""
        from ..models import read_model

        folder = Path(folder)
        info = json.loads((folder / f"{prefix}_phantom.json").read_text())
        h1 = read_map(folder / f"{prefix}_half1.mrc")
        h2 = read_map(folder / f"{prefix}_half2.mrc")
        truth = read_map(folder / f"{prefix}_truth.mrc")
        st = read_model(folder / f"{prefix}_model_true.pdb")
        res = info["noise"]["requested_resolution"] if resolution is None else resolution
        return cls.build(h1, h2, truth, st, res, info=info, blurred=_blurred_from_info(st, info), **kw)

    def reference_structure(self, which: str, refined: gemmi.Structure | None = None) -> gemmi.Structure:
        """"truth" (true coordinates and truth B) or "refined" (`refined`, B refined against the half maps)."""
        if which == "truth":
            return self.structure
        if which == "refined":
            if refined is None:
                raise ValueError("reference 'refined' needs the refined model")
            return refined
        raise ValueError(f"unknown reference {which!r}: use 'truth' or 'refined'")

    # -- helpers used by every experiment
    def reference_map(self, structure: gemmi.Structure) -> Map:
        from ..simulate import simulate_model_map

        return simulate_model_map(structure, self.half1)

    def locscale(self, reference: gemmi.Structure | Map, *, window: int | None = None, mask="scale",
                 progress: bool = False) -> Map:
        """LocScale of the full map against `reference` (a model or a model map) with the bench's mode."""
        from ..sharpen import sharpen_map

        ref = reference if isinstance(reference, Map) else self.reference_map(reference)
        m = self.scale_mask if isinstance(mask, str) and mask == "scale" else mask
        out, _ = sharpen_map(self.full, ref, self.resolution, window=window or self.window, mask=m,
                             mode=self.mode, half_maps=(self.half1, self.half2), progress=progress)
        return out

    def scores(self, emap: Map) -> dict:
        if self._soft is None:
            self._soft = soft_mask(self.eval_mask)
        rec, _ = truth_scores(emap.data, self.truth, self.resolution, self.eval_mask, self._soft)
        rec["kurtosis_mask"] = metrics.excess_kurtosis(emap.data, self.eval_mask)
        return rec


def _blurred_from_info(structure: gemmi.Structure, info: dict) -> gemmi.Structure | None:
    """The true model with the B of the phantom's blurred signal, rebuilt from the phantom JSON."""
    from ..phantoms.edits import add_b
    from ..phantoms.phantom import b_gradient

    blur = info.get("blur")
    if not blur:
        return None
    db = b_gradient(structure, blur["b_core"], blur["b_periphery"], power=blur.get("power", 1.0),
                    chain_b=blur.get("chain_b"))
    return add_b(structure, db, blur["b_global"])


def refinement_engine(refine_config: dict, environ: dict | None = None):
    """The refinement engine of the experiments' ``refine`` section (config/experiments.yaml: ``engine``,
    default servalcat; ``restrained``, ``monlib``, ``ncycle``): B-factors only, coordinates fixed."""
    from ..engines import make_engine

    cfg = refine_config  # what it leaves out takes the workflow schema's defaults (make_engine)
    given = {k: cfg[k] for k in ("engine", "restrained", "monlib") if k in cfg}
    return make_engine({**given, "refine_xyz": False, "servalcat": {"ncycle": cfg.get("ncycle")}}, environ)


def global_target(half1: Map, half2: Map, resolution: float, b_data: float | None = None) -> tuple[Map, dict]:
    """The workflow's cycle-0 target (its fixed B-refinement target by default): the half maps' mean, sharpened
    by the data's own blur `b_data` (:func:`locscale.global_sharpen.data_blur`; the Guinier B when None) and
    FSC-weighted (:func:`locscale.global_sharpen.global_sharpen`)."""
    from ..global_sharpen import global_sharpen

    full = half1.like(0.5 * (half1.data + half2.data))
    return global_sharpen(full, resolution, bfactor=None if b_data is None else -float(b_data),
                          half_maps=(half1, half2))

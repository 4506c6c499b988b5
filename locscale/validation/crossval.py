"""Cross-validation of a model against half maps by the shake protocol (Brown et al. 2015; docs/design.md
"Metrics: one definition each").

1. shake every atom by a random vector of length ≤ ``shake`` Å (seeded, ``models.shake_model``) to erase the
   memory of the full map the model was built into;
2. refine the shaken model against **half map 1 only** with the refinement engine's cross-validation variant
   (``RefinementEngine.for_cross_validation``; servalcat: ``refine_spa_norefmac --halfmaps H1 H2
   --cross_validation``, B iso; coordinates too when ``refine_xyz`` -- the default with a monomer library --,
   else ``--fix_xyz --unrestrained``), in its own working folder (servalcat appends to files in the current
   folder);
3. FSCwork = FSC(model map, half map 1), FSCtest = FSC(model map, half map 2), both computed here with the
   package's one FSC definition (``locscale.metrics.fsc``, one-voxel shells) on the half maps' grid, after
   multiplying map and model map by a soft mask: the refined model's envelope at
   ``metrics.envelope_radius(d)`` with a 3-voxel raised-cosine edge. The gap FSCwork − FSCtest (per shell and of
   the FSCaverages up to d) measures overfitting to half map 1's noise. Servalcat's own FSCaverages (its mask
   and binning) are kept alongside when it computed them (``refine.servalcat.write_maps: true``; by default it
   does not: :mod:`locscale.engines.servalcat_lean`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..errors import LocScaleInputError
from ..mapio import Map, read_map, write_map
from ..outputs import atomic_output


@dataclass
class CrossValidation:
    """Result of :func:`cross_validate`."""

    curve: pd.DataFrame  # shell, freq, resolution, n_coeffs, fsc_work, fsc_test, gap
    fsc_work_average: float
    fsc_test_average: float
    resolution: float
    refined_model: Path
    servalcat: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return self.fsc_work_average - self.fsc_test_average

    def record(self) -> dict:
        """Flat, JSON/TSV-ready summary."""
        return {"fsc_work_average": self.fsc_work_average, "fsc_test_average": self.fsc_test_average,
                "fsc_work_test_gap": self.gap, "cv_resolution": self.resolution,
                **{f"servalcat_{k}": v for k, v in self.servalcat.items()},
                **{f"cv_{k}": v for k, v in self.settings.items()}}


def _servalcat_averages(fsc_json: Path, resolution: float) -> dict:
    """Servalcat's FSCaverage (Σ n·FSC / Σ n over its bins with d_min ≥ d) for half 1 and half 2."""
    rows = json.loads(Path(fsc_json).read_text())
    t = pd.DataFrame(rows)
    t = t[t["d_min"] >= resolution * (1 - 1e-6)]
    out = {}
    for key, col in (("fsc_half1_average", "fsc_model_half1"), ("fsc_half2_average", "fsc_model_half2")):
        if col in t:
            out[key] = float(np.sum(t["ncoeffs"] * t[col]) / np.sum(t["ncoeffs"]))
    return out


def _as_path(m: Map | str | os.PathLike, workdir: Path, name: str) -> tuple[str, Map]:
    if isinstance(m, Map):
        if m.path and Path(m.path).exists():
            return str(Path(m.path).resolve()), m
        p = workdir / name
        write_map(p, m)
        return str(p.resolve()), m
    return str(Path(m).resolve()), read_map(m)


def cross_validate(structure, half1: Map | str | os.PathLike, half2: Map | str | os.PathLike, resolution: float,
                   workdir: str | os.PathLike, *, engine=None, shake: float = 0.5, seed: int = 0,
                   refine_xyz: bool | None = None, threads: int = 1) -> CrossValidation:
    """FSCwork / FSCtest by the shake protocol (module docstring).

    `engine`: the refinement engine (``locscale.engines``; default: unrestrained servalcat) whose
    :meth:`~locscale.engines.base.RefinementEngine.for_cross_validation` refines the shaken model; engines that
    cannot refine against half map 1 only refuse there. `workdir` is created; it holds the shaken model and a
    folder named after the engine (emptied first) with the engine's files and log. `refine_xyz` defaults to True
    with a monomer library (restrained coordinate + B refinement, the protocol of Brown et al. 2015) and False
    without one (B only, ``--fix_xyz --unrestrained``: unrestrained coordinate refinement is refused). Standard
    geometry restraints, no jelly body (the protocol's)."""
    from ..engines import ServalcatEngine
    from ..models import envelope_mask, read_model, shake_model, write_model
    from ..phantoms.truth import soft_mask
    from ..simulate import simulate_model_map

    if not 0 <= shake <= 0.5:
        raise LocScaleInputError(f"shake of {shake} Å is outside 0-0.5 Å", "use a shake of at most 0.5 Å "
                                 "(the protocol of Brown et al. 2015)")
    engine = (ServalcatEngine() if engine is None else engine).for_cross_validation(refine_xyz)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    p1, h1 = _as_path(half1, workdir, "half1.mrc")
    p2, h2 = _as_path(half2, workdir, "half2.mrc")
    h1.require_same_grid(h2, "half maps")
    shaken = shake_model(structure, max_shift=shake, seed=seed)
    write_model(shaken, workdir / "shaken.pdb")
    prefix = "cv"
    run = engine.run(workdir / "shaken.pdb", resolution, workdir / engine.name, half_maps=[p1, p2],
                     threads=threads, prefix=prefix)
    refined = read_model(run.model)

    model_map = simulate_model_map(refined, h1)
    mask = envelope_mask(refined, h1, metrics.envelope_radius(resolution))
    soft = soft_mask(mask)
    apix = h1.apix
    work, test = metrics.fsc_against(model_map.data, [h1.data, h2.data], apix, mask=soft)
    curve = pd.DataFrame({"shell": work.shell, "freq": work.freq, "resolution": work.resolution,
                          "n_coeffs": work.n_coeffs, "fsc_work": work.fsc, "fsc_test": test.fsc})
    curve["gap"] = curve["fsc_work"] - curve["fsc_test"]
    fsc_json = run.workdir / f"{prefix}_fsc.json"
    sv = _servalcat_averages(fsc_json, resolution) if fsc_json.exists() else {}
    settings = {"shake_A": float(shake), "seed": int(seed), "refine_xyz": bool(engine.refine_xyz),
                "restrained": bool(engine.restrained), "command": " ".join(run.command)}
    return CrossValidation(curve=curve, fsc_work_average=metrics.fsc_average(work, resolution),
                           fsc_test_average=metrics.fsc_average(test, resolution), resolution=float(resolution),
                           refined_model=run.model, servalcat=sv, settings=settings)


def write_crossval(cv: CrossValidation, tsv: str | os.PathLike, plot: str | os.PathLike | None = None,
                   title: str = "") -> None:
    """Write the per-shell FSCwork/FSCtest table (TSV, the summary in its header comment) and a plot."""
    write_curve(cv.record(), cv.curve, tsv, plot, title=title)


def write_curve(record: dict, curve: pd.DataFrame, tsv: str | os.PathLike, plot: str | os.PathLike | None = None,
                title: str = "") -> None:
    """:func:`write_crossval` from a record (:meth:`CrossValidation.record`, with ``cv_resolution``) and the
    per-shell table."""
    with atomic_output(tsv) as tmp:
        with open(tmp, "w") as fh:
            fh.write("# " + json.dumps(record, default=float) + "\n")
            curve.to_csv(fh, sep="\t", index=False)
    if plot is not None:
        plot_crossval(curve, plot, float(record["cv_resolution"]), title=title)


def read_crossval(tsv: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """(per-shell table, summary record) from a file :func:`write_crossval` wrote."""
    with open(tsv) as fh:
        first = fh.readline()
    record = json.loads(first[1:]) if first.startswith("#") else {}
    return pd.read_csv(tsv, sep="\t", comment="#"), record


def plot_crossval(curve: pd.DataFrame, path: str | os.PathLike, resolution: float, title: str = "") -> None:
    """FSCwork, FSCtest and their gap against resolution (PNG)."""
    from matplotlib.figure import Figure

    from ..outputs import save_figure

    c = curve[curve["shell"] >= 1]
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    ax.plot(c["freq"], c["fsc_work"], label="FSCwork (model vs half 1)")
    ax.plot(c["freq"], c["fsc_test"], label="FSCtest (model vs half 2)")
    ax.plot(c["freq"], c["gap"], ":", label="gap (work − test)")
    ax.axvline(1.0 / resolution, color="grey", lw=0.8, ls="--", label=f"d = {resolution:g} Å")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_title(title or "cross-validation (shake protocol)")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120, bbox_inches=None)

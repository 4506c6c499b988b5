"""``servalcat`` without the work nobody reads: run as ``python -m locscale.engines.servalcat_lean ARGS``.

This program is servalcat's own command line (``servalcat.__main__.main``, same arguments, log and outputs) with
two steps changed; the refined model and statistics are the ones servalcat's unchanged code writes (tested):

* **No difference maps.** After refining, ``servalcat refine_spa_norefmac`` always writes Fo and Fo−Fc maps, an
  MTZ and Coot/ChimeraX scripts for them (``calc_fofc``; it has no option to skip them). The LocScale cycle reads
  only the refined model and ``PREFIX_stats.json``, and the difference maps cost 7–8 s per run on the 256³ TRPV1
  phantom. The step is replaced by a line in the log.
* **The non-bonded list built once for fixed coordinates.** Servalcat rebuilds its list of non-bonded atom pairs
  (``Geom.setup_nonbonded``) before every cycle and every line-search step, also when the coordinates are fixed
  (its own comment: "if refine_xyz=False, no need to do it every time"): 13–15 times per B-factor refinement,
  4–5 s on the 256³ TRPV1 phantom. The list depends only on the coordinates, so it is rebuilt only when they
  changed since the last build.
* **No second FSC in cross-validation.** After a ``--cross_validation`` run servalcat computes the refined model's
  FSC against both half maps (``calc_fsc``, 5–7 s on the 256³ phantom), which the cross-validation step computes
  itself with the package's one FSC definition (:mod:`locscale.validation.crossval`). In such a run the step is
  replaced by a line in the log (the refined model is written after it and does not depend on it; its mmCIF then
  carries no FSC in its refinement record).

:class:`~locscale.engines.servalcat.ServalcatEngine` uses it when the ``servalcat`` it would run is the one
installed next to this Python (``refine.servalcat.write_maps: false``, the default). A servalcat without that
step runs unchanged.
"""

from __future__ import annotations

import sys

#: what the log says instead of the cross-validation FSC
NO_FSC = ("Map-model FSC against the half maps: not computed (the LocScale cross-validation computes FSCwork and "
          "FSCtest itself; refine.servalcat.write_maps: true computes it)")
#: what the log says instead of the difference maps
SKIPPED = ("Fo and Fo-Fc maps, MTZ and viewer scripts: not written (the LocScale cycle does not read them; "
           "refine.servalcat.write_maps: true writes them)")


def _positions(st) -> bytes:
    """Every atom's coordinates (every model, file order), as bytes to compare."""
    import numpy as np

    return np.array([a.pos.tolist() for m in st for ch in m for r in ch for a in r], dtype=float).tobytes()


def _build_nonbonded_once(geom_class) -> None:
    """Make ``geom_class.setup_nonbonded`` skip the rebuild when the coordinates are those of the last build."""
    build = geom_class.setup_nonbonded

    def setup_nonbonded(self):
        key = _positions(self.st)
        if getattr(self, "_lean_nonbonded_positions", None) == key:
            return
        build(self)
        self._lean_nonbonded_positions = key

    geom_class.setup_nonbonded = setup_nonbonded


def main(argv: list[str] | None = None) -> None:
    import servalcat.__main__ as cli
    from servalcat.refine import refine, refine_spa
    from servalcat.utils import logger

    if hasattr(refine_spa, "calc_fofc"):
        def skipped(*args, **kwargs):
            logger.writeln(SKIPPED)

        refine_spa.calc_fofc = skipped
    if hasattr(getattr(refine, "Geom", None), "setup_nonbonded"):
        _build_nonbonded_once(refine.Geom)
    args = sys.argv[1:] if argv is None else argv
    if "--cross_validation" in args and hasattr(refine_spa, "calc_fsc"):
        def no_fsc(st, output_prefix, maps, d_min, *rest, **kwargs):
            logger.writeln(NO_FSC)
            cell = maps[0][0].unit_cell
            return NO_FSC + "\n", {"summary": {}, "binned": [{"d_min": float(d_min),
                                                              "d_max": float(max(cell.a, cell.b, cell.c))}]}

        refine_spa.calc_fsc = no_fsc
    sys.argv = ["servalcat", *args]
    cli.main()


if __name__ == "__main__":
    main()

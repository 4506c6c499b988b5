"""``servalcat`` without the difference maps nobody reads: run as ``python -m locscale.engines.servalcat_lean ARGS``.

After refining, ``servalcat refine_spa_norefmac`` always writes Fo and Fo−Fc maps, an MTZ and Coot/ChimeraX
scripts for them (``calc_fofc``; it has no option to skip them). The LocScale cycle reads only the refined model
and ``PREFIX_stats.json``, and the difference maps cost 7–8 s per run on the 256³ TRPV1 phantom. This program is
servalcat's own command line (``servalcat.__main__.main``, same arguments, log and outputs) with that one step
replaced by a line in the log; everything before it, the refined model included, is servalcat's unchanged code.
:class:`~locscale.engines.servalcat.ServalcatEngine` uses it when the ``servalcat`` it would run is the one
installed next to this Python (``refine.servalcat.write_maps: false``, the default). A servalcat without that
step runs unchanged.
"""

from __future__ import annotations

import sys

#: what the log says instead of the difference maps
SKIPPED = ("Fo and Fo-Fc maps, MTZ and viewer scripts: not written (the LocScale cycle does not read them; "
           "refine.servalcat.write_maps: true writes them)")


def main(argv: list[str] | None = None) -> None:
    import servalcat.__main__ as cli
    from servalcat.refine import refine_spa
    from servalcat.utils import logger

    if hasattr(refine_spa, "calc_fofc"):
        def skipped(*args, **kwargs):
            logger.writeln(SKIPPED)

        refine_spa.calc_fofc = skipped
    sys.argv = ["servalcat", *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()

"""EMRinger (and a Ramachandran cross-check) with cctbx (``cctbx-base``, BSD), run as its own process::

    python -m locscale.validation.cctbx_tool --model M.cif --map F.mrc --json out.json --tsv out.tsv [--no-ramalyze]

Run as a separate program by :mod:`locscale.validation.model` (importing coot and cctbx into one process
crashes). Only ``cctbx-base`` is needed: MolProbity's rotalyze and clashscore need the
chem_data/probe packages that cctbx-base does not ship, so they are not used.

* **EMRinger** (Barad et al. 2015): ``mmtbx.programs.emringer.Program`` run through
  ``iotbx.cli_parser.run_program``, i.e. exactly ``phenix.emringer model map`` with ``quiet=True`` (no plots,
  pickles or CSV files: they change nothing in the score). Scores above ~2 are typical of well-fitted models at
  better than 4 Å.
* **Ramachandran** (``mmtbx.validation.ramalyze``, MolProbity's Top8000 contours in six residue classes):
  favoured/allowed/outlier per residue, as a cross-check of Coot's numbers (different tables and thresholds,
  so the two agree only up to residues near a contour).
"""

from __future__ import annotations

import io
import sys
import time

from .tool import tool_parser, write_results

TSV_COLUMNS = ["chain", "resnum", "icode", "resname", "rama_cctbx", "rama_cctbx_score"]
_RAMA_CLASS = {0: "outlier", 1: "allowed", 2: "favoured"}


def emringer(model: str, map_path: str) -> dict:
    """EMRinger score and its statistics (phenix.emringer's 'Final Statistics' block)."""
    import iotbx.cli_parser
    from mmtbx.programs import emringer as program

    out = io.StringIO()
    result = iotbx.cli_parser.run_program(program_class=program.Program, args=[model, map_path, "quiet=True"],
                                          logger=out)
    print(out.getvalue())
    scoring = result.scoring_result
    return {"emringer_score": float(scoring.score), "optimal_threshold": float(scoring.optimal_threshold),
            "rotamer_ratio": float(scoring.rotamer_ratio), "max_zscore": float(scoring.zscore_max),
            "model_length": int(scoring.length)}


def ramachandran(model: str) -> tuple[dict, list[dict]]:
    """MolProbity Ramachandran statistics (mmtbx.validation.ramalyze) and per-residue classes."""
    import iotbx.pdb
    from mmtbx.validation import ramalyze

    hierarchy = iotbx.pdb.input(file_name=model).construct_hierarchy()
    r = ramalyze.ramalyze(pdb_hierarchy=hierarchy, outliers_only=False, out=io.StringIO(), quiet=True)
    rows, seen = [], set()
    for res in r.results:
        key = (res.chain_id.strip(), int(res.resseq_as_int()), res.icode.strip())
        if key in seen:  # alternative conformations: the first (as the counts do)
            continue
        seen.add(key)
        rows.append({"chain": key[0], "resnum": key[1], "icode": key[2], "resname": res.resname.strip(),
                     "rama_cctbx": _RAMA_CLASS.get(res.rama_type, ""), "rama_cctbx_score": float(res.score)})
    n = r.n_total
    summary = {"rama_n": n, "rama_outliers": r.n_outliers, "rama_favoured": r.n_favored,
               "rama_allowed": r.n_allowed,
               "rama_outliers_pct": 100.0 * r.n_outliers / n if n else float("nan"),
               "rama_favoured_pct": 100.0 * r.n_favored / n if n else float("nan")}
    return summary, rows


def main(argv: list[str] | None = None) -> int:
    parser = tool_parser("locscale.validation.cctbx_tool", __doc__, "per-residue Ramachandran classes (TSV)")
    parser.add_argument("--no-ramalyze", action="store_true", help="skip the Ramachandran cross-check")
    args = parser.parse_args(argv)
    import cctbx
    import libtbx.version

    t0 = time.perf_counter()
    summary = {"version": str(libtbx.version.get_version() or getattr(cctbx, "__version__", "unknown")),
               "seconds": {}}
    summary.update(emringer(args.model, args.map))
    summary["seconds"]["emringer"] = time.perf_counter() - t0
    rows = []
    if not args.no_ramalyze:
        t = time.perf_counter()
        rama, rows = ramachandran(args.model)
        summary.update(rama)
        summary["seconds"]["ramalyze"] = time.perf_counter() - t
    return write_results(args, summary, rows, TSV_COLUMNS, t0)


if __name__ == "__main__":
    sys.exit(main())

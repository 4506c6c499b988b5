"""The command-line frame shared by the model-validation programs :mod:`locscale.validation.coot_tool` and
:mod:`locscale.validation.cctbx_tool`: their common arguments and how they write their results (a per-residue TSV
and a JSON summary, atomically, and the summary on stdout).

It imports neither coot nor cctbx (importing both into one process crashes, so each tool
runs as its own program) and of locscale only the atomic writer (:mod:`locscale.outputs`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from ..outputs import write_text_atomic


def tool_parser(module: str, doc: str, tsv_help: str) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``: --model, --map, --json, --tsv (the tool adds its own options)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--json", required=True, help="summary (JSON)")
    parser.add_argument("--tsv", required=True, help=tsv_help)
    return parser


def tsv_value(v) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else repr(v)
    return str(v)


def write_results(args: argparse.Namespace, summary: dict, rows: list[dict], columns: list[str],
                  t0: float) -> int:
    """Write `rows` (TSV, `columns`) to --tsv and `summary` (with its total seconds since `t0`) to --json, print
    the summary without timings; returns 0."""
    lines = ["\t".join(columns)] + ["\t".join(tsv_value(r[c]) for c in columns) for r in rows]
    write_text_atomic(Path(args.tsv), "\n".join(lines) + "\n")
    summary["seconds"]["total"] = time.perf_counter() - t0
    write_text_atomic(Path(args.json), json.dumps(summary, indent=1, allow_nan=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "seconds"}, allow_nan=True))
    return 0

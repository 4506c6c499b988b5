"""What the experiments share: their TSV tables (with a one-line JSON settings header), a markdown rendering,
and one figure helper (matplotlib's Agg canvas, no pyplot state; saved by :mod:`locscale.cycle.report`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..outputs import atomic_output, save_figure
from ..records import dumps


def write_table(table: pd.DataFrame, path: str | Path, meta: dict | None = None) -> None:
    """TSV with an optional one-line JSON comment header (settings), atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            if meta:
                fh.write("# " + dumps(meta, sort_keys=True) + "\n")
            table.to_csv(fh, sep="\t", index=False, float_format="%.6g")


def read_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#")


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A pipe table (GitHub markdown) of `table`, numbers to `digits` significant digits."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v)
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    sep = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def figure(path, draw, title: str, size=(6.5, 4.2)) -> Path:
    """One-axes figure: ``draw(fig, ax)`` fills it; titled and saved to `path`."""
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    draw(fig, ax)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)

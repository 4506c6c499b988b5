"""The local-resolution plot: per-residue local resolution against B (the table:
:mod:`locscale.localres`)."""

from __future__ import annotations

import pandas as pd

from .common import figure


def plot_local_resolution(table: pd.DataFrame, path, title: str = "local resolution (SIMULATED phantom)") -> None:
    """Per-residue local resolution against the residue's refined B (and the phantom's blur B if present)."""
    def draw(fig, ax):
        ax.scatter(table["b_mean"], table["local_resolution"], s=10, label="refined B")
        if "signal_b" in table:
            ax.scatter(table["signal_b"], table["local_resolution"], s=10, marker="x", label="true blur B")
        ax.set_xlabel("residue mean B (Å²)")
        ax.set_ylabel("local resolution (Å)")
        ax.legend(fontsize=8)
    figure(path, draw, title)

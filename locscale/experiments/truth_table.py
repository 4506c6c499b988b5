"""The truth table's plot: FSC to truth of every map (the table itself: :func:`locscale.phantoms.truth.truth_table`)."""

from __future__ import annotations

from .common import figure


def plot_truth_curves(curves: dict, path, resolution: float,
                      title: str = "FSC to truth (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        for name, c in curves.items():
            sel = c.shell >= 1
            ax.plot(c.freq[sel], c.fsc[sel], label=name)
        ax.axvline(1.0 / resolution, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("spatial frequency (1/Å)")
        ax.set_ylabel("FSC to truth (masked)")
        ax.legend(fontsize=7)
    figure(path, draw, title)

"""B mis-estimation: LocScale with the true coordinates and uniform, refined, signal and truth B."""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from ..models import b_factors
from .bench import Bench
from .common import figure


def b_misestimation(bench: Bench, uniform_b=(0.0, 50.0, 100.0, 200.0, 300.0), *,
                    refined: gemmi.Structure | None = None, progress: bool = False) -> pd.DataFrame:
    """LocScale with the true coordinates and uniform B (each value), the refined B (if given), the true blur B
    of the phantom signal (if known) and the truth B: in-mask kurtosis and truth scores."""
    from tqdm import tqdm

    from ..models import set_uniform_b

    refs: list[tuple[str, gemmi.Structure]] = [(f"uniform_{b:g}", set_uniform_b(bench.structure, b))
                                                for b in uniform_b]
    if refined is not None:
        refs.append(("refined", refined))
    if bench.blurred is not None:
        refs.append(("signal_b", bench.blurred))
    refs.append(("truth_b", bench.structure))
    rows = []
    for name, st in tqdm(refs, desc="B mis-estimation", disable=not progress):
        b = b_factors(st)
        rows.append({"reference_b": name, "b_mean": float(b.mean()), "b_std": float(b.std()),
                     **bench.scores(bench.locscale(st))})
    return pd.DataFrame(rows)


def plot_b_misestimation(table: pd.DataFrame, path, title: str = "reference B (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        x = np.arange(len(table))
        ax.plot(x, table["cc_mask_truth"], "o-", label="CC to truth")
        ax.plot(x, table["fsc_average_truth"], "s-", label="FSCavg to truth")
        ax.set_xticks(x, table["reference_b"], rotation=30, ha="right", fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(x, table["kurtosis_mask"], "^--", color="C3", label="kurtosis")
        ax2.set_ylabel("in-mask kurtosis", color="C3")
        ax.set_ylabel("score to truth")
        fig.legend(loc="lower left", fontsize=8)
    figure(path, draw, title)

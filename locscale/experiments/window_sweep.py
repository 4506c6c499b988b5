"""Window sweep: LocScale with windows from 8 voxels to ~45 Å on one bench (in-mask kurtosis and truth scores
per window)."""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from ..mapio import Map
from .bench import Bench
from .common import figure


def default_sweep_windows(apix: float, max_angstrom: float = 45.0, n: int = 10) -> list[int]:
    """About `n` windows from 8 voxels up to `max_angstrom` (geometric steps, distinct integers)."""
    top = max(9, int(round(max_angstrom / apix)))
    return sorted({int(round(v)) for v in np.geomspace(8, top, n)})


def window_sweep(bench: Bench, reference: gemmi.Structure | Map, windows: list[int] | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """LocScale with every window (same reference, same scaling and evaluation masks): in-mask kurtosis and
    truth scores per window."""
    from tqdm import tqdm

    ref = reference if isinstance(reference, Map) else bench.reference_map(reference)
    windows = windows or default_sweep_windows(bench.half1.apix)
    rows = []
    for w in tqdm(windows, desc="window sweep", disable=not progress):
        out = bench.locscale(ref, window=w)
        rows.append({"window_voxels": int(w), "window_A": w * bench.half1.apix, **bench.scores(out)})
    return pd.DataFrame(rows)


def interior_maximum(values) -> bool:
    """True when the largest value is neither the first nor the last."""
    v = np.asarray(values, dtype=float)
    i = int(np.nanargmax(v))
    return 0 < i < len(v) - 1


def plot_window_sweep(table: pd.DataFrame, path, title: str = "window sweep (SIMULATED phantom)") -> None:
    def draw(fig, ax):
        ax.plot(table["window_A"], table["kurtosis_mask"], "o-", color="C0", label="in-mask kurtosis")
        ax.set_xlabel("window (Å)")
        ax.set_ylabel("excess kurtosis in mask", color="C0")
        ax2 = ax.twinx()
        ax2.plot(table["window_A"], table["fsc_average_truth"], "s--", color="C1", label="FSCavg to truth")
        ax2.plot(table["window_A"], table["cc_mask_truth"], "^:", color="C2", label="CC to truth")
        ax2.set_ylabel("FSCavg / CC to truth")
        fig.legend(loc="lower right", fontsize=8)
    figure(path, draw, title)

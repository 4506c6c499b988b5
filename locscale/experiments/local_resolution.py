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


def run_local_resolution(phantom_json, refined, map_path, table_path, plot_path, *, phantom: str, settings: dict,
                         window) -> dict:
    """The experiments' local-resolution step: the local-resolution map, the per-residue table against refined B
    (and the true blur where the phantom has one) and its plot; returns the summary."""
    from pathlib import Path

    import numpy as np

    from ..localres import local_resolution, local_resolution_b_correlation, per_residue_local_resolution
    from ..mapio import write_map
    from ..models import read_model
    from .bench import Bench
    from .common import write_table

    thr = settings["threshold"]
    thr = thr if thr == "3sigma" else float(thr)
    bench = Bench.from_dir(Path(phantom_json).parent, window=window)
    lr = local_resolution(bench.half1, bench.half2, window=bench.window, mask=bench.eval_mask, threshold=thr,
                          progress=False)
    write_map(map_path, lr.map, label=f"SIMULATED phantom local resolution (FSC {thr}), Angstrom")
    table = per_residue_local_resolution(lr, read_model(refined), bench.half1)
    if bench.blurred is not None:
        table["signal_b"] = per_residue_local_resolution(lr, bench.blurred, bench.half1)["b_mean"].to_numpy()
    meta = {"phantom": phantom, **lr.summary(), "vs_refined_b": local_resolution_b_correlation(table),
            "vs_true_blur_b": local_resolution_b_correlation(table.assign(b_mean=table.get("signal_b", np.nan)))}
    write_table(table, table_path, meta)
    plot_local_resolution(table, plot_path, title=f"local resolution vs B, SIMULATED phantom {phantom}")
    return meta

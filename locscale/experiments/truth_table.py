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


def run_truth_table(phantom_json, model, refined, refined_info, table_path, scan_path, plot_path, *, phantom: str,
                    window):
    """The experiments' truth-table step: every map against the truth of one phantom (table, B scan, FSC plot)."""
    from pathlib import Path

    from ..models import read_model
    from ..phantoms.truth import truth_table
    from ..records import read_json
    from .bench import Bench
    from .common import write_table

    bench = Bench.from_dir(Path(phantom_json).parent, window=window)
    refs = {"truth_b": bench.reference_map(bench.structure), "refined_b": bench.reference_map(read_model(refined))}
    blur = read_json(refined_info).get("data_blur")
    table, _, curves = truth_table(bench.half1, bench.half2, bench.truth, bench.resolution, refs, window=window,
                                   eval_mask=bench.eval_mask, scale_mask=bench.scale_mask, structure=bench.structure,
                                   model=read_model(model), global_bfactor=None if blur is None else -blur["b_data"])
    meta = {"phantom": phantom, "resolution": bench.resolution, "window_voxels": bench.window,
            "eval_mask_voxels": int(bench.eval_mask.sum()), "scale_mask_voxels": int(bench.scale_mask.sum())}
    write_table(table, table_path, meta)
    write_table(table.attrs["b_scan"], scan_path, meta)
    plot_truth_curves(curves, plot_path, bench.resolution, title=f"FSC to truth, SIMULATED phantom {phantom}")
    return table

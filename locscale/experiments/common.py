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


def _phantom_line(info: dict) -> str:
    return (f"model {info['source_model']} chains {','.join(info['chains'])}, {info['n_atoms']} atoms; "
            f"grid {info['grid']['shape']} at {info['grid']['voxel_size'][0]} Å; truth B "
            f"{info['truth']['b_factors']} (mean {info['truth']['b_mean']:.1f}); blur ΔB "
            f"{info['blur']['delta_b_min']:.0f}-{info['blur']['delta_b_max']:.0f} Å² "
            f"({info['blur']['gradient']}) + global {info['blur']['b_global']:g} Å²; noise_b "
            f"{info['noise']['noise_b']:g}; half-map FSC 0.143 at {info['noise']['measured_resolution']:.2f} Å "
            f"(requested {info['noise']['requested_resolution']:g} Å); {info['removed']['n_residues']} "
            f"residues removed from the model handed out; seed {info['seed']}.")


def _table_section(name: str, path: Path) -> list[str]:
    with open(path) as fh:
        first = fh.readline()
    meta = first[1:].strip() if first.startswith("#") else ""
    table, note = read_table(path), ""
    if len(table) > 30:  # per-residue / per-shell tables: every k-th row
        k = -(-len(table) // 15)
        table, note = table.iloc[::k], f" (every {k}th of {len(table)} rows; the TSV has all)"
    return [f"### {name}", "", f"`{path}`" + (f" -- settings: `{meta}`" if meta else "") + note, "",
            markdown_table(table), ""]


def write_summary(outdir, phantoms, tables, path) -> Path:
    """One markdown file with every phantom's description and every experiment's table."""
    import json

    out = Path(outdir)
    lines = ["# LocScale experiments on SIMULATED phantoms", "",
             "Regenerate: `snakemake -s workflow/experiments.smk --configfile config/experiments.yaml --cores 2`", ""]
    for ph in phantoms:
        info = json.loads((out / ph / "phantom" / "SIMULATED_phantom.json").read_text())
        lines += [f"## phantom `{ph}`", "", _phantom_line(info), ""]
        for name in tables:
            lines += _table_section(name, out / ph / f"{name}.tsv")
    with atomic_output(path, suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)

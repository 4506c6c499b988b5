"""Reports of the refinement cycles: the per-cycle table, plots (PNG) and ChimeraX scripts.

Every file is written atomically (temporary name, renamed when complete). Plots use matplotlib's Agg canvas
directly (no pyplot, no global backend switch), so they work on headless cluster nodes.

The metrics-vs-cycle figure plots the metric columns of the registry :mod:`locscale.cycle.registry` under their
canonical names (one panel per registered panel the table holds); :func:`metric_panels` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import LocScaleInputError
from ..mapio import Map
from ..outputs import atomic_output, save_figure
from . import registry


def _colours(n: int, cmap: str = "viridis"):
    from matplotlib import colormaps

    cm = colormaps[cmap]
    if n <= 1:
        return [cm(0.1)]
    return [cm(0.05 + 0.85 * i / (n - 1)) for i in range(n)]


def _label_colours(labels: Sequence[str]) -> dict[str, object]:
    """Fixed colours for the reference maps ('original', 'global...'), a sequential map for the cycles."""
    fixed = {}
    rest = []
    for lab in labels:
        low = str(lab).lower()
        if low.startswith("orig") or low in ("input", "unsharpened"):
            fixed[lab] = "0.25"
        elif low.startswith("global"):
            fixed[lab] = "tab:orange"
        else:
            rest.append(lab)
    fixed.update(zip(rest, _colours(len(rest)), strict=True))
    return fixed


# ---------------------------------------------------------------------- cycle table
def write_cycle_table(rows: Sequence[Mapping], path: str | os.PathLike) -> pd.DataFrame:
    """Write one row per cycle as a tab-separated table (atomically) and return it as a DataFrame.

    Rows may have different keys (missing values become empty cells). With a ``cycle`` key the rows are
    sorted by it, it becomes the first column, and a cycle may appear only once.
    """
    if not rows:
        raise LocScaleInputError("no cycle rows to write", "run at least one cycle before the summary", path)
    table = pd.DataFrame([dict(r) for r in rows])
    if "cycle" in table.columns:
        if table["cycle"].duplicated().any():
            dup = sorted(table.loc[table["cycle"].duplicated(), "cycle"].tolist())
            raise ValueError(f"cycle(s) {dup} appear more than once in the cycle table")
        table = table.sort_values("cycle", kind="stable").reset_index(drop=True)
        table = table[["cycle"] + [c for c in table.columns if c != "cycle"]]
    with atomic_output(path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.10g", na_rep="")
    return table


def read_cycle_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_cycle_table`."""
    return pd.read_csv(path, sep="\t")


# ---------------------------------------------------------------------- the report's landing page
#: cycle-table columns shown on the report's landing page (those the table holds), with their headings
LANDING_COLUMNS = (
    ("cc_mask", "CC_mask"),
    ("fsc_average", "FSCaverage"),
    ("kurtosis", "kurtosis"),
    ("b_mean", "mean B (Å²)"),
    ("sharpness_b_vs_global", "sharpness vs global (Å², > 0 blurrier)"),
    ("cc_truth", "CC to truth"),
    ("fsc_work", "FSCwork"),
    ("fsc_test", "FSCtest"),
    ("rama_outliers_pct", "Rama outliers (%)"),
    ("bond_rmsz", "bond RMSZ"),
    ("residues_built", "residues built"),
)


def latest_summary(results: str | os.PathLike, dataset: str) -> Path | None:
    """The newest ``results/<dataset>/summary_upto_NN.tsv`` (highest NN), or None before the first summary."""
    found = sorted(Path(results, dataset).glob("summary_upto_[0-9][0-9].tsv"))
    return found[-1] if found else None


def _cell(value, key: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or str(value) in ("", "nan", "none"):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value).replace("_", " ")
    digits = 1 if key in ("b_mean", "sharpness_b_vs_global") else 2 if key in ("kurtosis", "rama_outliers_pct",
                                                                                "bond_rmsz") else 3
    return f"{v:.{digits}f}"


def cycle_table_rst(table: pd.DataFrame, dataset: str, selection: Mapping | None = None) -> str:
    """One dataset's cycle table as reStructuredText for the report's landing page: the main columns
    (:data:`LANDING_COLUMNS`), whether each cycle converged, its flags, and the final cycle marked."""
    final = int(selection["cycle"]) if selection and selection.get("cycle") is not None else None
    if final is None and "final" in table.columns:
        marked = table.loc[table["final"].astype(str).str.lower() == "true", "cycle"]
        final = int(marked.iloc[0]) if len(marked) else None
    cols = [(k, h) for k, h in LANDING_COLUMNS if k in table.columns and table[k].notna().any()]
    head = ["cycle"] + [h for _, h in cols] + ["convergence", "flags"]
    rows = []
    for _, r in table.sort_values("cycle").iterrows():
        c = int(r["cycle"])
        name = "0 (input)" if c == 0 else str(c)
        if c == final:
            name = f"**{name}: final**"
        flags = "" if str(r.get("flags", "")) in ("", "nan", "none") else str(r["flags"])
        rows.append([name] + [_cell(r[k], k) for k, _ in cols] + [_cell(r.get("convergence"), "convergence"),
                                                                    flags])
    title = f"Cycle table: {dataset}"
    lines = [title, "-" * len(title), ""]
    if final is not None:
        why = f" ({selection['reason']})" if selection and selection.get("reason") else ""
        lines += [f"``results/{dataset}/final/`` holds cycle **{final}**{why}.", ""]
    lines += [".. list-table::", "   :header-rows: 1", ""]
    for row in [head] + rows:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines) + "\n"


def landing_page(template: str, summaries: Mapping[str, str | os.PathLike]) -> str:
    """The report's landing page: `template` (workflow/report/workflow.rst) followed by each dataset's latest
    cycle table (dataset -> its ``summary_upto_NN.tsv``; the selection next to it marks the final cycle)."""
    import json

    parts = [template.rstrip() + "\n"]
    for dataset, path in summaries.items():
        path = Path(path)
        selection_path = path.with_suffix("") / "selection.json"
        selection = json.loads(selection_path.read_text()) if selection_path.is_file() else None
        parts.append(cycle_table_rst(read_cycle_table(path), dataset, selection))
    return "\n".join(parts)


def write_landing_page(template_path: str | os.PathLike, results: str | os.PathLike, datasets: Sequence[str],
                       out: str | os.PathLike) -> Path | None:
    """Write :func:`landing_page` for `datasets` to `out` (atomically) and return it; None (nothing written)
    while no dataset has a summary yet."""
    summaries = {ds: p for ds in datasets if (p := latest_summary(results, ds)) is not None}
    if not summaries:
        return None
    text = landing_page(Path(template_path).read_text(), summaries)
    out = Path(out)
    with atomic_output(out, suffix=".rst") as tmp:
        Path(tmp).write_text(text)
    return out


# ---------------------------------------------------------------------- metrics vs cycle
def metric_panels(table: pd.DataFrame) -> list[tuple[registry.Panel, list, tuple | None]]:
    """The panels of :func:`plot_metrics_vs_cycle` for `table` (sorted by cycle): ``(panel, lines, band)`` with
    lines ``[(label, values, style)]`` and band ``(low, high)`` or None, one per registered panel
    (:func:`locscale.cycle.registry.panels`) of which the table holds a metric with a finite value."""

    def col(key):
        if key not in table.columns:
            return None
        v = pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)
        return v if np.isfinite(v).any() else None

    out = []
    for panel, metrics in registry.panels():
        lines = []
        for m in metrics:
            if m.difference:
                a, b = (col(k) for k in m.difference)
                v = a - b if a is not None and b is not None else None
            else:
                v = col(m.key)
            if v is not None:
                lines.append((m.line_label, v, dict(m.style)))
        if not lines:
            continue
        band = None
        if panel.band:
            centre, spread = (col(k) for k in panel.band)
            if centre is not None and spread is not None:
                band = (centre - spread, centre + spread)
        out.append((panel, lines, band))
    return out


def plot_metrics_vs_cycle(table: pd.DataFrame | str | os.PathLike, path: str | os.PathLike,
                          final_cycle: int | None = None) -> Path:
    """Validation metrics against cycle number, one panel per panel of the metric registry
    (:mod:`locscale.cycle.registry`) that the table holds: RSCC (CC_mask, CC_box), FSCaverage, kurtosis, B-factors
    (mean, median, ±1 s.d. band), sharpness against the global target, CC/FSCaverage to the truth (phantoms), the
    model validation (Ramachandran and rotamer outliers, Ramachandran favoured, bond/angle RMSZ, atom overlaps,
    EMRinger, median Q-score) and FSCwork/FSCtest with their gap. Columns carry the registry's (canonical) names;
    `final_cycle` (the cycle results/<dataset>/final/ holds) is marked on every panel."""
    if not isinstance(table, pd.DataFrame):
        table = read_cycle_table(table)
    if "cycle" not in table.columns:
        raise LocScaleInputError("the cycle table has no 'cycle' column",
                                 "write it with write_cycle_table(rows) where every row has a 'cycle' key")
    t = table.sort_values("cycle")
    x = t["cycle"].to_numpy()
    panels = [(p.title, p.ylabel, lines, band, p.zero_line) for p, lines, band in metric_panels(t)]
    if not panels:
        raise LocScaleInputError(
            f"the cycle table has none of the plotted metrics ({', '.join(registry.plotted_keys())})",
            "name the metric columns as in the registry locscale.cycle.registry.METRICS")

    finite_x = x[np.isfinite(x)]
    xlim = (finite_x.min() - 0.3, finite_x.max() + 0.3) if finite_x.size else None
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.3 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, ylabel, lines, band, zero_line) in zip(axes, panels, strict=False):
        for (lab, v, style), colour in zip(lines, ("tab:blue", "tab:red", "tab:green"), strict=False):
            ok = np.isfinite(v)
            ax.plot(x[ok], v[ok], marker="o", color=colour, label=lab, **style)
        if band is not None:
            ok = np.isfinite(band[0]) & np.isfinite(band[1])
            ax.fill_between(x[ok], band[0][ok], band[1][ok], color="tab:blue", alpha=0.15, label="±1 s.d.")
        if zero_line:
            ax.axhline(0.0, color="0.5", lw=0.8)
        if final_cycle is not None:
            ax.axvline(final_cycle, color="tab:green", lw=6, alpha=0.2, label=f"final (cycle {final_cycle})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cycle")
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if xlim is not None:
            ax.set_xlim(*xlim)  # the same cycles on every panel, also where early cycles have no value
        ax.grid(alpha=0.3)
        if len(lines) > 1 or band is not None or final_cycle is not None:
            ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- FSC curves
def _curve_arrays(curve) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, pd.DataFrame):
        return curve["freq"].to_numpy(dtype=float), curve["fsc"].to_numpy(dtype=float)
    if hasattr(curve, "freq") and hasattr(curve, "fsc"):  # locscale.metrics.FSCCurve
        return np.asarray(curve.freq, dtype=float), np.asarray(curve.fsc, dtype=float)
    freq, fsc = curve
    return np.asarray(freq, dtype=float), np.asarray(fsc, dtype=float)


def _add_resolution_axis(ax, squared: bool = False) -> None:
    """A top axis labelled in Å for a bottom axis in 1/Å (or in 1/Å² when `squared`); call after xlim is set."""
    lo, hi = ax.get_xlim()
    top = ax.twiny()
    top.set_xlim(lo, hi)
    d = np.array([50, 20, 10, 8, 6, 5, 4, 3.5, 3, 2.5, 2.2, 2, 1.8, 1.6, 1.5, 1.4, 1.2, 1.0])
    pos = 1.0 / d**2 if squared else 1.0 / d
    keep = (pos > lo + 0.03 * (hi - lo)) & (pos <= hi)
    # thin out labels that would overlap: at least 6 % of the axis between ticks
    chosen: list[int] = []
    for i in np.flatnonzero(keep)[::-1]:  # from high to low frequency
        if not chosen or abs(pos[chosen[-1]] - pos[i]) > 0.06 * (hi - lo):
            chosen.append(i)
    chosen = sorted(chosen, key=lambda i: pos[i])
    top.set_xticks(pos[chosen], [f"{d[i]:g}" for i in chosen])
    top.set_xlabel("resolution (Å)")
    top.tick_params(labelsize=8)


def plot_fsc_curves(curves: Mapping[str, object], path: str | os.PathLike,
                    resolution: float | None = None, title: str = "Model-map FSC against the original map"
                    ) -> Path:
    """FSC curves (label -> DataFrame with ``freq`` (1/Å) and ``fsc`` columns, an FSCCurve, or a (freq, fsc)
    pair) on one plot, with the 0.5 and 0.143 thresholds and the map resolution marked."""
    if not curves:
        raise LocScaleInputError("no FSC curves to plot", "pass at least one curve", path)
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = _label_colours(list(curves))
    fmax = 0.0
    for label, curve in curves.items():
        freq, fsc = _curve_arrays(curve)
        ok = np.isfinite(freq) & np.isfinite(fsc)
        ax.plot(freq[ok], fsc[ok], color=colours[label], lw=1.4, label=str(label))
        if ok.any():
            fmax = max(fmax, float(freq[ok].max()))
    ax.axhline(0.5, color="0.4", ls="--", lw=0.8)
    ax.axhline(0.143, color="0.4", ls=":", lw=0.8)
    ax.text(0.995, 0.5, "0.5", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
    ax.text(0.995, 0.143, "0.143", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
    if resolution:
        ax.axvline(1.0 / resolution, color="tab:red", lw=0.9, alpha=0.7)
        ax.text(1.0 / resolution, 0.98, f" d = {resolution:g} Å", color="tab:red", fontsize=8,
                transform=ax.get_xaxis_transform(), va="top")
    ax.set_xlim(0, fmax * 1.01 if fmax > 0 else 0.5)
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.02)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 6 else 1)
    _add_resolution_axis(ax)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- radial profiles
#: Default normalisation band of the radial-profile plot, (low, high) resolution in Å: secondary structure
#: to side chains, inside the resolution of any map sharpened here, and free of the lowest shells where a map
#: that is 0 outside a mask (LocScale output, masked depositions) loses or gains most of its power.
PROFILE_NORM_BAND = (10.0, 5.0)


def profile_norm_band(resolution: float | None = None) -> tuple[float, float]:
    """The band (d_low, d_high) in Å over which :func:`plot_radial_profiles` normalises: 10-5 Å, or
    2·d-d for maps whose resolution d is worse than 5 Å (the band must hold signal)."""
    d_low, d_high = PROFILE_NORM_BAND
    if resolution and resolution > d_high:
        d_high = float(resolution)
        d_low = max(d_low, 2.0 * d_high)
    return d_low, d_high


def normalise_profile(freq: np.ndarray, amp: np.ndarray, band: tuple[float, float] = PROFILE_NORM_BAND
                      ) -> np.ndarray:
    """`amp` divided by its mean over the shells with 1/d_low <= freq <= 1/d_high (`band` = (d_low, d_high)
    in Å; empty and non-finite shells ignored), so profiles of maps on different absolute scales coincide
    where their shapes agree: maps differing by a constant factor give the same curve. Falls back to all
    valid shells up to 1/d_high, then all valid non-zero shells, when the band holds none (small boxes,
    coarse voxels); raises when no shell has a positive amplitude."""
    freq = np.asarray(freq, dtype=float)
    amp = np.asarray(amp, dtype=float)
    d_low, d_high = sorted((float(band[0]), float(band[1])), reverse=True)
    valid = np.isfinite(freq) & np.isfinite(amp) & (freq > 0) & (amp > 0)
    below = valid & (freq <= 1.0 / d_high)
    for sel in (below & (freq >= 1.0 / d_low), below, valid):
        if sel.any():
            return amp / float(np.mean(amp[sel]))
    raise LocScaleInputError("radial profile has no shell with a positive amplitude",
                             "check that the map is not empty (all zero or NaN)")


def plot_radial_profiles(profiles: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
                         resolution: float | None = None, normalise: bool = False,
                         title: str = "Radially averaged amplitude profiles",
                         band: tuple[float, float] | None = None) -> Path:
    """Guinier-style plot: log amplitude against s² = 1/d² (1/Å²) for each map (label -> (freq 1/Å,
    amplitude)), e.g. original, global-sharpened and each cycle's LocScale map.

    `normalise` divides every profile by its mean amplitude over a resolution band (`band` = (d_low, d_high)
    Å, default :func:`profile_norm_band` of `resolution`: 10-5 Å), shaded on the plot, so shapes can be
    compared when absolute scales differ (LocScale maps take the model map's scale and are 0 outside the
    mask): maps differing by a constant factor plot on top of each other. The y axis spans at most 10⁶
    below the highest plotted value, so a low-pass-filtered map's numerical floor does not squash the rest."""
    if not profiles:
        raise LocScaleInputError("no radial profiles to plot", "pass at least one profile", path)
    d_low, d_high = sorted(profile_norm_band(resolution) if band is None else band, reverse=True)
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = _label_colours(list(profiles))
    smax, ymax, ymin = 0.0, 0.0, np.inf
    for label, (freq, amp) in profiles.items():
        freq = np.asarray(freq, dtype=float)
        amp = np.asarray(amp, dtype=float)
        ok = np.isfinite(freq) & np.isfinite(amp) & (freq > 0) & (amp > 0)  # DC and empty shells: no log
        if not ok.any():
            continue
        if normalise:
            amp = normalise_profile(freq, amp, (d_low, d_high))
        s2, a = freq[ok] ** 2, amp[ok]
        ls = "--" if str(label).lower().startswith(("orig", "global")) else "-"
        ax.semilogy(s2, a, color=colours[label], lw=1.4, ls=ls, label=str(label))
        smax = max(smax, float(s2.max()))
        ymax, ymin = max(ymax, float(a.max())), min(ymin, float(a.min()))
    if ymax > 0:
        ax.set_ylim(max(ymin, ymax * 1e-6) / 1.5, ymax * 1.5)
    if normalise:
        ax.axvspan(1.0 / d_low**2, 1.0 / d_high**2, color="0.85", alpha=0.5, lw=0, zorder=0)
    if resolution:
        ax.axvline(1.0 / resolution**2, color="tab:red", lw=0.9, alpha=0.7)
        ax.text(1.0 / resolution**2, 0.98, f" d = {resolution:g} Å", color="tab:red", fontsize=8,
                transform=ax.get_xaxis_transform(), va="top")
    ax.set_xlim(0, smax * 1.01 if smax > 0 else 0.25)
    ax.set_xlabel("s² = 1/d² (1/Å²)")
    if normalise:
        ax.set_ylabel(f"amplitude / mean over {d_low:g}-{d_high:g} Å")
    else:
        ax.set_ylabel("mean amplitude |F|")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2 if len(profiles) > 6 else 1)
    _add_resolution_axis(ax, squared=True)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- B-factor distributions
def plot_bfactor_distributions(bvalues: Mapping[str, np.ndarray], path: str | os.PathLike,
                               title: str = "Atomic B-factor distribution per cycle") -> Path:
    """Per-cycle B-factor distributions (label -> array of atomic B in Å²): overlaid histograms on shared
    bins (left) and box plots with means (right)."""
    data = {str(k): np.asarray(v, dtype=float).ravel() for k, v in bvalues.items()}
    data = {k: v[np.isfinite(v)] for k, v in data.items()}
    data = {k: v for k, v in data.items() if v.size}
    if not data:
        raise LocScaleInputError("no B-factors to plot", "pass at least one non-empty array", path)
    allv = np.concatenate(list(data.values()))
    lo, hi = float(allv.min()), float(allv.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    colours = _label_colours(list(data))
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.3, 1])
    for label, v in data.items():
        ax1.hist(v, bins=bins, histtype="step", lw=1.4, color=colours[label], label=f"{label} (n={v.size})")
    ax1.set_xlabel("B (Å²)")
    ax1.set_ylabel("atoms")
    ax1.set_title(title, fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    labels = list(data)
    bp = ax2.boxplot([data[k] for k in labels], whis=(5, 95), showfliers=False, patch_artist=True,
                     medianprops={"color": "black"})
    ax2.set_xticks(range(1, len(labels) + 1), labels)
    for patch, lab in zip(bp["boxes"], labels, strict=True):
        patch.set_facecolor(colours[lab])
        patch.set_alpha(0.6)
    ax2.plot(range(1, len(labels) + 1), [data[k].mean() for k in labels], "D", color="tab:red", ms=5,
             label="mean")
    ax2.set_ylabel("B (Å²)")
    ax2.set_title("median, quartiles, 5–95 % whiskers, mean", fontsize=10)
    for lab in ax2.get_xticklabels():
        lab.set_rotation(30 if len(labels) > 4 else 0)
        lab.set_ha("right" if len(labels) > 4 else "center")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


# ---------------------------------------------------------------------- per residue
#: per-residue columns plotted along the sequence (column, axis label), when a table has them
PER_RESIDUE_PANELS = (("cc", "RSCC (original map)"), ("q_score", "Q-score (original map)"))


def plot_per_residue(tables: Mapping[str, pd.DataFrame], path: str | os.PathLike,
                     title: str = "Per residue, per cycle") -> Path:
    """Per-residue values along the model (label -> per_residue.tsv table with ``chain``, ``resnum`` and any of
    ``cc``, ``q_score``, ``rama``, ``rotamer_outlier``): one line per cycle for RSCC and Q-score, and a strip
    marking each cycle's Ramachandran (x) and rotamer (o) outliers. Residues are laid out chain after chain in the
    first table's order; chain boundaries are marked."""
    tables = {str(k): v for k, v in tables.items() if v is not None and len(v)}
    if not tables:
        raise LocScaleInputError("no per-residue values to plot", "pass at least one non-empty table", path)
    first = next(iter(tables.values()))
    keys = list(dict.fromkeys(zip(first["chain"].astype(str), first["resnum"].astype(int), strict=True)))
    index = {k: i for i, k in enumerate(keys)}
    panels = [(c, lab) for c, lab in PER_RESIDUE_PANELS if any(c in t.columns for t in tables.values())]
    outliers = any(c in t.columns for t in tables.values() for c in ("rama", "rotamer_outlier"))
    nrows = len(panels) + int(outliers)
    if nrows == 0:
        raise LocScaleInputError("the per-residue tables have none of the plotted columns "
                                 "(cc, q_score, rama, rotamer_outlier)", "pass per_residue.tsv tables", path)
    colours = _label_colours(list(tables))
    fig = Figure(figsize=(11.0, 2.4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False, sharex=True).ravel()
    fig.suptitle(title, fontsize=10)

    def positions(t):
        return np.array([index.get((str(c), int(r)), -1) for c, r in zip(t["chain"], t["resnum"], strict=True)])

    for ax, (column, label) in zip(axes, panels, strict=False):
        for name, t in tables.items():
            if column not in t.columns:
                continue
            x, v = positions(t), pd.to_numeric(t[column], errors="coerce").to_numpy(dtype=float)
            ok = (x >= 0) & np.isfinite(v)
            order = np.argsort(x[ok])
            ax.plot(x[ok][order], v[ok][order], lw=0.8, color=colours[name], label=name)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=min(4, len(tables)))
    if outliers:
        ax = axes[-1]
        for row, (name, t) in enumerate(tables.items()):
            x = positions(t)
            if "rama" in t.columns:
                bad = (t["rama"].astype(str) == "outlier").to_numpy() & (x >= 0)
                ax.plot(x[bad], np.full(bad.sum(), row), "x", color=colours[name], ms=6)
            if "rotamer_outlier" in t.columns:
                bad = (pd.to_numeric(t["rotamer_outlier"], errors="coerce") == 1).to_numpy() & (x >= 0)
                ax.plot(x[bad], np.full(bad.sum(), row), "o", mfc="none", color=colours[name], ms=5)
        ax.set_yticks(range(len(tables)), list(tables), fontsize=8)
        ax.set_ylim(-0.7, len(tables) - 0.3)
        ax.set_ylabel("outliers:\nx Rama, o rotamer", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    starts = [i for i, k in enumerate(keys) if i == 0 or k[0] != keys[i - 1][0]]
    for ax in axes:
        for i in starts[1:]:
            ax.axvline(i - 0.5, color="0.4", lw=0.8)
    axes[-1].set_xticks(starts, [f"chain {keys[i][0]}" for i in starts], fontsize=8)
    axes[-1].set_xlabel("residue (chain after chain)")
    return save_figure(fig, path)


# ---------------------------------------------------------------------- central sections
def central_sections(data: np.ndarray) -> dict[str, np.ndarray]:
    """The three orthogonal central sections of an [x, y, z] array, each oriented for ``imshow(origin=
    'lower')`` with the first named axis horizontal: 'XY' (z = nz//2), 'XZ' (y = ny//2), 'YZ' (x = nx//2)."""
    nx, ny, nz = data.shape
    return {
        "XY": np.asarray(data[:, :, nz // 2]).T,
        "XZ": np.asarray(data[:, ny // 2, :]).T,
        "YZ": np.asarray(data[nx // 2, :, :]).T,
    }


def plot_central_sections(maps: Mapping[str, np.ndarray | Map], path: str | os.PathLike,
                          percentiles: tuple[float, float] = (1.0, 99.8)) -> Path:
    """Three orthogonal central sections per map (one row per map, label -> [x, y, z] array or Map). The
    three sections of one map share one grey scale (`percentiles` of their pooled values); axes are in Å
    when Maps are given."""
    if not maps:
        raise LocScaleInputError("no maps to plot", "pass at least one map", path)
    n = len(maps)
    fig = Figure(figsize=(10.5, 3.3 * n + 0.3), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for row, (label, m) in enumerate(maps.items()):
        data = m.data if isinstance(m, Map) else np.asarray(m)
        if data.ndim != 3:
            raise ValueError(f"map {label!r} is not 3-D (shape {data.shape})")
        vox = m.voxel_size if isinstance(m, Map) else np.ones(3)
        unit = "Å" if isinstance(m, Map) else "voxels"
        secs = central_sections(data)
        pooled = np.concatenate([s.ravel() for s in secs.values()])
        pooled = pooled[np.isfinite(pooled)]
        vmin, vmax = (np.percentile(pooled, percentiles) if pooled.size else (0.0, 1.0))
        if vmax <= vmin:
            vmax = vmin + 1.0
        nx, ny, nz = data.shape
        org = m.origin if isinstance(m, Map) else np.zeros(3)
        # voxel i covers [origin + (i - 1/2)·voxel, origin + (i + 1/2)·voxel] in the model's frame
        edges = {a: (org[i] - 0.5 * vox[i], org[i] + (n - 0.5) * vox[i])
                 for i, (a, n) in enumerate(zip("XYZ", (nx, ny, nz), strict=True))}
        where = {"XY": f"z = {nz // 2}", "XZ": f"y = {ny // 2}", "YZ": f"x = {nx // 2}"}
        for col, (name, sec) in enumerate(secs.items()):
            ax = axes[row, col]
            h, v = name[0], name[1]
            im = ax.imshow(sec, origin="lower", cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest",
                           extent=(*edges[h], *edges[v]))
            ax.set_title(f"{label}: {name} section ({where[name]})", fontsize=9)
            ax.set_xlabel(f"{h.lower()} ({unit})", fontsize=8)
            ax.set_ylabel(f"{v.lower()} ({unit})", fontsize=8)
            ax.tick_params(labelsize=7)
        cb = fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.85, pad=0.01)
        cb.ax.tick_params(labelsize=7)
        cb.set_label(f"{label} density", fontsize=8)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- ChimeraX
def write_chimerax_script(path: str | os.PathLike, map_path: str | os.PathLike,
                          model_path: str | os.PathLike | None, level: float, *,
                          title: str | None = None, style: str = "mesh", close_session: bool = True,
                          comment: str | None = None, enclosed_volume: float | None = None) -> Path:
    """Write a ChimeraX command script (.cxc) that opens the map and model at `level` with a suggested view.

    Paths are written relative to the script's folder (ChimeraX runs a .cxc from its own folder), so the
    results folder can be moved or copied as a whole. The map is #1 and the model #2 (`close_session`
    clears the session first so the numbering holds). `level` normally comes from
    :func:`locscale.models.contour_level`;
    pass its volume as `enclosed_volume` to note it in the script.
    """
    path = Path(path)
    base = path.parent.resolve()

    def rel(p) -> str:
        r = os.path.relpath(Path(p).resolve(), base)
        return r.replace(os.sep, "/")

    def q(s: str) -> str:
        return f'"{s}"' if any(c in s for c in " ;#'") else s

    if style not in ("mesh", "surface"):
        raise ValueError("style must be 'mesh' or 'surface'")
    lines = [f"# {title or 'LocScale map and model'}",
             f"# open in ChimeraX: `open {path.name}` (or run `chimerax {path.name}` in this folder)"]
    if comment:
        lines += [f"# {c}" for c in comment.splitlines()]
    if close_session:
        lines.append("close session")
    lines.append(f"open {q(rel(map_path))}")
    if model_path is not None:
        lines.append(f"open {q(rel(model_path))}")
    if enclosed_volume is not None:
        lines.append(f"# level {level:.6g} encloses {enclosed_volume:.0f} Å³ (the model's molecular volume); "
                     f"ChimeraX can redo it with: volume #1 encloseVolume {enclosed_volume:.0f}")
    lines.append(f"volume #1 level {level:.6g} style {style} step 1 color cornflowerblue"
                 + (" transparency 0.5" if style == "surface" else ""))
    if model_path is not None:
        lines += ["hide #2 cartoons", "show #2 atoms", "style #2 stick", "color #2 byhetero",
                  "view #2"]
    else:
        lines.append("view #1")
    lines += ["clip off", "lighting soft", "set bgColor white"]
    with atomic_output(path, suffix=".cxc") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return path

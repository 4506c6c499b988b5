"""Partial models: the truth table by region for models that lack part of the structure (a chain, gaps of 20 % of
the residues, a compact domain), with and without the hybrid reference (locscale.hybrid).

For each partial model the table scores, in the removed region (voxels within 2.5 Å of the removed residues' true
atoms) and in the rest of the true envelope (:func:`locscale.phantoms.truth.removed_region_masks`):

* ``locscale_model_only``: LocScale against the partial model (its default mask: half a window around it);
* ``locscale_hybrid``: LocScale against the partial model plus pseudo-atoms in the density it does not explain,
  in a mask around both;
* ``global_target``: the workflow's cycle-0 target (Guinier B, FSC-weighted);
* ``locscale_complete``: LocScale against the complete model;

and, as a negative control, the same partial model on a phantom made *without* the removed part (the data lack it
too): the pseudo-atoms placed in the removed region there, against those placed in it when the data hold it.
"""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd

from ..mapio import Map
from .bench import Bench, global_target
from .common import figure

METHODS = ("locscale_model_only", "locscale_hybrid", "global_target", "locscale_complete")


def phantom_without(bench: Bench, removed: set):
    """The bench's phantom rebuilt without the `removed` residues (same grid, seed, blur and noise settings;
    the true atoms keep their truth B): data that lack the removed part."""
    from ..phantoms.edits import residue_keys, sub_structure
    from ..phantoms.phantom import make_phantom

    info = bench.info
    blur, noise = info["blur"], info["noise"]
    kept = sub_structure(bench.structure, set(residue_keys(bench.structure)) - set(removed))
    return make_phantom(kept, bench.half1, int(info["seed"]), resolution=float(noise["requested_resolution"]),
                        fsc_threshold=float(noise["fsc_threshold"]), b_global=float(blur["b_global"]),
                        b_core=float(blur["b_core"]), b_periphery=float(blur["b_periphery"]),
                        gradient_power=float(blur.get("power", 1.0)), chain_b=blur.get("chain_b"),
                        noise_b=float(noise["noise_b"]))


def pseudo_atoms_in(pseudo: gemmi.Structure, region: np.ndarray, like: Map) -> int:
    """How many pseudo-atoms sit on a voxel of `region`."""
    from ..models import atom_positions

    if not len(pseudo) or pseudo[0].count_atom_sites() == 0:
        return 0
    ijk = np.rint((atom_positions(pseudo) - like.origin) / like.voxel_size).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(like.shape)), axis=1)
    return int(region[tuple(ijk[ok].T)].sum())


def partial_models(bench: Bench, model: gemmi.Structure, *, kinds=None, fraction: float = 0.2,
                   fdr: float | None = None, negative_control: bool = True, progress: bool = False) -> pd.DataFrame:
    """One row per partial model and method (module docstring). `model` is the complete model the references
    are made from (true coordinates; e.g. B refined against the global target); each partial model is it without
    the residues :func:`locscale.phantoms.edits.removed_residues` picks. Columns: ``kind``, ``method``,
    ``residues_removed``, ``cc_removed``, ``cc_rest``, ``pseudo_atoms``, ``pseudo_atoms_in_removed``; the
    negative control adds ``negative_control_pseudo_atoms`` and ``negative_control_in_removed`` to the hybrid row."""
    from .. import hybrid
    from ..models import envelope_mask
    from ..phantoms.edits import PARTIAL_KINDS, partial_model
    from ..phantoms.truth import region_cc, removed_region_masks

    fdr = hybrid.DEFAULT_FDR if fdr is None else fdr
    full = bench.full
    target, _ = global_target(bench.half1, bench.half2, bench.resolution)
    half_window = 0.5 * bench.window * full.apix

    def locscale(structure, pseudo=None):
        ref = bench.reference_map(structure)
        if pseudo is not None:
            ref = hybrid.add_pseudo_atom_map(ref, pseudo)
            structure = hybrid.merge(structure, pseudo)
        return bench.locscale(ref, mask=envelope_mask(structure, full, half_window), progress=progress)

    complete = locscale(model)
    rows = []
    for kind in kinds or PARTIAL_KINDS:
        try:
            part, removed = partial_model(model, kind, fraction=fraction)
        except ValueError as err:  # e.g. a one-chain model has no chain to remove
            rows.append({"kind": kind, "method": "not applicable", "note": str(err)})
            continue
        regions = removed_region_masks(bench.structure, removed, full, bench.resolution)
        ref = hybrid.hybrid_reference(full, part, bench.resolution, half_maps=(bench.half1, bench.half2), fdr=fdr)
        maps = {"locscale_model_only": locscale(part), "locscale_hybrid": locscale(part, ref.pseudo_atoms),
                "global_target": target, "locscale_complete": complete}
        extra = {"pseudo_atoms": ref.count, "pseudo_atoms_in_removed": pseudo_atoms_in(ref.pseudo_atoms,
                                                                                     regions["removed"], full),
                 "z_threshold": ref.record["threshold"]["z"]}
        if negative_control:
            ph = phantom_without(bench, removed)
            neg = hybrid.hybrid_reference(ph.full, part, bench.resolution, half_maps=(ph.half1, ph.half2), fdr=fdr)
            extra.update(negative_control_pseudo_atoms=neg.count,
                         negative_control_in_removed=pseudo_atoms_in(neg.pseudo_atoms, regions["removed"], full))
        for method in METHODS:
            rows.append({"kind": kind, "method": method, "residues_removed": len(removed),
                         **region_cc(maps[method].data, bench.truth, regions),
                         **(extra if method == "locscale_hybrid" else {})})
    return pd.DataFrame(rows)


def plot_partial_models(table: pd.DataFrame, path, title: str = "partial models (SIMULATED phantom)") -> None:
    t = table[table["method"].isin(METHODS)]
    kinds = list(dict.fromkeys(t["kind"]))

    def draw(fig, ax):
        width = 0.8 / len(METHODS)
        for i, method in enumerate(METHODS):
            g = t[t["method"] == method].set_index("kind").reindex(kinds)
            ax.bar(np.arange(len(kinds)) + (i - 1.5) * width, g["cc_removed"], width, label=method)
        ax.set_xticks(np.arange(len(kinds)), kinds)
        ax.set_ylabel("CC to truth in the removed region")
        lo = np.nanmin(t["cc_removed"]) if len(t) else 0.0
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.legend(fontsize=7)
    figure(path, draw, title)


def run_partial_models(phantom_json, refined, table_path, plot_path, *, phantom: str, settings: dict, window, mode,
                       reference: str) -> pd.DataFrame:
    """The experiments' partial-models step: the table (TSV with its settings) and its plot for one phantom."""
    from pathlib import Path

    from ..models import read_model
    from .common import write_table

    bench = Bench.from_dir(Path(phantom_json).parent, window=window, mode=mode)
    model = bench.structure if reference == "truth" else read_model(refined)
    table = partial_models(bench, model, kinds=settings["kinds"], fraction=float(settings["fraction"]),
                           fdr=float(settings["fdr"]))
    write_table(table, table_path, {"phantom": phantom, "mode": bench.mode, "window_voxels": bench.window,
                                    "reference": reference, "fraction": settings["fraction"],
                                    "fdr": settings["fdr"]})
    plot_partial_models(table, plot_path, title=f"partial models, SIMULATED phantom {phantom}")
    return table

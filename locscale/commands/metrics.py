"""model-map validation metrics (RSCC, FSC, kurtosis) as JSON/TSV

Validate a model against a map: RSCC (CC_mask, CC_box, per residue), model-vs-map FSC and FSCaverage up to the
resolution, and excess kurtosis inside a fixed mask.
"""

from __future__ import annotations

import argparse

from ..records import dumps
from .common import add_map_args, write_json

NAME = "metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_map_args(p)
    p.add_argument("-m", "--model", required=True, help="atomic model (PDB/mmCIF)")
    p.add_argument("--kurtosis-mask", help="mask map for kurtosis (default: the model envelope)")
    p.add_argument("-o", "--output", required=True, help="metrics JSON")
    p.add_argument("--fsc-tsv", help="write the FSC curve here (TSV)")
    p.add_argument("--per-residue-tsv", help="write per-residue CC here (TSV)")


def run(a) -> int:
    from .. import limits, outputs
    from ..mapio import read_map
    from ..models import check_model_in_map, read_model
    from ..validation.map_metrics import validation_metrics

    outputs.guard_outputs({"-o": a.output, "--fsc-tsv": a.fsc_tsv, "--per-residue-tsv": a.per_residue_tsv},
                         [a.map, a.model, a.kurtosis_mask])
    limits.check_resolution(a.resolution)
    emap = read_map(a.map)
    structure = read_model(a.model)
    check_model_in_map(structure, emap)  # a model outside the box would give NaN metrics
    kmask = None
    if a.kurtosis_mask:
        km = read_map(a.kurtosis_mask)
        emap.require_same_grid(km, "the map and the kurtosis mask")
        kmask = km.data >= 0.5
    record, fsc_curve, per_residue = validation_metrics(emap, structure, a.resolution, kurtosis_mask=kmask)
    record.update(map=a.map, model=a.model)
    write_json(a.output, record, a)
    if a.fsc_tsv:
        _write_tsv(fsc_curve.to_frame(), a.fsc_tsv)
    if a.per_residue_tsv:
        _write_tsv(per_residue, a.per_residue_tsv)
    print(dumps({k: v for k, v in record.items() if not isinstance(v, (list, dict))}))
    return 0


def _write_tsv(frame, path) -> None:
    from ..outputs import atomic_output

    with atomic_output(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)

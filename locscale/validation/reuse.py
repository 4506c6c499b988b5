"""Validation of unchanged coordinates: reuse the previous cycle's results instead of recomputing them.

A B-factor-only cycle never moves an atom, so most of what the validation steps compute cannot change from one
cycle to the next. Each step records a content digest of what it read (:func:`inputs_digest`: the coordinates of
the model, never its B-factors, the bytes of the maps and the settings) and, when the previous cycle's record
carries the same digest, takes that cycle's results and recomputes only what depends on the B-factors. The record
then says where the rest came from (``reused_from_cycle``). A model whose coordinates moved (coordinate
refinement, a rebuilt model), another map or other settings give another digest, and the step runs in full.

* **Model validation** (:func:`validate_model_reusing`): Ramachandran, rotamers, atom overlaps and Q-score
  (coot), EMRinger (cctbx) and bond/angle RMSZ (servalcat) read only coordinates and the map; coot's per-residue
  density correlation (``cc_coot``) reads the B-factors too (coot simulates the model's density with them) and is
  recomputed. The result equals a full run's (the tests compare them).
* **Cross-validation** (:func:`cross_validate_reusing`): the shake protocol shakes the coordinates with a fixed
  seed, so the shaken coordinates are the same, and refines B-factors against half map 1 starting from the
  model's B-factors. Only that starting point differs between cycles; the refinement converges to the same
  B-factors (measured on the 256³ TRPV1 phantom: cycle 1's FSCwork and FSCtest, reused in cycle 2, were within
  1.6e-7 of cycle 2's own full cross-validation). The whole result is reused: it is the cross-validation of
  these coordinates, which the earlier cycle tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

#: version of the digest recipe: records written with another recipe never match
DIGEST_VERSION = 1
#: the record key of the digest and of the cycle whose results were reused
DIGEST_KEY, REUSED_KEY = "inputs_digest", "reused_from_cycle"


# ---------------------------------------------------------------------------------------------- digests
def coordinates_digest(model) -> str:
    """SHA-256 of everything in a model that validation reads except the B-factors: per atom (every model, file
    order) chain, residue name and number, insertion code, hetero flag, atom name, alternate location, element,
    charge, occupancy and the exact (float64) coordinates; the connections (LINK / struct_conn, in either partner
    order: servalcat writes HEM-HIS for an input's HIS-HEM) and the space group (none = P 1). The cell is left
    out: refinement programs rewrite it from the map (servalcat sets one where the input had none, and writes
    311.1936 where it said 311.194), and the validation tools measure against the map's own grid. `model`: a
    gemmi.Structure or a model file."""
    import gemmi

    st = model if isinstance(model, gemmi.Structure) else gemmi.read_structure(str(model))
    h = hashlib.sha256()
    h.update(f"coordinates v{DIGEST_VERSION}\n".encode())
    for mdl in st:
        h.update(f"model {mdl.num}\n".encode())
        for ch in mdl:
            for res in ch:
                h.update(f"{ch.name}|{res.name}|{res.seqid.num}|{res.seqid.icode}|{res.het_flag}\n".encode())
                for at in res:
                    h.update(f"{at.name}|{at.altloc}|{at.element.name}|{at.charge}|".encode())
                    h.update(struct.pack("<4d", at.pos.x, at.pos.y, at.pos.z, at.occ))
    for con in st.connections:
        partners = "|".join(sorted((str(con.partner1), str(con.partner2))))
        h.update(f"link {con.type}|{partners}|{con.asu}\n".encode())
    h.update(f"space group {(st.spacegroup_hm or 'P 1').replace(' ', '')}\n".encode())
    return h.hexdigest()


def file_digest(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def map_data_digest(path: str | os.PathLike) -> str:
    """SHA-256 of what a map file says about the map: its values (as stored), shape, voxel size and origin, not
    its header labels (each cycle labels its maps with its own number)."""
    from ..mapio import read_map

    emap = read_map(path)
    h = hashlib.sha256()
    h.update(f"map v{DIGEST_VERSION} {emap.data.shape} {emap.data.dtype}\n".encode())
    h.update(struct.pack("<6d", *map(float, emap.voxel_size), *map(float, emap.origin)))
    h.update(emap.data.tobytes())
    return h.hexdigest()


MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrcs")


def files_digest(files: dict, settings: dict | None = None) -> str:
    """One digest of a step's named input files (maps by :func:`map_data_digest`, any other file by its bytes;
    None entries skipped) and `settings` (JSON-serialisable)."""
    h = hashlib.sha256()
    h.update(f"files v{DIGEST_VERSION}\n".encode())
    for name in sorted(files):
        path = files[name]
        if path is None:
            continue
        d = map_data_digest(path) if str(path).lower().endswith(MAP_SUFFIXES) else file_digest(path)
        h.update(f"{name}={d}\n".encode())
    h.update(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def inputs_digest(model=None, files=(), settings: dict | None = None) -> str:
    """One digest of what a validation step reads: the model's coordinates (:func:`coordinates_digest`, not its
    B-factors), the bytes of `files` (in order; None entries skipped) and `settings` (JSON-serialisable)."""
    h = hashlib.sha256()
    h.update(f"inputs v{DIGEST_VERSION}\n".encode())
    if model is not None:
        h.update(coordinates_digest(model).encode())
    for f in files:
        if f is not None:
            h.update(file_digest(f).encode())
    h.update(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def reusable(previous: dict | None, digest: str) -> int | None:
    """The cycle whose results `previous` (a step's record from the previous cycle) holds, when they were
    computed from the same inputs (`digest`); None otherwise. A reused record points at the cycle that computed
    it, so a chain of reuses names the first cycle."""
    if not previous or previous.get(DIGEST_KEY) != digest:
        return None
    origin = previous.get(REUSED_KEY)
    return int(origin) if origin is not None else int(previous["cycle"])


def read_previous(path) -> dict | None:
    """The previous cycle's record at `path` (a JSON file), or None when there is none or it cannot be read."""
    from ..records import read_json

    try:
        return read_json(path) if path is not None and Path(path).is_file() else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- model validation
def model_validation_digest(model, map_path, resolution: float, *, monlib=None, ligands=(), tools=None) -> str:
    """The digest of a model validation's inputs (what :func:`locscale.validation.model.validate_model` reads)."""
    from .model import _select_tools

    settings = {"step": "model_validation", "resolution": float(resolution), "monlib": None if monlib is None
                else str(monlib), "ligands": [file_digest(p) for p in (ligands or ())],
                "tools": sorted(_select_tools(tools))}
    return inputs_digest(model, [map_path], settings)


def validate_model_reusing(model, map_path, resolution, workdir, *, cycle: int, previous=None, monlib=None,
                           ligands=(), tools=None, log=None, **kw):
    """:func:`locscale.validation.model.validate_model`, reusing `previous` (the previous cycle's
    ``(summary JSON, per-residue TSV)``, or None) when it validated the same coordinates against the same map
    with the same settings: then only coot's per-residue density correlation (``cc_coot``, the one value that
    reads the B-factors) is recomputed. Returns ``(summary, per_residue)`` as validate_model, the summary with
    ``cycle``, ``inputs_digest`` and, when reused, ``reused_from_cycle``."""
    from .model import NOT_AVAILABLE, RESIDUE_KEYS, read_per_residue, validate_model

    digest = model_validation_digest(model, map_path, resolution, monlib=monlib, ligands=ligands, tools=tools)
    prev = read_previous(previous[0]) if previous else None
    origin = reusable(prev, digest)
    if origin is None:
        summary, per_residue = validate_model(model, map_path, resolution, workdir, monlib=monlib, ligands=ligands,
                                              tools=tools, log=log, **kw)
        return {**summary, "cycle": int(cycle), DIGEST_KEY: digest}, per_residue
    import time

    t0 = time.perf_counter()
    per_residue = read_per_residue(previous[1])
    summary = {k: v for k, v in prev.items() if k not in ("provenance", "warnings")}
    tool_status = prev.get("model_validation_tools") or {}
    coot_ok = "coot" in tool_status and not str(tool_status["coot"]).startswith(NOT_AVAILABLE)
    if coot_ok:
        fresh, cc = validate_model(model, map_path, resolution, workdir, monlib=monlib, ligands=ligands,
                                   tools=["coot"], log=log, coot_density_correlation_only=True, **kw)
        per_residue = per_residue.drop(columns=["cc_coot"]).merge(cc[[*RESIDUE_KEYS, "cc_coot"]], on=RESIDUE_KEYS,
                                                                  how="left", validate="one_to_one")
        status = fresh["model_validation_tools"]["coot"]
        if str(status).startswith(NOT_AVAILABLE):  # coot failed this time: say so (its density correlation is NaN)
            summary["model_validation_tools"] = {**summary["model_validation_tools"], "coot": status}
    per_residue = typed_residue_table(per_residue)
    summary.update({"cycle": int(cycle), DIGEST_KEY: digest, REUSED_KEY: origin,
                    "model_validation_seconds": time.perf_counter() - t0,
                    "model_validation_reused": f"reused from cycle {origin}: the coordinates, the map and the "
                    "settings are unchanged" + ("; coot's per-residue density correlation recomputed (it reads "
                                                "the B-factors)" if coot_ok else "")})
    return summary, per_residue


def typed_residue_table(table):
    """A per-residue model-validation table read back from its TSV, with the columns and types
    :func:`locscale.validation.model.validate_model` returns (empty cells of number columns are NaN)."""
    import pandas as pd

    from .model import _TEXT_COLUMNS, RESIDUE_COLUMNS, RESIDUE_KEYS

    out = table[[*RESIDUE_KEYS, *RESIDUE_COLUMNS]].copy()
    for c in RESIDUE_COLUMNS:
        if c in _TEXT_COLUMNS:
            out[c] = out[c].fillna("").astype(str)
        else:
            out[c] = pd.to_numeric(out[c].replace("", float("nan"))).astype(float)
    return out


# ---------------------------------------------------------------------------------------------- cross-validation
def crossval_digest(model, half1, half2, resolution: float, *, engine, shake: float, seed: int,
                    refine_xyz) -> str:
    """The digest of a cross-validation's inputs: the model's coordinates, the half maps and the protocol's
    settings (shake, seed, the engine's cross-validation command without paths)."""
    cv_engine = engine.for_cross_validation(refine_xyz)
    cmd = cv_engine.command("MODEL", resolution, "cv", half_maps=["HALF1", "HALF2"])
    settings = {"step": "crossval", "resolution": float(resolution), "shake": float(shake), "seed": int(seed),
                "engine": cv_engine.name, "command": cmd[1:],
                "ligands": [file_digest(p) for p in getattr(cv_engine, "ligands", ())]}
    return inputs_digest(model, [half1, half2], settings)


def cross_validate_reusing(model_path, half1, half2, resolution: float, workdir, *, cycle: int, previous=None,
                           engine, shake: float = 0.5, seed: int = 0, refine_xyz=None, threads: int = 1):
    """:func:`locscale.validation.crossval.cross_validate` of the model file `model_path`, or the previous cycle's
    result when `previous` (its ``(crossval.json, crossval.tsv)``, or None) came from the same coordinates, half
    maps and settings (module docstring). Returns ``(record, curve, reused)``: the record for crossval.json
    (with ``cycle``, ``inputs_digest`` and, when reused, ``reused_from_cycle``), the per-shell table and whether
    it was reused."""
    from ..models import read_model
    from .crossval import cross_validate, read_crossval

    digest = crossval_digest(model_path, half1, half2, resolution, engine=engine, shake=shake, seed=seed,
                             refine_xyz=refine_xyz)
    prev = read_previous(previous[0]) if previous else None
    origin = reusable(prev, digest)
    if origin is not None:
        curve, _ = read_crossval(previous[1])
        record = {k: v for k, v in prev.items() if k not in ("provenance", "warnings")}
        record.update({"cycle": int(cycle), DIGEST_KEY: digest, REUSED_KEY: origin,
                       "crossval_reused": f"reused from cycle {origin}: the coordinates, the half maps and the "
                       "settings are unchanged (the shake protocol tests the coordinates)"})
        return record, curve, True
    cv = cross_validate(read_model(model_path), half1, half2, resolution, workdir, engine=engine, shake=shake,
                        seed=seed, refine_xyz=refine_xyz, threads=threads)
    return {"cycle": int(cycle), **cv.record(), DIGEST_KEY: digest}, cv.curve, False


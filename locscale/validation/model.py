"""Model validation of one cycle: geometry, Ramachandran, rotamers, atom overlaps, Q-score and EMRinger.

The paper judged sharpened maps by the models refined into them; this step measures those models with three
external tools, **each in its own process** (importing coot and cctbx into one process crashes, DESIGN.md §9,
and coot is GPLv3: only :mod:`locscale.validation.coot_tool` (and the builder, :mod:`locscale.building.coot_tool`)
import it, and only when run as a program):

======================  =======================================================  =============================
tool                    program                                                  values
======================  =======================================================  =============================
coot-headless-api       ``python -m locscale.validation.coot_tool``              Ramachandran classes, rotamer
                                                                                 outliers, atom overlaps,
                                                                                 Q-score, per-residue CC
cctbx-base              ``python -m locscale.validation.cctbx_tool``             EMRinger (+ MolProbity
                                                                                 Ramachandran cross-check)
servalcat               ``servalcat util geom MODEL --monlib DIR``               bond and angle RMSZ
======================  =======================================================  =============================

Every tool is **optional**: one that is not installed (found with :func:`importlib.util.find_spec`, never
imported here), switched off with ``tools=``, or failing gives NaN values and a ``"not available: <reason>"``
entry in ``model_validation_tools``; the cycle goes on. Bad inputs (a missing or unreadable model or map) raise
:class:`~locscale.errors.LocScaleInputError`.

Definitions are the tools' own; see :mod:`locscale.validation.coot_tool` for Coot's (favoured p ≥ 0.02, outlier
p < 0.002; rotamer outlier = χ angles in no library rotamer; a bad overlap is one of ≥ 1.2 Å³, not an
H-bond). ``atom_overlaps_per_1000_atoms`` is clashscore-like, not MolProbity's clashscore. Bond and angle
RMSZ are servalcat's ``r.m.s.Z`` of the non-H bond and angle restraints (links such as His–haem Fe included).

Maps whose origin is not zero (nstart or MRC2014 ORIGIN field) are validated as a zero-origin copy with the model
shifted by the same vector (written to `workdir`): the tools disagree about the ORIGIN field, and a rigid shift
of both changes none of the values.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..cycle import registry
from ..errors import LocScaleInputError
from ..records import read_json
from ..tools.process import tool_environment
from ..tools.restraints import locate_monlib

#: the eight summary values, in report order (the registry's model-validation metrics, locscale.cycle.registry)
SUMMARY_KEYS = registry.validation_keys()
#: human labels (with units) of the summary values
LABELS = {k: registry.metric(k).label for k in SUMMARY_KEYS}
#: which tool gives which summary value
SOURCE = {k: registry.metric(k).tool for k in SUMMARY_KEYS}
TOOLS = ("coot", "cctbx", "servalcat")
#: prefix of a ``model_validation_tools`` entry for a tool that gave no values
NOT_AVAILABLE = "not available"
#: per-residue columns after chain, resnum, icode, resname
RESIDUE_COLUMNS = ["rama", "phi", "psi", "rama_probability", "rotamer_outlier", "rotamer_probability", "q_score",
                   "cc_coot", "overlaps", "rama_cctbx"]
_TEXT_COLUMNS = ("rama", "rama_cctbx")
#: distributions whose version is reported for each tool
_DISTRIBUTIONS = {"coot": "coot-headless-api", "cctbx": "cctbx-base", "servalcat": "servalcat"}
#: servalcat's summary rows used
_SERVALCAT_ROWS = {"bond_rmsz": "Bond distances, non H", "angle_rmsz": "Bond angles, non H"}
DEFAULT_TIMEOUT = 1800.0  # s per tool; each takes seconds on a 4 500-atom model


def not_available(reason: str) -> str:
    return f"{NOT_AVAILABLE}: {reason}"


def is_available(status: str) -> bool:
    """True for a ``model_validation_tools`` entry that is a version, not a 'not available' reason."""
    return not str(status).startswith(NOT_AVAILABLE)


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _version(tool: str) -> str:
    try:
        return importlib.metadata.version(_DISTRIBUTIONS[tool])
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _servalcat_command() -> list[str] | None:
    if _find_spec("servalcat") is not None:
        return [sys.executable, "-m", "servalcat"]
    exe = shutil.which("servalcat")
    return [exe] if exe else None


def installed_tools() -> dict[str, str | None]:
    """{tool: None if it can run here, else why not} — found without importing any of them."""
    missing = {}
    missing["coot"] = None if _find_spec("coot_headless_api") else "coot-headless-api is not installed"
    missing["cctbx"] = (None if _find_spec("mmtbx") and _find_spec("iotbx")
                        else "cctbx (cctbx-base: mmtbx, iotbx) is not installed")
    missing["servalcat"] = None if _servalcat_command() else "servalcat is not installed"
    return missing


def _select_tools(tools) -> set[str]:
    if tools is None:
        return set(TOOLS)
    if isinstance(tools, dict):
        tools = [name for name, on in tools.items() if on]
    if isinstance(tools, str):
        tools = [tools]
    chosen = {str(t) for t in tools}
    unknown = sorted(chosen - set(TOOLS))
    if unknown:
        raise LocScaleInputError(f"unknown model-validation tool(s) {unknown}",
                                 f"choose among {list(TOOLS)} (or give none to run all)")
    return chosen


class _Log:
    """Appends each tool's command, stdout and stderr to one log file."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")


def _run(name: str, cmd: list[str], workdir: Path, log: _Log, env: dict, timeout: float) -> tuple[str | None, float]:
    """Run one tool; (None on success or the reason it failed, seconds)."""
    log.write(f"==== {name}: {' '.join(cmd)}")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        log.write(f"{exc.stdout or ''}\n{exc.stderr or ''}\n==== {name}: timed out after {timeout:g} s")
        return f"{name} timed out after {timeout:g} s (see {log.path})", time.perf_counter() - t0
    except OSError as exc:
        log.write(f"==== {name}: could not start ({exc})")
        return f"{name} could not start ({exc})", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    log.write(f"---- stdout\n{proc.stdout}\n---- stderr\n{proc.stderr}\n==== {name}: exit code {proc.returncode}, "
              f"{seconds:.1f} s")
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        last = lines[-1][:200] if lines else "no output"
        return f"{name} failed (exit code {proc.returncode}: {last}; see {log.path})", seconds
    return None, seconds


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["nan"],
                       dtype={"chain": str, "icode": str, "resname": str})


def _residues(structure) -> pd.DataFrame:
    rows = [{"chain": ch.name, "resnum": int(res.seqid.num), "icode": res.seqid.icode.strip(), "resname": res.name}
            for ch in structure[0] for res in ch]
    return pd.DataFrame(rows, columns=["chain", "resnum", "icode", "resname"])


def _prepare_inputs(model: Path, map_path: Path, workdir: Path):
    """Read and check both inputs; (structure, model path, map path) for the tools (zero-origin copies if needed)."""
    from ..mapio import Map, read_map, write_map
    from ..models import read_model, shift_model, write_model

    structure = read_model(model)
    emap = read_map(map_path)
    origin = np.asarray(emap.origin, dtype=float)
    if not np.any(origin) and tuple(emap.axis_order) == (1, 2, 3):
        return structure, model, map_path
    zero = Map(emap.data, voxel_size=emap.voxel_size, origin=np.zeros(3), axis_order=(1, 2, 3),
               origin_convention="nstart")
    map_out = write_map(workdir / "map_zero_origin.mrc", zero, label="locscale model validation: zero-origin copy")
    model_out = write_model(shift_model(structure, -origin), workdir / "model_zero_origin.cif")
    return structure, model_out, map_out


def validate_model(model, map_path, resolution, workdir, *, monlib=None, ligands=(), tools=None, log=None,
                   timeout: float = DEFAULT_TIMEOUT) -> tuple[dict, pd.DataFrame]:
    """Validate `model` (PDB/mmCIF) against `map_path` with Coot, cctbx and servalcat, each in its own process.

    Parameters
    ----------
    resolution : the map's resolution (Å); checked, and recorded with the tools' details.
    workdir : folder for the tools' outputs (``coot.json``/``coot.tsv``, ``cctbx.json``/``cctbx.tsv``,
        ``servalcat_geom_summary.json`` …, and ``model_validation_details.json`` with every tool's full output).
    monlib : CCP4 monomer library for servalcat (and coot); None: ``$CLIBD_MON``, else coot-headless-api's.
    ligands : restraint dictionaries (CIF) for residue types outside the library (servalcat ``--ligand``,
        coot ``import_cif_dictionary``).
    tools : the tools to run, a subset of :data:`TOOLS` (or {tool: bool}); None runs all. The others are
        reported ``"not available: not requested"``.
    log : file the tools' commands, stdout and stderr are appended to (default ``workdir/model_validation.log``).

    Returns
    -------
    summary : {key: float for key in :data:`SUMMARY_KEYS`} (NaN for values whose tool gave none), plus
        ``model_validation_tools`` ({tool: version or "not available: reason"}) and
        ``model_validation_seconds``.
    per_residue : one row per residue of the model (first model, file order): chain, resnum, icode, resname and
        :data:`RESIDUE_COLUMNS` (NaN or '' where a tool gave nothing for the residue).
    """
    from ..limits import check_resolution

    t0 = time.perf_counter()
    resolution = check_resolution(resolution)
    # absolute paths: every tool runs with `workdir` as its current folder
    model, map_path, workdir = Path(model).absolute(), Path(map_path).absolute(), Path(workdir).absolute()
    chosen = _select_tools(tools)
    ligands = [Path(p).absolute() for p in (ligands or ())]
    for lig in ligands:
        if not lig.is_file():
            raise LocScaleInputError("ligand restraint dictionary not found", "check the path", lig)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocScaleInputError(f"cannot create the folder ({exc.strerror})", "choose a folder you can write to",
                                 workdir) from None
    structure, model_in, map_in = _prepare_inputs(model, map_path, workdir)
    model_in, map_in = str(Path(model_in).resolve()), str(Path(map_in).resolve())
    library, library_source = locate_monlib(monlib, strict=False)
    logger = _Log(Path(log).absolute() if log else workdir / "model_validation.log")

    env = tool_environment()
    env.setdefault("MPLBACKEND", "Agg")
    if library is not None:
        env["CLIBD_MON"] = str(library)

    installed = installed_tools()
    status: dict[str, str] = {}
    seconds: dict[str, float] = {}
    outputs: dict[str, dict] = {}
    tables: dict[str, pd.DataFrame] = {}

    def attempt(name: str, cmd: list[str], read) -> None:
        if name not in chosen:
            status[name] = not_available("not requested")
            return
        if installed[name] is not None:
            status[name] = not_available(installed[name])
            return
        if cmd is None:
            status[name] = not_available(f"{name} is not installed")
            return
        failure, seconds[name] = _run(name, cmd, workdir, logger, env, timeout)
        if failure is None:
            try:
                read()
            except (OSError, ValueError, KeyError) as exc:
                failure = f"{name} wrote no readable output ({exc}; see {logger.path})"
        status[name] = not_available(failure) if failure else _version(name)

    # coot
    def read_coot():
        outputs["coot"] = read_json(workdir / "coot.json")
        tables["coot"] = _read_tsv(workdir / "coot.tsv")
        for warning in outputs["coot"].get("warnings", []):
            logger.write(f"WARNING (coot): {warning}")

    cmd = [sys.executable, "-m", "locscale.validation.coot_tool", "--model", model_in, "--map", map_in,
           "--json", str(workdir / "coot.json"), "--tsv", str(workdir / "coot.tsv")]
    for lig in ligands:
        cmd += ["--ligand", str(lig.resolve())]
    attempt("coot", cmd, read_coot)

    # cctbx
    def read_cctbx():
        outputs["cctbx"] = read_json(workdir / "cctbx.json")
        tables["cctbx"] = _read_tsv(workdir / "cctbx.tsv")

    attempt("cctbx", [sys.executable, "-m", "locscale.validation.cctbx_tool", "--model", model_in, "--map", map_in,
                      "--json", str(workdir / "cctbx.json"), "--tsv", str(workdir / "cctbx.tsv")], read_cctbx)

    # servalcat
    prefix = "servalcat_geom"

    def read_servalcat():
        geom = read_json(workdir / f"{prefix}_summary.json")
        out = {key: float(geom["r.m.s.Z"][row]) for key, row in _SERVALCAT_ROWS.items()}
        out["n_restraints"] = {key: int(geom["N restraints"][row]) for key, row in _SERVALCAT_ROWS.items()}
        outliers_path = workdir / f"{prefix}_outliers.json"
        if outliers_path.is_file():
            outliers = read_json(outliers_path)
            out["outliers_z_ge_5"] = {k: len(v) for k, v in outliers.items()}
        outputs["servalcat"] = out

    servalcat = _servalcat_command()
    if "servalcat" in chosen and installed["servalcat"] is None and library is None:
        status["servalcat"] = not_available("no CCP4 monomer library (none given, $CLIBD_MON unset, "
                                            "coot-headless-api not installed)")
    else:
        cmd = None
        if servalcat is not None:
            cmd = [*servalcat, "util", "geom", model_in, "-o", prefix]
            cmd += ["--monlib", str(library)] if library is not None else []
            cmd += ["--ligand", *(str(lig.resolve()) for lig in ligands)] if ligands else []
        for name in (prefix + "_summary.json", prefix + "_outliers.json"):
            (workdir / name).unlink(missing_ok=True)  # never read a previous run's output
        attempt("servalcat", cmd, read_servalcat)

    summary = {key: float("nan") for key in SUMMARY_KEYS}
    for key in SUMMARY_KEYS:
        tool = SOURCE[key]
        if tool in outputs and key in outputs[tool]:
            summary[key] = float(outputs[tool][key])
    summary["model_validation_tools"] = {name: status[name] for name in TOOLS}
    summary["model_validation_seconds"] = time.perf_counter() - t0

    per_residue = _residues(structure)
    keys = ["chain", "resnum", "icode"]
    for tool, columns in (("coot", ["rama", "phi", "psi", "rama_probability", "rotamer_outlier",
                                    "rotamer_probability", "q_score", "cc_coot", "overlaps"]),
                          ("cctbx", ["rama_cctbx"])):
        if tool in tables:
            table = tables[tool].drop_duplicates(keys)[keys + columns]
            per_residue = per_residue.merge(table, on=keys, how="left")
        else:
            for c in columns:
                per_residue[c] = "" if c in _TEXT_COLUMNS else np.nan
    for c in RESIDUE_COLUMNS:
        per_residue[c] = per_residue[c].fillna("").astype(str) if c in _TEXT_COLUMNS else per_residue[c].astype(float)

    details = {"model": str(model), "map": str(map_path), "validated_model": model_in, "validated_map": map_in,
               "resolution": resolution, "monlib": None if library is None else str(library),
               "monlib_source": library_source, "tools": summary["model_validation_tools"],
               "seconds": seconds, "outputs": outputs}
    _write_json(workdir / "model_validation_details.json", details)
    logger.write("==== model validation: " + json.dumps({k: summary[k] for k in SUMMARY_KEYS}))
    return summary, per_residue


def _write_json(path: Path, data: dict) -> None:
    from ..records import write_json

    write_json(path, data, warnings=[])


def summary_line(summary: dict) -> str:
    """One line for logs: the available values with their labels."""
    parts = [f"{LABELS[k]} {summary[k]:.3g}" for k in SUMMARY_KEYS if math.isfinite(summary.get(k, math.nan))]
    return "; ".join(parts) or "no model-validation values (no tool available)"


# ---------------------------------------------------------------------- in the cycle table
#: the key columns of every per-residue table (locscale.metrics.per_residue_cc writes the same)
RESIDUE_KEYS = ["chain", "resnum", "icode", "resname"]


def read_per_residue(path) -> pd.DataFrame:
    """A per-residue table (``per_residue.tsv``, ``model_validation.tsv``) with its keys typed: chain and icode
    as text ('' for no insertion code), resnum as int."""
    return _read_tsv(Path(path))


def merge_per_residue(per_residue: pd.DataFrame, validation) -> pd.DataFrame:
    """`per_residue` (RSCC per residue) with the model-validation columns of `validation` (a table or the path of
    ``model_validation.tsv``) added, matched on chain, residue number, insertion code and name."""
    table = read_per_residue(validation) if not isinstance(validation, pd.DataFrame) else validation
    left = per_residue.copy()
    left["chain"], left["icode"] = left["chain"].astype(str), left["icode"].fillna("").astype(str)
    left["resnum"] = left["resnum"].astype(int)
    extra = [c for c in table.columns if c not in RESIDUE_KEYS and c not in left.columns]
    return left.merge(table[RESIDUE_KEYS + extra], on=RESIDUE_KEYS, how="left", validate="one_to_one")


def cycle_record(summary: dict) -> dict:
    """The summary as columns of the per-cycle table: the values, the seconds and ``model_validation_tools`` as
    one text cell (``coot 1.3.3rc1; cctbx not available: ...``)."""
    tools = summary.get("model_validation_tools") or {}
    return {**{k: float(summary.get(k, math.nan)) for k in SUMMARY_KEYS},
            "model_validation_tools": "; ".join(f"{name} {status}" for name, status in tools.items()) or "none",
            "model_validation_seconds": float(summary.get("model_validation_seconds", math.nan))}

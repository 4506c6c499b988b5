"""Model validation of one cycle: geometry, Ramachandran, rotamers, atom overlaps, Q-score and EMRinger.

The paper judged sharpened maps by the models refined into them; this step measures those models with three
external tools, **each in its own process** (importing coot and cctbx into one process crashes,
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cycle import registry
from ..errors import LocScaleInputError
from ..records import read_json, write_json
from ..tools.process import tool_environment
from ..tools.restraints import locate_monlib

#: the eight summary values, in report order (the registry's model-validation metrics, locscale.cycle.registry)
SUMMARY_KEYS = registry.validation_keys()
#: human labels (with units) of the summary values
LABELS = {k: registry.metric(k).label for k in SUMMARY_KEYS}
#: which tool gives which summary value
SOURCE = {k: registry.metric(k).tool for k in SUMMARY_KEYS}
#: prefix of a ``model_validation_tools`` entry for a tool that gave no values
NOT_AVAILABLE = "not available"
_TEXT_COLUMNS = ("rama", "rama_cctbx")
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
        return importlib.metadata.version(REGISTRY[tool].distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _servalcat_command() -> list[str] | None:
    if _find_spec("servalcat") is not None:
        return [sys.executable, "-m", "servalcat"]
    exe = shutil.which("servalcat")
    return [exe] if exe else None


# ---------------------------------------------------------------------- the tools, one registry entry each
@dataclass(frozen=True)
class ToolInputs:
    """What every tool of one validation reads: the (zero-origin) model and map, the working folder, the monomer
    library and the ligand dictionaries."""

    model: str
    map: str
    workdir: Path
    library: Path | None
    ligands: tuple[Path, ...]
    coot_density_correlation_only: bool = False  # coot's per-residue density correlation alone (reuse)

    def out(self, name: str) -> Path:
        return self.workdir / name


@dataclass(frozen=True)
class Tool:
    """One model-validation tool: why it cannot run here (None if it can; found without importing it), its command
    line, the files it writes (removed first, so a previous run's output is never read) and how its output is
    read: (values, per-residue table or None)."""

    name: str
    distribution: str
    missing: Callable[[ToolInputs], str | None]
    command: Callable[[ToolInputs], list[str]]
    outputs: tuple[str, ...]
    read: Callable[[ToolInputs], tuple[dict, pd.DataFrame | None]]
    residue_columns: tuple[str, ...] = ()


def _tool_files(name: str) -> tuple[str, str]:
    return f"{name}.json", f"{name}.tsv"


def _program_command(module: str, name: str):
    def command(inp: ToolInputs) -> list[str]:
        js, tsv = _tool_files(name)
        cmd = [sys.executable, "-m", module, "--model", inp.model, "--map", inp.map, "--json", str(inp.out(js)),
               "--tsv", str(inp.out(tsv))]
        if name != "coot":
            return cmd
        cmd += [a for lig in inp.ligands for a in ("--ligand", str(lig.resolve()))]
        return cmd + (["--density-correlation-only"] if inp.coot_density_correlation_only else [])

    return command


def _read_program(name: str):
    def read(inp: ToolInputs) -> tuple[dict, pd.DataFrame]:
        js, tsv = _tool_files(name)
        return read_json(inp.out(js)), _read_tsv(inp.out(tsv))

    return read


_GEOM = "servalcat_geom"


def _servalcat_missing(inp: ToolInputs) -> str | None:
    if _servalcat_command() is None:
        return "servalcat is not installed"
    if inp.library is None:
        return "no CCP4 monomer library (none given, $CLIBD_MON unset, coot-headless-api not installed)"
    return None


def _servalcat_geom_command(inp: ToolInputs) -> list[str]:
    cmd = [*_servalcat_command(), "util", "geom", inp.model, "-o", _GEOM, "--monlib", str(inp.library)]
    return cmd + (["--ligand", *(str(lig.resolve()) for lig in inp.ligands)] if inp.ligands else [])


def _read_servalcat_geom(inp: ToolInputs) -> tuple[dict, None]:
    geom = read_json(inp.out(f"{_GEOM}_summary.json"))
    out = {key: float(geom["r.m.s.Z"][row]) for key, row in _SERVALCAT_ROWS.items()}
    out["n_restraints"] = {key: int(geom["N restraints"][row]) for key, row in _SERVALCAT_ROWS.items()}
    if inp.out(f"{_GEOM}_outliers.json").is_file():
        out["outliers_z_ge_5"] = {k: len(v) for k, v in read_json(inp.out(f"{_GEOM}_outliers.json")).items()}
    return out, None


#: the tools, in the order they run
REGISTRY: dict[str, Tool] = {t.name: t for t in (
    Tool("coot", "coot-headless-api",
         lambda inp: None if _find_spec("coot_headless_api") else "coot-headless-api is not installed",
         _program_command("locscale.validation.coot_tool", "coot"), _tool_files("coot"), _read_program("coot"),
         ("rama", "phi", "psi", "rama_probability", "rotamer_outlier", "rotamer_probability", "q_score", "cc_coot",
          "overlaps")),
    Tool("cctbx", "cctbx-base",
         lambda inp: (None if _find_spec("mmtbx") and _find_spec("iotbx")
                      else "cctbx (cctbx-base: mmtbx, iotbx) is not installed"),
         _program_command("locscale.validation.cctbx_tool", "cctbx"), _tool_files("cctbx"), _read_program("cctbx"),
         ("rama_cctbx",)),
    Tool("servalcat", "servalcat", _servalcat_missing, _servalcat_geom_command,
         (f"{_GEOM}_summary.json", f"{_GEOM}_outliers.json"), _read_servalcat_geom),
)}
TOOLS = tuple(REGISTRY)
#: per-residue columns after chain, resnum, icode, resname
RESIDUE_COLUMNS = [c for tool in REGISTRY.values() for c in tool.residue_columns]


def missing_tools() -> dict[str, str | None]:
    """{tool: why it cannot run here, or None when it can} — found without importing any of them (servalcat's
    need for a monomer library is judged when a validation runs)."""
    inp = ToolInputs("", "", Path("."), Path("."), ())
    return {name: tool.missing(inp) for name, tool in REGISTRY.items()}


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


# ---------------------------------------------------------------------- running them
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


@dataclass
class _Results:
    """What the tools gave: {tool: version or 'not available: reason'}, seconds, values and per-residue tables."""

    status: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _attempt(tool: Tool, inp: ToolInputs, chosen: set[str], results: _Results, log: _Log, env: dict,
             timeout: float) -> None:
    """Run `tool` if it is chosen and can run, and read its output; its status says what happened."""
    why = "not requested" if tool.name not in chosen else tool.missing(inp)
    if why is not None:
        results.status[tool.name] = not_available(why)
        return
    for name in tool.outputs:
        inp.out(name).unlink(missing_ok=True)
    failure, results.seconds[tool.name] = _run(tool.name, tool.command(inp), inp.workdir, log, env, timeout)
    if failure is None:
        try:
            results.outputs[tool.name], table = tool.read(inp)
        except (OSError, ValueError, KeyError) as exc:
            failure = f"{tool.name} wrote no readable output ({exc}; see {log.path})"
        else:
            if table is not None:
                results.tables[tool.name] = table
            for warning in results.outputs[tool.name].get("warnings", []):
                log.write(f"WARNING ({tool.name}): {warning}")
    results.status[tool.name] = not_available(failure) if failure else _version(tool.name)


# ---------------------------------------------------------------------- inputs and results
def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["nan"],
                       dtype={"chain": str, "icode": str, "resname": str})


def _residues(structure) -> pd.DataFrame:
    rows = [{"chain": ch.name, "resnum": int(res.seqid.num), "icode": res.seqid.icode.strip(), "resname": res.name}
            for ch in structure[0] for res in ch]
    return pd.DataFrame(rows, columns=["chain", "resnum", "icode", "resname"])


def _zero_origin_inputs(model: Path, map_path: Path, workdir: Path):
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


def _prepare(model, map_path, workdir, monlib, ligands, coot_density_correlation_only=False):
    """Checked inputs with absolute paths (every tool runs in `workdir`): (structure, ToolInputs, monlib source)."""
    model, map_path, workdir = Path(model).absolute(), Path(map_path).absolute(), Path(workdir).absolute()
    ligands = tuple(Path(p).absolute() for p in (ligands or ()))
    for lig in ligands:
        if not lig.is_file():
            raise LocScaleInputError("ligand restraint dictionary not found", "check the path", lig)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocScaleInputError(f"cannot create the folder ({exc.strerror})", "choose a folder you can write to",
                                 workdir) from None
    structure, model_in, map_in = _zero_origin_inputs(model, map_path, workdir)
    library, source = locate_monlib(monlib, strict=False)
    inp = ToolInputs(str(Path(model_in).resolve()), str(Path(map_in).resolve()), workdir, library, ligands,
                     coot_density_correlation_only)
    return structure, inp, source


def _tool_env(library: Path | None) -> dict[str, str]:
    env = tool_environment()
    env.setdefault("MPLBACKEND", "Agg")
    if library is not None:
        env["CLIBD_MON"] = str(library)
    return env


def _summary(results: _Results, seconds: float) -> dict:
    summary = {key: float("nan") for key in SUMMARY_KEYS}
    for key in SUMMARY_KEYS:
        values = results.outputs.get(SOURCE[key], {})
        if key in values:
            summary[key] = float(values[key])
    summary["model_validation_tools"] = {name: results.status[name] for name in TOOLS}
    summary["model_validation_seconds"] = seconds
    return summary


def _per_residue(structure, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    per_residue = _residues(structure)
    keys = ["chain", "resnum", "icode"]
    for name, tool in REGISTRY.items():
        columns = list(tool.residue_columns)
        if not columns:
            continue
        if name in tables:
            per_residue = per_residue.merge(tables[name].drop_duplicates(keys)[keys + columns], on=keys, how="left")
        else:
            for c in columns:
                per_residue[c] = "" if c in _TEXT_COLUMNS else np.nan
    for c in RESIDUE_COLUMNS:
        per_residue[c] = per_residue[c].fillna("").astype(str) if c in _TEXT_COLUMNS else per_residue[c].astype(float)
    return per_residue


def validate_model(model, map_path, resolution, workdir, *, monlib=None, ligands=(), tools=None, log=None,
                   timeout: float = DEFAULT_TIMEOUT, coot_density_correlation_only: bool = False
                   ) -> tuple[dict, pd.DataFrame]:
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
    coot_density_correlation_only : coot computes only the per-residue density correlation (``cc_coot``; the
        other coot values are NaN): what :mod:`locscale.validation.reuse` recomputes for unchanged coordinates.

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
    chosen = _select_tools(tools)
    structure, inp, library_source = _prepare(model, map_path, workdir, monlib, ligands,
                                              coot_density_correlation_only)
    logger = _Log(Path(log).absolute() if log else inp.workdir / "model_validation.log")
    env, results = _tool_env(inp.library), _Results()
    for tool in REGISTRY.values():
        _attempt(tool, inp, chosen, results, logger, env, timeout)
    summary = _summary(results, time.perf_counter() - t0)
    write_json(inp.out("model_validation_details.json"), {
        "model": str(Path(model).absolute()), "map": str(Path(map_path).absolute()), "validated_model": inp.model,
        "validated_map": inp.map, "resolution": resolution, "monlib": None if inp.library is None else str(inp.library),
        "monlib_source": library_source, "tools": summary["model_validation_tools"], "seconds": results.seconds,
        "outputs": results.outputs}, warnings=[])
    logger.write("==== model validation: " + json.dumps({k: summary[k] for k in SUMMARY_KEYS}))
    return summary, _per_residue(structure, results.tables)


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
    """The summary as columns of the per-cycle table: the values, the seconds, ``model_validation_tools`` as
    one text cell (``coot 1.3.3rc1; cctbx not available: ...``) and the cycle whose values were reused
    (``model_validation_reused_from``, None when computed; :mod:`locscale.validation.reuse`)."""
    tools = summary.get("model_validation_tools") or {}
    reused = summary.get("reused_from_cycle")
    return {**{k: float(summary.get(k, math.nan)) for k in SUMMARY_KEYS},
            "model_validation_tools": "; ".join(f"{name} {status}" for name, status in tools.items()) or "none",
            "model_validation_seconds": float(summary.get("model_validation_seconds", math.nan)),
            "model_validation_reused_from": None if reused is None else int(reused)}

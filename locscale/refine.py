"""Refinement-engine adapters for the workflow's refine step (B-factors, optionally coordinates).

Each engine builds its command line, checks that it can run *before* the workflow starts (so a missing program
fails before any job runs, with a message saying how to provide it), runs in its own working folder (Servalcat
appends to ``servalcat.log`` in the current folder) and returns a :class:`RefinementResult`.

Servalcat (default; 0.4.142, DESIGN.md §5)
    ``servalcat refine_spa_norefmac --model M --map F -d D --fix_xyz --adp iso --hydrogen no -o PREFIX``
    (``--halfmaps H1 H2`` instead of ``--map`` when refining against half maps). Restrained by default, with the
    monomer library of ``refine.monlib``, else ``$CLIBD_MON``, else the one installed with coot-headless-api (the
    ``workflow`` extra); ligands outside it need their dictionaries (``refine.ligands`` -> ``--ligand``).
    ``refine.restrained: false`` runs ``--unrestrained`` (coordinates fixed; the distance-based ADP restraints apply
    either way). Coordinate refinement (no ``--fix_xyz``) needs the library and uses jelly-body restraints
    (``--jellybody``) unless ``refine.servalcat.jellybody: false``.

PHENIX
    ``phenix.real_space_refine MODEL MAP resolution=D run=adp macro_cycles=N nproc=T output.prefix=PREFIX``
    (``run=minimization_global+adp`` with coordinate refinement). PHENIX is licensed and not installable with
    conda/pip: it is found on PATH, through an environment script (``phenix_env.sh``) sourced before each call, or
    through environment modules loaded by Snakemake (``envmodules`` + ``--sdm env-modules``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LocScaleInputError

ENGINES = ("servalcat", "phenix")
SERVALCAT_VERSION = "0.4.142"


class EngineUnavailableError(LocScaleInputError):
    """The selected refinement program cannot be run here; the message says how to provide it."""


@dataclass
class RefinementResult:
    """What one refinement run produced."""

    engine: str
    model: Path  # the refined model written by the engine (in `workdir`)
    command: list[str]
    workdir: Path
    seconds: float
    restrained: bool
    refine_xyz: bool
    stats: dict = field(default_factory=dict)  # engine-reported numbers, e.g. FSCaverage against its target

    def record(self) -> dict:
        """Flat JSON/TSV-ready summary."""
        return {"engine": self.engine, "refined_model": str(self.model), "command": shlex.join(self.command),
                "workdir": str(self.workdir), "refine_seconds": round(self.seconds, 3),
                "restrained": self.restrained, "refine_xyz": self.refine_xyz,
                **{f"engine_{k}": v for k, v in self.stats.items()}}


#: what one engine run refines: None = what the engine was made for (B, plus coordinates with refine_xyz);
#: "xyz" = coordinates only; "adp" = B-factors only
STEPS = (None, "xyz", "adp")


def _step_parts(step: str | None, refine_xyz: bool) -> tuple[bool, bool]:
    """(refine coordinates, refine B-factors) of one run."""
    if step not in STEPS:
        raise ValueError(f"unknown refinement step {step!r}; one of {STEPS}")
    return {None: (bool(refine_xyz), True), "xyz": (True, False), "adp": (False, True)}[step]


# ---------------------------------------------------------------------- monomer library
def is_monlib(path: str | os.PathLike) -> bool:
    """True when `path` looks like a CCP4 monomer library (has ``list/mon_lib_list.cif``)."""
    return (Path(path) / "list" / "mon_lib_list.cif").is_file()


#: where coot-headless-api (the ``workflow`` extra) ships its CCP4 monomer library
COOT_MONOMERS = ("share", "coot", "lib", "data", "monomers")


def installed_monlib() -> Path | None:
    """The CCP4 monomer library installed with coot-headless-api, or None. Found without importing the package
    (coot and cctbx in one process crash, DESIGN.md §9; and it is GPLv3, run only as its own process)."""
    import importlib.util

    spec = importlib.util.find_spec("coot_headless_api")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*COOT_MONOMERS)
        if is_monlib(path):
            return path.resolve()
    return None


NO_MONLIB_FIX = ("install the workflow extra (pip install -e '.[workflow]': coot-headless-api==1.3.3rc1 ships a "
                 "library of 113 dictionaries), set refine.monlib to a CCP4 monomer library folder or export "
                 "CLIBD_MON; or set refine.restrained: false to refine B-factors unrestrained")


def resolve_monlib(configured: str | os.PathLike | None = None, environ: dict | None = None, *,
                   restrained: bool = True) -> Path | None:
    """The monomer library to restrain refinement with: `configured` if given, else ``$CLIBD_MON`` if set, else
    the library installed with coot-headless-api; None when `restrained` is False.

    A configured path that is not a monomer library is an error; an unusable ``$CLIBD_MON`` is too, and so is
    finding no library at all while restrained refinement is asked for (it would silently change restrained into
    unrestrained refinement otherwise).
    """
    if not restrained:
        return None
    environ = os.environ if environ is None else environ
    if configured:
        path = Path(configured)
        if not is_monlib(path):
            raise LocScaleInputError("not a CCP4 monomer library (no list/mon_lib_list.cif inside)",
                                     "point refine.monlib at the monomer library folder (the one CLIBD_MON names in "
                                     "a CCP4 installation, e.g. $CCP4/lib/data/monomers), or set it to null to use "
                                     "$CLIBD_MON or the library installed with coot-headless-api", path)
        return path.resolve()
    env = environ.get("CLIBD_MON")
    if env:
        if not is_monlib(env):
            raise LocScaleInputError("$CLIBD_MON is set but is not a CCP4 monomer library (no "
                                     "list/mon_lib_list.cif inside)",
                                     "fix or unset CLIBD_MON (unset: the library installed with coot-headless-api "
                                     "is used)", env)
        return Path(env).resolve()
    installed = installed_monlib()
    if installed is None:
        raise LocScaleInputError("restrained refinement (refine.restrained: true, the default) needs a CCP4 monomer "
                                 "library, and none was found (refine.monlib is null, $CLIBD_MON is unset and "
                                 "coot-headless-api is not installed)", NO_MONLIB_FIX)
    return installed


def ligand_names(path: str | os.PathLike) -> set[str]:
    """Residue names a restraint dictionary (CIF) defines (its ``data_comp_XXX`` blocks)."""
    import gemmi

    try:
        doc = gemmi.cif.read(str(path))
    except (OSError, ValueError, RuntimeError) as err:
        raise LocScaleInputError(f"cannot read the restraint dictionary ({err})",
                                 "give a CIF restraint dictionary (e.g. from acedrg, grade or the CCP4 monomer "
                                 "library) in refine.ligands", path) from None
    names = {b.name[5:] for b in doc if b.name.startswith("comp_") and b.name != "comp_list"}
    if not names:
        raise LocScaleInputError("no restraint dictionary inside (no data_comp_XXX block)",
                                 "give a CIF restraint dictionary (e.g. from acedrg or grade) in refine.ligands", path)
    return names


def missing_monomers(model: str | os.PathLike, monlib: str | os.PathLike,
                     ligands: list | tuple = ()) -> list[str]:
    """Residue names of `model` that neither the monomer library nor the `ligands` dictionaries define (sorted)."""
    import gemmi

    from .models import read_model

    structure = read_model(model)
    names = sorted({r.name for m in structure for ch in m for r in ch})
    known = set(gemmi.read_monomer_lib(str(monlib), names, ignore_missing=True).monomers.keys())
    for path in ligands:
        known |= ligand_names(path)
    return [n for n in names if n not in known]


# ---------------------------------------------------------------------- running a program
def run_logged(cmd: list[str] | str, workdir: str | os.PathLike, log: str | os.PathLike, *,
               threads: int = 1, shell: bool = False, timeout: float | None = None) -> float:
    """Run `cmd` in `workdir` with stdout+stderr appended to `log`; return wall seconds.

    OpenMP/BLAS thread counts are set to `threads`. A non-zero exit raises RuntimeError with the log's last lines.
    """
    workdir = Path(workdir)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(max(1, int(threads)))
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"# in {workdir}: {cmd if isinstance(cmd, str) else shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(["bash", "-c", cmd] if shell else cmd, cwd=workdir, stdout=fh,
                              stderr=subprocess.STDOUT, env=env, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "".join(Path(log).read_text(errors="replace").splitlines(keepends=True)[-25:])
        name = cmd.split()[0] if isinstance(cmd, str) else Path(cmd[0]).name
        raise RuntimeError(f"{name} failed (exit status {proc.returncode}) in {workdir}; last lines of {log}:\n"
                           f"{tail}")
    return seconds


def _absolute(path) -> str:
    return str(Path(path).resolve())


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------------- Servalcat
class ServalcatEngine:
    """``servalcat refine_spa_norefmac``: B-factor (and optionally coordinate) refinement against a map."""

    name = "servalcat"

    def __init__(self, executable: str = "servalcat", monlib: str | os.PathLike | None = None,
                 refine_xyz: bool = False, ncycle: int | None = None, extra_args: list[str] | tuple = (),
                 ligands: list | tuple = (), jellybody: bool = True, weight: float | None = None):
        self.executable = str(executable)
        self.monlib = None if monlib is None else Path(monlib)
        self.refine_xyz = bool(refine_xyz)
        self.ncycle = None if ncycle is None else int(ncycle)
        self.extra_args = [str(a) for a in extra_args]
        self.ligands = [Path(p) for p in ligands]
        self.jellybody = bool(jellybody)
        self.weight = None if weight is None else float(weight)
        if self.refine_xyz and self.monlib is None:
            raise LocScaleInputError(
                "coordinate refinement (refine.refine_xyz: true) needs a monomer library for its geometry "
                "restraints, and refine.restrained is false",
                "set refine.restrained: true (the default), or refine.refine_xyz: false for B-factor-only refinement")
        if self.ligands and self.monlib is None:
            raise LocScaleInputError("refine.ligands gives restraint dictionaries, but refine.restrained is false",
                                     "set refine.restrained: true, or remove refine.ligands")
        for path in self.ligands:
            if not path.is_file():
                raise LocScaleInputError("restraint dictionary not found (refine.ligands)",
                                         "fix the path in refine.ligands", path)

    @property
    def restrained(self) -> bool:
        return self.monlib is not None

    def command(self, model: str | os.PathLike, resolution: float, prefix: str = "refined", *,
                target_map: str | os.PathLike | None = None, half_maps=None, step: str | None = None) -> list[str]:
        """The command line (run it in its own folder). `step` (see :data:`STEPS`) refines only coordinates
        (``xyz``: ``--adp fix``) or only B-factors (``adp``: ``--fix_xyz``); default: what the engine was made for."""
        if (target_map is None) == (half_maps is None):
            raise ValueError("give exactly one of target_map or half_maps")
        xyz, adp = _step_parts(step, self.refine_xyz)
        cmd = [self.executable, "refine_spa_norefmac", "--model", str(model)]
        cmd += ["--map", str(target_map)] if target_map is not None else ["--halfmaps", *map(str, half_maps)]
        cmd += ["-d", f"{float(resolution):g}", "--adp", "iso" if adp else "fix", "--hydrogen", "no", "-o", prefix]
        if not xyz:
            cmd.append("--fix_xyz")
        cmd += ["--monlib", str(self.monlib)] if self.restrained else ["--unrestrained"]
        if self.ligands:
            cmd += ["--ligand", *(str(p.resolve()) for p in self.ligands)]
        if xyz and self.jellybody:
            cmd.append("--jellybody")
        if xyz and self.weight is not None:
            cmd += ["--weight", f"{self.weight:g}"]
        if self.ncycle is not None:
            cmd += ["--ncycle", str(self.ncycle)]
        return cmd + self.extra_args

    def check_available(self) -> str:
        """Path of the servalcat executable; raises :class:`EngineUnavailableError` if it is not found."""
        path = shutil.which(self.executable)
        if path is None:
            raise EngineUnavailableError(
                f"the refinement program '{self.executable}' (servalcat) is not on PATH",
                f"install it (pip install servalcat=={SERVALCAT_VERSION}), or run snakemake with --sdm conda to use "
                "envs/servalcat.yaml")
        return path

    def check_monomers(self, model: str | os.PathLike) -> None:
        """Restrained refinement: every residue of `model` needs a dictionary (the library or refine.ligands);
        raises :class:`LocScaleInputError` naming the ones that have none, unless servalcat is told to make ad-hoc
        restraints (``--newligand_continue`` in refine.servalcat.extra_args)."""
        if not self.restrained or "--newligand_continue" in self.extra_args:
            return
        missing = missing_monomers(model, self.monlib, self.ligands)
        if missing:
            raise LocScaleInputError(
                f"residue type(s) {', '.join(missing)} have no restraint dictionary in the monomer library "
                f"{self.monlib}" + (" or in refine.ligands" if self.ligands else ""),
                "give their dictionaries (CIF, e.g. from acedrg/grade or the PDB's CCD via acedrg) in refine.ligands "
                "(servalcat --ligand), point refine.monlib at a fuller library (e.g. CCP4's $CLIBD_MON), add "
                "--newligand_continue to refine.servalcat.extra_args (ad-hoc restraints; not recommended), or "
                "remove those residues from the model", model)

    def run(self, model: str | os.PathLike, resolution: float, workdir: str | os.PathLike, *,
            target_map: str | os.PathLike | None = None, half_maps=None, threads: int = 1,
            log: str | os.PathLike | None = None, prefix: str = "refined", step: str | None = None
            ) -> RefinementResult:
        """Refine `model` against `target_map` (or `half_maps`) in a fresh `workdir` (emptied first); `step` as in
        :meth:`command`."""
        self.check_available()
        self.check_monomers(model)
        workdir = _fresh_dir(Path(workdir))
        cmd = self.command(_absolute(model), resolution, prefix,
                           target_map=None if target_map is None else _absolute(target_map),
                           half_maps=None if half_maps is None else [_absolute(h) for h in half_maps], step=step)
        log = Path(log).resolve() if log is not None else workdir / "engine.log"
        seconds = run_logged(cmd, workdir, log, threads=threads)
        out = workdir / f"{prefix}.mmcif"
        if not out.exists():
            out = workdir / f"{prefix}.pdb"
        if not out.exists():
            raise RuntimeError(f"servalcat finished but wrote no {prefix}.mmcif/.pdb in {workdir} (see {log})")
        return RefinementResult(self.name, out, cmd, workdir, seconds, self.restrained, _step_parts(step,
                                self.refine_xyz)[0], read_servalcat_stats(workdir / f"{prefix}_stats.json"))


def read_servalcat_stats(path: str | os.PathLike) -> dict:
    """FSCaverage against the refinement target before and after refinement, and the number of cycles, from
    servalcat's ``PREFIX_stats.json`` (one entry per cycle; missing file -> {})."""
    path = Path(path)
    if not path.exists():
        return {}
    cycles = json.loads(path.read_text())
    if not isinstance(cycles, list) or not cycles:
        return {}

    def fsc_avg(entry):
        try:
            return float(entry["data"]["summary"]["FSCaverage"])
        except (KeyError, TypeError, ValueError):
            return float("nan")

    return {"fsc_average_target_start": fsc_avg(cycles[0]), "fsc_average_target": fsc_avg(cycles[-1]),
            "cycles": len(cycles) - 1}


# ---------------------------------------------------------------------- PHENIX
PHENIX_HOWTO = (
    "install PHENIX (https://phenix-online.org; free academic licence) and make phenix.real_space_refine reachable "
    "in one of three ways: (1) put it on PATH before running snakemake (source phenix_env.sh); (2) set "
    "refine.phenix.env_script in the config to its phenix_env.sh, which is sourced before every refinement; or "
    "(3) on a cluster with environment modules, set refine.phenix.envmodules (e.g. [phenix/1.21.2]) and run "
    "snakemake with --sdm env-modules. Or use the default engine: refine.engine: servalcat")


class PhenixEngine:
    """``phenix.real_space_refine`` ADP (and optionally coordinate) refinement against a map."""

    name = "phenix"

    def __init__(self, executable: str = "phenix.real_space_refine", env_script: str | os.PathLike | None = None,
                 envmodules: list[str] | tuple = (), macro_cycles: int = 5, refine_xyz: bool = False,
                 extra_args: list[str] | tuple = ()):
        self.executable = str(executable)
        self.env_script = None if not env_script else Path(env_script)
        self.envmodules = [str(m) for m in envmodules]
        self.macro_cycles = int(macro_cycles)
        self.refine_xyz = bool(refine_xyz)
        self.extra_args = [str(a) for a in extra_args]

    restrained = True  # PHENIX always restrains with its own monomer library

    def command(self, model: str | os.PathLike, target_map: str | os.PathLike, resolution: float,
                prefix: str = "refined", nproc: int = 1, step: str | None = None) -> list[str]:
        xyz, adp = _step_parts(step, self.refine_xyz)
        run = "+".join(p for p, on in (("minimization_global", xyz), ("adp", adp)) if on)
        return [self.executable, str(model), str(target_map), f"resolution={float(resolution):g}", f"run={run}",
                f"macro_cycles={self.macro_cycles}", f"nproc={max(1, int(nproc))}", f"output.prefix={prefix}",
                "output.overwrite=True", *self.extra_args]

    def shell_line(self, cmd: list[str]) -> str:
        """The command as a bash line, sourcing the environment script first when one is configured."""
        line = shlex.join(cmd)
        if self.env_script is not None:
            line = f"source {shlex.quote(str(self.env_script))} >/dev/null 2>&1 && {line}"
        return line

    def check_available(self, envmodules_active: bool = False) -> str:
        """Where phenix.real_space_refine is found; raises :class:`EngineUnavailableError` (with how to provide it).

        `envmodules_active`: Snakemake runs with ``--sdm env-modules``, so the configured modules are loaded for
        the job; the check then loads them itself (``module load``) to find the program.
        """
        if self.env_script is not None:
            if not self.env_script.is_file():
                raise EngineUnavailableError("refine.phenix.env_script does not exist", PHENIX_HOWTO,
                                             self.env_script)
            probe = (f"source {shlex.quote(str(self.env_script))} >/dev/null 2>&1; "
                     f"command -v {shlex.quote(self.executable)}")
            found = _bash(probe)
            if found:
                return found
            raise EngineUnavailableError(
                f"PHENIX is the selected refinement engine (refine.engine: phenix), but after sourcing "
                f"{self.env_script} '{self.executable}' is still not found", PHENIX_HOWTO, self.env_script)
        if self.envmodules:
            if not envmodules_active:
                raise EngineUnavailableError(
                    f"PHENIX is the selected refinement engine and refine.phenix.envmodules lists "
                    f"{self.envmodules}, but snakemake was not started with --sdm env-modules, so the modules "
                    "would not be loaded", "run snakemake with --sdm env-modules (" + PHENIX_HOWTO + ")")
            probe = (f"module load {' '.join(shlex.quote(m) for m in self.envmodules)} >/dev/null 2>&1; "
                     f"command -v {shlex.quote(self.executable)}")
            found = _bash(probe, login=True)
            if found:
                return found
            raise EngineUnavailableError(
                f"PHENIX is the selected refinement engine, but '{self.executable}' is not found after "
                f"'module load {' '.join(self.envmodules)}'", PHENIX_HOWTO)
        path = shutil.which(self.executable)
        if path is None:
            raise EngineUnavailableError(
                f"PHENIX is the selected refinement engine (refine.engine: phenix), but '{self.executable}' is not "
                "on PATH and neither refine.phenix.env_script nor refine.phenix.envmodules is configured",
                PHENIX_HOWTO)
        return path

    def run(self, model: str | os.PathLike, resolution: float, workdir: str | os.PathLike, *,
            target_map: str | os.PathLike | None = None, half_maps=None, threads: int = 1,
            log: str | os.PathLike | None = None, prefix: str = "refined", step: str | None = None
            ) -> RefinementResult:
        """Refine `model` against `target_map` in a fresh `workdir` (half maps are not used by this engine)."""
        if target_map is None:
            raise LocScaleInputError("the PHENIX engine refines against one map; no target map was given",
                                     "give the target map (the workflow passes the cycle's LocScale map)")
        workdir = _fresh_dir(Path(workdir))
        cmd = self.command(Path(model).resolve(), Path(target_map).resolve(), resolution, prefix, threads, step)
        log = Path(log).resolve() if log is not None else workdir / "engine.log"
        seconds = run_logged(self.shell_line(cmd), workdir, log, threads=threads, shell=True)
        # phenix.real_space_refine names its output PREFIX_real_space_refined_NNN.{pdb,cif} (NNN = serial)
        found = sorted(workdir.glob(f"{prefix}_real_space_refined*.cif")) or sorted(
            workdir.glob(f"{prefix}_real_space_refined*.pdb"))
        if not found:
            raise RuntimeError(f"phenix.real_space_refine finished but wrote no {prefix}_real_space_refined*.cif/.pdb "
                               f"in {workdir} (see {log})")
        xyz = _step_parts(step, self.refine_xyz)[0]
        return RefinementResult(self.name, found[-1], cmd, workdir, seconds, True, xyz, {})


def _bash(script: str, login: bool = False) -> str | None:
    try:
        proc = subprocess.run(["bash", "-lc" if login else "-c", script], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip().splitlines()
    return out[-1] if proc.returncode == 0 and out else None


# ---------------------------------------------------------------------- from the workflow config
def make_engine(refine_config: dict, environ: dict | None = None):
    """The engine described by the workflow config's ``refine`` section (see config/config.schema.yaml)."""
    name = refine_config.get("engine", "servalcat")
    if name not in ENGINES:
        raise LocScaleInputError(f"unknown refinement engine {name!r}", f"set refine.engine to one of {ENGINES}")
    refine_xyz = bool(refine_config.get("refine_xyz", False))
    if name == "servalcat":
        sv = refine_config.get("servalcat", {}) or {}
        restrained = bool(refine_config.get("restrained", True))
        return ServalcatEngine(executable=sv.get("executable", "servalcat"),
                               monlib=resolve_monlib(refine_config.get("monlib"), environ, restrained=restrained),
                               refine_xyz=refine_xyz, ncycle=sv.get("ncycle"),
                               extra_args=sv.get("extra_args", []) or [], ligands=refine_config.get("ligands") or [],
                               jellybody=sv.get("jellybody", True), weight=sv.get("weight"))
    ph = refine_config.get("phenix", {}) or {}
    return PhenixEngine(executable=ph.get("executable", "phenix.real_space_refine"),
                        env_script=ph.get("env_script"), envmodules=ph.get("envmodules", []) or [],
                        macro_cycles=ph.get("macro_cycles", 5), refine_xyz=refine_xyz,
                        extra_args=ph.get("extra_args", []) or [])

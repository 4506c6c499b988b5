"""PHENIX: ``phenix.real_space_refine MODEL MAP resolution=D run=adp macro_cycles=N nproc=T output.prefix=PREFIX``
(``run=minimization_global+adp`` with coordinate refinement).

PHENIX is licensed and not installable with conda/pip: it is found on PATH, through an environment script
(``phenix_env.sh``) sourced before each call, or through environment modules loaded by Snakemake (``envmodules`` +
``--sdm env-modules``). It refines against one map, so it does not cross-validate against half maps.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from ..errors import LocScaleInputError
from ..tools.process import fresh_dir, run_logged
from .base import EngineUnavailableError, RefinementEngine, RefinementResult, step_parts

PHENIX_HOWTO = (
    "install PHENIX (https://phenix-online.org; free academic licence) and make phenix.real_space_refine reachable "
    "in one of three ways: (1) put it on PATH before running snakemake (source phenix_env.sh); (2) set "
    "refine.phenix.env_script in the config to its phenix_env.sh, which is sourced before every refinement; or "
    "(3) on a cluster with environment modules, set refine.phenix.envmodules (e.g. [phenix/1.21.2]) and run "
    "snakemake with --sdm env-modules. Or use the default engine: refine.engine: servalcat")


#: parameters the workflow sets itself (last component of a PHIL path), refused in refine.phenix.extra_args
RESERVED_PARAMETERS = {"resolution": "the dataset's resolution", "run": "refine.refine_xyz",
                       "macro_cycles": "refine.phenix.macro_cycles", "nproc": "refine.threads",
                       "prefix": "the step's own file names", "overwrite": "the step's own file names",
                       "serial": "the step's own file names", "directory": "the step's own folder",
                       "suffix": "the step's own file names"}


def check_phenix_parameters(extra_args) -> list[str]:
    """refine.phenix.extra_args must be ``key=value`` PHIL parameters (a bare argument would be read as another
    input file), none of them one the workflow sets (:data:`RESERVED_PARAMETERS`) or a file or folder name."""
    args = [str(a) for a in extra_args]
    for arg in args:
        key = arg.split("=", 1)[0].strip()
        last = key.rsplit(".", 1)[-1]
        if "=" not in arg or not key or arg.startswith("-"):
            raise LocScaleInputError(f"refine.phenix.extra_args contains {arg!r}, which is not a key=value parameter "
                                     "(phenix.real_space_refine would read it as another input file or option)",
                                     f"remove {arg!r} or write it as parameter=value")
        if last in RESERVED_PARAMETERS or "file" in last or last.endswith(("_dir", "_path")):
            owner = RESERVED_PARAMETERS.get(last, "the step's own files")
            raise LocScaleInputError(
                f"refine.phenix.extra_args contains {arg!r}: the workflow sets {last} itself ({owner}); extra "
                "parameters may not change the files a step reads or writes, or the settings it records",
                f"remove {arg!r}" + (f" and use {owner}" if owner.startswith("refine.") else ""))
    return args


class PhenixEngine(RefinementEngine):
    """``phenix.real_space_refine`` ADP (and optionally coordinate) refinement against a map."""

    name = "phenix"
    conda_env = "locscale.yaml"  # PHENIX itself comes from PATH, its env script or modules
    conda_provides_program = False
    mem_mb_base = 4000

    def __init__(self, executable: str = "phenix.real_space_refine", env_script: str | os.PathLike | None = None,
                 envmodules: list[str] | tuple = (), macro_cycles: int = 5, refine_xyz: bool = False,
                 extra_args: list[str] | tuple = ()):
        self.executable = str(executable)
        self.env_script = None if not env_script else Path(env_script)
        self._envmodules = [str(m) for m in envmodules]
        self.macro_cycles = int(macro_cycles)
        self.refine_xyz = bool(refine_xyz)
        self.extra_args = [str(a) for a in extra_args]

    @classmethod
    def from_config(cls, refine_config: dict, environ: dict | None = None) -> PhenixEngine:
        """From the ``refine`` section: ``refine_xyz`` and ``phenix.{executable, env_script, envmodules,
        macro_cycles, extra_args}``."""
        ph = refine_config["phenix"]
        return cls(executable=ph["executable"], env_script=ph["env_script"], envmodules=ph["envmodules"],
                   macro_cycles=ph["macro_cycles"], refine_xyz=refine_config["refine_xyz"],
                   extra_args=check_phenix_parameters(ph["extra_args"]))

    @property
    def envmodules(self) -> list[str]:
        """refine.phenix.envmodules: loaded for the refine rule with ``--sdm env-modules``."""
        return self._envmodules

    restrained = True  # PHENIX always restrains with its own monomer library

    def command(self, model: str | os.PathLike, target_map: str | os.PathLike, resolution: float,
                prefix: str = "refined", nproc: int = 1, step: str | None = None) -> list[str]:
        xyz, adp = step_parts(step, self.refine_xyz)
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

    def _check_name(self) -> None:
        """The executable must be phenix.real_space_refine (its name says so), not another program."""
        if "real_space_refine" not in Path(self.executable).name:
            raise EngineUnavailableError(
                f"refine.phenix.executable is '{self.executable}', which is not phenix.real_space_refine",
                "point refine.phenix.executable at phenix.real_space_refine (or leave it at its default)")

    def check_without_running(self) -> str | None:
        """What a dry run checks: the executable's name and the environment script's existence (nothing sourced)."""
        self._check_name()
        if self.env_script is not None and not self.env_script.is_file():
            raise EngineUnavailableError("refine.phenix.env_script does not exist", PHENIX_HOWTO, self.env_script)
        return shutil.which(self.executable)

    def check_available(self, *, envmodules_active: bool = False) -> str:
        """Where phenix.real_space_refine is found; raises :class:`EngineUnavailableError` (with how to provide it).

        `envmodules_active`: Snakemake runs with ``--sdm env-modules``, so the configured modules are loaded for
        the job; the check then loads them itself (``module load``) to find the program.
        """
        self._check_name()
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
        if self._envmodules:
            if not envmodules_active:
                raise EngineUnavailableError(
                    f"PHENIX is the selected refinement engine and refine.phenix.envmodules lists "
                    f"{self._envmodules}, but snakemake was not started with --sdm env-modules, so the modules "
                    "would not be loaded", "run snakemake with --sdm env-modules (" + PHENIX_HOWTO + ")")
            probe = (f"module load {' '.join(shlex.quote(m) for m in self._envmodules)} >/dev/null 2>&1; "
                     f"command -v {shlex.quote(self.executable)}")
            found = _bash(probe, login=True)
            if found:
                return found
            raise EngineUnavailableError(
                f"PHENIX is the selected refinement engine, but '{self.executable}' is not found after "
                f"'module load {' '.join(self._envmodules)}'", PHENIX_HOWTO)
        path = shutil.which(self.executable)
        if path is None:
            raise EngineUnavailableError(
                f"PHENIX is the selected refinement engine (refine.engine: phenix), but '{self.executable}' is not "
                "on PATH and neither refine.phenix.env_script nor refine.phenix.envmodules is configured",
                PHENIX_HOWTO)
        return path

    def run(self, model: str | os.PathLike, resolution: float, workdir: str | os.PathLike, *,
            target_map: str | os.PathLike | None = None, half_maps=None, threads: int = 1,
            log: str | os.PathLike | None = None, prefix: str = "refined", step: str | None = None,
            keep_level: bool = True) -> RefinementResult:
        """Refine `model` against `target_map` in a fresh `workdir` (half maps are not used by this engine; nor is
        `keep_level`: its result is at the target's level either way)."""
        if target_map is None:
            raise LocScaleInputError("the PHENIX engine refines against one map; no target map was given",
                                     "give the target map (the workflow passes the cycle's LocScale map)")
        from ..models import read_model, write_model

        self._check_name()
        workdir = fresh_dir(Path(workdir))
        # the workflow's one hydrogen policy (as servalcat --hydrogen no): no model enters refinement with them
        model = write_model(read_model(model, remove_hydrogens=True), workdir / "model_in.cif")
        cmd = self.command(Path(model).resolve(), Path(target_map).resolve(), resolution, prefix, threads, step)
        log = Path(log).resolve() if log is not None else workdir / "engine.log"
        seconds = run_logged(self.shell_line(cmd), workdir, log, threads=threads, shell=True, clean_on_failure=True)
        # phenix.real_space_refine names its output PREFIX_real_space_refined_NNN.{pdb,cif} (NNN = serial)
        found = sorted(workdir.glob(f"{prefix}_real_space_refined*.cif")) or sorted(
            workdir.glob(f"{prefix}_real_space_refined*.pdb"))
        if not found:
            raise RuntimeError(f"phenix.real_space_refine finished but wrote no {prefix}_real_space_refined*.cif/.pdb "
                               f"in {workdir} (see {log})")
        xyz = step_parts(step, self.refine_xyz)[0]
        return RefinementResult(self.name, found[-1], cmd, workdir, seconds, True, xyz, {})


def _bash(script: str, login: bool = False) -> str | None:
    try:
        proc = subprocess.run(["bash", "-lc" if login else "-c", script], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip().splitlines()
    return out[-1] if proc.returncode == 0 and out else None

"""What every refinement engine is (:class:`RefinementEngine`) and what they share: the result of one run
(:class:`RefinementResult`) and the refinement steps (running a program: :mod:`locscale.tools.process`).

An engine is one class: it builds itself from the workflow config's ``refine`` section (:meth:`from_config`), says
which conda environment (``envs/*.yaml``) and environment modules the workflow's refine rule runs it in, checks
before the workflow starts that its program can run (with a message saying how to provide it), refines a model in
its own working folder, and, if it can, gives the engine to cross-validate with (:meth:`for_cross_validation`).
Registering the class in ``locscale.engines`` makes it selectable as ``refine.engine``.
"""

from __future__ import annotations

import os
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..errors import LocScaleInputError


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


def step_parts(step: str | None, refine_xyz: bool) -> tuple[bool, bool]:
    """(refine coordinates, refine B-factors) of one run."""
    if step not in STEPS:
        raise ValueError(f"unknown refinement step {step!r}; one of {STEPS}")
    return {None: (bool(refine_xyz), True), "xyz": (True, False), "adp": (False, True)}[step]


class RefinementEngine(ABC):
    """The protocol of a refinement engine (subclass it, then register the class in ``locscale.engines``)."""

    #: the value of ``refine.engine`` that selects this engine
    name: ClassVar[str]
    #: the conda environment file (under ``envs/``) the workflow's refine rule runs this engine in
    conda_env: ClassVar[str]
    #: True when that conda environment installs the engine's program (then, with ``--sdm conda``, the workflow
    #: does not look for it before starting); False for programs provided otherwise (PATH, modules)
    conda_provides_program: ClassVar[bool] = True
    #: memory request of the refine rule: base MB (plus 40 MB per MB of input)
    mem_mb_base: ClassVar[int] = 3000
    #: the most cores one run of the engine's program keeps busy (None: as many as it is given); the workflow's
    #: refine and crossval jobs reserve no more (:meth:`job_threads`), so the other cores run other jobs
    max_threads: ClassVar[int | None] = None

    refine_xyz: bool = False
    restrained: bool = True
    monlib: Path | None = None  # the monomer library the engine restrains with, when it is given one

    def job_threads(self, requested: int, keep_level: bool = True) -> int:
        """The threads a workflow job running this engine reserves: `requested` (refine.threads), at most
        :attr:`max_threads` (`keep_level` as in :meth:`run`)."""
        requested = max(1, int(requested))
        return requested if self.max_threads is None else min(requested, int(self.max_threads))

    @property
    def envmodules(self) -> list[str]:
        """Environment modules the refine rule loads (with ``--sdm env-modules``); none by default."""
        return []

    @classmethod
    @abstractmethod
    def from_config(cls, refine_config: dict, environ: dict | None = None) -> RefinementEngine:
        """The engine described by the workflow config's ``refine`` section (workflow/schemas/config.schema.yaml);
        `environ` (default os.environ) for settings found in the environment."""

    @abstractmethod
    def check_available(self, *, envmodules_active: bool = False) -> str:
        """Where the engine's program is found; raises :class:`EngineUnavailableError` saying how to provide it.
        `envmodules_active`: Snakemake runs with ``--sdm env-modules`` (the rule's modules will be loaded)."""

    def check_without_running(self) -> str | None:
        """What can be checked without running or sourcing anything (a dry run's check): None by default."""
        return None

    def check_before_workflow(self, deployment: set[str] | frozenset[str] = frozenset(),
                              dry_run: bool = False) -> str | None:
        """The check the workflow runs before any job, given Snakemake's deployment methods (``CONDA``,
        ``ENV_MODULES``, ...): skipped (None) when the rule's conda environment provides the program. A dry run
        (`dry_run`) runs and sources nothing: only :meth:`check_without_running`."""
        if self.conda_provides_program and "CONDA" in deployment:
            return None
        if dry_run:
            return self.check_without_running()
        return self.check_available(envmodules_active="ENV_MODULES" in deployment)

    def reads_start_b(self, step: str | None = None) -> bool:
        """Whether a run's result depends on the B-factors of the model it starts from (default: it does). An
        engine that starts every atom at one B (servalcat's B-factor refinement) returns False: the cycle then
        reuses the previous cycle's result for the same coordinates, maps and settings."""
        return True

    def check_monomers(self, model: str | os.PathLike) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`LocScaleInputError` when `model` has residues the engine cannot restrain (default: no
        check, the engine brings its own library)."""

    @abstractmethod
    def run(self, model: str | os.PathLike, resolution: float, workdir: str | os.PathLike, *,
            target_map: str | os.PathLike | None = None, half_maps=None, threads: int = 1,
            log: str | os.PathLike | None = None, prefix: str = "refined", step: str | None = None,
            keep_level: bool = True) -> RefinementResult:
        """Refine `model` against `target_map` (or `half_maps`) in a fresh `workdir` (emptied first); `step` is
        one of :data:`STEPS`. `keep_level` False: the caller shifts every B to a level of its own afterwards, so
        the engine may skip work that only fixes the overall B level (servalcat does)."""

    def for_cross_validation(self, refine_xyz: bool | None = None) -> RefinementEngine:
        """The engine to refine a shaken model against half map 1 with (``locscale.validation.crossval``): it must take
        ``half_maps`` in :meth:`run` and refine against the first only. `refine_xyz` None: coordinates too when
        restrained. Engines that cannot raise :class:`LocScaleInputError` (this default)."""
        raise LocScaleInputError(
            f"the refinement engine {self.name!r} cannot cross-validate against half maps (the shake protocol "
            "refines against half map 1 only)",
            "set cross_validation.enabled: false, or use refine.engine: servalcat")


# ---------------------------------------------------------------------- configured arguments and programs
def refuse_options(extra_args, reserved: dict[str, str], key: str) -> list[str]:
    """Refuse command-line options in `extra_args` (the config key `key`) that the workflow sets itself
    (`reserved`: option -> the config key or reason that owns it), including argparse's abbreviations
    (``--out`` for ``--output_prefix``) and attached values (``-o/x``, ``--model=x``). Returns the arguments."""
    args = [str(a) for a in extra_args]
    longs = [r for r in reserved if r.startswith("--")]
    for arg in args:
        if arg.startswith("--") and len(arg) > 2:
            name = arg.split("=", 1)[0]
            hits = [r for r in longs if r.startswith(name)]
        elif arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit() and arg[1] != ".":
            hits = [r for r in reserved if r == arg[:2]]
        else:
            continue
        if hits:
            owner = reserved[hits[0]]
            raise LocScaleInputError(
                f"{key} contains {arg!r}, which sets {hits[0]}: the workflow sets it itself ({owner}); extra "
                "arguments may not change the files a step reads or writes, or the settings it records",
                f"remove {arg!r} from {key}" + (f" and use {owner}" if owner.startswith("refine.") else ""))
    return args


def identify_program(path: str, expect: str, args: tuple[str, ...] = ("--version",), timeout: float = 300,
                     script_signature: str | None = None) -> str:
    """Require a configured executable to be the program it claims to be (not, e.g., a shell given arguments of its
    own): a script whose first 4 KB hold `script_signature` (a Python console script's ``from servalcat``) is
    recognised without running it; anything else is run as ``PATH --version`` (or `args`) and `expect`
    (case-insensitive) must be in its output. Returns the evidence (a line); raises :class:`EngineUnavailableError`."""
    import subprocess

    if script_signature:
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096)
        except OSError:
            head = b""
        if head.startswith(b"#!") and script_signature.encode() in head:
            return f"{path}: a script that runs {script_signature!r}"

    try:
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout)
        out = (proc.stdout + proc.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        raise EngineUnavailableError(f"'{path} {' '.join(args)}' could not run ({err})",
                                     f"point the executable setting at {expect}", path) from None
    if proc.returncode != 0 or expect.lower() not in out.lower():
        first = out.splitlines()[0][:120] if out else "(no output)"
        raise EngineUnavailableError(
            f"'{path}' does not identify itself as {expect}: '{Path(path).name} {' '.join(args)}' printed "
            f"{first!r} (exit status {proc.returncode})", f"point the executable setting at {expect}", path)
    return out.splitlines()[0]


# ---------------------------------------------------------------------- running a program



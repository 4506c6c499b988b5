"""Servalcat (the default engine; 0.4.142; docs/workflow.md "Refinement engine").

``servalcat refine_spa_norefmac --model M --map F -d D --fix_xyz --adp iso --hydrogen no -o PREFIX``
(``--halfmaps H1 H2`` instead of ``--map`` when refining against half maps). Restrained by default, with the
monomer library of ``refine.monlib``, else ``$CLIBD_MON``, else the one installed with coot-headless-api (the
``workflow`` extra); ligands outside it need their dictionaries (``refine.ligands`` -> ``--ligand``).
``refine.restrained: false`` runs ``--unrestrained`` (coordinates fixed; the distance-based ADP restraints apply
either way). Coordinate refinement (no ``--fix_xyz``) needs the library and uses jelly-body restraints
(``--jellybody``) unless ``refine.servalcat.jellybody: false``. Servalcat appends to ``servalcat.log`` in the
current folder, so every run has its own working folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from ..errors import LocScaleInputError
from ..tools.process import absolute, fresh_dir, run_logged, tool_environment
from ..tools.restraints import missing_monomers, resolve_monlib
from .base import (
    EngineUnavailableError,
    RefinementEngine,
    RefinementResult,
    identify_program,
    refuse_options,
    step_parts,
)

SERVALCAT_VERSION = "0.4.142"

#: options the workflow sets itself, refused in refine.servalcat.extra_args (-> the setting that owns them)
RESERVED_OPTIONS = {
    "--model": "the cycle's model", "--map": "the cycle's target map", "--halfmaps": "the cycle's target map",
    "--hklin": "the cycle's target map", "--pixel_size": "the map's voxel size",
    "-d": "the dataset's resolution", "--resolution": "the dataset's resolution",
    "-o": "the step's own folder and file names", "--output_prefix": "the step's own folder and file names",
    "--config": "every setting comes from the workflow config", "--monlib": "refine.monlib",
    "--ligand": "refine.ligands", "--unrestrained": "refine.restrained",
    "--hydrogen": "one hydrogen policy for every cycle: none", "--hout": "one hydrogen policy for every cycle: none",
    "--fix_xyz": "refine.refine_xyz", "--adp": "refine.refine_xyz", "--ncycle": "refine.servalcat.ncycle",
    "--weight": "refine.servalcat.weight", "--cross_validation": "cross_validation.enabled",
}


@lru_cache(maxsize=8)
def _identified(path: str) -> str:
    return identify_program(path, "Servalcat", script_signature="from servalcat")


class ServalcatEngine(RefinementEngine):
    """``servalcat refine_spa_norefmac``: B-factor (and optionally coordinate) refinement against a map."""

    name = "servalcat"
    conda_env = "servalcat.yaml"
    mem_mb_base = 3000
    #: servalcat 0.4.142 refines on one core: its structure-factor and map FFTs (gemmi) and its C++ extension are
    #: single-threaded (the extension links no OpenMP runtime) and it has no thread option; measured 97-99 % of
    #: one core with OMP_NUM_THREADS=2 on the 256³ TRPV1 phantom
    max_threads = 1

    def __init__(self, executable: str = "servalcat", monlib: str | os.PathLike | None = None,
                 refine_xyz: bool = False, ncycle: int | None = None, extra_args: list[str] | tuple = (),
                 ligands: list | tuple = (), jellybody: bool = True, weight: float | None = None,
                 write_maps: bool = False):
        self.executable = str(executable)
        self.write_maps = bool(write_maps)
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

    @classmethod
    def from_config(cls, refine_config: dict, environ: dict | None = None) -> ServalcatEngine:
        """From the ``refine`` section: ``restrained``/``monlib`` (resolved with :func:`resolve_monlib`),
        ``ligands``, ``refine_xyz`` and ``servalcat.{executable, ncycle, extra_args, jellybody, weight,
        write_maps}``."""
        sv = refine_config["servalcat"]
        return cls(executable=sv["executable"],
                   monlib=resolve_monlib(refine_config["monlib"], environ, restrained=refine_config["restrained"]),
                   refine_xyz=refine_config["refine_xyz"], ncycle=sv["ncycle"],
                   extra_args=refuse_options(sv["extra_args"], RESERVED_OPTIONS, "refine.servalcat.extra_args"),
                   ligands=refine_config["ligands"], jellybody=sv["jellybody"], weight=sv["weight"],
                   write_maps=sv["write_maps"])

    def for_cross_validation(self, refine_xyz: bool | None = None) -> ServalcatEngine:
        """The same program, library, ligands and cycles, refining against half map 1 only
        (``--cross_validation``) with standard geometry restraints and no jelly body (the protocol's);
        coordinates too when `refine_xyz` (None: when restrained). The refinement's extra_args and weight are
        not used."""
        return ServalcatEngine(executable=self.executable, monlib=self.monlib,
                               refine_xyz=self.restrained if refine_xyz is None else refine_xyz, ncycle=self.ncycle,
                               extra_args=["--cross_validation"], ligands=self.ligands, jellybody=False,
                               write_maps=self.write_maps)

    @property
    def restrained(self) -> bool:
        return self.monlib is not None

    def command(self, model: str | os.PathLike, resolution: float, prefix: str = "refined", *,
                target_map: str | os.PathLike | None = None, half_maps=None, step: str | None = None,
                config: str | os.PathLike | None = None) -> list[str]:
        """The command line (run it in its own folder). `step` (see :data:`STEPS`) refines only coordinates
        (``xyz``: ``--adp fix``) or only B-factors (``adp``: ``--fix_xyz``); default: what the engine was made for.
        `config` is a servalcat ``--config`` file (e.g. an atom selection, :meth:`run`'s ``adp_chains``)."""
        if (target_map is None) == (half_maps is None):
            raise ValueError("give exactly one of target_map or half_maps")
        xyz, adp = step_parts(step, self.refine_xyz)
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
        if config is not None:
            cmd += ["--config", str(config)]
        if not self.write_maps:  # its closing model-map FSC only to d (the cycle reads none beyond d), not Nyquist
            cmd += ["--fsc_resolution", f"{float(resolution):g}"]
        return cmd + self.extra_args
    def launch_command(self, cmd: list[str]) -> list[str]:
        """The command that runs `cmd` (from :meth:`command`): without ``write_maps``, and when the servalcat on
        PATH is the one installed next to this Python, servalcat's own command line minus its Fo−Fc maps
        (:mod:`locscale.engines.servalcat_lean`); else `cmd` itself."""
        if self.write_maps or self.executable != "servalcat":
            return cmd
        import importlib.util

        found = shutil.which(self.executable)
        if found is None or Path(found).parent != Path(sys.executable).parent or \
                importlib.util.find_spec("servalcat") is None:
            return cmd
        return [sys.executable, "-m", "locscale.engines.servalcat_lean", *cmd[1:]]

    def check_without_running(self) -> str:
        """Path of the servalcat executable (looked up, not run); raises :class:`EngineUnavailableError`."""
        path = shutil.which(self.executable)
        if path is None:
            raise EngineUnavailableError(
                f"the refinement program '{self.executable}' (servalcat) is not on PATH",
                f"install it (pip install servalcat=={SERVALCAT_VERSION}), or run snakemake with --sdm conda to use "
                "envs/servalcat.yaml")
        return path

    def check_available(self, *, envmodules_active: bool = False) -> str:
        """Path of the servalcat executable, checked to be servalcat (``--version`` says so); raises
        :class:`EngineUnavailableError` if it is not found or is another program."""
        path = self.check_without_running()
        _identified(path)
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
            log: str | os.PathLike | None = None, prefix: str = "refined", step: str | None = None,
            adp_chains: list[str] | None = None) -> RefinementResult:
        """Refine `model` against `target_map` (or `half_maps`) in a fresh `workdir` (emptied first); `step` as in
        :meth:`command`. `adp_chains`: refine the B-factors of these chains' atoms only, every other atom held
        (servalcat's ``--config`` atom selection; the hybrid reference's pseudo-atoms)."""
        self.check_available()
        self.check_monomers(model)
        workdir = fresh_dir(Path(workdir))
        config = None
        if adp_chains:
            config = workdir / "adp_selection.yaml"
            config.write_text("refine:\n  atom_selection:\n    adp:\n      include: ["
                              + ", ".join(f"'//{c}'" for c in adp_chains) + "]\n")
        cmd = self.command(absolute(model), resolution, prefix,
                           target_map=None if target_map is None else absolute(target_map),
                           half_maps=None if half_maps is None else [absolute(h) for h in half_maps], step=step,
                           config=None if config is None else absolute(config))
        log = Path(log).resolve() if log is not None else workdir / "engine.log"
        cmd = self.launch_command(cmd)
        seconds = run_logged(cmd, workdir, log, threads=threads, clean_on_failure=True, environ=tool_environment())
        out = workdir / f"{prefix}.mmcif"
        if not out.exists():
            out = workdir / f"{prefix}.pdb"
        if not out.exists():
            raise RuntimeError(f"servalcat finished but wrote no {prefix}.mmcif/.pdb in {workdir} (see {log})")
        return RefinementResult(self.name, out, cmd, workdir, seconds, self.restrained, step_parts(step,
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

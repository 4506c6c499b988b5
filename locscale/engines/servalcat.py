"""Servalcat (the default engine; 0.4.142; docs/workflow.md "Refinement engine").

``servalcat refine_spa_norefmac --model M --map F -d D --fix_xyz --adp iso --hydrogen no -o PREFIX``
(``--halfmaps H1 H2`` instead of ``--map`` when refining against half maps). Restrained by default, with the
monomer library of ``refine.monlib``, else ``$CLIBD_MON``, else the one installed with coot-headless-api (the
``workflow`` extra); ligands outside it need their dictionaries (``refine.ligands`` -> ``--ligand``).
``refine.restrained: false`` runs ``--unrestrained`` (coordinates fixed; the distance-based ADP restraints apply
either way). Coordinate refinement (no ``--fix_xyz``) needs the library and uses jelly-body restraints
(``--jellybody``) unless ``refine.servalcat.jellybody: false``. Servalcat appends to ``servalcat.log`` in the
current folder, so every run has its own working folder.

**Where servalcat puts a map.** Servalcat (gemmi) places a map by its ``nxstart/nystart/nzstart`` only and drops
the MRC2014 ``ORIGIN`` field, so a map located by ``ORIGIN`` alone (EMD-2566 crops, and every map this package
writes for such an input) would be refined against at the wrong place: the model then fits noise (FSCaverage
0.01 against the target instead of 0.72 on the EMD-2566 crop). :func:`servalcat_frame` hands servalcat a copy
located by ``nstart`` instead, and the model moves by the remaining sub-voxel offset, if any, and back after.

**B-factors from any start, unclipped.** Servalcat fits an overall scale and B between the target and the
model before every cycle and moves all B by it, but never below 0.5 Å²; when the target is sharper than the
model can follow (an over-sharpened target, a deposited map that was sharpened), it pins the lowest B at 0.5 and
clips every atom that a step takes lower, and the result depends on the start (the deposited B of 3J6B chain 9
against the EMD-2566 crop's target: mean B 50.1 after 10 cycles; any uniform start: 44.2). So a B-factor
refinement here (:attr:`ServalcatEngine.uniform_start_b`, :attr:`ServalcatEngine.relative_b`):

1. starts every atom at the same B (``--bfactor``): the result depends only on the target and the coordinates;
2. refines B only against the target blurred by X Å² (``--blur X``, X doubled until no atom touches servalcat's
   floor): blurring changes only the overall level, so the relative B come out with no atom clipped, from any
   start;
3. puts those relative B at step 1's mean B (servalcat's level for this target).

In a B-factor-only refinement both runs start from the uniform B, so they do not wait for each other: with two
threads they run side by side (the relative-B run with the same number of cycles; measured on the 256³ TRPV1
phantom against 5 cycles from step 1's B: correlation 0.999996, rms difference 0.31 Å²). The level must come
from step 1: the blurred run's level less X is not the target's level where the map holds density the model
does not (the EMD-3488 crop around one chain: 153 Å² apart, while 0.006 Å² on the complete TRPV1 phantom). After
a coordinate refinement the relative-B run starts from step 1's B-factors for 5 cycles (:data:`RELATIVE_B_CYCLES`;
correlation 1.0000 with 20 cycles on EMD-3488).

Where the caller shifts every B to a level of its own afterwards (``keep_level=False``: the cycle's reference
level, :mod:`locscale.cycle.b_level`), step 1 would only have fixed a level nobody reads: the B-factor-only
refinement is then the blurred run alone (one core), its B less the blur (on the complete TRPV1 phantom that is
the level of step 1 to 0.006 Å²; the record says where the level came from, ``b_level_from``).

The model this writes (``PREFIX_relative_b.mmcif``) may therefore carry B ≤ 0 where the target asks for it:
:mod:`locscale.cycle.b_level` turns it into a model with physical B-factors and the model-map sharpening that
keeps the target's level.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import gemmi
import numpy as np

from ..errors import LocScaleInputError
from ..models import b_factors, write_model
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
#: servalcat's lower bound on B (Å²): its overall scaling and every refinement step keep B at or above it
SERVALCAT_MIN_B = 0.5
#: the uniform B every atom starts from in a B-factor refinement (any value gives the same result: servalcat's
#: overall scaling moves a uniform model to the same level first)
UNIFORM_START_B = 40.0
#: the first blur (Å²) of the relative-B run, and how often it is doubled when an atom still touches the floor
RELATIVE_B_BLUR = 200.0
RELATIVE_B_TRIES = 3
#: cycles of the relative-B run (it starts from the first run's B-factors)
RELATIVE_B_CYCLES = 5

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
    "--bfactor": "every B-factor refinement starts from a uniform B (the result must not depend on the start)",
}


@lru_cache(maxsize=8)
def _identified(path: str) -> str:
    return identify_program(path, "Servalcat", script_signature="from servalcat")


class ServalcatEngine(RefinementEngine):
    """``servalcat refine_spa_norefmac``: B-factor (and optionally coordinate) refinement against a map."""

    name = "servalcat"
    conda_env = "servalcat.yaml"
    mem_mb_base = 3000

    def job_threads(self, requested: int, keep_level: bool = True) -> int:
        """The threads a job running this engine reserves: 2 (at most `requested`) when its B-factor refinement
        runs two servalcat programs side by side (:meth:`run` with `keep_level`), else 1. Servalcat 0.4.142
        refines on one core: its structure-factor and map FFTs (gemmi) and its C++ extension are single-threaded
        (the extension links no OpenMP runtime) and it has no thread option; measured 97-99 % of one core with
        OMP_NUM_THREADS=2 on the 256³ TRPV1 phantom."""
        both = keep_level and self.relative_b and self.uniform_start_b is not None
        return min(max(1, int(requested)), 2 if both else 1)

    def __init__(self, executable: str = "servalcat", monlib: str | os.PathLike | None = None,
                 refine_xyz: bool = False, ncycle: int | None = None, extra_args: list[str] | tuple = (),
                 ligands: list | tuple = (), jellybody: bool = True, weight: float | None = None,
                 uniform_start_b: float | None = UNIFORM_START_B, relative_b: bool = True, write_maps: bool = False):
        self.executable = str(executable)
        #: B-factor refinements start every atom at this B (None: from the model's own B)
        self.uniform_start_b = None if uniform_start_b is None else float(uniform_start_b)
        #: B-factor refinements end with the unclipped relative-B run (module docstring)
        self.relative_b = bool(relative_b)
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
        not used; B refinement continues from the refined model's B in one run (FSCwork/FSCtest do not depend
        on the B level)."""
        return ServalcatEngine(executable=self.executable, monlib=self.monlib,
                               refine_xyz=self.restrained if refine_xyz is None else refine_xyz, ncycle=self.ncycle,
                               extra_args=["--cross_validation"], ligands=self.ligands, jellybody=False,
                               uniform_start_b=None, relative_b=False, write_maps=self.write_maps)

    def reads_start_b(self, step: str | None = None) -> bool:
        """A run that refines B-factors from the uniform start reads none of the model's B (its coordinates, when
        it refines them too, with the B it refines); a coordinates-only run (``--adp fix``) reads them all."""
        xyz, adp = step_parts(step, self.refine_xyz)
        return not (adp and self.uniform_start_b is not None)

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
        if adp and self.uniform_start_b is not None:
            cmd += ["--bfactor", f"{self.uniform_start_b:g}"]
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

    def relative_b_command(self, model: str | os.PathLike, resolution: float, blur: float, prefix: str = "relative",
                           *, target_map: str | os.PathLike | None = None, half_maps=None) -> list[str]:
        """The relative-B run (module docstring, step 2): B only, from `model`'s B, against the target blurred by
        `blur` Å², :data:`RELATIVE_B_CYCLES` cycles. The extra arguments apply as in the first run; this run's own
        ``--blur`` and ``--ncycle`` come last, so they win over any there."""
        cmd = ServalcatEngine(executable=self.executable, monlib=self.monlib, ligands=self.ligands,
                              extra_args=self.extra_args, uniform_start_b=None, write_maps=self.write_maps).command(
            model, resolution, prefix, target_map=target_map, half_maps=half_maps, step="adp")
        return cmd + ["--blur", f"{float(blur):g}", "--ncycle", str(RELATIVE_B_CYCLES)]

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
            adp_chains: list[str] | None = None, keep_level: bool = True) -> RefinementResult:
        """Refine `model` against `target_map` (or `half_maps`) in a fresh `workdir` (emptied first); `step` as in
        :meth:`command`. `adp_chains`: refine the B-factors of these chains' atoms only, every other atom held
        (servalcat's ``--config`` atom selection; the hybrid reference's pseudo-atoms). With B-factors refined and
        :attr:`relative_b`, the result is ``PREFIX_relative_b.mmcif`` (module docstring; its B may be ≤ 0) and the
        stats say how the relative B were obtained. `keep_level` False (the caller places the level itself): a
        B-factor-only refinement from the uniform start is the blurred run alone, its B less the blur (module
        docstring)."""
        self.check_available()
        self.check_monomers(model)
        if (target_map is None) == (half_maps is None):
            raise ValueError("give exactly one of target_map or half_maps")
        workdir = fresh_dir(Path(workdir))
        config = None
        if adp_chains:
            config = workdir / "adp_selection.yaml"
            config.write_text("refine:\n  atom_selection:\n    adp:\n      include: ["
                              + ", ".join(f"'//{c}'" for c in adp_chains) + "]\n")
        log = Path(log).resolve() if log is not None else workdir / "engine.log"
        maps, offset = servalcat_frame([target_map] if half_maps is None else list(half_maps), workdir)
        maps_kw = {"target_map": maps[0]} if half_maps is None else {"half_maps": maps}
        model_in = absolute(model)
        if offset is not None:
            model_in = str(write_shifted_model(model_in, -offset, workdir / "model_in_servalcat_frame.cif"))
        # an atom selection holds the other atoms' B: no uniform start and no relative-B run for it
        engine = self if not adp_chains else copy.copy(self)
        if adp_chains:
            engine.uniform_start_b = None
        cmd = engine.command(model_in, resolution, prefix, step=step,
                             config=None if config is None else absolute(config), **maps_kw)
        cmd = self.launch_command(cmd)
        xyz, adp = step_parts(step, self.refine_xyz)
        relative = adp and self.relative_b and not adp_chains
        uniform = relative and not xyz and engine.uniform_start_b is not None

        def blurred(blur):  # the relative-B run from the uniform start
            rel = engine.command(model_in, resolution, "relative", step=step, **maps_kw)
            return self.launch_command(rel) + ["--blur", f"{blur:g}"]

        if uniform and not keep_level:  # the blurred run alone, its level less the blur (module docstring)
            b_rel, info = self._relative_runs(blurred, workdir / "relative_b", log)
            seconds, cmd = info.pop("seconds"), blurred(info["relative_b_blur"])
            out = _servalcat_output(workdir / "relative_b", "relative", log)
            stats = {**read_servalcat_stats(workdir / "relative_b" / "relative_stats.json"), **info,
                     "b_level_from": f"the blurred run less its blur of {info['relative_b_blur']:g} Å²"}
            level = float(b_rel.mean()) - info["relative_b_blur"]
        else:
            if uniform:  # both runs start from the uniform B: side by side (module docstring)
                seconds, (b_rel, info) = _side_by_side(
                    lambda: run_logged(cmd, workdir, log, threads=1, clean_on_failure=True,
                                       environ=tool_environment()),
                    lambda lg: self._relative_runs(blurred, workdir / "relative_b", lg),
                    workdir / "relative_b.log", log, together=threads >= 2)
            else:
                seconds = run_logged(cmd, workdir, log, threads=threads, clean_on_failure=True,
                                     environ=tool_environment())
                if relative:  # the relative-B run from this run's B-factors
                    start = absolute(_servalcat_output(workdir, prefix, log))
                    b_rel, info = self._relative_runs(
                        lambda blur: self.launch_command(self.relative_b_command(start, resolution, blur,
                                                                                 **maps_kw)),
                        workdir / "relative_b", log)
                    seconds += info["seconds"]
            out = _servalcat_output(workdir, prefix, log)
            stats = read_servalcat_stats(workdir / f"{prefix}_stats.json")
            if relative:
                level = float(b_factors(gemmi.read_structure(str(out))).mean())
                info.pop("seconds")
                stats.update(info)
        if relative:
            stats["b_mean_servalcat"] = level
            out = _with_b(out, b_rel - b_rel.mean() + level, workdir / f"{prefix}_relative_b.mmcif")
        if offset is not None:
            out = write_shifted_model(out, offset, workdir / f"{prefix}_map_frame.mmcif")
            stats["map_frame_offset"] = [round(float(v), 4) for v in offset]
        return RefinementResult(self.name, out, cmd, workdir, seconds, self.restrained, xyz, stats)

    def _relative_runs(self, command_for, workdir: Path, log: Path) -> tuple[np.ndarray, dict]:
        """The relative-B run (module docstring, step 2): `command_for(blur)` in a fresh `workdir`, the blur
        doubled and the run repeated while an atom touches servalcat's floor (at most :data:`RELATIVE_B_TRIES`
        runs). Returns its B-factors and what was done (seconds, blur, runs, atoms at the floor, its FSCaverage
        against the blurred target)."""
        blur, seconds = RELATIVE_B_BLUR, 0.0
        for tries in range(1, RELATIVE_B_TRIES + 1):
            fresh_dir(workdir)
            seconds += run_logged(command_for(blur), workdir, log, threads=1, clean_on_failure=True,
                                  environ=tool_environment())
            b = b_factors(gemmi.read_structure(str(_servalcat_output(workdir, "relative", log))))
            at_floor = int(np.count_nonzero(b <= SERVALCAT_MIN_B + 0.01))
            if at_floor == 0 or tries == RELATIVE_B_TRIES:
                break
            blur *= 2
        stats = read_servalcat_stats(workdir / "relative_stats.json")
        return b, {"seconds": seconds, "relative_b_blur": blur, "relative_b_runs": tries,
                   "relative_b_atoms_at_servalcat_floor": at_floor,
                   "relative_b_fsc_average_blurred_target": stats.get("fsc_average_target")}


def _side_by_side(first, second, second_log: Path, log: Path, together: bool):
    """Run `first()` and `second(log)` at the same time (two threads, each waiting for its own program), or one
    after the other when not `together`; the second's log (`second_log` while both run) is appended to `log`.
    Returns (wall seconds, the second's result); either one's exception is raised."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    if not together:
        first()
        return time.perf_counter() - t0, second(log)
    second_log.unlink(missing_ok=True)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            a, b = pool.submit(first), pool.submit(second, second_log)
            a.result()
            result = b.result()
    finally:
        if second_log.exists():
            with open(log, "a") as fh:
                fh.write(second_log.read_text(errors="replace"))
            second_log.unlink()
    return time.perf_counter() - t0, result


def servalcat_frame(maps: list, workdir: Path) -> tuple[list[str], np.ndarray | None]:
    """The maps as servalcat places them correctly, and the model's offset.

    Servalcat reads a map's location from ``nstart`` only. A map located by the MRC2014 ``ORIGIN`` field alone is
    written to `workdir` located by ``nstart`` (the nearest grid point to its origin); the returned offset (Å) is
    what is left, by which the model must move the other way (None when nothing moves: every map already located
    by ``nstart``). Maps of one refinement share their grid (half maps), so one offset holds for all."""
    from ..mapio import read_map, write_map

    out, offset = [], None
    for path in maps:
        if not _located_by_origin_field(path):
            out.append(absolute(path))
            continue
        emap = read_map(path)
        nstart = np.rint(emap.origin / emap.voxel_size)
        rest = emap.origin - nstart * emap.voxel_size
        placed = emap.like(emap.data)
        placed.origin, placed.origin_convention = nstart * emap.voxel_size, "nstart"
        copy = workdir / f"{Path(path).stem}_servalcat_frame.mrc"
        write_map(copy, placed, label="located by nstart for servalcat")
        out.append(absolute(copy))
        offset = rest if np.any(np.abs(rest) > 1e-4) else offset
    return out, offset


def _located_by_origin_field(path) -> bool:
    """The map's header places it by a non-zero ORIGIN field with nstart 0 (header only; the rule of
    :func:`locscale.mapio.read_map`)."""
    import mrcfile

    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        h = mrc.header
        nstart = (int(h.nxstart), int(h.nystart), int(h.nzstart))
        origin = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
    return not any(nstart) and bool(np.all(np.isfinite(origin))) and bool(np.any(origin != 0))


def _servalcat_output(workdir: Path, prefix: str, log: Path) -> Path:
    for suffix in (".mmcif", ".pdb"):
        if (workdir / f"{prefix}{suffix}").exists():
            return workdir / f"{prefix}{suffix}"
    raise RuntimeError(f"servalcat finished but wrote no {prefix}.mmcif/.pdb in {workdir} (see {log})")


def _with_b(path: Path, b: np.ndarray, out: Path) -> Path:
    """`path`'s model with the B-factors `b` (same atoms, same order), written to `out`."""
    st = gemmi.read_structure(str(path))
    atoms = [a for ch in st[0] for r in ch for a in r]
    if len(atoms) != len(b):
        raise RuntimeError(f"servalcat's relative-B run returned {len(b)} atoms for the {len(atoms)} of {path}")
    for atom, value in zip(atoms, b, strict=True):
        atom.b_iso = float(value)
    return write_model(st, out)


def write_shifted_model(path, shift: np.ndarray, out: Path) -> Path:
    """`path`'s model moved by `shift` (Å), written to `out` (into and out of :func:`servalcat_frame`'s frame)."""
    st = gemmi.read_structure(str(path))
    for model in st:
        model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*map(float, shift))))
    return write_model(st, out)




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

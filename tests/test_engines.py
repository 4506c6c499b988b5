"""Refinement engines (locscale.engines) and their restraints (locscale.tools.restraints): command lines, monomer
library, availability checks, and a real servalcat B-factor refinement on a crop of the bundled example."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest

from locscale.engines import (
    PHENIX_HOWTO,
    EngineUnavailableError,
    PhenixEngine,
    ServalcatEngine,
    make_engine,
    read_servalcat_stats,
)
from locscale.errors import LocScaleInputError
from locscale.models import atom_positions, b_factors, read_model
from locscale.tools.restraints import installed_monlib, missing_monomers, resolve_monlib


# ---------------------------------------------------------------------- command lines
def test_servalcat_command_b_only_unrestrained_by_default():
    cmd = ServalcatEngine().command("m.cif", 3.2, "out", target_map="t.mrc")
    assert cmd[:4] == ["servalcat", "refine_spa_norefmac", "--model", "m.cif"]
    assert cmd[cmd.index("--map") + 1] == "t.mrc" and cmd[cmd.index("-d") + 1] == "3.2"
    for flag in ("--fix_xyz", "--unrestrained"):
        assert flag in cmd
    assert cmd[cmd.index("--adp") + 1] == "iso" and cmd[cmd.index("--hydrogen") + 1] == "no"
    assert cmd[cmd.index("-o") + 1] == "out" and "--monlib" not in cmd


def test_servalcat_command_restrained_xyz_half_maps_and_extras(tmp_path):
    eng = ServalcatEngine(monlib=tmp_path, refine_xyz=True, ncycle=4, extra_args=["--blur", "0"])
    cmd = eng.command("m.pdb", 3.0, half_maps=("h1.mrc", "h2.mrc"))
    assert cmd[cmd.index("--halfmaps") + 1: cmd.index("--halfmaps") + 3] == ["h1.mrc", "h2.mrc"]
    assert "--map" not in cmd and "--fix_xyz" not in cmd and "--unrestrained" not in cmd
    assert cmd[cmd.index("--monlib") + 1] == str(tmp_path) and cmd[cmd.index("--ncycle") + 1] == "4"
    assert cmd[-2:] == ["--blur", "0"] and eng.restrained
    # coordinate refinement uses jelly-body restraints by default; B-only runs have no coordinates to restrain
    assert "--jellybody" in cmd and "--weight" not in cmd
    assert "--jellybody" not in eng.command("m.pdb", 3.0, target_map="t.mrc", step="adp")
    loose = ServalcatEngine(monlib=tmp_path, refine_xyz=True, jellybody=False, weight=50)
    cmd = loose.command("m.pdb", 3.0, target_map="t.mrc")
    assert "--jellybody" not in cmd and cmd[cmd.index("--weight") + 1] == "50"
    with pytest.raises(ValueError):
        eng.command("m.pdb", 3.0)


def test_ligand_dictionaries_are_passed_and_checked(tmp_path, monlib, model_5me2):
    lig = tmp_path / "LIG.cif"
    lig.write_text("data_comp_list\nloop_\n_chem_comp.id\nLIG\ndata_comp_LIG\n_chem_comp_atom.comp_id LIG\n")
    cmd = ServalcatEngine(monlib=monlib, ligands=[lig]).command("m.pdb", 3.0, target_map="t.mrc")
    assert cmd[cmd.index("--ligand") + 1] == str(lig.resolve())
    with pytest.raises(LocScaleInputError, match="not found"):
        ServalcatEngine(monlib=monlib, ligands=[tmp_path / "missing.cif"])
    with pytest.raises(LocScaleInputError, match="restrained is false"):
        ServalcatEngine(ligands=[lig])
    # every residue type of 5ME2 (amino acids, HEM, water) is in the coot library
    assert missing_monomers(model_5me2, monlib) == []
    # a residue type the library lacks is named, with the fix; its dictionary in refine.ligands clears it
    st = read_model(model_5me2)
    st[0][0][0].name = "LIG"
    odd = tmp_path / "odd.pdb"
    st.write_pdb(str(odd))
    assert missing_monomers(odd, monlib) == ["LIG"] and missing_monomers(odd, monlib, [lig]) == []
    with pytest.raises(LocScaleInputError, match=r"(?s)LIG have no restraint dictionary.*refine\.ligands"):
        ServalcatEngine(monlib=monlib).check_monomers(odd)
    ServalcatEngine(monlib=monlib, extra_args=["--newligand_continue"]).check_monomers(odd)  # servalcat's own way
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_a.b 1\n")
    with pytest.raises(LocScaleInputError, match="no restraint dictionary inside"):
        missing_monomers(odd, monlib, [bad])


def test_coordinate_refinement_needs_a_monomer_library():
    with pytest.raises(LocScaleInputError, match="monomer library"):
        ServalcatEngine(refine_xyz=True)


def test_phenix_command():
    eng = PhenixEngine(macro_cycles=3)
    cmd = eng.command("m.pdb", "t.mrc", 3.4, "p", nproc=4)
    assert cmd[:3] == ["phenix.real_space_refine", "m.pdb", "t.mrc"]
    assert {"resolution=3.4", "run=adp", "macro_cycles=3", "nproc=4", "output.prefix=p"} <= set(cmd)
    assert "run=minimization_global+adp" in PhenixEngine(refine_xyz=True).command("m", "t", 3, "p")
    assert PhenixEngine(env_script="/opt/phenix env.sh").shell_line(["a", "b"]).startswith(
        "source '/opt/phenix env.sh' >/dev/null 2>&1 && a b")


# ---------------------------------------------------------------------- monomer library
def test_resolve_monlib(tmp_path, monlib):
    # default: the library installed with coot-headless-api; none when unrestrained refinement is asked for
    assert resolve_monlib(None, environ={}) == installed_monlib() == monlib.resolve()
    assert resolve_monlib(None, environ={}, restrained=False) is None
    assert resolve_monlib(monlib, environ={}) == monlib.resolve()
    assert resolve_monlib(None, environ={"CLIBD_MON": str(monlib)}) == monlib.resolve()
    with pytest.raises(LocScaleInputError, match="not a CCP4 monomer library"):
        resolve_monlib(tmp_path, environ={})
    with pytest.raises(LocScaleInputError, match="CLIBD_MON"):
        resolve_monlib(None, environ={"CLIBD_MON": str(tmp_path)})


def test_make_engine_from_config():
    eng = make_engine({"engine": "servalcat", "monlib": None, "servalcat": {"ncycle": 3}}, environ={})
    assert isinstance(eng, ServalcatEngine) and eng.restrained and eng.ncycle == 3  # restrained by default
    eng = make_engine({"engine": "servalcat", "restrained": False}, environ={})
    assert not eng.restrained and eng.monlib is None
    ph = make_engine({"engine": "phenix", "phenix": {"macro_cycles": 2, "envmodules": ["phenix/1.21"]}})
    assert isinstance(ph, PhenixEngine) and ph.macro_cycles == 2 and ph.envmodules == ["phenix/1.21"]
    with pytest.raises(LocScaleInputError, match="unknown refinement engine"):
        make_engine({"engine": "refmac"})


# ---------------------------------------------------------------------- availability (real PATH lookups)
def test_phenix_missing_says_how_to_provide_it(tmp_path, monkeypatch):
    if shutil.which("phenix.real_space_refine"):
        pytest.skip("PHENIX is installed here")
    with pytest.raises(EngineUnavailableError) as exc:
        PhenixEngine().check_available()
    msg = str(exc.value)
    assert "phenix.real_space_refine" in msg and "env_script" in msg and "envmodules" in msg
    assert PHENIX_HOWTO in msg
    with pytest.raises(EngineUnavailableError, match="does not exist"):
        PhenixEngine(env_script=tmp_path / "missing_env.sh").check_available()
    script = tmp_path / "env.sh"
    script.write_text("export LOCSCALE_TEST_ENV=1\n")
    with pytest.raises(EngineUnavailableError, match="still not found"):
        PhenixEngine(env_script=script).check_available()
    with pytest.raises(EngineUnavailableError, match="--sdm env-modules"):
        PhenixEngine(envmodules=["phenix/1.21"]).check_available(envmodules_active=False)


def test_env_script_is_sourced_before_the_lookup(tmp_path):
    """The env-script route finds a program that only the sourced script puts on PATH (here a stand-in named
    phenix.real_space_refine in a folder only the script adds); another program's name is refused."""
    exe_dir = tmp_path / "phenix_bin"
    exe_dir.mkdir()
    exe = exe_dir / "phenix.real_space_refine"
    exe.write_text("#!/bin/sh\necho 1.21.2\n")
    exe.chmod(0o755)
    script = tmp_path / "env.sh"
    script.write_text(f'export PATH="{exe_dir}:$PATH"\n')
    found = PhenixEngine(env_script=script).check_available()
    assert Path(found) == exe
    with pytest.raises(EngineUnavailableError, match="not phenix.real_space_refine"):
        PhenixEngine(executable="bash", env_script=script).check_available()


def test_servalcat_is_available_or_says_how_to_install():
    if shutil.which("servalcat"):
        assert Path(ServalcatEngine().check_available()).name == "servalcat"
    with pytest.raises(EngineUnavailableError, match="pip install servalcat==0.4.142"):
        ServalcatEngine(executable="servalcat-not-here").check_available()


# ---------------------------------------------------------------------- real refinement
@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_servalcat_b_refinement_on_crop(crop, tmp_path):
    crop_map, crop_model = crop
    workdir = tmp_path / "refine"
    workdir.mkdir()
    (workdir / "stale.txt").write_text("from an earlier run")
    res = ServalcatEngine(ncycle=5).run(crop_model, 3.2, workdir, target_map=crop_map, threads=1)
    assert not (workdir / "stale.txt").exists()  # each run starts in an emptied folder
    assert res.model.exists() and res.model.parent.resolve() == workdir.resolve()
    assert "--unrestrained" in res.command and "--fix_xyz" in res.command and "--bfactor" in res.command
    before, after = read_model(crop_model), gemmi.read_structure(str(res.model))  # its B may be ≤ 0
    # --fix_xyz: coordinates unchanged (servalcat writes 3 decimals: 0.0005 Å rounding, 1e-3 with float error)
    np.testing.assert_allclose(atom_positions(after), atom_positions(before), atol=1e-3)
    b0, b1 = b_factors(before), b_factors(after)
    assert b0.std() < 5 and b1.std() > 10  # deposited B nearly uniform; refined B spread out
    st = res.stats
    assert st["cycles"] == 5
    # B refinement of a uniform-B model can only improve servalcat's own fit to its target map
    assert st["fsc_average_target"] > st["fsc_average_target_start"]
    # the relative B come from a second run against the blurred target that no atom touched the floor of, and sit
    # at the first run's level
    assert st["relative_b_atoms_at_servalcat_floor"] == 0 and st["relative_b_runs"] >= 1
    assert b1.mean() == pytest.approx(st["b_mean_servalcat"], abs=0.01)
    assert read_servalcat_stats(workdir / "missing_stats.json") == {}
    rec = res.record()
    assert rec["engine"] == "servalcat" and rec["restrained"] is False and rec["refine_seconds"] > 0


@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_servalcat_b_refinement_runs_its_two_programs_side_by_side(crop, tmp_path):
    """A B-factor-only refinement starts both of its runs (against the target: the level; against the blurred
    target: the relative B) from the uniform B, so with two threads they run at the same time: the same model as
    one after the other, bit for bit (servalcat is deterministic), and relative B that agree with those of the
    blurred run started from the first run's B-factors (10 cycles each: correlation 0.9998, rms 1.0 Å² on this
    crop; 0.999996 and 0.31 Å² on the 256³ TRPV1 phantom)."""
    crop_map, crop_model = crop
    engine = ServalcatEngine(ncycle=10)
    assert engine.job_threads(4) == 2 and engine.for_cross_validation().job_threads(4) == 1
    together = engine.run(crop_model, 3.2, tmp_path / "together", target_map=crop_map, threads=2)
    apart = engine.run(crop_model, 3.2, tmp_path / "apart", target_map=crop_map, threads=1)
    b2, b1 = b_factors(read_model(together.model)), b_factors(read_model(apart.model))
    np.testing.assert_array_equal(b2, b1)
    assert together.stats == apart.stats
    runs = [ln for ln in (tmp_path / "together" / "engine.log").read_text().splitlines() if ln.startswith("# in ")]
    assert len(runs) == 2 and all("--bfactor" in ln for ln in runs)  # both from the uniform start
    assert sum("--blur" in ln for ln in runs) == 1
    # a caller that places the level itself (keep_level=False): the blurred run alone, on one core, with the same
    # relative B (the same program and arguments as the side-by-side blurred run; B written with 2 decimals)
    assert engine.job_threads(4, keep_level=False) == 1
    alone = engine.run(crop_model, 3.2, tmp_path / "alone", target_map=crop_map, threads=2, keep_level=False)
    runs = [ln for ln in (tmp_path / "alone" / "engine.log").read_text().splitlines() if ln.startswith("# in ")]
    assert len(runs) == 1 and "--blur" in runs[0] and "blurred run" in alone.stats["b_level_from"]
    b_alone = b_factors(read_model(alone.model))
    np.testing.assert_allclose(b_alone - b_alone.mean(), b2 - b2.mean(), atol=0.011)
    assert b_alone.mean() == pytest.approx(alone.stats["b_mean_servalcat"], abs=0.005)
    # the protocol that waits: the blurred run from the first run's B-factors
    start = tmp_path / "together" / "refined.mmcif"
    cmd = engine.launch_command(engine.relative_b_command(start, 3.2, together.stats["relative_b_blur"],
                                                          target_map=crop_map))
    (tmp_path / "after").mkdir()
    subprocess.run(cmd, cwd=tmp_path / "after", check=True, capture_output=True)
    b_after = b_factors(read_model(tmp_path / "after" / "relative.mmcif"))
    assert np.corrcoef(b2, b_after)[0, 1] >= 0.999


@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_servalcat_without_difference_maps_refines_the_same_model(crop, tmp_path, monlib):
    """By default servalcat runs without its Fo-Fc maps, MTZ and viewer scripts (nothing in the cycle reads them)
    and builds its non-bonded list once for fixed coordinates: the refined model and the statistics are the ones
    servalcat's own command line writes (restrained, so the non-bonded list is used), the maps are not written;
    refine.servalcat.write_maps: true runs servalcat's command line unchanged."""
    crop_map, crop_model = crop
    lean = ServalcatEngine(ncycle=2, monlib=monlib)
    full = ServalcatEngine(ncycle=2, monlib=monlib, write_maps=True)
    cmd = lean.command(crop_model, 3.2, target_map=crop_map)
    assert lean.launch_command(cmd)[1:3] == ["-m", "locscale.engines.servalcat_lean"]
    assert lean.launch_command(cmd)[3:] == cmd[1:]
    assert full.launch_command(cmd) == cmd
    assert ServalcatEngine(executable="/elsewhere/servalcat").launch_command(cmd) == cmd
    a = lean.run(crop_model, 3.2, tmp_path / "lean", target_map=crop_map)
    b = full.run(crop_model, 3.2, tmp_path / "full", target_map=crop_map)
    assert a.command[2] == "locscale.engines.servalcat_lean" and b.command[0] == "servalcat"
    np.testing.assert_array_equal(b_factors(read_model(a.model)), b_factors(read_model(b.model)))
    np.testing.assert_array_equal(atom_positions(read_model(a.model)), atom_positions(read_model(b.model)))
    assert a.stats == b.stats
    written = {p.name for p in (tmp_path / "full").iterdir()} - {p.name for p in (tmp_path / "lean").iterdir()}
    assert {"refined_maps.mtz", "refined_normalized_fofc.mrc"} <= written, written
    assert not list((tmp_path / "lean").glob("*.mtz")) and not list((tmp_path / "lean").glob("*fofc*"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_servalcat_restrained_with_monomer_library(crop, tmp_path, monlib):
    crop_map, crop_model = crop
    res = ServalcatEngine(monlib=monlib, ncycle=3).run(crop_model, 3.2, tmp_path / "r", target_map=crop_map)
    assert res.restrained and "--monlib" in res.command and "--unrestrained" not in res.command
    assert np.isfinite(res.stats["fsc_average_target"])
    assert b_factors(gemmi.read_structure(str(res.model))).std() > 5


# ---------------------------------------------------------------------- engines as plug-ins (locscale.engines)
REPO = Path(__file__).resolve().parents[1]
#: every schema that lists refine.engine values: file -> path of keys to the enum
ENGINE_ENUMS = {
    "workflow/schemas/config.schema.yaml": ("properties", "refine", "properties", "engine", "enum"),
    "workflow/schemas/cycle_row.schema.yaml": ("properties", "engine", "enum"),
}


def engine_enum_gaps(engines) -> dict[str, set[str]]:
    """Schema file -> registered engine names its enum lacks (or lists without registration); empty when every
    schema agrees with `engines`."""
    import yaml

    gaps = {}
    for rel, keys in ENGINE_ENUMS.items():
        node = yaml.safe_load((REPO / rel).read_text())
        for k in keys:
            node = node[k]
        diff = set(engines) ^ set(node)
        if diff:
            gaps[rel] = diff
    return gaps


def test_schema_engine_enums_and_envs_match_the_registry():
    from locscale.engines import ENGINES

    assert engine_enum_gaps(ENGINES) == {}
    for cls in ENGINES.values():
        assert (REPO / "envs" / cls.conda_env).is_file(), cls  # the refine rule's conda env exists


def test_adding_an_engine_is_one_class_and_one_registration(tmp_path, monkeypatch):
    """A toy engine: one class, one register() call; make_engine builds it from a config dict, the workflow's
    checks and cross-validation go through its methods, and the schema check names it as missing from the enums."""
    from locscale import engines
    from locscale.engines import RefinementEngine, RefinementResult, make_engine, register

    class ToyEngine(RefinementEngine):
        name = "toy"
        conda_env = "locscale.yaml"

        def __init__(self, scale=1.0):
            self.scale = scale

        @classmethod
        def from_config(cls, refine_config, environ=None):
            return cls(**(refine_config.get("toy") or {}))

        def check_available(self, *, envmodules_active=False):
            return "/bin/true"

        def run(self, model, resolution, workdir, *, target_map=None, half_maps=None, threads=1, log=None,
                prefix="refined", step=None):
            return RefinementResult(self.name, Path(model), ["toy"], Path(workdir), 0.0, True, False)

    monkeypatch.setattr(engines, "ENGINES", dict(engines.ENGINES))  # the registration ends with the test
    register(ToyEngine)
    eng = make_engine({"engine": "toy", "toy": {"scale": 2.0}})
    assert isinstance(eng, ToyEngine) and eng.scale == 2.0 and eng.envmodules == []
    assert eng.check_before_workflow({"CONDA"}) is None  # its conda env provides the program
    assert eng.check_before_workflow(set()) == "/bin/true"
    with pytest.raises(LocScaleInputError, match="cannot cross-validate"):
        eng.for_cross_validation()
    assert engine_enum_gaps(engines.ENGINES) == {rel: {"toy"} for rel in ENGINE_ENUMS}
    with pytest.raises(ValueError, match="already registered"):
        register(type("OtherToy", (ToyEngine,), {}))


def test_cross_validation_engines():
    sv = ServalcatEngine(executable="sv", monlib=Path("/lib"), refine_xyz=False, ncycle=4, extra_args=["--x"],
                         jellybody=True, weight=5)
    cv = sv.for_cross_validation()
    assert cv.refine_xyz and cv.restrained and cv.ncycle == 4 and not cv.jellybody and cv.weight is None
    assert cv.extra_args == ["--cross_validation"] and cv.executable == "sv"
    assert not ServalcatEngine().for_cross_validation().refine_xyz  # unrestrained: B only
    assert "--cross_validation" in cv.command("m", 3, half_maps=["a", "b"])
    with pytest.raises(LocScaleInputError, match="cross_validation.enabled: false"):
        PhenixEngine().for_cross_validation()


def test_usage_line_counts_the_tools_a_job_ran(tmp_path):
    """Every workflow job ends its log with the CPU seconds and peak memory of its own process and of the tools it
    waited for (the kernel's figures), which benchmarks/bench_cycle.py reads back; run_logged's environment
    argument reaches the tool."""
    import json

    from locscale.tools.process import USAGE_PREFIX, process_usage, read_usage_line, run_logged, usage_line

    before = process_usage()
    log = tmp_path / "job.log"
    code = "import os, time; x = bytearray(200 * 2**20); t = time.process_time()\n" \
           "while time.process_time() - t < 0.3: pass\nprint(os.environ['LOCSCALE_TEST_VALUE'])"
    run_logged([sys.executable, "-c", code], tmp_path, log, environ={**os.environ, "LOCSCALE_TEST_VALUE": "seen"})
    with open(log, "a") as fh:
        fh.write("some tool output\n" + usage_line(start=0.0) + "\nmore output\n")
    u = read_usage_line(log)
    assert "seen" in log.read_text()
    assert u["cpu_children_s"] - before["cpu_children_s"] >= 0.25  # the child's busy loop, not this process
    assert u["peak_children_mb"] >= 200  # the child's 200 MB buffer
    assert u["wall_s"] == pytest.approx(u["end"] - u["start"]) and u["start"] == 0.0
    assert json.loads(usage_line()[len(USAGE_PREFIX):])["peak_self_mb"] > 0
    assert read_usage_line(tmp_path / "missing.log") is None

"""What the command line and the library refuse (README, "What we refuse and why"), each case with real files:
half maps that are not independent halves, a model that fits better a few voxels away, a CA trace, a model map
that is the map, a phantom prefix that leaves its folder, a full disk, and the workflow config's values (NaN,
repeated keys, unanchored names, extra arguments and executables that would write elsewhere or run something
else, quoted placeholders, a FASTA header naming a chain the model lacks)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest
import yaml

from locscale.cli import main
from locscale.errors import LocScaleInputError
from locscale.mapio import read_half_maps, read_map, write_map
from locscale.models import read_model, shift_model, write_model

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


# ---------------------------------------------------------------------- half maps
@pytest.fixture(scope="module")
def halves(tmp_path_factory, model_5me2):
    """A SIMULATED phantom of 5ME2 chain A (48³ at 1.05 Å, half-map FSC 0.143 at 3.5 Å): two independent halves
    and their mean, the full map."""
    from locscale.phantoms.phantom import crop_model, make_phantom

    st = crop_model(read_model(model_5me2), ["A"])
    return make_phantom(st, (48, 1.05), seed=4, resolution=3.5, b_global=60.0).write(
        tmp_path_factory.mktemp("halves"))


def test_full_map_given_as_a_half_map_is_refused(halves, tmp_path, capsys):
    """The full map (the halves' mean) given as one half: its FSC with the other half never falls below 0.71, so
    the resolution came out as Nyquist (2.10 Å instead of 3.5 Å) and the FSC weights near 1."""
    out = tmp_path / "global.mrc"
    rc, text = run_cli(["global-sharpen", halves["full"], "-r", "3.5", "--half-maps", halves["full"],
                        halves["half1"], "-o", out], capsys)
    assert rc == 2 and "not independent" in text and not out.exists()
    rc, text = run_cli(["sharpen", "--half-maps", halves["half1"], halves["full"], "--model-map",
                        halves["signal"], "-r", "3.5", "-o", out, "-q"], capsys)
    assert rc == 2 and "not independent" in text and not out.exists()
    for pair in ((halves["full"], halves["half1"]), (halves["half2"], halves["full"])):
        with pytest.raises(LocScaleInputError, match="not independent") as exc:
            read_half_maps(*pair)
        assert "full map" in str(exc.value) and "cross-power" in str(exc.value)
    from locscale.checks import check_half_maps_independent

    h1, h2 = read_half_maps(halves["half1"], halves["half2"])  # the true halves pass
    st = check_half_maps_independent(h1.data, h2.data, h1.apix)
    assert st["fsc_min"] < 0.143 and st["outer_cross_over_own"] < 0.3 and st["outer_power_ratio"] > 0.95


def test_half_maps_that_agree_like_copies_are_refused(halves, tmp_path):
    """A half map and a re-saved copy of it with a little noise: FSC ≥ 0.9 in every shell up to Nyquist, where
    independent halves correlate near 0."""
    h1 = read_map(halves["half1"])
    rng = np.random.default_rng(0)
    copy = h1.like(h1.data + 0.05 * h1.data.std() * rng.standard_normal(h1.shape).astype(np.float32))
    write_map(tmp_path / "copy.mrc", copy)
    with pytest.raises(LocScaleInputError, match="not independent"):
        read_half_maps(halves["half1"], tmp_path / "copy.mrc")


def test_fsc_above_0143_up_to_nyquist_is_a_warning(model_5me2, tmp_path):
    """Independent halves whose FSC stays above 0.143 up to Nyquist (a phantom at 2.1 Å on 1.05 Å voxels): used,
    with a warning that the resolution computed from them is Nyquist, a bound."""
    from locscale.phantoms.phantom import crop_model, make_phantom

    st = crop_model(read_model(model_5me2), ["A"])
    ph = make_phantom(st, (48, 1.05), seed=1, resolution=2.1, b_global=80.0)
    from locscale.checks import check_half_maps_independent

    with pytest.warns(UserWarning, match="never falls below 0.143 up to Nyquist"):
        stats = check_half_maps_independent(ph.half1.data, ph.half2.data, ph.half1.apix)
    assert stats["fsc_min"] >= 0.143 and stats["outer_cross_over_own"] < 0.9


# ---------------------------------------------------------------------- models
def test_model_a_few_voxels_off_is_refused_with_the_shift(emd3488_map, model_5me2, tmp_path, capsys):
    """5ME2 moved by 2 voxels (2.1 Å: CC 0.10 against 0.72 in place) and by 6 voxels (CC 0.05, which beat the
    10-20 Å null) passed `check`; now the scan of ±1-3 voxel moves finds the better fit and says where."""
    apix = read_map(emd3488_map).apix
    for voxels, best in ((2, "(-2, +0, +0) voxels"), (6, None)):
        moved = write_model(shift_model(read_model(model_5me2), [voxels * apix, 0, 0]), tmp_path / f"m{voxels}.pdb")
        rc, text = run_cli(["check", emd3488_map, "-m", moved, "-r", "3.2"], capsys)
        assert rc == 2 and "not where it fits" in text, text
        if best:
            assert best in text and "-2.10" in text
    out = tmp_path / "out.mrc"
    rc, text = run_cli(["sharpen", emd3488_map, "-m", tmp_path / "m2.pdb", "-r", "3.2", "-o", out, "-q"], capsys)
    assert rc == 2 and "not where it fits" in text and not out.exists()
    rc, text = run_cli(["check", emd3488_map, "-m", model_5me2, "-r", "3.2"], capsys)
    assert rc == 0 and "model fits the map" in text


def _keep_atoms(st: gemmi.Structure, names: set[str]) -> gemmi.Structure:
    st = st.clone()
    for ch in st[0]:
        for res in ch:
            for i in reversed(range(len(res))):
                if res[i].name not in names:
                    del res[i]
    st.remove_empty_chains()
    return st


def test_ca_trace_is_refused_and_a_backbone_without_side_chains_warned(emd3488_map, model_5me2, tmp_path, capsys):
    st = read_model(model_5me2)
    ca = write_model(_keep_atoms(st, {"CA"}), tmp_path / "ca.pdb")
    rc, text = run_cli(["check", emd3488_map, "-m", ca, "-r", "3.2"], capsys)
    assert rc == 2 and "single atom (a CA or P trace)" in text and "PULCHRA" in text
    from locscale.checks import check_model_atoms

    backbone = _keep_atoms(st, {"N", "CA", "C", "O"})
    with pytest.warns(UserWarning, match="no side-chain atom"):
        counts = check_model_atoms(backbone, "backbone.pdb")
    assert counts["backbone_only_residues"] > 400
    assert check_model_atoms(st)["single_atom_residues"] == 0  # the deposited model: no warning, no error


def test_model_map_equal_to_the_map_is_refused(emd3488_map, tmp_path, capsys):
    out = tmp_path / "out.mrc"
    rc, text = run_cli(["sharpen", emd3488_map, "--model-map", emd3488_map, "-r", "3.2", "-o", out, "-q"], capsys)
    assert rc == 2 and "model map is the map itself" in text and not out.exists()
    emap = read_map(emd3488_map)
    scaled = write_map(tmp_path / "scaled.mrc", emap, data=2.0 * emap.data + 1.0)
    rc, text = run_cli(["sharpen", emd3488_map, "--model-map", scaled, "-r", "3.2", "-o", out, "-q"], capsys)
    assert rc == 2 and "model map is the map itself" in text and not out.exists()


def test_phantom_prefix_cannot_leave_the_output_folder(model_5me2, tmp_path, capsys):
    """`--prefix ../SIMULATED` wrote ../SIMULATED_model.pdb over the command's own input (rc 0)."""
    inp = tmp_path / "SIMULATED_model.pdb"
    shutil.copy(model_5me2, inp)
    before = inp.read_bytes()
    (tmp_path / "out").mkdir()
    rc, text = run_cli(["phantom", inp, "-o", tmp_path / "out", "--prefix", "../SIMULATED", "--chains", "A",
                        "--box", "48", "--apix", "1.05"], capsys)
    assert rc == 2 and "folder part" in text
    assert inp.read_bytes() == before and list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------- a full disk
def in_small_disk(folder: Path, size: str, script: str) -> subprocess.CompletedProcess:
    """Run the shell `script` with a `size` tmpfs mounted on `folder`, in a mount namespace of its own (nothing is
    mounted outside the call); skips where that is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    inner = f"mount -t tmpfs -o size={size} tmpfs '{folder}' && {script}"
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        if shutil.which(prefix[0]) is None:
            break
        probe = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=4k tmpfs '{folder}'"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
            return subprocess.run([*prefix, "sh", "-c", inner], capture_output=True, text=True, env=env,
                                  timeout=600)
    pytest.skip("cannot mount a small tmpfs here (needs root or user namespaces)")


def test_full_disk_is_one_line_and_leaves_nothing(emd3488_map, model_5me2, tmp_path):
    small = tmp_path / "small"
    py = sys.executable
    r = in_small_disk(small, "200k", f"""
{py} -m locscale.cli simulate '{model_5me2}' --like '{emd3488_map}' -o '{small}/mm.mrc'; echo "rc=$?"
{py} -c "from locscale.outputs import write_text_atomic; write_text_atomic('{small}/big.json', 'x' * 400000)" \
    2>&1 | tail -2
ls -A '{small}'; echo listed""")
    text = r.stdout + r.stderr
    assert "rc=2" in text, text
    # known size (a map): refused before writing, with what it needs and what is free
    assert "mm.mrc: not enough disk space to write this file: it needs 4.0 MB" in text and "free there" in text
    # unknown size (a record): stopped when the disk filled, the partial file removed
    assert "big.json: not enough disk space to write this file: it needs more than" in text
    listing = r.stdout.strip().splitlines()
    assert listing[-1] == "listed" and not ({"mm.mrc", "big.json"} & set(listing)), listing
    assert ".partial" not in r.stdout


@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_servalcat_on_a_full_disk_leaves_no_truncated_output(emd3488_map, model_5me2, tmp_path):
    """servalcat writes its own files; on a full disk it left a truncated refined.mmcif (73 of 107 KB) or
    refined_normalized_fofc.mrc with their final names. Now the run fails with one line and only its logs stay."""
    from conftest import crop_example

    crop_map, crop_model = crop_example(emd3488_map, model_5me2, tmp_path / "crop")
    small = tmp_path / "small"
    r = in_small_disk(small, "120k", f"""{sys.executable} -c "
from locscale.engines import ServalcatEngine
from locscale.errors import LocScaleInputError
try:
    ServalcatEngine(ncycle=1).run('{crop_model}', 3.2, '{small}/adp', target_map='{crop_map}', log='{tmp_path}/sv.log')
except LocScaleInputError as err:
    print('REFUSED', err)
"
find '{small}' -type f""")
    text = r.stdout + r.stderr
    assert "REFUSED" in text and "not enough disk space to write the files of this folder" in text, text[-3000:]
    files = [Path(line) for line in r.stdout.splitlines() if line.startswith(str(small))]
    assert files and all(p.suffix == ".log" for p in files), files


# ---------------------------------------------------------------------- the workflow config
def _config(**over):
    cfg = {"datasets": {"x": {"map": "data/m.mrc", "model": "data/m.cif", "resolution": 3.2}}}
    cfg.update(over)
    return cfg


SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.parametrize("path", ["tolerances.cc_mask", "tolerances.kurtosis", "selection.fsc_tolerance",
                                  "selection.max_b_drift", "selection.max_rama_outliers_increase",
                                  "selection.rmsz_ceiling", "datasets.x.initial_b", "datasets.x.model_shift",
                                  "refine.servalcat.weight", "cross_validation.shake", "model_completion.coot.min_fit"])
def test_nan_and_inf_are_refused_anywhere_before_any_job(path):
    """NaN passes every JSON-schema bound: it was refused only for resolution and window settings, and elsewhere
    failed after cycle 1, gave a traceback, or switched a flag off."""
    from locscale.cycle.config import validate_config

    for bad in (math.nan, math.inf):
        cfg = _config()
        node, *keys = path.split(".")
        target = cfg.setdefault(node, {})
        for k in keys[:-1]:
            target = target.setdefault(k, {})
        target[keys[-1]] = [0.0, bad, 0.0] if keys[-1] == "model_shift" else bad
        with pytest.raises(LocScaleInputError, match=r"is not a finite number") as exc:
            validate_config(cfg, SCHEMA)
        assert f"key {path}" in str(exc.value)


def test_repeated_yaml_keys_and_unanchored_names_are_refused(tmp_path):
    from locscale.cycle.config import check_config_files, validate_config

    path = tmp_path / "c.yaml"
    path.write_text("max_cycles: 3\nrefine:\n  threads: 2\n  threads: 8\nmax_cycles: 4\n")
    with pytest.raises(LocScaleInputError, match=r"repeats the key\(s\) threads \(line 4\), max_cycles \(line 5\)"):
        check_config_files([path])
    check_config_files([REPO / "config" / "config.yaml"])
    for bad in ({"datasets": {"crop\n": {"map": "m", "model": "c", "resolution": 3}}},
                {"datasets": {"crop": {"map": "m", "pdb": "3J5P\n", "resolution": 3}}}):
        with pytest.raises(LocScaleInputError, match="does not match"):
            validate_config(bad, SCHEMA)


@pytest.mark.parametrize("args", [["-o", "/elsewhere/evil"], ["-o/elsewhere/evil"], ["--output_prefix=x"],
                                  ["--out", "x"], ["-d", "2"], ["--model", "other.pdb"], ["--map", "m.mrc"],
                                  ["--halfmaps", "a", "b"], ["--config", "c.yaml"], ["--hydrogen", "yes"],
                                  ["--ncycle", "3"]])
def test_servalcat_extra_args_cannot_override_the_workflow(args):
    """refine.servalcat.extra_args ["-o", "/elsewhere/evil"] made servalcat write 10 files outside results/."""
    from locscale.engines import make_engine

    with pytest.raises(LocScaleInputError, match="the workflow sets it itself"):
        make_engine({"engine": "servalcat", "restrained": False, "servalcat": {"extra_args": args}})


def test_harmless_extra_args_and_phenix_parameters():
    from locscale.engines import make_engine

    eng = make_engine({"restrained": False, "servalcat": {"extra_args": ["--blur", "-5", "--newligand_continue"]}})
    assert eng.extra_args == ["--blur", "-5", "--newligand_continue"]
    ok = make_engine({"engine": "phenix", "phenix": {"extra_args": ["ramachandran_plot_restraints.enabled=False"]}})
    assert ok.extra_args == ["ramachandran_plot_restraints.enabled=False"]
    for bad in (["output.prefix=/elsewhere/evil"], ["prefix=x"], ["other_model.pdb"], ["--overwrite"],
                ["resolution=2"], ["output.file_name=x.cif"]):
        with pytest.raises(LocScaleInputError, match="refine.phenix.extra_args"):
            make_engine({"engine": "phenix", "phenix": {"extra_args": bad}})


def test_executables_must_be_the_program_they_claim(tmp_path):
    """servalcat.executable: bash (with extra_args ["-c", ...]) passed the start-up check."""
    from locscale.engines import EngineUnavailableError, PhenixEngine, ServalcatEngine

    with pytest.raises(EngineUnavailableError, match="does not identify itself as Servalcat"):
        ServalcatEngine(executable="bash").check_available()
    with pytest.raises(EngineUnavailableError, match="not phenix.real_space_refine"):
        PhenixEngine(executable="bash").check_without_running()
    if shutil.which("servalcat"):
        assert Path(ServalcatEngine().check_available()).name == "servalcat"


def test_command_placeholders_are_quoted(tmp_path):
    """A work folder named `my dir;touch PWNED;x` ran the `touch` (placeholders went into bash -c unquoted)."""
    from locscale.cycle.config import check_command_template
    from locscale.tools.process import format_command, run_logged

    hostile = tmp_path / "my dir;touch PWNED;x"
    hostile.mkdir()
    line = format_command("cp {model} {output_cif} && echo done > {workdir}/ok", {
        "model": hostile / "in.cif", "output_cif": hostile / "out.cif", "workdir": hostile})
    (hostile / "in.cif").write_text("model\n")
    run_logged(line, tmp_path, tmp_path / "log.txt", shell=True)
    assert (hostile / "out.cif").read_text() == "model\n" and (hostile / "ok").exists()
    assert not list(tmp_path.rglob("PWNED"))
    for bad, words in (("builder --in '{model}'", "inside quotes"), ('b "{map}"', "inside quotes"),
                       ("builder {modle}", "unknown placeholder"), ("builder {}", "unknown placeholder")):
        with pytest.raises(LocScaleInputError, match=words):
            check_command_template(bad)
    check_command_template("builder --map {map} --model {model} -o {output_cif} -j {threads}")


def test_fasta_header_naming_a_missing_chain_is_refused(model_5me2, tmp_path):
    from locscale.building.completion import chain_sequences

    st = read_model(model_5me2)
    seq = "VLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF"
    cases = {">Z\n": "chain(s) Z", ">A\n{s}\n>Z\n": "chain(s) Z", ">5ME2_1|Chains X, Y|alpha\n": "chain(s) X, Y",
             ">sp|P69905|HBA_HUMAN\n{s}\n>B\n": "sp"}
    for text, words in cases.items():
        fasta = tmp_path / "seq.fasta"
        fasta.write_text(text.replace("{s}", seq) + seq + "\n")
        with pytest.raises(LocScaleInputError, match=re.escape(words)):
            chain_sequences(st, fasta)
    fasta.write_text(f">5ME2_1|Chains A, C|alpha\n{seq}\n>B\n{seq}\n")
    assert set(chain_sequences(st, fasta)) == {"A", "B", "C"}
    fasta.write_text(f">sp|P69905|HBA_HUMAN\n{seq}\n")  # one record: every protein chain
    assert set(chain_sequences(st, fasta)) == {"A", "B", "C", "D"}


# ---------------------------------------------------------------------- defaults only in the schema
def _schema_defaults() -> dict[str, list]:
    """Every key that has a default in the workflow's or the experiments' config schema -> its default values."""
    found: dict[str, list] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict) and "default" in sub:
                    found.setdefault(key, []).append(sub["default"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for name in ("config.schema.yaml", "experiments.schema.yaml"):
        walk(yaml.safe_load((REPO / "workflow" / "schemas" / name).read_text()))
    return found


def test_config_defaults_live_only_in_the_schema():
    """No code reads a config key with a fallback (``.get("b_level", "fixed")``, ``.get(...) or 0.9``) when the
    schema gives that key a default (Snakemake fills it in), and no dict literal repeats two or more of a
    section's defaults (library defaults are read from the schema: locscale.cycle.config.with_schema_defaults)."""
    import ast

    defaults = _schema_defaults()
    files = [*(REPO / "locscale").rglob("*.py"), *(REPO / "workflow").rglob("*.py")]
    smk = [*(REPO / "workflow").rglob("*.smk"), REPO / "Snakefile"]
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in defaults):
                fallback = len(node.args) > 1 or (isinstance(parents.get(node), ast.BoolOp)
                                                  and isinstance(parents[node].op, ast.Or)
                                                  and parents[node].values[0] is node)
                if fallback:
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(parents.get(node, node))}")
            if isinstance(node, ast.Dict):
                same = [k.value for k, v in zip(node.keys, node.values, strict=True)
                        if isinstance(k, ast.Constant) and k.value in defaults and isinstance(v, ast.Constant)
                        and any(v.value == d and type(v.value) is type(d) for d in defaults[k.value])]
                if len(same) >= 2:
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}: defaults {same} repeated")
    pattern = re.compile(r"""\.get\(\s*["'](\w+)["']\s*(,[^)]*)?\)(\s*or\b)?""")
    for path in smk:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in pattern.finditer(line):
                if m.group(1) in defaults and (m.group(2) or m.group(3)):
                    problems.append(f"{path.relative_to(REPO)}:{n}: {m.group(0)}")
    assert not problems, "config defaults repeated in code:\n" + "\n".join(problems)

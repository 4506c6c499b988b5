"""Never destroy an input, never return a plausible wrong map.

One regression test per defect of the issue, through the real command line (``locscale.cli.main``) on small
synthetic maps (conftest.py) or the bundled example. Each asserts the exit status (2 = refused), a one-line
message (problem, then its fix; no traceback) and that inputs and outputs are as they were.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from locscale import limits, outputs
from locscale.cli import main
from locscale.cycle import config as cycle_config
from locscale.errors import LocScaleInputError
from locscale.mapio import read_map, write_map
from locscale.models import read_model, write_model

# ---------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def small(edge_cases):
    """A small map (27 × 34 × 30 voxels of 1.2156 Å, axes 3,2,1) with a model that fits it, at 3.4 Å."""
    case = edge_cases["axis321"]
    return case.map, case.model, case.resolution


def _copy(src: Path, dest: Path) -> Path:
    dest.write_bytes(Path(src).read_bytes())
    return dest


def _refused(capsys, rc, *words):
    """Exit 2 with a message of the form 'locscale CMD: error: ... / fix: ...', no traceback."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "error:" in err and "fix:" in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def _fingerprint(path: Path):
    st = os.stat(path)
    return Path(path).read_bytes(), stat.S_IMODE(st.st_mode)


# ---------------------------------------------------------------------- 1. data loss
@pytest.mark.parametrize("which", ["map", "model"])
def test_sharpen_output_that_is_an_input_is_refused(tmp_path, small, capsys, which):
    m = _copy(small[0], tmp_path / "map.mrc")
    p = _copy(small[1], tmp_path / "model.pdb")
    before = {m: _fingerprint(m), p: _fingerprint(p)}
    target = m if which == "map" else p
    rc = main(["sharpen", str(m), "-m", str(p), "-r", "3.4", "-o", str(target), "-q"])
    _refused(capsys, rc, "destroy the input")
    assert {m: _fingerprint(m), p: _fingerprint(p)} == before


def test_sharpen_info_that_is_the_map_is_refused(tmp_path, small, capsys):
    m = _copy(small[0], tmp_path / "map.mrc")
    before = _fingerprint(m)
    rc = main(["sharpen", str(m), "-m", str(small[1]), "-r", "3.4", "-o", str(tmp_path / "o.mrc"),
               "--info", str(m), "-q"])
    _refused(capsys, rc, "--info")
    assert _fingerprint(m) == before and not (tmp_path / "o.mrc").exists()


def test_other_spellings_symlinks_and_hard_links_of_an_input_are_refused(tmp_path, small, capsys):
    (tmp_path / "a").mkdir()
    m = _copy(small[0], tmp_path / "a" / "x.mrc")
    before = _fingerprint(m)
    os.symlink(m, tmp_path / "link.mrc")
    os.link(m, tmp_path / "hard.mrc")
    for spelling in (tmp_path / "a" / ".." / "a" / "x.mrc", tmp_path / "link.mrc", tmp_path / "hard.mrc"):
        rc = main(["sharpen", str(m), "-m", str(small[1]), "-r", "3.4", "-o", str(spelling), "-q"])
        _refused(capsys, rc, "destroy the input")
    assert _fingerprint(m) == before


def test_global_sharpen_simulate_and_metrics_never_overwrite_their_inputs(tmp_path, small, capsys):
    m = _copy(small[0], tmp_path / "map.mrc")
    p = _copy(small[1], tmp_path / "model.pdb")
    before = (_fingerprint(m), _fingerprint(p))
    _refused(capsys, main(["global-sharpen", str(m), "-r", "3.4", "-o", str(m)]), "destroy the input")
    _refused(capsys, main(["simulate", str(p), "--like", str(m), "-o", str(m)]), "destroy the input")
    _refused(capsys, main(["metrics", str(m), "-m", str(p), "-r", "3.4", "-o", str(m)]), "destroy the input")
    _refused(capsys, main(["metrics", str(m), "-m", str(p), "-r", "3.4", "-o", str(tmp_path / "m.json"),
                           "--fsc-tsv", str(p)]), "destroy the input")
    assert (_fingerprint(m), _fingerprint(p)) == before


def test_phantom_never_overwrites_its_input_model(tmp_path, small, capsys):
    p = _copy(small[1], tmp_path / "SIMULATED_model.pdb")
    before = _fingerprint(p)
    _refused(capsys, main(["phantom", str(p), "-o", str(tmp_path), "--box", "40"]), "prefix")
    assert _fingerprint(p) == before
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    _refused(capsys, main(["phantom", str(small[1]), "-o", str(blocker), "--box", "40"]), "is a file")


def test_read_only_output_is_not_replaced(tmp_path, small, capsys):
    out = tmp_path / "out.mrc"
    out.write_bytes(b"precious")
    out.chmod(0o444)
    rc = main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-o", str(out), "-q"])
    _refused(capsys, rc, "read-only")
    assert out.read_bytes() == b"precious" and stat.S_IMODE(out.stat().st_mode) == 0o444
    # the library's writer refuses too (workflow and scripts write through it)
    with pytest.raises(LocScaleInputError, match="read-only"):
        write_map(out, read_map(small[0]))
    assert out.read_bytes() == b"precious"


# ---------------------------------------------------------------------- 2. silent wrong results
@pytest.mark.parametrize("args, words", [
    (["-r", "0"], "not positive"),
    (["-r", "-3"], "not positive"),
    (["-r", "1e-9"], "Nyquist"),
    (["-r", "3.4", "--window-angstrom", "0"], "not positive"),
    (["-r", "3.4", "--window-angstrom", "-20"], "not positive"),
    (["-r", "3.4", "--window-angstrom", "5"], "too small"),
])
def test_sharpen_refuses_resolutions_and_windows_out_of_range(tmp_path, small, capsys, args, words):
    out = tmp_path / "o.mrc"
    rc = main(["sharpen", str(small[0]), "-m", str(small[1]), *args, "-o", str(out), "-q"])
    _refused(capsys, rc, words)
    assert not out.exists()


def test_constant_map_is_refused_by_sharpen_and_check(tmp_path, small, capsys):
    src = read_map(small[0])
    const = write_map(tmp_path / "const.mrc", src, np.full(src.shape, 0.37, np.float32))
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", str(const), "-m", str(small[1]), "-r", "3.4", "-o", str(out), "-q"]),
             "constant")
    assert not out.exists()
    err = _refused(capsys, main(["check", str(const), "-m", str(small[1]), "-r", "3.4"]), "constant")
    assert "frame" not in err.split("fix:")[0]


def test_sharpen_runs_the_checks_of_check(tmp_path, emd3488_map, model_5me2, capsys):
    """A model that lies in the box but does not fit the map (5ME2 moved by 30 Å) is refused by sharpen as by
    check, instead of giving a plausible map."""
    from locscale.models import shift_model

    moved = write_model(shift_model(read_model(model_5me2), (30.0, 0.0, 0.0)), tmp_path / "moved.pdb")
    out = tmp_path / "o.mrc"
    rc = main(["sharpen", str(emd3488_map), "-m", str(moved), "-r", "3.2", "-o", str(out), "-q"])
    _refused(capsys, rc, "does not fit this map")
    # without -r, at the resolution the window implies (21 voxels × 1.05 Å / 7 = 3.15 Å)
    rc = main(["sharpen", str(emd3488_map), "-m", str(moved), "-w", "21", "-o", str(out), "-q"])
    _refused(capsys, rc, "does not fit this map")
    assert not out.exists()


# ---------------------------------------------------------------------- 3. silent empty results
def test_all_zero_map_is_refused_everywhere(tmp_path, small, capsys):
    src = read_map(small[0])
    zero = write_map(tmp_path / "zero.mrc", src, np.zeros(src.shape, np.float32))
    out, js = tmp_path / "o.mrc", tmp_path / "m.json"
    _refused(capsys, main(["sharpen", str(zero), "-m", str(small[1]), "-r", "3.4", "-o", str(out), "-q"]),
             "all zeros")
    _refused(capsys, main(["metrics", str(zero), "-m", str(small[1]), "-r", "3.4", "-o", str(js)]), "all zeros")
    _refused(capsys, main(["global-sharpen", str(zero), "-r", "3.4", "-o", str(out)]), "all zeros")
    err = _refused(capsys, main(["check", str(zero), "-m", str(small[1]), "-r", "3.4"]), "all zeros")
    assert "frame" not in err.split("fix:")[0]
    assert not out.exists() and not js.exists()


def test_metrics_never_writes_nan_for_a_model_outside_or_an_empty_kurtosis_mask(tmp_path, small, capsys):
    from locscale.models import shift_model

    far = write_model(shift_model(read_model(small[1]), (300.0, 0.0, 0.0)), tmp_path / "far.pdb")
    js = tmp_path / "m.json"
    _refused(capsys, main(["metrics", str(small[0]), "-m", str(far), "-r", "3.4", "-o", str(js)]),
             "lie inside the map box")
    src = read_map(small[0])
    empty = write_map(tmp_path / "empty_mask.mrc", src, np.zeros(src.shape, np.float32))
    _refused(capsys, main(["metrics", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-o", str(js),
                           "--kurtosis-mask", str(empty)]), "kurtosis mask holds 0")
    assert not js.exists()


def test_zero_occupancy_model_is_refused(tmp_path, small, capsys):
    st = read_model(small[1])
    for ch in st[0]:
        for res in ch:
            for at in res:
                at.occ = 0.0
    p = write_model(st, tmp_path / "occ0.pdb")
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(p), "-r", "3.4", "-o", str(out), "-q"]),
             "occupancy 0")
    assert not out.exists()


# ---------------------------------------------------------------------- 4. silent model problems
def _pdb_lines(path):
    return [line for line in Path(path).read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]


@pytest.mark.parametrize("case, expected", [
    ("no_b_column", "no B-factor column"),
    ("all_b_zero", "every atom has B = 0"),
    ("negative_b", "negative B"),
])
def test_b_factor_problems_are_warned_and_recorded(tmp_path, small, capsys, case, expected):
    lines = _pdb_lines(small[1])
    if case == "no_b_column":
        lines = [line[:60] for line in lines]
    elif case == "all_b_zero":
        lines = [line[:60] + "  0.00" + line[66:] for line in lines]
    else:
        lines = [line[:60] + " -5.00" + line[66:] if i % 3 == 0 else line for i, line in enumerate(lines)]
    p = tmp_path / f"{case}.pdb"
    p.write_text("\n".join(lines) + "\nEND\n")
    out, info = tmp_path / "o.mrc", tmp_path / "o.json"
    rc = main(["sharpen", str(small[0]), "-m", str(p), "-r", "3.4", "-o", str(out), "--info", str(info), "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "warning:" in err and expected in err
    record = json.loads(info.read_text())
    assert any(expected in w for w in record["warnings"])


@pytest.mark.parametrize("coordinate", ["     nan", "     inf", "********", "  1.2.3 "])
def test_non_finite_or_garbled_coordinates_are_refused(tmp_path, small, capsys, coordinate):
    lines = _pdb_lines(small[1])
    lines[5] = lines[5][:30] + coordinate + lines[5][38:]
    p = tmp_path / "bad.pdb"
    p.write_text("\n".join(lines) + "\nEND\n")
    out = tmp_path / "o.mrc"
    err = _refused(capsys, main(["sharpen", str(small[0]), "-m", str(p), "-r", "3.4", "-o", str(out), "-q"]),
                   "coordinates")
    assert "outside the map box" not in err and not out.exists()


def test_clean_inputs_give_an_empty_warnings_list(tmp_path, small, capsys):
    info = tmp_path / "o.json"
    assert main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-o", str(tmp_path / "o.mrc"),
                 "--info", str(info), "-q"]) == 0
    assert json.loads(info.read_text())["warnings"] == []


# ---------------------------------------------------------------------- 5. limits
def test_window_larger_than_the_box_is_warned(tmp_path, small, capsys):
    info = tmp_path / "o.json"
    rc = main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-w", "32", "--mode", "fast",
               "-o", str(tmp_path / "o.mrc"), "--info", str(info), "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "larger than the map box" in err
    assert any("larger than the map box" in w for w in json.loads(info.read_text())["warnings"])


def test_huge_window_is_refused_for_memory_before_allocating(tmp_path, emd3488_map, model_5me2, capsys):
    """-w 1000 on a 100³ map: near-exact would need the per-shell kernels alone, 8 B × 501 × 1000³ = 3.7 TiB."""
    out = tmp_path / "o.mrc"
    err = _refused(capsys, main(["sharpen", str(emd3488_map), "-m", str(model_5me2), "-r", "3.2", "-w", "1000",
                                 "-o", str(out), "-q"]), "GiB of memory", "smaller window")
    assert not out.exists()
    need = float(err.split("needs about ")[1].split(" GiB")[0])
    assert need > 8 * 501 * 1000**3 / 2**30
    # compat (and exact) stream windows: one batch of 1000³ windows per thread is 18 GB (window + spectra)
    err = _refused(capsys, main(["sharpen", str(emd3488_map), "-m", str(model_5me2), "-r", "3.2", "-w", "1000",
                                 "--mode", "compat", "--workers", "2", "-o", str(out), "-q"]), "GiB of memory")
    assert float(err.split("needs about ")[1].split(" GiB")[0]) > 2 * 4 * 1000**3 / 2**30
    assert not out.exists()


def test_memory_estimate_and_refusal():
    """The estimate grows with the padded box and the window; refused above 80 % of what is available."""
    small_need = limits.estimate_sharpen_bytes((100, 100, 100), 21, "near-exact", 55_000)
    assert small_need < 2**30  # measured peak of this run: 0.25-0.4 GB (benchmarks/README.md)
    limits.check_sharpen_memory((100, 100, 100), 21, "near-exact", 55_000)  # passes anywhere
    with pytest.raises(LocScaleInputError, match=r"needs about \d+\.\d GiB.*only 4\.0 GiB"):
        limits.check_sharpen_memory((400, 400, 400), 200, "near-exact", available=4 * 2**30)


def test_mask_radius_beyond_the_box_scales_the_whole_box_at_once(tmp_path, small, capsys):
    """--mask-radius 1e6 marked the whole grid once per atom (minutes); every voxel is that close to an atom."""
    info = tmp_path / "o.json"
    assert main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "--mask-radius", "1e6",
                 "-o", str(tmp_path / "o.mrc"), "--info", str(info), "-q"]) == 0
    rec = json.loads(info.read_text())
    assert rec["voxels_scaled"] == 27 * 34 * 30 and "covers the whole box" in rec["mask"]


def test_coarse_resolution_is_refused_with_a_reason(tmp_path, small, capsys):
    """-r 100 ended in a traceback asking for 382 GiB; the workflow said 'model does not fit this map'."""
    out = tmp_path / "o.mrc"
    for cmd in (["sharpen", str(small[0]), "-m", str(small[1]), "-o", str(out), "-q"],
                ["global-sharpen", str(small[0]), "-o", str(out)],
                ["check", str(small[0]), "-m", str(small[1])]):
        _refused(capsys, main([*cmd, "-r", "100"]), "coarser than")
    assert not out.exists()


def test_coarse_but_valid_resolution_is_not_called_a_bad_fit(emd3488_map, model_5me2, capsys):
    """At 40 Å the null displacements grow with the resolution (2-4 × d): the correct model is not reported as
    'does not fit this map' (it was, with 10-20 Å displacements that are no displacement at 40 Å)."""
    rc = main(["check", str(emd3488_map), "-m", str(model_5me2), "-r", "40"])
    out = capsys.readouterr()
    assert rc == 0 and "does not fit" not in out.err and "model fits the map" in out.out


def test_config_schema_uses_the_same_limits(repo_root):
    """The workflow's config schema refuses what the CLI and library refuse."""
    import jsonschema

    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    ds = schema["$defs"]["dataset"]["properties"]
    assert ds["resolution"]["maximum"] == limits.RESOLUTION_MAX
    assert ds["resolution"]["exclusiveMinimum"] == 0
    ls = schema["properties"]["sharpen"]["properties"]
    assert ls["window"]["minimum"] == limits.WINDOW_MIN
    assert ls["window_angstrom"]["exclusiveMinimum"] == 0 and ls["mask_radius"]["exclusiveMinimum"] == 0
    validator = jsonschema.Draft202012Validator(schema)
    for bad in (100.0, 0.0, -3.0):
        cfg = {"datasets": {"x": {"map": "m.mrc", "model": "m.pdb", "resolution": bad}}}
        assert list(validator.iter_errors(cfg)), bad


def _workflow_config(**top):
    return {"datasets": {"x": {"map": "data/m.mrc", "model": "data/m.pdb", "resolution": 3.2}}, **top}


def test_workflow_config_errors_name_the_key_not_the_schema(repo_root):
    """A config without datasets printed ~940 lines of schema; resolution 100 was reported as 'model does not
    fit this map' after cycle 0; NaN passes any JSON-schema bound."""
    schema = repo_root / "workflow" / "schemas" / "config.schema.yaml"
    with pytest.raises(LocScaleInputError) as exc:
        cycle_config.validate_config({"max_cycles": 3}, schema)
    msg = str(exc.value)
    assert "datasets" in msg and "required" in msg and len(msg.splitlines()) <= 2 and len(msg) < 400
    cfg = _workflow_config()
    cfg["datasets"]["x"]["resolution"] = "3.2 A"
    with pytest.raises(LocScaleInputError, match=r"key datasets\.x\.resolution.*expected type: number or null"):
        cycle_config.validate_config(cfg, schema)
    for bad, words in ((100, "maximum of 50"), (math.nan, "not a finite number"), (math.inf, "not a finite number")):
        cfg = _workflow_config()
        cfg["datasets"]["x"]["resolution"] = bad
        with pytest.raises(LocScaleInputError, match=words):
            cycle_config.validate_config(cfg, schema)
    cfg = _workflow_config(sharpen={"window_angstrom": math.nan})
    with pytest.raises(LocScaleInputError, match=r"sharpen\.window_angstrom"):
        cycle_config.validate_config(cfg, schema)
    cycle_config.validate_config(_workflow_config(), schema)  # a good config passes


def test_workflow_min_cycles_above_max_cycles_is_refused(repo_root):
    schema = repo_root / "workflow" / "schemas" / "config.schema.yaml"
    with pytest.raises(LocScaleInputError, match=r"min_cycles \(5\) is larger than max_cycles \(3\)"):
        cycle_config.validate_config(_workflow_config(min_cycles=5, max_cycles=3), schema)


def test_workflow_inputs_inside_results_are_refused(tmp_path):
    cfg = _workflow_config()
    cfg["datasets"]["x"]["map"] = str(tmp_path / "results" / "x" / "cycle_01" / "locscale.mrc")
    with pytest.raises(LocScaleInputError, match="inside the workflow's results folder"):
        cycle_config.check_config(cfg, tmp_path / "results")
    cycle_config.check_config(_workflow_config(), tmp_path / "results")


# ---------------------------------------------------------------------- 6. one line, not a traceback
@pytest.mark.parametrize("args, words", [
    (["-r", "3.4", "--mask-radius", "-2"], "mask radius"),
    (["-r", "3.4", "--mask-radius", "nan"], "mask radius"),
    (["-r", "nan"], "resolution"),
    (["-r", "inf"], "resolution"),
    (["-r", "3.4", "--window-angstrom", "nan"], "window"),
    (["-r", "3.4", "--window-angstrom", "inf"], "window"),
    (["-r", "3.4", "--dmin", "nan"], "dmin"),
])
def test_bad_values_give_one_line(tmp_path, small, capsys, args, words):
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(small[1]), *args, "-o", str(out), "-q"]), words)
    assert not out.exists()


def test_device_cuda_without_a_gpu_gives_one_line(tmp_path, small, capsys):
    from locscale.scaling import backends as gpu

    if gpu.cuda_available():
        pytest.skip("a CUDA GPU is present")
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "--device", "cuda",
                           "-o", str(out), "-q"]), "cuda")
    assert not out.exists()


def test_output_that_is_a_folder_gives_one_line_and_leaves_nothing(tmp_path, small, capsys):
    folder = tmp_path / "outdir"
    folder.mkdir()
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-o", str(folder), "-q"]),
             "is a folder")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["outdir"]
    # the library's writer: no .partial file left behind either
    with pytest.raises(LocScaleInputError, match="folder"):
        write_map(folder, read_map(small[0]))
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["outdir"]


def test_unwritable_outputs_are_found_before_the_computation(tmp_path, small, capsys):
    """A folder that cannot be written (here: below a regular file, which no user can write into) is reported
    before anything is computed; an unwritable --info leaves no map behind."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4",
                           "-o", str(blocker / "o.mrc"), "-q"]), "not a folder you can write to")
    _refused(capsys, main(["sharpen", str(small[0]), "-m", str(small[1]), "-r", "3.4", "-o", str(out),
                           "--info", str(blocker / "o.json"), "-q"]), "--info")
    assert not out.exists()


# ---------------------------------------------------------------------- 7. misleading messages
def test_identical_half_maps_are_refused(tmp_path, small, capsys):
    h1 = _copy(small[0], tmp_path / "h1.mrc")
    h2 = _copy(small[0], tmp_path / "h2.mrc")
    out = tmp_path / "o.mrc"
    _refused(capsys, main(["sharpen", "--half-maps", str(h1), str(h2), "-m", str(small[1]), "-r", "3.4",
                           "-o", str(out), "-q"]), "identical")
    _refused(capsys, main(["global-sharpen", str(h1), "--half-maps", str(h1), str(h2), "-r", "3.4",
                           "-o", str(out)]), "identical")
    assert not out.exists()


def test_image_stack_is_called_a_stack_by_the_cli(image_stack, small, capsys):
    err = _refused(capsys, main(["check", str(image_stack), "-m", str(small[1]), "-r", "3.4"]), "2-D images")
    assert "cubic voxels" not in err


def test_low_variance_map_is_warned(small):
    from locscale.checks import LocScaleWarning, check_map_content

    src = read_map(small[0]).data
    unit = (src - src.mean()) / src.std()
    with pytest.warns(LocScaleWarning, match="almost constant"):
        check_map_content(1000.0 + 0.1 * unit)  # std / rms = 1e-4
    with pytest.raises(LocScaleInputError, match="constant"):  # float32 rounding level: 1e-7 of the offset
        check_map_content((1000.0 + 1e-4 * unit).astype(np.float32))


# ---------------------------------------------------------------------- 8. a self-contained suite
def test_tests_need_nothing_outside_the_repository(repo_root, monlib):
    """No test reads ../shared (LocScale 2's output is compared from tests/data/); the monomer library comes
    from the coot-headless-api wheel."""
    users = [p.name for p in (repo_root / "tests").glob("*.py")
             if "shared" + "_data" in p.read_text() or "shared" + "/data" in p.read_text()]
    assert users == [], users
    assert (monlib / "list" / "mon_lib_list.cif").is_file() and (monlib / "ener_lib.cif").is_file()
    assert "coot_headless_api" in str(monlib)
    assert len(list(monlib.glob("?/*.cif"))) > 100


def test_writing_next_to_an_input_is_fine(tmp_path, small):
    """An output beside an input, or in a folder still to be created, passes the guard."""
    m = _copy(small[0], tmp_path / "map.mrc")
    before = m.read_bytes()
    out, info = tmp_path / "map_sharpened.mrc", tmp_path / "new" / "info.json"
    outputs.guard_outputs({"-o": out, "--info": info}, [m])  # raises on a refused output
    write_map(out, read_map(m))
    outputs.write_text_atomic(info, "{}")
    assert out.is_file() and info.read_text() == "{}" and m.read_bytes() == before


def test_every_record_written_inside_a_collect_block_lists_its_warnings(tmp_path):
    """locscale.records: a script that runs inside collect_warnings (as the CLI does) gets a `warnings` list in
    every JSON record it writes, empty when nothing was degenerate."""
    import warnings

    from locscale.checks import LocScaleWarning
    from locscale.records import collect_warnings, read_json, write_json

    echoed = []
    with collect_warnings(echoed.append):
        write_json(tmp_path / "a.json", {"x": 1})
        warnings.warn("every atom has B = 0", LocScaleWarning, stacklevel=1)
        warnings.warn("every atom has B = 0", LocScaleWarning, stacklevel=1)  # once only
        write_json(tmp_path / "b.json", {"x": 2})
    write_json(tmp_path / "c.json", {"x": 3})  # outside: unchanged record
    assert read_json(tmp_path / "a.json")["warnings"] == []
    assert read_json(tmp_path / "b.json")["warnings"] == ["every atom has B = 0"] == echoed
    assert "warnings" not in read_json(tmp_path / "c.json")


def test_every_dict_record_names_versions_and_command(tmp_path):
    """write_json adds a ``provenance`` dict: installed versions of locscale and its key dependencies (missing
    ones left out) and the command line; lists and other non-dict records are written as they are."""
    import sys
    from importlib import metadata

    from locscale.records import PROVENANCE_PACKAGES, read_json, write_json

    write_json(tmp_path / "a.json", {"x": 1})
    prov = read_json(tmp_path / "a.json")["provenance"]
    assert prov["command"] == " ".join(sys.argv) and prov["locscale"] == metadata.version("locscale")
    assert set(prov) - {"command"} <= set(PROVENANCE_PACKAGES) and "numpy" in prov
    write_json(tmp_path / "b.json", [1, 2])
    assert read_json(tmp_path / "b.json") == [1, 2]
    write_json(tmp_path / "c.json", {"x": 1}, with_provenance=False)
    assert read_json(tmp_path / "c.json") == {"x": 1}

def test_mmcif_without_b_column_is_warned_and_garbled_coordinates_refused(tmp_path, model_5ni1):
    """The same checks for mmCIF: gemmi gives B = 20 Å² without _atom_site.B_iso_or_equiv, and NaN for an
    unreadable coordinate."""
    from locscale.checks import LocScaleWarning

    lines = Path(model_5ni1).read_text().splitlines()
    tags = [i for i, line in enumerate(lines) if line.startswith("_atom_site.")]
    col = [lines[i].strip() for i in tags].index("_atom_site.B_iso_or_equiv")
    xcol = [lines[i].strip() for i in tags].index("_atom_site.Cartn_x")
    no_b, garbled = [], []
    for i, line in enumerate(lines):
        if line.startswith(("ATOM", "HETATM")):
            tok = line.split()
            bad = list(tok)
            if len(garbled) and not any(x.startswith(("ATOM", "HETATM")) for x in garbled[-1:]):
                bad[xcol] = "1.2.3"
            del tok[col]
            no_b.append(" ".join(tok))
            garbled.append(" ".join(bad))
        else:
            if i != tags[col]:
                no_b.append(line)
            garbled.append(line)
    (tmp_path / "nob.cif").write_text("\n".join(no_b) + "\n")
    (tmp_path / "garbled.cif").write_text("\n".join(garbled) + "\n")
    with pytest.warns(LocScaleWarning, match="no B-factor column"):
        read_model(tmp_path / "nob.cif")
    with pytest.raises(LocScaleInputError, match="not finite numbers"):
        read_model(tmp_path / "garbled.cif")

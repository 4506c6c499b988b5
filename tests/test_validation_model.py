"""Model validation (locscale.validation.model): Coot, cctbx and servalcat, each in its own process, checked against
the tools' own command-line programs on the bundled EMD-3488 map and 5ME2 model."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locscale.errors import LocScaleInputError
from locscale.validation.model import (
    LABELS,
    NOT_AVAILABLE,
    RESIDUE_COLUMNS,
    SUMMARY_KEYS,
    TOOLS,
    is_available,
    missing_tools,
    validate_model,
)

RESOLUTION = 3.2  # EMD-3488 (recorded only: none of the tools uses it)
MISSING = [name for name, why in missing_tools().items() if why is not None]
needs_all = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING}")


def _run(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def ramalyze_cli(model: Path, cwd: Path) -> dict:
    """{(chain, resnum, icode): (class, score %)} as printed by MolProbity's ramalyze program (cctbx)."""
    out = _run("-m", "mmtbx.command_line.ramalyze", str(model), cwd=cwd)
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\S+)\s*(-?\d+)(\D?)\s*\w{1,3}:([-\d.]+):[-\d.]+:[-\d.]+:(\w+):", line)
        if m:
            rows[(m[1], int(m[2]), m[3].strip())] = (m[5].lower().replace("favored", "favoured"), float(m[4]))
    total = re.search(r"SUMMARY: (\d+) Favored, (\d+) Allowed, (\d+) Outlier out of (\d+) residues", out)
    assert total and int(total[4]) == len(rows)
    return rows


@pytest.fixture(scope="module")
def deposited(tmp_path_factory, emd3488_map, model_5me2):
    workdir = tmp_path_factory.mktemp("mv_deposited")
    summary, table = validate_model(model_5me2, emd3488_map, RESOLUTION, workdir)
    return workdir, summary, table


@pytest.fixture(scope="module")
def shaken(tmp_path_factory, emd3488_map, model_5me2):
    """5ME2 with every atom moved by up to 0.3 Å (seed 0): wrecked geometry, many Ramachandran outliers."""
    from locscale.models import read_model, shake_model, write_model

    workdir = tmp_path_factory.mktemp("mv_shaken")
    model = write_model(shake_model(read_model(model_5me2), 0.3, seed=0), workdir / "shaken.pdb")
    summary, table = validate_model(model, emd3488_map, RESOLUTION, workdir / "validation")
    return model, summary, table


def test_constants():
    assert len(SUMMARY_KEYS) == 8 and set(LABELS) == set(SUMMARY_KEYS)
    assert set(TOOLS) == {"coot", "cctbx", "servalcat"}


@needs_all
def test_deposited_summary_and_table(deposited, model_5me2):
    workdir, summary, table = deposited
    assert set(summary) == {*SUMMARY_KEYS, "model_validation_tools", "model_validation_seconds"}
    assert all(isinstance(summary[k], float) and math.isfinite(summary[k]) for k in SUMMARY_KEYS)
    assert all(is_available(v) for v in summary["model_validation_tools"].values()), summary
    # one row per residue of the model, in file order, keyed as the project's other per-residue tables
    from locscale.models import read_model

    st = read_model(model_5me2)
    keys = [(ch.name, res.seqid.num, res.seqid.icode.strip(), res.name) for ch in st[0] for res in ch]
    assert list(zip(table.chain, table.resnum, table.icode, table.resname, strict=True)) == keys
    assert list(table.columns) == ["chain", "resnum", "icode", "resname", *RESIDUE_COLUMNS]
    assert set(table.rama) <= {"favoured", "allowed", "outlier", ""}
    assert set(table.rotamer_outlier.dropna()) <= {0.0, 1.0}
    # rotamer outliers are only defined for residues coot classifies: never GLY/ALA or the haem
    assert table.loc[table.resname.isin(["GLY", "ALA", "HEM"]), "rotamer_outlier"].isna().all()
    # percentages are of the residues each tool classified
    rama = table.rama[table.rama != ""]
    assert summary["rama_favoured_pct"] == pytest.approx(100 * (rama == "favoured").mean(), abs=1e-9)
    assert summary["rotamer_outliers_pct"] == pytest.approx(100 * table.rotamer_outlier.dropna().mean(), abs=1e-9)
    assert summary["q_score_median"] == pytest.approx(float(np.median(table.q_score.dropna())), abs=1e-9)
    # values for a good deposited model (EMD-3488 at 3.4 Å)
    assert summary["rama_outliers_pct"] == 0.0
    assert 0.3 < summary["q_score_median"] < 0.9
    assert summary["angle_rmsz"] < 1.5
    details = json.loads((workdir / "model_validation_details.json").read_text())
    assert details["outputs"]["coot"]["n_atoms"] == st[0].count_atom_sites()


@needs_all
def test_emringer_matches_cctbx_program(deposited, model_5me2, emd3488_map, tmp_path):
    """phenix.emringer's program (mmtbx.command_line.emringer) prints the score with 6 decimals."""
    out = _run("-m", "mmtbx.command_line.emringer", str(model_5me2), str(emd3488_map), "quiet=True", cwd=tmp_path)
    score = float(re.search(r"EMRinger Score: ([-\d.]+)", out)[1])
    assert deposited[1]["emringer_score"] == pytest.approx(score, abs=0.01)
    assert deposited[1]["emringer_score"] == pytest.approx(3.96, abs=0.01)  # measured with phenix.emringer earlier


@needs_all
def test_rmsz_match_servalcat_program(deposited, model_5me2, monlib, tmp_path):
    """`servalcat util geom` prints its r.m.s.Z table with 3 decimals: agreement within half the last digit."""
    out = _run("-m", "servalcat", "util", "geom", str(model_5me2), "--monlib", str(monlib), cwd=tmp_path)
    for key, row in (("bond_rmsz", "Bond distances, non H"), ("angle_rmsz", "Bond angles, non H")):
        m = re.search(rf"^{row}\s+\d+\s+[-\d.]+\s+([-\d.]+)\s", out, re.M)
        assert m, out[-1500:]
        assert deposited[1][key] == pytest.approx(float(m[1]), abs=0.0005 + 1e-9)


@needs_all
def test_ramachandran_coot_vs_molprobity_deposited(deposited, model_5me2, tmp_path):
    """Coot (clipper Top8000 tables, 3 residue classes, outlier p < 0.002, favoured p ≥ 0.02) and MolProbity's
    ramalyze (Top8000, 6 classes, outlier 0.05-0.1 %, favoured 2 %) share the favoured cut but not the tables,
    so they may disagree only on residues near the cut: within a factor 5 of coot's 0.02 (coot's outlier cut is
    4× MolProbity's general one, so a factor of 5 covers the spread of the cuts). Both find no outlier."""
    table = deposited[2]
    cli = ramalyze_cli(model_5me2, tmp_path)
    assert sum(c == "outlier" for c, _ in cli.values()) == 0
    assert (table.rama == "outlier").sum() == 0
    rows = table[table.rama != ""]
    assert len(rows) == len(cli)
    differ = [p for ch, r, i, cls, p in zip(rows.chain, rows.resnum, rows.icode, rows.rama, rows.rama_probability,
                                            strict=True)
              if (cls == "favoured") != (cli[(ch, r, i)][0] == "favoured")]
    assert all(0.02 / 5 <= p < 0.02 * 5 for p in differ), differ
    assert len(differ) <= 0.02 * len(rows)  # measured: 6 of 558
    # the cctbx column of validate_model is ramalyze's classification
    assert [cli[k][0] for k in zip(rows.chain, rows.resnum, rows.icode, strict=True)] == list(rows.rama_cctbx)


@needs_all
def test_wrecked_geometry(shaken, deposited, tmp_path):
    """Atoms moved by up to 0.3 Å: bond RMSZ several times the deposited model's, more overlaps, Ramachandran
    outliers, lower Q-score; coot's and MolProbity's outliers are consistent (see the tolerances below)."""
    model, summary, table = shaken
    good = deposited[1]
    assert all(is_available(v) for v in summary["model_validation_tools"].values()), summary
    assert summary["bond_rmsz"] > 3 * good["bond_rmsz"]
    assert summary["angle_rmsz"] > 2 * good["angle_rmsz"]
    assert summary["atom_overlaps_per_1000_atoms"] > good["atom_overlaps_per_1000_atoms"]
    # per residue: each bad overlap counts for the residues it involves, so the residues in one are more too
    assert (table.overlaps > 0).sum() > (deposited[2].overlaps > 0).sum() > 0
    assert set(table.overlaps.dropna().astype(int)) >= {0, 1}
    assert summary["q_score_median"] < good["q_score_median"]
    assert summary["rama_outliers_pct"] > 2.0
    # Coot's outlier cut (p < 0.002) is 4× MolProbity's general one (0.05 %), so coot flags at least as many; a
    # MolProbity outlier is never far inside coot's allowed region (p < 5 × 0.002); and no coot outlier is
    # favoured by MolProbity by more than a factor 2 of its 2 % cut (different Gly tables: measured 2.9 %).
    cli = ramalyze_cli(model, tmp_path)
    rows = table[table.rama != ""]
    keys = zip(rows.chain, rows.resnum, rows.icode, strict=True)
    coot = dict(zip(keys, zip(rows.rama, rows.rama_probability, strict=True), strict=True))
    n_cli = sum(c == "outlier" for c, _ in cli.values())
    n_coot = sum(c == "outlier" for c, _ in coot.values())
    assert n_cli > 0 and n_coot >= n_cli
    assert all(coot[k][1] < 5 * 0.002 for k, (c, _) in cli.items() if c == "outlier")
    assert all(cli[k][1] < 2 * 2.0 for k, (c, _) in coot.items() if c == "outlier")


def test_tool_switched_off_or_missing(monkeypatch, tmp_path, model_5me2, emd3488_map):
    """Only coot requested, and cctbx 'not installed' (find_spec finds no mmtbx): NaN values, 'not available'."""
    import locscale.validation.model as mv

    real = mv._find_spec
    monkeypatch.setattr(mv, "_find_spec", lambda name: None if name == "mmtbx" else real(name))
    summary, table = validate_model(model_5me2, emd3488_map, RESOLUTION, tmp_path, tools=("coot", "cctbx"))
    tools = summary["model_validation_tools"]
    assert tools["servalcat"] == f"{NOT_AVAILABLE}: not requested"
    assert tools["cctbx"].startswith(f"{NOT_AVAILABLE}: cctbx")
    for key in ("emringer_score", "bond_rmsz", "angle_rmsz"):
        assert math.isnan(summary[key])
    assert (table.rama_cctbx == "").all()
    if missing_tools()["coot"] is None:
        assert is_available(tools["coot"]) and math.isfinite(summary["q_score_median"])
        assert table.q_score.notna().all()


def test_no_tool(tmp_path, model_5me2, emd3488_map):
    summary, table = validate_model(model_5me2, emd3488_map, RESOLUTION, tmp_path, tools=())
    assert all(math.isnan(summary[k]) for k in SUMMARY_KEYS)
    assert all(not is_available(v) for v in summary["model_validation_tools"].values())
    assert len(table) > 0 and table[[c for c in RESIDUE_COLUMNS if c not in ("rama", "rama_cctbx")]].isna().all().all()


def test_failing_tool_is_not_available(tmp_path, model_5me2, emd3488_map):
    """A residue type no dictionary defines makes servalcat fail: reported, not raised; coot's overlaps are NaN."""
    if missing_tools()["servalcat"] is not None:
        pytest.skip("servalcat not installed")
    from locscale.models import read_model, write_model

    st = read_model(model_5me2)
    for name in "BCD":  # chain A is enough, and quicker
        st[0].remove_chain(name)
    st[0]["A"][0].name = "ZZQ"
    model = write_model(st, tmp_path / "unknown.pdb")
    summary, table = validate_model(model, emd3488_map, RESOLUTION, tmp_path / "v", tools=["servalcat", "coot"])
    assert summary["model_validation_tools"]["servalcat"].startswith(f"{NOT_AVAILABLE}: servalcat failed")
    assert "ZZQ" in summary["model_validation_tools"]["servalcat"]
    assert math.isnan(summary["bond_rmsz"])
    if missing_tools()["coot"] is None:
        # coot finds no overlaps at all when a residue type has no dictionary: NaN, not a perfect 0
        assert math.isnan(summary["atom_overlaps_per_1000_atoms"])
        assert math.isfinite(summary["q_score_median"]) and math.isnan(table.rotamer_outlier[0])


@pytest.mark.skipif(missing_tools()["coot"] is not None, reason="coot-headless-api not installed")
def test_nonzero_origin_map(tmp_path, model_5me2, emd3488_map, deposited):
    """A map placed by the MRC2014 ORIGIN field with the model moved with it gives the same values (the tools see
    a zero-origin copy and the model shifted back; the origin is a whole number of voxels, so nothing changes)."""
    from locscale.mapio import Map, read_map, write_map
    from locscale.models import read_model, shift_model, write_model

    emap = read_map(emd3488_map)
    origin = np.array([10.0, -20.0, 30.0]) * emap.voxel_size
    moved = Map(emap.data, voxel_size=emap.voxel_size, origin=origin, origin_convention="origin")
    map_path = write_map(tmp_path / "moved.mrc", moved)
    model = write_model(shift_model(read_model(model_5me2), origin), tmp_path / "moved.cif")
    summary, table = validate_model(model, map_path, RESOLUTION, tmp_path / "v", tools=["coot"])
    good = deposited[1]
    for key in ("q_score_median", "rama_favoured_pct", "atom_overlaps_per_1000_atoms"):
        # coordinates pass through a PDB/mmCIF round trip (0.001 Å): Q-score moves by far less than 1e-3
        assert summary[key] == pytest.approx(good[key], abs=1e-3)
    assert (tmp_path / "v" / "map_zero_origin.mrc").is_file()


def test_bad_inputs(tmp_path, emd3488_map, model_5me2):
    with pytest.raises(LocScaleInputError, match="model file not found"):
        validate_model(tmp_path / "missing.pdb", emd3488_map, RESOLUTION, tmp_path)
    with pytest.raises(LocScaleInputError):
        validate_model(model_5me2, tmp_path / "missing.mrc", RESOLUTION, tmp_path)
    with pytest.raises(LocScaleInputError, match="unknown model-validation tool"):
        validate_model(model_5me2, emd3488_map, RESOLUTION, tmp_path, tools=["phenix"])
    with pytest.raises(LocScaleInputError, match="resolution"):
        validate_model(model_5me2, emd3488_map, -1, tmp_path)
    with pytest.raises(LocScaleInputError, match="monomer library"):
        validate_model(model_5me2, emd3488_map, RESOLUTION, tmp_path, monlib=tmp_path)


# ---------------------------------------------------------------------- validation that changes decisions
@pytest.mark.slow
@pytest.mark.skipif(bool(missing_tools()["servalcat"] or missing_tools()["coot"]),
                    reason="needs servalcat and coot-headless-api")
def test_coordinates_refined_with_a_far_too_loose_weight_are_flagged_and_never_final(tmp_path, crop, monlib):
    """Real servalcat coordinate refinement of chain A into a crop of EMD-3488, with the default (jelly-body
    restraints, automatic weight) and with a data weight far too loose (1000, not adjusted, no jelly body). The
    loose run fits its target better (servalcat's FSCaverage) by wrecking the geometry; the selection flags it
    and hands out the restrained cycle. Measured: FSCaverage 0.843 vs 0.938; bond RMSZ ~1 vs ~30."""
    from locscale.cycle.selection import choose_final_cycle, cycle_flags
    from locscale.engines import ServalcatEngine

    crop_map, crop_model = crop
    runs = {"restrained": ServalcatEngine(monlib=monlib, refine_xyz=True, ncycle=3),
            "loose": ServalcatEngine(monlib=monlib, refine_xyz=True, ncycle=3, jellybody=False, weight=1000,
                                     extra_args=["--no_weight_adjust"])}
    rows = []
    summary, _ = validate_model(crop_model, crop_map, RESOLUTION, tmp_path / "v0", tools=["coot", "servalcat"])
    rows.append({"cycle": 0, "b_mean": 50.0, "fsc_average": math.nan, **summary})
    for cycle, (name, engine) in enumerate(runs.items(), start=1):
        assert ("--jellybody" in engine.command("m", 3.2, target_map="t")) == (name == "restrained")
        res = engine.run(crop_model, 3.2, tmp_path / name, target_map=crop_map)
        summary, _ = validate_model(res.model, crop_map, RESOLUTION, tmp_path / f"v{cycle}",
                                    tools=["coot", "servalcat"])
        rows.append({"cycle": cycle, "b_mean": 50.0, "fsc_average": res.stats["fsc_average_target"], **summary})
    r0, good, bad = rows
    print({k: [round(r[k], 3) for r in rows] for k in ("fsc_average", "bond_rmsz", "angle_rmsz",
                                                        "rama_outliers_pct")})
    assert bad["fsc_average"] > good["fsc_average"] + 0.02  # the loose weight fits the map better ...
    assert bad["bond_rmsz"] > 3 * max(good["bond_rmsz"], 1.0)  # ... with wrecked geometry
    flags = cycle_flags(rows)
    assert not flags[1], flags[1]  # jelly-body refinement keeps the geometry of the input model
    assert any("bond RMSZ" in f for f in flags[2]) and any("angle RMSZ" in f for f in flags[2])
    sel = choose_final_cycle(rows)
    assert sel.cycle == 1 and "flagged and not eligible: 2" in sel.reason


def test_relative_paths_work_as_the_workflow_gives_them(tmp_path, emd3488_map, model_5me2, monkeypatch):
    """The workflow passes paths relative to its working folder, while each tool runs inside `workdir`."""
    import shutil

    shutil.copy(model_5me2, tmp_path / "model.pdb")
    monkeypatch.chdir(tmp_path)
    summary, _ = validate_model("model.pdb", emd3488_map, RESOLUTION, "results/mv", tools=["coot"],
                                log="results/mv.log")
    assert is_available(summary["model_validation_tools"]["coot"]), summary["model_validation_tools"]
    assert math.isfinite(summary["q_score_median"]) and (tmp_path / "results" / "mv.log").stat().st_size > 0


@pytest.mark.slow
@needs_all
def test_unchanged_coordinates_reuse_the_previous_cycle_and_equal_a_full_run(deposited, model_5me2, emd3488_map,
                                                                             tmp_path):
    """A model with the previous cycle's coordinates and new B-factors (what B-only refinement hands on) takes the
    previous cycle's validation and recomputes only coot's per-residue density correlation, the one value that
    reads the B-factors: the same summary and table as a full run of every tool. Moved coordinates are validated
    afresh."""
    from locscale.models import read_model, shake_model, write_model
    from locscale.records import write_json
    from locscale.validation.reuse import REUSED_KEY, model_validation_digest, reusable, validate_model_reusing

    workdir, summary, table = deposited
    # the deposited model's validation as the previous cycle's files (as the workflow writes them)
    prev = (tmp_path / "model_validation_00.json", tmp_path / "model_validation_00.tsv")
    write_json(prev[0], {**summary, "cycle": 0,
                         "inputs_digest": model_validation_digest(model_5me2, emd3488_map, RESOLUTION)})
    table.to_csv(prev[1], sep="\t", index=False, float_format="%.8g")
    st = read_model(model_5me2)
    for i, cra in enumerate(st[0].all()):
        cra.atom.b_iso = 15.0 + (i % 97)  # new B-factors, same coordinates
    changed = write_model(st, tmp_path / "b_changed.cif")

    reused, reused_table = validate_model_reusing(changed, emd3488_map, RESOLUTION, tmp_path / "reused", cycle=1,
                                                  previous=prev)
    full, full_table = validate_model(changed, emd3488_map, RESOLUTION, tmp_path / "full")
    assert reused[REUSED_KEY] == 0 and "reused from cycle 0" in reused["model_validation_reused"]
    log = (tmp_path / "reused" / "model_validation.log").read_text()
    assert "==== coot:" in log and "==== cctbx:" not in log and "==== servalcat:" not in log
    assert {k: reused[k] for k in SUMMARY_KEYS} == {k: full[k] for k in SUMMARY_KEYS}
    assert reused["model_validation_tools"] == full["model_validation_tools"]
    assert list(reused_table.columns) == list(full_table.columns) and len(reused_table) == len(full_table)
    for c in full_table.columns:
        a, b = reused_table[c], full_table[c]
        if a.dtype.kind == "f":
            # the previous cycle's table went through the workflow's TSV (8 significant digits); coot sums the
            # density correlation in float32 on two threads (measured: repeated runs differ by 3e-8)
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-7, atol=1e-6 if c == "cc_coot" else 0,
                                       equal_nan=True, err_msg=c)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), c
    # the density correlation was recomputed with the new B-factors, not copied
    assert np.nanmax(np.abs(reused_table["cc_coot"] - table["cc_coot"])) > 1e-3
    # coordinates moved by up to 0.1 Å: another digest, so the next cycle validates in full
    moved = write_model(shake_model(read_model(model_5me2), 0.1, seed=1), tmp_path / "moved.cif")
    prev_record = json.loads(prev[0].read_text())
    assert reusable(prev_record, model_validation_digest(changed, emd3488_map, RESOLUTION)) == 0
    assert reusable(prev_record, model_validation_digest(moved, emd3488_map, RESOLUTION)) is None
    assert reusable(prev_record, model_validation_digest(changed, emd3488_map, RESOLUTION, tools=["coot"])) is None

"""Cross-validation by the shake protocol: real servalcat refinement against half map 1 of a phantom."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from locscale.engines import ServalcatEngine
from locscale.errors import LocScaleInputError
from locscale.models import read_model
from locscale.phantoms.phantom import crop_model, make_phantom
from locscale.validation.crossval import CrossValidation, cross_validate, read_crossval, write_crossval

RES = 3.5

needs_servalcat = pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")


@pytest.fixture(scope="module")
def phantom(model_5ni1, tmp_path_factory):
    st = crop_model(read_model(model_5ni1), ["A"])
    ph = make_phantom(st, (64, 1.2), seed=5, resolution=RES, b_core=0, b_periphery=100, b_global=50)
    folder = tmp_path_factory.mktemp("cv_phantom")
    ph.write(folder)
    return ph, folder


def _check_curves(cv: CrossValidation):
    c = cv.curve[cv.curve["shell"] >= 1]
    # a correlation coefficient cannot exceed 1 (up to float rounding)
    assert np.all(c["fsc_work"] <= 1 + 1e-9) and np.all(c["fsc_test"] <= 1 + 1e-9)
    low = c[c["resolution"] >= 10.0]
    high = c[c["resolution"] < RES]
    # decreasing at high resolution: the model agrees with the map at low resolution, not beyond d
    for col in ("fsc_work", "fsc_test"):
        assert low[col].mean() > 0.95
        assert high[col].mean() < low[col].mean() - 0.3
        assert high[col].iloc[-1] < high[col].iloc[0]


@needs_servalcat
def test_fsc_work_exceeds_fsc_test_after_restrained_refinement(phantom, monlib, tmp_path):
    ph, folder = phantom
    cv = cross_validate(ph.structure, folder / "SIMULATED_half1.mrc", folder / "SIMULATED_half2.mrc", RES,
                        tmp_path / "cv", shake=0.5, seed=0,
                        engine=ServalcatEngine(monlib=monlib, write_maps=True))
    assert cv.settings["refine_xyz"] and cv.settings["restrained"]
    # refinement saw half map 1 only: its noise is fitted, half map 2's is not (measured gap 0.02); servalcat's own
    # FSC (computed with write_maps) says so too
    assert cv.fsc_work_average > cv.fsc_test_average
    assert cv.servalcat["fsc_half1_average"] > cv.servalcat["fsc_half2_average"]
    _check_curves(cv)
    write_crossval(cv, tmp_path / "cv.tsv", tmp_path / "cv.png")
    back, record = read_crossval(tmp_path / "cv.tsv")
    assert record["fsc_work_test_gap"] == pytest.approx(cv.gap)
    assert len(back) == len(cv.curve) and (tmp_path / "cv.png").stat().st_size > 1000


@needs_servalcat
def test_b_only_unrestrained_cross_validation(phantom, tmp_path):
    ph, folder = phantom
    cv = cross_validate(ph.structure, ph.half1, ph.half2, RES, tmp_path / "cv", seed=1)
    assert not cv.settings["refine_xyz"] and not cv.settings["restrained"]
    assert "--fix_xyz" in cv.settings["command"] and "--unrestrained" in cv.settings["command"]
    # B-only refinement has few parameters, so the gap is small but still not negative on average
    assert cv.fsc_work_average >= cv.fsc_test_average - 1e-3
    _check_curves(cv)
    # servalcat's own FSC against the half maps is not computed (the step computes FSCwork and FSCtest itself);
    # servalcat's unchanged command line (write_maps) refines the same model, so the same FSCs
    assert not cv.servalcat and "servalcat_fsc_half1_average" not in cv.record()
    assert "not computed" in (tmp_path / "cv" / "servalcat" / "engine.log").read_text()
    full = cross_validate(ph.structure, ph.half1, ph.half2, RES, tmp_path / "full", seed=1,
                          engine=ServalcatEngine(write_maps=True))
    assert full.servalcat and (full.fsc_work_average, full.fsc_test_average) == \
        (cv.fsc_work_average, cv.fsc_test_average)


def test_shake_is_limited_to_half_an_angstrom(phantom, tmp_path):
    ph, folder = phantom
    with pytest.raises(LocScaleInputError, match="0-0.5"):
        cross_validate(ph.structure, ph.half1, ph.half2, RES, tmp_path, shake=1.0)


@needs_servalcat
def test_unchanged_coordinates_reuse_the_previous_cross_validation(phantom, tmp_path):
    """The shake protocol of a model with the previous cycle's coordinates (new B-factors) is the previous
    cycle's: the record and curve are taken over, marked with the cycle they came from; other coordinates, another
    seed or other half maps are cross-validated afresh."""
    from locscale.models import shake_model, write_model
    from locscale.records import write_json
    from locscale.validation.crossval import write_curve
    from locscale.validation.reuse import REUSED_KEY, cross_validate_reusing, crossval_digest, reusable

    ph, folder = phantom
    h1, h2 = folder / "SIMULATED_half1.mrc", folder / "SIMULATED_half2.mrc"
    engine = ServalcatEngine()
    model1 = write_model(ph.structure, tmp_path / "model_01.cif")
    rec1, curve1, reused1 = cross_validate_reusing(model1, h1, h2, RES, tmp_path / "cv1", cycle=1, engine=engine,
                                                   seed=1)
    assert not reused1 and REUSED_KEY not in rec1 and rec1["cycle"] == 1
    prev = (tmp_path / "crossval_01.json", tmp_path / "crossval_01.tsv")
    write_json(prev[0], rec1)
    write_curve(rec1, curve1, prev[1])
    st = ph.structure.clone()
    for cra in st[0].all():
        cra.atom.b_iso += 7.0
    model2 = write_model(st, tmp_path / "model_02.cif")
    rec2, curve2, reused2 = cross_validate_reusing(model2, h1, h2, RES, tmp_path / "cv2", cycle=2, previous=prev,
                                                   engine=engine, seed=1)
    assert reused2 and rec2[REUSED_KEY] == 1 and rec2["cycle"] == 2 and not (tmp_path / "cv2").exists()
    assert {k: rec2[k] for k in rec1 if k != "cycle"} == {k: rec1[k] for k in rec1 if k != "cycle"}
    assert np.allclose(curve2.to_numpy(float), curve1.to_numpy(float), rtol=1e-15, atol=0, equal_nan=True)
    moved = write_model(shake_model(ph.structure, 0.1, seed=3), tmp_path / "moved.cif")
    digest = dict(resolution=RES, engine=engine, shake=0.5, seed=1, refine_xyz=None)
    assert reusable(rec1, crossval_digest(model2, h1, h2, **digest)) == 1
    assert reusable(rec1, crossval_digest(moved, h1, h2, **digest)) is None
    assert reusable(rec1, crossval_digest(model2, h1, h2, **{**digest, "seed": 2})) is None
    assert reusable(rec1, crossval_digest(model2, h2, h1, **digest)) is None

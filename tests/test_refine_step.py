"""The refine step of a cycle (locscale.cycle.refinement.refine_step) with real servalcat runs: the previous
cycle's refined model taken when nothing it depends on changed."""

from __future__ import annotations

import shutil

import gemmi
import numpy as np
import pytest

from locscale.models import atom_positions, b_factors, read_model, write_model


@pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")
def test_an_unchanged_refine_step_takes_the_previous_cycles_model(crop, tmp_path):
    """B-factor refinement from the uniform start reads none of the model's B: a cycle that refines the same
    coordinates against the same map with the same settings takes the previous cycle's refined model, and gets
    exactly the model and record a full refinement gives (the engine is deterministic); other coordinates or
    settings refine again."""
    from locscale.cycle.refinement import OWN_KEYS, refine_step
    from locscale.records import read_json, write_json
    from locscale.validation.reuse import DIGEST_KEY, REUSED_KEY

    crop_map, crop_model = crop
    info = write_json(tmp_path / "inputs.json", {"resolution": 3.2})
    settings = {"engine": "servalcat", "restrained": False, "servalcat": {"ncycle": 3}, "b_level": "fixed",
                "refine_xyz": False, "threads": 2, "reuse_unchanged": True, "ligands": []}

    def step(name, cycle, model, previous=None, **changes):
        out = tmp_path / name
        inputs = {"model": str(model), "target": str(crop_map), "info": str(info)}
        if cycle > 1:
            inputs["first_cycle"] = str(tmp_path / "c1" / "refine.json")
        else:  # the workflow's cycle 1 against the global target: the data-blur level (every cycle holds a level)
            inputs["data_blur"] = str(write_json(tmp_path / "data_blur.json", {"b_mean_reference": 45.0,
                                                                               "b_data": 60.0}))
        if previous:
            inputs["previous_refine"] = str(tmp_path / previous / "refine.json")
        rec = refine_step(inputs, {"model": out / "model.cif", "info": out / "refine.json"},
                          {**settings, **changes}, cycle=cycle, workdir=out / "refine")
        assert read_json(out / "refine.json")[DIGEST_KEY] == rec[DIGEST_KEY]
        return rec, read_model(out / "model.cif")

    first, m1 = step("c1", 1, crop_model)
    reused, m2 = step("c2", 2, tmp_path / "c1" / "model.cif", previous="c1")
    full, m2_full = step("c2_full", 2, tmp_path / "c1" / "model.cif")
    assert reused[REUSED_KEY] == 1 and "reused from cycle 1" in reused["refine_reused"]
    assert REUSED_KEY not in full and not (tmp_path / "c2" / "refine").exists()
    np.testing.assert_array_equal(b_factors(m2), b_factors(m2_full))
    np.testing.assert_array_equal(atom_positions(m2), atom_positions(m2_full))
    paths = {"refined_model", "command", "workdir", REUSED_KEY, "refine_reused"}
    assert {k: v for k, v in reused.items() if k not in {*OWN_KEYS, *paths}} == \
        {k: v for k, v in full.items() if k not in {*OWN_KEYS, *paths}}
    # a chain of reuses names the cycle that refined
    again, _ = step("c3", 3, tmp_path / "c2" / "model.cif", previous="c2")
    assert again[REUSED_KEY] == 1
    # other coordinates, another setting: refined again
    moved = gemmi.read_structure(str(tmp_path / "c1" / "model.cif"))
    moved[0][0][0][0].pos.x += 0.01
    write_model(moved, tmp_path / "moved.cif")
    assert REUSED_KEY not in step("c2_moved", 2, tmp_path / "moved.cif", previous="c1")[0]
    assert REUSED_KEY not in step("c2_ncycle", 2, tmp_path / "c1" / "model.cif", previous="c1",
                                  servalcat={"ncycle": 2})[0]
    assert REUSED_KEY not in step("c2_off", 2, tmp_path / "c1" / "model.cif", previous="c1",
                                  reuse_unchanged=False)[0]
    # a cycle that keeps the refinement's own level (b_level free) runs the engine differently: refined again
    assert REUSED_KEY not in step("c2_free", 2, tmp_path / "c1" / "model.cif", previous="c1", b_level="free")[0]

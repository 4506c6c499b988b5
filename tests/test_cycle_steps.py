"""The model-map and LocScale steps of a cycle (locscale.cycle.steps) on the EMD-3488 crop: a cycle whose model
is the previous cycle's takes the previous cycle's maps, and gets exactly the maps a full run computes."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest

from locscale.cycle.defaults import fill_schema_defaults, schema
from locscale.cycle.steps import sharpen_step, simulate_step
from locscale.mapio import read_map
from locscale.records import read_json, write_json
from locscale.validation.reuse import DIGEST_KEY, REUSED_KEY


@pytest.fixture(scope="module")
def settings() -> dict:
    """The sharpen section with every default (tapered mode), on one thread."""
    config = fill_schema_defaults({"datasets": {}}, schema())
    return {**config["sharpen"], "threads": 1}


def _cycle(tmp_path, crop, cycle, settings, *, previous=None, model=None, raise_b=0.0):
    """Cycle `cycle`'s simulate and sharpen steps in tmp_path/cN; `previous`: the earlier cycle's folder name."""
    crop_map, crop_model = crop
    d = tmp_path / f"c{cycle}"
    d.mkdir()
    info = write_json(tmp_path / "inputs.json", {"resolution": 3.2})
    model = d / "model.cif"
    model.write_bytes((crop_model if previous is None else tmp_path / previous / "model.cif").read_bytes())
    write_json(d / "refine.json", {"b_model_raise": raise_b})
    sim_in = {"model": str(model), "refine": str(d / "refine.json"), "map": str(crop_map)}
    sharp_in = {"map": str(crop_map), "modelmap": str(d / "modelmap.mrc"), "model": str(model), "info": str(info)}
    if previous:
        p = tmp_path / previous
        sim_in.update(previous_model=str(p / "model.cif"), previous_refine=str(p / "refine.json"),
                      previous_modelmap=str(p / "modelmap.mrc"))
        sharp_in.update(previous_map=str(p / "locscale.mrc"), previous_info=str(p / "sharpen.json"))
    sim = simulate_step(sim_in, {"map": d / "modelmap.mrc"}, cycle=cycle)
    sharp = sharpen_step(sharp_in, {"map": d / "locscale.mrc", "info": d / "sharpen.json"}, settings, cycle=cycle)
    return d, sim, sharp


def test_a_cycle_with_the_previous_model_takes_the_previous_maps(crop, tmp_path, settings):
    c1, _, first = _cycle(tmp_path, crop, 1, settings)
    c2, sim, reused = _cycle(tmp_path, crop, 2, settings, previous="c1")
    assert "reused" in sim and reused[REUSED_KEY] == 1 and reused[DIGEST_KEY] == first[DIGEST_KEY]
    # the same maps as a full run of cycle 2 (which computes them again)
    full = tmp_path / "full"
    full.mkdir()
    _, sim_full, computed = _cycle(tmp_path / "full", crop, 2, {**settings, "reuse_unchanged": False})
    assert "reused" not in sim_full and REUSED_KEY not in computed
    for name in ("modelmap.mrc", "locscale.mrc"):
        np.testing.assert_array_equal(read_map(c2 / name).data, read_map(full / "c2" / name).data)
    assert (c2 / "locscale.mrc").read_bytes() == (c1 / "locscale.mrc").read_bytes()
    with mrcfile.open(c2 / "modelmap.mrc", header_only=True) as mrc:
        assert b"cycle 2" in mrc.header.label[0]  # this cycle's label on the previous cycle's values
    timing = {"seconds", "provenance", "warnings", REUSED_KEY, "sharpen_reused"}
    assert {k: v for k, v in reused.items() if k not in timing} == \
        {k: v for k, v in computed.items() if k not in timing}
    assert json.loads((c2 / "sharpen.json").read_text())["cycle"] == 2


def test_another_b_raise_or_setting_computes_again(crop, tmp_path, settings):
    _cycle(tmp_path, crop, 1, settings)
    _, sim, sharp = _cycle(tmp_path, crop, 2, settings, previous="c1", raise_b=5.0)
    assert "reused" not in sim and REUSED_KEY not in sharp  # another model map: LocScale runs again
    _, sim, sharp = _cycle(tmp_path, crop, 3, {**settings, "window": 15}, previous="c1")
    assert "reused" in sim and REUSED_KEY not in sharp
    assert read_json(tmp_path / "c3" / "sharpen.json")["window_voxels"] == 15

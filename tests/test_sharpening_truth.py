"""The chosen defaults judged against the truth of a small realistic phantom, region by region.

Phantom: chain A of 5NI1 (bundled; 141 residues), truth B = its deposited B (at least 10 Å², range 10–203), data
blurred by a global B of 120 Å² plus half-map noise (FSC 0.143 at 3.5 Å), 56³ voxels of 1.2 Å. Regions: the true
model's envelope and the rigid / middle / flexible thirds of the truth B (each voxel belongs to its nearest true
atom). Every margin below is about half the smallest one measured over seeds 5 and 6 (their spread is ≤ 0.004).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from locscale import metrics
from locscale.global_sharpen import data_blur, global_sharpen, guinier_bfactor
from locscale.mapio import Map
from locscale.models import b_factors, envelope_mask, read_model, set_uniform_b, shift_b_to_mean, write_model
from locscale.phantoms.phantom import crop_model, make_phantom, remove_residues
from locscale.phantoms.truth import B_THIRDS, global_b_scan, region_masks, region_scores
from locscale.sharpen import DEFAULT_MODE, choose_window, sharpen_map
from locscale.simulate import simulate_model_map

RES, B_GLOBAL = 3.5, 120.0
THIRDS = tuple(f"cc_truth_{r}" for r in B_THIRDS)
needs_servalcat = pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")


@pytest.fixture(scope="module")
def phantom(model_5ni1):
    st = crop_model(read_model(model_5ni1), ["A"])
    for ch in st[0]:
        for res in ch:
            for atom in res:
                atom.b_iso = max(atom.b_iso, 10.0)
    return make_phantom(st, (56, 1.2), seed=5, resolution=RES, b_global=B_GLOBAL)


@pytest.fixture(scope="module")
def regions(phantom):
    mask = envelope_mask(phantom.structure, phantom.full, metrics.envelope_radius(RES))
    return {"envelope": mask, **region_masks(phantom.structure, phantom.full, mask)}


def scores(phantom, regions, m: Map) -> dict:
    return region_scores(m.data, phantom.truth, regions)


def locscale(phantom, reference, mode: str) -> Map:
    """As the workflow's sharpen step: the mode's default window, mask at half of it, the half maps."""
    w = choose_window(phantom.full.apix, RES, mode=mode).voxels
    mask = envelope_mask(phantom.structure, phantom.full, 0.5 * w * phantom.full.apix)
    out, _ = sharpen_map(phantom.full, simulate_model_map(reference, phantom.full), RES, mask=mask, mode=mode,
                         half_maps=(phantom.half1, phantom.half2), progress=False)
    return out


def test_regions_split_the_envelope_by_the_truth_b(phantom, regions):
    env = regions["envelope"]
    parts = [regions[r] for r in B_THIRDS]
    assert np.array_equal(parts[0] | parts[1] | parts[2], env)
    assert not (parts[0] & parts[1]).any() and not (parts[1] & parts[2]).any() and not (parts[0] & parts[2]).any()
    # each voxel's nearest atom: the rigid voxels' atoms have lower B than the flexible ones' (thirds of the atoms)
    b = b_factors(phantom.structure)
    lo, hi = np.quantile(b, [1 / 3, 2 / 3])
    from locscale.phantoms.truth import nearest_atom

    assert b[nearest_atom(phantom.structure, phantom.full, parts[0])].max() <= lo
    assert b[nearest_atom(phantom.structure, phantom.full, parts[2])].min() > hi
    # the truth scores 1 everywhere; a map equal to the truth only in the rigid third scores 1 there alone
    assert all(v == pytest.approx(1.0) for v in scores(phantom, regions, phantom.truth).values())
    rng = np.random.default_rng(0)
    mixed = np.where(parts[0], phantom.truth.data, rng.standard_normal(phantom.truth.shape))
    s = region_scores(mixed, phantom.truth, regions)
    assert s["cc_truth_rigid"] == pytest.approx(1.0) and abs(s["cc_truth_flexible"]) < 0.1


def test_unmodelled_region_is_what_the_model_lacks(phantom, regions):
    partial, removed = remove_residues(phantom.structure, 0.2, seed=1)
    reg = region_masks(phantom.structure, phantom.full, regions["envelope"], partial)
    assert "unmodelled" in reg and reg["unmodelled"].any()
    removed_only = crop_model(phantom.structure)  # a copy
    keep = {(c, n) for c, n, _ in removed}
    for ch in removed_only[0]:
        for i in reversed(range(len(ch))):
            if (ch.name, ch[i].seqid.num) not in keep:
                del ch[i]
    near_removed = envelope_mask(removed_only, phantom.full, 1.0) & regions["envelope"]
    assert reg["unmodelled"][near_removed].mean() > 0.9  # voxels on removed atoms are unmodelled
    assert "unmodelled" not in region_masks(phantom.structure, phantom.full, regions["envelope"], phantom.structure)


def test_default_locscale_beats_the_paper_and_the_oracle_global_in_every_third(phantom, regions):
    """The default (tapered, 30 Å, half-map noise weights) against the paper's eq. 2 (near-exact, 7 × d) with the
    same reference, the true B and 20 Å² sharper (as the workflow's reference tends to be), and against the best
    global sharpening the truth can pick. Measured (seeds 5, 6), true B: default − paper +0.017 (envelope), +0.022
    (rigid), +0.011 (middle), +0.006 (flexible); 20 Å² sharper: +0.012, +0.017, +0.008, +0.005; default − oracle
    ≥ +0.007 in every third."""
    assert DEFAULT_MODE == "tapered"
    scan = global_b_scan(phantom.full, phantom.truth, RES, regions["envelope"], np.arange(-200.0, 1.0, 10.0))
    b_oracle = float(scan.loc[scan["cc_mask_truth"].idxmax(), "bfactor_applied"])
    assert b_oracle == pytest.approx(-B_GLOBAL, abs=10)
    oracle = scores(phantom, regions, global_sharpen(phantom.full, RES, bfactor=b_oracle)[0])
    sharper, _ = shift_b_to_mean(phantom.structure, float(b_factors(phantom.structure).mean()) - 20.0)
    for reference, margins in ((phantom.structure, (0.008, 0.011, 0.005, 0.002)), (sharper, (0.006, 0.008, 0.004,
                                                                                            0.002))):
        default = scores(phantom, regions, locscale(phantom, reference, DEFAULT_MODE))
        paper = scores(phantom, regions, locscale(phantom, reference, "near-exact"))
        for key, margin in zip(("cc_truth_envelope", *THIRDS), margins, strict=True):
            assert default[key] > paper[key] + margin, key
            assert default[key] > oracle[key] + 0.003, key


@needs_servalcat
def test_global_target_removes_the_data_blur_not_the_structure_falloff(phantom, regions, tmp_path, monlib):
    """The workflow's cycle-0 estimate: B refined against the unsharpened map (servalcat, restrained, from B = 40),
    its 1st percentile. Measured: 127.9 / 126.6 (seeds 5 / 6) for a true blur of 120, where the map's Guinier B is
    138.1 / 137.2 (it adds the structure's own fall-off); the FSC-weighted target sharpened by it is above the
    input in every third (by ≥ 0.06) and the reference level (mean less the blur) sharper than the truth's."""
    from locscale.engines import make_engine
    from locscale.mapio import write_map

    write_map(tmp_path / "full.mrc", phantom.full)
    write_model(set_uniform_b(phantom.model, 40.0), tmp_path / "start.cif")
    engine = make_engine({"engine": "servalcat", "restrained": True, "monlib": str(monlib), "refine_xyz": False})
    result = engine.run(tmp_path / "start.cif", RES, tmp_path / "refine", target_map=tmp_path / "full.mrc",
                        step="adp")
    blur = data_blur(b_factors(read_model(result.model)))
    b_guinier, _ = guinier_bfactor(phantom.full, RES)
    assert b_guinier > B_GLOBAL + 10  # what the old target removed
    assert abs(blur["b_data"] - B_GLOBAL) < 15
    assert abs(blur["b_data"] - B_GLOBAL) < abs(b_guinier - B_GLOBAL) - 5
    assert blur["b_mean_reference"] < float(b_factors(phantom.structure).mean())
    target = scores(phantom, regions, global_sharpen(phantom.full, RES, bfactor=-blur["b_data"],
                                                     half_maps=(phantom.half1, phantom.half2))[0])
    inp = scores(phantom, regions, phantom.full)
    for key in ("cc_truth_envelope", *THIRDS):
        assert target[key] > inp[key] + 0.03, key


def test_data_blur_is_the_first_percentile():
    b = np.concatenate([np.full(99, 150.0), [100.0]])
    rec = data_blur(b)
    assert rec["b_data"] == pytest.approx(np.percentile(b, 1.0))
    assert rec["b_mean_reference"] == pytest.approx(b.mean() - rec["b_data"])
    assert data_blur(np.full(10, 0.5) - 1.0)["b_data"] == 0.0  # an already sharpened map is not sharpened again
    with pytest.raises(ValueError):
        data_blur([])


def test_default_window_is_30_angstrom():
    for apix in (0.8, 1.05, 1.2, 1.5):
        w = choose_window(apix, 3.5, mode=DEFAULT_MODE)
        assert abs(w.angstrom - 30.0) < 1.5 * apix
    assert choose_window(1.05, 3.2, mode="near-exact").voxels == 21  # the paper's 7 × d stays in its modes

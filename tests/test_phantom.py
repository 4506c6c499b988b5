"""Phantom generator: determinism, noise calibration, blur model, removed parts, labels, command line."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest

from locscale import metrics
from locscale.commands.phantom import main as phantom_main
from locscale.errors import LocScaleInputError
from locscale.global_sharpen import apply_bfactor
from locscale.models import read_model
from locscale.phantoms.phantom import b_gradient, box_around_model, crop_model, make_phantom, remove_residues

BOX, APIX = 64, 1.2


@pytest.fixture(scope="module")
def chain_a(model_5ni1):
    return crop_model(read_model(model_5ni1), ["A"])


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_identical_bytes(chain_a, tmp_path):
    kw = dict(resolution=3.5, truth_b=20, b_core=0, b_periphery=150, b_global=50, remove_fraction=0.3)
    make_phantom(chain_a, (BOX, APIX), seed=7, **kw).write(tmp_path / "a")
    make_phantom(chain_a, (BOX, APIX), seed=7, **kw).write(tmp_path / "b")
    make_phantom(chain_a, (BOX, APIX), seed=8, **kw).write(tmp_path / "c")
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a.keys() == b.keys() and len(a) == 8
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs with the same seed"
    # another seed changes the noise (half maps) but not the noise-free truth
    assert a["SIMULATED_half1.mrc"] != c["SIMULATED_half1.mrc"]
    assert a["SIMULATED_truth.mrc"][1024:] == c["SIMULATED_truth.mrc"][1024:]  # data block (labels hold the seed)


@pytest.mark.parametrize("resolution, noise_b", [(3.5, 50.0), (3.0, 0.0), (6.0, -150.0), (8.0, 100.0)])
def test_half_map_fsc_crosses_at_requested_resolution_within_one_shell(chain_a, resolution, noise_b):
    ph = make_phantom(chain_a, (BOX, APIX), seed=1, resolution=resolution, noise_b=noise_b, truth_b=20,
                      b_core=0, b_periphery=100, b_global=50)
    curve = metrics.fsc(ph.half1.data, ph.half2.data, APIX)
    measured = metrics.resolution_at(curve, 0.143)
    shell_width = 1.0 / (BOX * APIX)  # one-voxel shells of locscale.metrics
    # noise power is exact per shell; the measured FSC departs from S/(S+N) only through signal×noise and
    # noise×noise cross terms (≈ 1/√n_coeffs ≈ 0.01 here), far less than the FSC's drop over one shell
    assert abs(1.0 / measured - 1.0 / resolution) <= shell_width
    assert ph.info["noise"]["measured_resolution"] == pytest.approx(measured)
    assert ph.info["noise"]["expected_fsc_at_resolution"] == pytest.approx(0.143, abs=1e-9)


def test_noise_colour_that_cannot_give_the_resolution_is_refused(chain_a):
    # the signal spectrum of one chain dips around 6-7 Å: noise falling as fast as the signal would make the
    # half-map FSC touch 0.143 there first, so the requested 6 Å could not be the measured resolution
    with pytest.raises(LocScaleInputError, match="before the requested 6.00 Å"):
        make_phantom(chain_a, (BOX, APIX), seed=1, resolution=6.0, noise_b=50.0, truth_b=20, b_core=0,
                     b_periphery=100, b_global=50)


def test_signal_is_truth_blurred_by_delta_b_plus_global_b(chain_a):
    # with a uniform ΔB the blurred signal must equal the truth with exp(-(ΔB + B_global) s²/4) applied: both
    # are the same atoms simulated band-limited at Nyquist; the simulator's float32/cut-off errors are ~1e-4
    ph = make_phantom(chain_a, (BOX, APIX), seed=1, resolution=3.5, truth_b=20, b_core=30, b_periphery=30,
                      b_global=20)
    pred = apply_bfactor(ph.truth.data, APIX, 50.0)
    err = np.linalg.norm(pred - ph.signal.data) / np.linalg.norm(ph.signal.data)
    assert err < 1e-3
    # the half maps are signal + independent noise
    n1, n2 = ph.half1.data - ph.signal.data, ph.half2.data - ph.signal.data
    assert abs(np.corrcoef(n1.ravel(), n2.ravel())[0, 1]) < 5 / np.sqrt(n1.size)  # 5σ of a zero correlation


def test_radial_and_per_chain_gradients(model_5ni1):
    st = crop_model(read_model(model_5ni1), ["A", "B"])
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    r = np.linalg.norm(xyz - xyz.mean(0), axis=1)
    db = b_gradient(st, 10.0, 110.0)
    assert db.min() >= 10.0 - 1e-9 and db.max() == pytest.approx(110.0)
    assert np.all(np.diff(db[np.argsort(r)]) >= -1e-9)  # monotone in the distance from the centre
    per_chain = b_gradient(st, 0.0, chain_b={"A": 5.0, "B": 80.0})
    names = np.array([ch.name for ch in st[0] for r_ in ch for _ in r_])
    assert np.all(per_chain[names == "A"] == 5.0) and np.all(per_chain[names == "B"] == 80.0)


def test_removed_parts_are_missing_from_the_model_but_present_in_the_maps(chain_a):
    ph = make_phantom(chain_a, (BOX, APIX), seed=2, resolution=3.5, remove_fraction=0.3)
    n_all = sum(len(ch) for ch in chain_a[0])
    assert len(ph.removed) == round(0.3 * n_all)
    nums = [n for _, n, _ in ph.removed]
    assert nums == list(range(nums[0], nums[0] + len(nums)))  # one contiguous stretch (no gaps in 5NI1 A)
    kept = {(ch.name, r.seqid.num) for ch in ph.model[0] for r in ch}
    assert not kept & {(c, n) for c, n, _ in ph.removed}
    assert sum(len(ch) for ch in ph.structure[0]) == n_all  # the truth model stays complete


def test_chain_removal(model_5ni1):
    st = crop_model(read_model(model_5ni1), ["A", "B"])
    model, removed = remove_residues(st, chains=["B"])
    assert [ch.name for ch in model[0]] == ["A"]
    assert len(removed) == len(st[0]["B"])


def test_files_are_labelled_simulated(chain_a, tmp_path):
    ph = make_phantom(chain_a, (BOX, APIX), seed=3, resolution=4.0)
    paths = ph.write(tmp_path)
    for kind in ("truth", "half1", "half2", "full", "signal"):
        assert "SIMULATED" in paths[kind].name
        with mrcfile.open(paths[kind]) as m:
            assert b"SIMULATED" in bytes(m.header.label[0])
    info = json.loads(paths["json"].read_text())
    assert info["seed"] == 3 and info["noise"]["requested_resolution"] == 4.0
    assert set(info["sha256"]) >= {"truth", "half1", "half2", "model"}
    assert read_model(paths["model"]).info["_struct.title"].startswith("SIMULATED")
    with pytest.raises(LocScaleInputError, match="SIMULATED"):
        ph.write(tmp_path / "x", prefix="phantom")


def test_box_must_hold_the_model(chain_a):
    with pytest.raises(LocScaleInputError, match="does not fit"):
        box_around_model(chain_a, 24, 1.2)
    grid = box_around_model(chain_a, BOX, APIX)
    assert np.allclose(grid.origin / APIX, np.round(grid.origin / APIX))  # nstart can hold the origin


def test_command_line(model_5ni1, tmp_path, capsys):
    rc = phantom_main([str(model_5ni1), "--chains", "A", "--box", "64", "--apix", "1.2", "-o", str(tmp_path),
                       "--seed", "4", "--chain-b", "A=40", "--remove-fraction", "0.2"])
    assert rc == 0
    info = json.loads((tmp_path / "SIMULATED_phantom.json").read_text())
    assert info["blur"]["chain_b"] == {"A": 40.0}
    assert "SIMULATED phantom written" in capsys.readouterr().out
    assert phantom_main([str(model_5ni1), "--chains", "Z", "--box", "64", "-o", str(tmp_path)]) == 2
    assert "chain(s) Z not in the model" in capsys.readouterr().err


def test_realistic_phantom_keeps_the_truth_b_gradient_and_blurs_only_globally(chain_a):
    """--truth-b-gradient puts the B variation into the truth (flexibility a refined model describes); the data
    add only the global B: the signal equals the truth blurred by exp(-b_global s²/4) everywhere (exact for a
    uniform added B), and the record calls it realistic."""
    ph = make_phantom(chain_a, (BOX, APIX), seed=1, resolution=3.5, b_global=120.0, truth_b_gradient=(20, 140, 1.5))
    b = np.array([a.b_iso for ch in ph.structure[0] for r in ch for a in r])
    expected = b_gradient(ph.structure, 20, 140, power=1.5)
    np.testing.assert_allclose(b, expected, atol=1e-3)  # B stored as float32 in gemmi
    assert b.min() >= 20 and b.max() == pytest.approx(140, abs=1e-3)  # r = r_max at the farthest atom
    assert np.all(ph.delta_b == 0)
    assert ph.info["blur"]["kind"].startswith("realistic") and ph.info["truth"]["b_factors"] == "radial gradient"
    blurred = apply_bfactor(ph.truth.data, APIX, 120.0)
    assert metrics.pearson(blurred.ravel(), ph.signal.data.ravel()) > 0.9999
    with pytest.raises(LocScaleInputError, match="truth B"):
        make_phantom(chain_a, (BOX, APIX), truth_b=20, truth_b_gradient=(20, 140, 1))
    # the old default (local blur on top of the global B) is now the labelled stress case
    stress = make_phantom(chain_a, (BOX, APIX), seed=1, truth_b=20, b_periphery=100)
    assert stress.info["blur"]["kind"].startswith("stress case")

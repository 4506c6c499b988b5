"""The hybrid reference (locscale.hybrid): pseudo-atoms where the map has significant density the model does not
explain, judged against the truth of a realistic phantom.

The phantom: haemoglobin chains A+B (5NI1, bundled), 64³ voxels of 1.2 Å, truth B 20 → 200 Å² from the centre
to the edge (linear), global B 130 Å², half-map FSC 0.143 at 3.5 Å. The complete model's B-factors are refined by
servalcat against the cycle-0 global target, as the workflow does; partial models are that model without chain A
(the smallest chain) or without 20 % of its residues in gaps of 8. Measured: CC to truth in the removed region /
the rest of the envelope -- chain A removed: model-only LocScale 0.542 / 0.974, hybrid 0.977 / 0.986, global target
0.901 / 0.908, complete model 0.980 / 0.987; gaps: 0.963 / 0.973, 0.976 / 0.987, 0.894 / 0.912, 0.977 / 0.986. The
negative control (the same partial model on a phantom made without the removed part) places no pseudo-atom in its
region (1431 and 727 when the data hold it).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from locscale import hybrid
from locscale.hybrid import unexplained
from locscale.mapio import Map, read_map
from locscale.models import read_model
from locscale.phantoms.phantom import crop_model, make_phantom

RES = 3.5
needs_servalcat = pytest.mark.skipif(shutil.which("servalcat") is None, reason="servalcat is not installed")


@pytest.fixture(scope="module")
def phantom(model_5ni1):
    st = crop_model(read_model(model_5ni1), ["A", "B"])
    return make_phantom(st, (64, 1.2), seed=5, resolution=RES, b_global=130.0, truth_b_gradient=(20, 200, 1.0))


@pytest.fixture(scope="module")
def bench(phantom):
    from locscale.experiments.bench import Bench

    return Bench.from_phantom(phantom, mode="near-exact")


@pytest.fixture(scope="module")
def refined(phantom, bench, monlib, tmp_path_factory):
    """The complete model with B refined by servalcat (restrained, B only, from B = 40) against the global target."""
    if shutil.which("servalcat") is None:
        pytest.skip("servalcat is not installed")
    from locscale.engines.servalcat import ServalcatEngine
    from locscale.experiments.bench import global_target
    from locscale.mapio import write_map
    from locscale.models import set_uniform_b, write_model

    d = tmp_path_factory.mktemp("refine")
    target, _ = global_target(bench.half1, bench.half2, RES)
    write_map(d / "target.mrc", target)
    write_model(set_uniform_b(phantom.structure, 40.0), d / "model.cif")
    result = ServalcatEngine(monlib=monlib).run(d / "model.cif", RES, d / "servalcat", target_map=d / "target.mrc",
                                                threads=2)
    return read_model(result.model)


@pytest.fixture(scope="module")
def partial_table(bench, refined):
    from locscale.experiments.partial_models import partial_models

    return partial_models(bench, refined, kinds=("chain", "gaps")).set_index(["kind", "method"])


# ---------------------------------------------------------------------- the statistics
def _bh_reference(z: np.ndarray, q: float) -> float:
    """The Benjamini-Hochberg procedure as written in the textbook: sort all p-values, take the largest k with
    p_(k) <= q k / m; return the z of that voxel (inf when none)."""
    from scipy.stats import norm

    p = norm.sf(z)
    order = np.argsort(p)
    ok = np.nonzero(p[order] <= q * np.arange(1, z.size + 1) / z.size)[0]
    return float(z[order][ok.max()]) if ok.size else float("inf")


def test_fdr_threshold_is_the_benjamini_hochberg_procedure():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    z = rng.standard_normal(20000)
    z[:400] += rng.uniform(2.0, 6.0, 400)  # 2 % of the voxels hold signal
    for q in (0.001, 0.01, 0.1):
        zt, pt = unexplained._bh_z_threshold(z, q)
        assert zt == _bh_reference(z, q)
        assert pt == pytest.approx(float(norm.sf(zt)), rel=1e-9)


def test_fdr_on_pure_noise_declares_nothing_in_at_least_99_percent_of_maps():
    """Under the global null, BH at q declares anything with probability <= q (here 1 %). In 200 seeded noise
    'maps' of 10⁴ voxels the number that declare something is Binomial(200, <= 0.01): P(> 7) < 0.001."""
    hits = sum(np.isfinite(unexplained._bh_z_threshold(np.random.default_rng(s).standard_normal(10_000), 0.01)[0])
               for s in range(200))
    assert hits <= 7


def _filtered_noise_sd_tolerance(noise_power: np.ndarray, fraction_tested: float) -> float:
    """Relative standard deviation of an RMS estimated over the tested voxels of a stationary Gaussian field with
    this power spectrum (full complex FFT, per coefficient): var(s²/σ²) = 2 Σ P² / (Σ P)² over the whole box,
    divided by the fraction of voxels used; the RMS has half that relative SD."""
    p = noise_power.ravel()
    return 0.5 * float(np.sqrt(2.0 * np.sum(p**2) / np.sum(p) ** 2 / fraction_tested))


def test_noise_from_half_maps_and_from_the_map_match_the_true_noise(phantom):
    """σ of the low-passed residual: from the half maps' half difference, and from the map alone (the model is
    the true one with the signal's B, so the residual away from it is the noise), against the RMS of the phantom's
    actual noise (full map − signal) through the same filter, within 4 standard deviations of each estimate
    (measured: ratios 1.008 and 1.005, tolerance 0.037)."""
    from locscale.experiments.bench import Bench
    from locscale.models import envelope_mask
    from locscale.simulate import simulate_model_map

    blurred = Bench.from_phantom(phantom).blurred  # true atoms with the B of the signal
    full, h1, h2 = phantom.full, phantom.half1, phantom.half2
    filt = hybrid.lowpass(full.shape, full.apix, RES)
    noise = np.fft.irfftn(np.fft.rfftn(full.data - phantom.signal.data) * filt, s=full.shape, axes=(0, 1, 2))
    tested = ~envelope_mask(blurred, full, hybrid.EXCLUSION)
    true_sigma = float(np.sqrt(np.mean(noise[tested] ** 2)))
    rel_sd = _filtered_noise_sd_tolerance(np.abs(np.fft.fftn(noise)) ** 2, tested.mean())
    modelmap = simulate_model_map(blurred, full)
    d_half = hybrid.unexplained_density(full, blurred, RES, half_maps=(h1, h2), modelmap=modelmap)
    d_map = hybrid.unexplained_density(full, blurred, RES, modelmap=modelmap)
    # two independent fields (sum and difference of the half maps' noise): the ratio's SD is √2 × each
    assert d_half.sigma / true_sigma == pytest.approx(1.0, abs=4 * np.sqrt(2) * rel_sd)
    # the map's own estimate uses the lower half of the same field: twice the variance
    assert d_map.sigma / true_sigma == pytest.approx(1.0, abs=4 * np.sqrt(2) * rel_sd)
    # the signal is the model: nothing is unexplained
    assert not d_half.mask.any() and not d_map.mask.any()
    assert d_half.scale == pytest.approx(1.0, abs=0.02) and abs(d_half.b_offset) < 2.0


@pytest.mark.parametrize("half", [True, False])
def test_noise_clusters_in_the_solvent_get_no_pseudo_atom(phantom, half):
    """With much unexplained density (chain B removed), about 1 % of the voxels declared are noise, scattered over
    the solvent; clusters no larger than the largest the noise alone forms above the same threshold (the half
    maps' noise, or the residual below the solvent level) are dropped. Measured: without that rule 70 pseudo-atoms
    lay farther than 6 Å from any true atom (up to 37 Å); with it 3, none beyond 8.4 Å (the flexible periphery's
    density, B up to 330 Å² in the data, reaches that far)."""
    from scipy.spatial import cKDTree

    from locscale.models import atom_positions

    part = phantom.structure.clone()
    part[0].remove_chain("B")
    ref = hybrid.hybrid_reference(phantom.full, part, RES,
                                  half_maps=(phantom.half1, phantom.half2) if half else None)
    dist, _ = cKDTree(atom_positions(phantom.structure)).query(atom_positions(ref.pseudo_atoms))
    assert ref.count > 1000 and dist.max() <= 10.0
    clusters = ref.record["clusters"]
    assert clusters["kept"] >= 1 and clusters["dropped"] > 10 and clusters["min_voxels"] > 1


def test_masked_map_is_refused_with_the_fix(emd3488_map, model_5me2):
    with pytest.raises(hybrid.NoiseNotMeasurable, match="flat patches") as err:
        hybrid.hybrid_reference(read_map(emd3488_map), read_model(model_5me2), 3.2)
    assert "half maps" in err.value.fix


def test_pseudo_atoms_have_their_own_chain_and_the_model_is_untouched(phantom):
    model = phantom.structure
    n_model = model[0].count_atom_sites()
    part = model.clone()
    part[0].remove_chain("B")
    ref = hybrid.hybrid_reference(phantom.full, part, RES, half_maps=(phantom.half1, phantom.half2))
    assert ref.count > 500
    names = {ch.name for ch in ref.pseudo_atoms[0]}
    assert names == {"X"} and "X" not in {ch.name for ch in part[0]}
    assert {r.name for ch in ref.pseudo_atoms[0] for r in ch} == {"HOH"}
    assert part[0].count_atom_sites() + ref.count == ref.reference_structure(part)[0].count_atom_sites()
    assert model[0].count_atom_sites() == n_model and "X" not in {ch.name for ch in part[0]}
    # at least MIN_DISTANCE apart, inside the unexplained-density mask
    from scipy.spatial import cKDTree

    from locscale.models import atom_positions

    pos = atom_positions(ref.pseudo_atoms)
    assert cKDTree(pos).query(pos, k=2)[0][:, 1].min() >= hybrid.MIN_DISTANCE - 1e-6
    ijk = np.rint((pos - phantom.full.origin) / phantom.full.voxel_size).astype(int)
    assert ref.unexplained[tuple(ijk.T)].all()
    rec = ref.record
    assert rec["pseudo_atoms"] == ref.count and rec["unexplained_voxels"] == int(ref.unexplained.sum())
    assert rec["threshold"]["fdr"] == 0.01 and "Benjamini-Hochberg" in rec["threshold"]["rule"]
    assert rec["threshold"]["noise_from"].startswith("half maps")
    assert rec["pseudo_atom_b"] == pytest.approx(float(np.median([a.b_iso for ch in part[0] for r in ch
                                                                   for a in r])))


# ---------------------------------------------------------------------- against the truth
@pytest.mark.slow
@needs_servalcat
@pytest.mark.parametrize("kind", ["chain", "gaps"])
def test_hybrid_recovers_the_removed_part(partial_table, kind):
    """CC to truth in the removed region: at most 0.02 below LocScale with the complete model and at least 0.03
    above the global target (measured: chain 0.977 vs 0.980 and 0.901; gaps 0.976 vs 0.977 and 0.894)."""
    t = partial_table.loc[kind]
    hyb = t.loc["locscale_hybrid", "cc_removed"]
    assert hyb >= t.loc["locscale_complete", "cc_removed"] - 0.02
    assert hyb >= t.loc["global_target", "cc_removed"] + 0.03
    assert hyb > t.loc["locscale_model_only", "cc_removed"]


@pytest.mark.slow
@needs_servalcat
@pytest.mark.parametrize("kind", ["chain", "gaps"])
def test_hybrid_keeps_the_rest_of_the_envelope(partial_table, kind):
    """The rest of the envelope: within 0.003 of model-only LocScale or better (measured: better by 0.012 and
    0.014)."""
    t = partial_table.loc[kind]
    assert t.loc["locscale_hybrid", "cc_rest"] >= t.loc["locscale_model_only", "cc_rest"] - 0.003


@pytest.mark.slow
@needs_servalcat
@pytest.mark.parametrize("kind", ["chain", "gaps"])
def test_negative_control_invents_no_density(partial_table, kind):
    """Data made without the removed part: pseudo-atoms in its region at most 5 % of those placed there when the
    data hold it (measured: 0)."""
    h = partial_table.loc[(kind, "locscale_hybrid")]
    assert h["pseudo_atoms_in_removed"] > 300
    assert h["negative_control_in_removed"] <= 0.05 * h["pseudo_atoms_in_removed"]


@pytest.mark.slow
@needs_servalcat
def test_complete_model_gives_the_plain_map(bench, refined):
    """A complete model: the hybrid map within 0.002 of the plain map in CC to truth in every region (measured:
    no pseudo-atom placed, the maps are identical)."""
    from locscale.models import envelope_mask
    from locscale.phantoms.edits import removed_residues
    from locscale.phantoms.truth import region_cc, removed_region_masks

    full = bench.full
    ref = hybrid.hybrid_reference(full, refined, RES, half_maps=(bench.half1, bench.half2))
    half = 0.5 * bench.window * full.apix
    plain = bench.locscale(bench.reference_map(refined), mask=envelope_mask(refined, full, half))
    with_pseudo = bench.locscale(ref.reference_map(bench.reference_map(refined)),
                                 mask=envelope_mask(ref.reference_structure(refined), full, half))
    for kind in ("chain", "gaps", "domain"):
        regions = removed_region_masks(bench.structure, removed_residues(bench.structure, kind), full, RES)
        a, b = region_cc(plain.data, bench.truth, regions), region_cc(with_pseudo.data, bench.truth, regions)
        for name in a:
            assert abs(a[name] - b[name]) <= 0.002, (kind, name, a[name], b[name], ref.count)


# ---------------------------------------------------------------------- the command line
def _run(capsys, *args) -> tuple[int, str]:
    """`locscale ARGS` in this process: (exit status, stderr)."""
    from locscale.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def phantom_files(phantom, tmp_path_factory):
    """The phantom's files, the model handed out lacking chain B."""
    d = tmp_path_factory.mktemp("hybrid_cli")
    paths = phantom.write(d)
    from locscale.models import write_model

    part = phantom.structure.clone()
    part[0].remove_chain("B")
    write_model(part, d / "SIMULATED_partial.cif")
    paths["partial"] = d / "SIMULATED_partial.cif"
    return paths


def test_cli_hybrid_writes_pseudo_atoms_mask_and_record(phantom_files, tmp_path, capsys):
    p = phantom_files
    out = tmp_path / "hybrid.mrc"
    code, err = _run(capsys, "sharpen", "--half-maps", p["half1"], p["half2"], "-m", p["partial"], "-r", RES,
                     "--hybrid", "-o", out, "--info", tmp_path / "hybrid.json", "-q")
    assert code == 0, err
    assert "pseudo-atoms" in err and "false discovery rate 0.01" in err
    rec = json.loads((tmp_path / "hybrid.json").read_text())["hybrid"]
    atoms = read_model(tmp_path / "hybrid_pseudo_atoms.cif")
    mask = read_map(tmp_path / "hybrid_unexplained.mrc")
    assert rec["pseudo_atoms"] == atoms[0].count_atom_sites() > 500
    assert rec["unexplained_voxels"] == int((mask.data > 0.5).sum()) > 0
    assert mask.same_grid(read_map(p["half1"]))
    assert rec["threshold"]["z"] > 3 and rec["threshold"]["noise_from"].startswith("half maps")
    assert rec["pseudo_atom_b_rule"] == "median B of the model's atoms"
    assert rec["pseudo_atoms_file"].endswith("hybrid_pseudo_atoms.cif")
    # the input model is not changed and the plain map differs from the hybrid one only where pseudo-atoms are
    plain = tmp_path / "plain.mrc"
    assert _run(capsys, "sharpen", "--half-maps", p["half1"], p["half2"], "-m", p["partial"], "-r", RES, "-o",
                plain, "-q")[0] == 0
    assert read_model(p["partial"])[0].count_atom_sites() == read_model(p["model_true"])[0].count_atom_sites() - \
        len([a for r in read_model(p["model_true"])[0]["B"] for a in r])
    assert not np.array_equal(read_map(plain).data, read_map(out).data)


def test_cli_hybrid_refuses_bad_requests(phantom_files, emd3488_map, model_5me2, tmp_path, capsys):
    p = phantom_files
    out = tmp_path / "o.mrc"
    cases = [
        (("--half-maps", p["half1"], p["half2"], "--model-map", p["truth"], "-r", RES, "--hybrid"), "needs the atomic"),
        (("--half-maps", p["half1"], p["half2"], "-m", p["partial"], "--hybrid"), "needs the resolution"),
        (("--half-maps", p["half1"], p["half2"], "-m", p["partial"], "-r", RES, "--hybrid", "--hybrid-fdr", "1.5"),
         "not between 0 and 1"),
        (("--half-maps", p["half1"], p["half2"], "-m", p["partial"], "-r", RES, "--pseudo-atoms", tmp_path / "x.cif"),
         "add --hybrid"),
        ((emd3488_map, "-m", model_5me2, "-r", 3.2, "--hybrid"), "flat patches"),
    ]
    for args, message in cases:
        code, err = _run(capsys, "sharpen", *args, "-o", out, "-q")
        assert code == 2, (args, err)
        assert message in err and "fix:" in err, err
        assert not out.exists() and not (tmp_path / "o_pseudo_atoms.cif").exists()


def test_reference_map_adds_the_pseudo_atoms_map(phantom):
    from locscale.simulate import simulate_model_map

    part = phantom.structure.clone()
    part[0].remove_chain("B")
    pseudo = hybrid.pseudo_atom_structure(np.array([[40.0, 40.0, 40.0], [42.0, 40.0, 40.0]]) + phantom.full.origin,
                                          [30.0, 60.0])
    grid: Map = phantom.full
    both = hybrid.add_pseudo_atom_map(simulate_model_map(part, grid), pseudo)
    merged = simulate_model_map(hybrid.merge(part, pseudo), grid)
    # model maps add atom by atom (to float32 rounding of the simulation)
    assert np.max(np.abs(both.data - merged.data)) <= 1e-4 * np.max(np.abs(merged.data))
    assert hybrid.pseudo_atom_b_values(pseudo).tolist() == [30.0, 60.0]
    # pseudo-atoms as placed (one B, voxel centres): their map by convolution equals the atom-by-atom simulation
    # (measured: 3e-5 of the peak, gemmi's per-atom density cut-off and float32), at Nyquist and at a coarser dmin
    ijk = np.random.default_rng(1).integers(0, 64, size=(200, 3))
    placed = hybrid.pseudo_atom_structure(grid.origin + ijk * grid.apix, 57.0)
    for dmin in (None, 3.0):
        conv = hybrid.pseudo_atom_map(placed, grid, dmin).data
        sim = simulate_model_map(placed, grid, dmin=dmin).data
        assert np.max(np.abs(conv - sim)) <= 2e-4 * np.max(np.abs(sim))
    assert hybrid.pseudo_atom_b_values(hybrid.set_pseudo_atom_b(pseudo, 10.0)).tolist() == [10.0, 10.0]

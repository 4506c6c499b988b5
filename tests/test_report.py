"""locscale.cycle.report: cycle table, plots and ChimeraX scripts on the bundled EMD-3488 map and models."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from locscale.cycle import report
from locscale.errors import LocScaleInputError
from locscale.mapio import read_map
from locscale.metrics import fsc, radial_profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def emap(emd3488_map):
    return read_map(emd3488_map)


def _bvalues(path: Path) -> np.ndarray:
    st = gemmi.read_structure(str(path))
    return np.array([a.b_iso for ch in st[0] for r in ch for a in r])


def _check_png(path: Path, min_px: int = 300) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.shape[0] >= min_px and img.shape[1] >= min_px
    assert img[..., :3].std() > 0.05  # not blank
    assert not [p for p in path.parent.iterdir() if ".partial" in p.name]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # permissions of a normal write, not 0600
    return img


def _rows():
    rows = []
    for c in (3, 0, 2, 1):  # unsorted on purpose
        row = {"cycle": c, "cc_mask": 0.70 + 0.01 * c, "cc_box": 0.60 + 0.005 * c, "fsc_average": 0.68 + 0.02 * c,
               "kurtosis": 3.0 - 0.1 * c, "b_mean": 40.0 + c, "b_median": 38.0 + c, "b_std": 10.0 + c,
               "engine": "servalcat", "runtime_s": 1.0 / 3.0 * c}
        if c:  # no cross-validation for the inputs (cycle 0)
            row.update(fsc_work=0.6 + 0.01 * c, fsc_test=0.58 + 0.005 * c)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- table
def test_cycle_table_round_trip(tmp_path):
    path = tmp_path / "summary_upto_03.tsv"
    table = report.write_cycle_table(_rows(), path)
    assert list(table["cycle"]) == [0, 1, 2, 3]
    assert table.columns[0] == "cycle"
    back = report.read_cycle_table(path)
    assert list(back.columns) == list(table.columns)
    assert back["engine"].tolist() == ["servalcat"] * 4
    # written with %.10g: relative rounding error <= 5e-10 per value
    np.testing.assert_allclose(back["runtime_s"], table["runtime_s"], rtol=5e-10)
    np.testing.assert_allclose(back["fsc_average"], table["fsc_average"], rtol=5e-10)
    assert np.isnan(back.loc[0, "fsc_work"]) and back.loc[1:, "fsc_work"].notna().all()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cycle_table_rejects_bad_rows(tmp_path):
    with pytest.raises(LocScaleInputError, match="no cycle rows"):
        report.write_cycle_table([], tmp_path / "t.tsv")
    with pytest.raises(ValueError, match=r"cycle\(s\) \[1\]"):
        report.write_cycle_table([{"cycle": 1}, {"cycle": 1}], tmp_path / "t.tsv")
    assert not (tmp_path / "t.tsv").exists()


# ---------------------------------------------------------------------- plots
def test_metrics_vs_cycle(tmp_path):
    table = report.write_cycle_table(_rows(), tmp_path / "t.tsv")
    full = _check_png(report.plot_metrics_vs_cycle(tmp_path / "t.tsv", tmp_path / "metrics.png"))
    # only two metrics: one row of two panels, so a smaller image
    small_table = table[["cycle", "cc_mask", "fsc_average"]]
    small = _check_png(report.plot_metrics_vs_cycle(small_table, tmp_path / "small.png"), min_px=200)
    assert small.shape[0] < full.shape[0] and small.shape[1] < full.shape[1]
    with pytest.raises(LocScaleInputError, match="no 'cycle' column"):
        report.plot_metrics_vs_cycle(table.drop(columns="cycle"), tmp_path / "x.png")
    with pytest.raises(LocScaleInputError, match="none of the plotted metrics"):
        report.plot_metrics_vs_cycle(table[["cycle", "engine"]], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_fsc_curves_accept_dataframes_curves_and_pairs(tmp_path, emap):
    rng = np.random.default_rng(0)
    noisy = emap.data + rng.normal(0, 0.02, emap.shape).astype(np.float32)
    curve = fsc(emap.data, noisy, emap.apix)
    curves = {
        "cycle 1": pd.DataFrame({"freq": curve.freq, "fsc": curve.fsc}),
        "cycle 2": curve,
        "original": (curve.freq, np.clip(curve.fsc - 0.1, -1, 1)),
    }
    _check_png(report.plot_fsc_curves(curves, tmp_path / "fsc.png", resolution=3.2))
    with pytest.raises(LocScaleInputError):
        report.plot_fsc_curves({}, tmp_path / "none.png")


def test_radial_profiles(tmp_path, emap):
    base = radial_profile(emap.data, emap.apix)
    profiles = {"original": base, "global-sharpened": (base[0], base[1] * np.exp(10 * base[0] ** 2)),
                "cycle 1": (base[0], base[1] * 0.5)}
    _check_png(report.plot_radial_profiles(profiles, tmp_path / "radial.png", resolution=3.2))
    _check_png(report.plot_radial_profiles(profiles, tmp_path / "radial_n.png", normalise=True))


def test_radial_profile_normalisation_band():
    assert report.profile_norm_band(3.2) == (10.0, 5.0) == report.profile_norm_band(None)
    assert report.profile_norm_band(8.0) == (16.0, 8.0)  # a low-resolution map: the band must hold signal
    freq = np.linspace(0, 0.5, 51)
    amp = np.exp(-20 * freq**2)
    amp[0], amp[7] = 0.0, np.nan  # DC of a zero-mean map, an empty shell: ignored
    norm = report.normalise_profile(freq, amp, (10.0, 5.0))
    band = (freq >= 0.1) & (freq <= 0.2)
    assert np.mean(norm[band]) == pytest.approx(1.0, rel=1e-12)  # rounding of an 11-term mean
    # the band's order does not matter; a profile that ends before the band (coarse voxels) uses every shell
    np.testing.assert_array_equal(report.normalise_profile(freq, amp, (5.0, 10.0)), norm)
    coarse = freq <= 1 / 12
    valid = coarse & np.isfinite(amp) & (amp > 0)
    assert np.mean(report.normalise_profile(freq[coarse], amp[coarse])[valid[coarse]]) == pytest.approx(1.0)
    with pytest.raises(LocScaleInputError, match="no shell with a positive amplitude"):
        report.normalise_profile(freq, np.zeros_like(freq))


def test_radial_profiles_of_maps_differing_by_a_constant_coincide(tmp_path, emap):
    """The bug this guards against: curves normalised at their first shell sat orders of magnitude apart for
    maps on different scales (LocScale maps take the model map's scale and are 0 outside the mask)."""
    data = emap.data.astype(np.float64)
    freq, amp = radial_profile(data, emap.apix)
    freq_s, amp_s = radial_profile(3.7 * data, emap.apix)
    assert not np.allclose(amp_s, amp, equal_nan=True)
    # float64 rounding of the scaled voxels (1.1e-16 relative) and of the FFT: the weakest shells carry ~1e-5
    # of the mean amplitude, so per-shell relative errors stay below ~1e-10
    np.testing.assert_allclose(report.normalise_profile(freq_s, amp_s), report.normalise_profile(freq, amp),
                               rtol=1e-9)
    # on the plot: a factor 4 (a power of two) scales every floating-point step exactly, so the normalised
    # plots of the map and of 4 × the map are the same image, pixel for pixel
    one = _check_png(report.plot_radial_profiles({"map": (freq, amp)}, tmp_path / "one.png", resolution=3.2,
                                                 normalise=True))
    four = imread(report.plot_radial_profiles({"map": radial_profile(4 * data, emap.apix)}, tmp_path / "four.png",
                                              resolution=3.2, normalise=True))
    np.testing.assert_array_equal(four, one)
    raw1 = imread(report.plot_radial_profiles({"map": (freq, amp)}, tmp_path / "raw1.png", resolution=3.2))
    raw4 = imread(report.plot_radial_profiles({"map": radial_profile(4 * data, emap.apix)}, tmp_path / "raw4.png",
                                              resolution=3.2))
    assert raw4.shape != raw1.shape or not np.array_equal(raw4, raw1)  # without normalise the scale shows


def test_radial_profile_of_a_masked_rescaled_map_stays_comparable(emap, model_5me2):
    """A LocScale-like map: the original zeroed outside a tight model envelope (2 Å around the atoms, 6 % of
    the box) and on another scale. Masking moves power into the lowest shells, which is what put LocScale
    curves far below the others when profiles were normalised at their first shell; over the 10-5 Å band
    both curves keep the same shape from 10 Å to the resolution."""
    from locscale.models import envelope_mask, read_model

    mask = envelope_mask(read_model(model_5me2), emap, 2.0)
    freq, amp = radial_profile(emap.data, emap.apix)
    _, amp_m = radial_profile(3.7 * emap.data * mask, emap.apix)
    shells = (freq >= 1 / 10) & (freq <= 1 / 3.2)
    ratio = report.normalise_profile(freq, amp_m)[shells] / report.normalise_profile(freq, amp)[shells]
    # measured 0.91-1.12 (the mask's transform blurs the spectrum by ~1 shell): within a factor 1.25
    assert ratio.min() > 0.8 and ratio.max() < 1.25, (ratio.min(), ratio.max())
    first = (amp_m / amp_m[1])[shells] / (amp / amp[1])[shells]
    assert first.max() < 0.6  # first-shell normalisation: the masked map's curve sits > 1.6x too low


def test_bfactor_distributions(tmp_path, model_5me2, model_5ni1):
    b = {"input (5me2)": _bvalues(model_5me2), "cycle 1 (5ni1)": _bvalues(model_5ni1)}
    _check_png(report.plot_bfactor_distributions(b, tmp_path / "b.png"))
    with pytest.raises(LocScaleInputError):
        report.plot_bfactor_distributions({"empty": np.array([np.nan])}, tmp_path / "none.png")


def test_central_sections_orientation():
    data = np.zeros((10, 12, 14), dtype=np.float32)
    data[7, 6, 7] = 1.0  # x=7 in the XY (z=7) and XZ (y=6) sections; y=6, z=7 in the YZ (x=5) one: not there
    data[5, 3, 9] = 2.0  # in the YZ section (x = 5): y = 3, z = 9
    secs = report.central_sections(data)
    assert secs["XY"].shape == (12, 10) and secs["XY"][6, 7] == 1.0  # rows = y, columns = x
    assert secs["XZ"].shape == (14, 10) and secs["XZ"][7, 7] == 1.0  # rows = z, columns = x
    assert secs["YZ"].shape == (14, 12) and secs["YZ"][9, 3] == 2.0  # rows = z, columns = y


def test_central_sections_plot(tmp_path, emap):
    maps = {"original": emap, "scaled array": 3.0 * emap.data}
    _check_png(report.plot_central_sections(maps, tmp_path / "sections.png"))


# ---------------------------------------------------------------------- ChimeraX
def test_chimerax_script_relative_paths(tmp_path, emd3488_map, model_5me2):
    cycle_dir = tmp_path / "results" / "cycle_01"
    cycle_dir.mkdir(parents=True)
    map_path = cycle_dir / "locscale map.mrc"  # a space: must be quoted
    map_path.write_bytes(emd3488_map.read_bytes())
    model_path = tmp_path / "results" / "refined.pdb"
    model_path.write_bytes(model_5me2.read_bytes())
    script = report.write_chimerax_script(cycle_dir / "view.cxc", map_path, model_path, 0.0123456789,
                                          title="cycle 01", enclosed_volume=76544.2)
    lines = script.read_text().splitlines()
    opens = [ln.split(" ", 1)[1].strip('"') for ln in lines if ln.startswith("open ")]
    assert opens == ["locscale map.mrc", "../refined.pdb"]
    assert 'open "locscale map.mrc"' in lines
    # ChimeraX runs a .cxc from its own folder: the relative paths must resolve from there
    assert [(cycle_dir / p).resolve() for p in opens] == [map_path.resolve(), model_path.resolve()]
    (vol_line,) = [ln for ln in lines if ln.startswith("volume #1 level")]
    # written with %.6g: relative rounding error <= 5e-6
    assert float(vol_line.split()[3]) == pytest.approx(0.0123456789, rel=5e-6)
    assert "encloseVolume 76544" in script.read_text()
    assert lines.index("close session") < lines.index('open "locscale map.mrc"')
    assert "view #2" in lines
    # the results folder can move as a whole
    moved = tmp_path / "moved"
    (tmp_path / "results").rename(moved)
    assert all((moved / "cycle_01" / p).exists() for p in opens)


# ---------------------------------------------------------------------- the report's landing page
def test_landing_page_shows_the_cycle_table_with_the_final_cycle(tmp_path):
    """`snakemake --report`'s landing page: each dataset's latest table (highest NN), the final cycle marked from
    selection.json, the sign of sharpness stated; valid reStructuredText."""
    import json

    from docutils.core import publish_parts

    res = tmp_path / "results" / "ds"
    rows = [{"cycle": c, "cc_mask": 0.7 + 0.05 * c, "fsc_average": 0.66 + 0.05 * c, "b_mean": 24.0 + 30 * c,
             "sharpness_b_vs_global": 37.2 * (c > 0), "convergence": ["", "not_converged", "converged"][c],
             "flags": "none", "final": c == 2} for c in range(3)]
    report.write_cycle_table(rows[:2], res / "summary_upto_01.tsv")
    report.write_cycle_table(rows, res / "summary_upto_02.tsv")
    (res / "summary_upto_02").mkdir()
    (res / "summary_upto_02" / "selection.json").write_text(json.dumps({"cycle": 2, "reason": "the best"}))
    template = tmp_path / "workflow.rst"
    template.write_text("Cycles\n======\n\nIntro.\n")
    out = report.write_landing_page(template, tmp_path / "results", ["ds", "not_run_yet"], tmp_path / "page.rst")
    text = out.read_text()
    assert text.startswith("Cycles\n") and "Cycle table: ds" in text and "not_run_yet" not in text
    assert "**2: final**" in text and "holds cycle **2** (the best)" in text
    assert "sharpness vs global (Å², > 0 blurrier)" in text and "37.2" in text and "not converged" in text
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["body"]
    assert html.count("<tr>") == 4  # heading + cycles 0, 1, 2 (of the latest summary)
    assert report.write_landing_page(template, tmp_path / "none", ["ds"], tmp_path / "x.rst") is None


def test_report_captions_list_every_category_and_explain_signs():
    """The landing page names every category the report's files use, each caption's category is one of them,
    and signed quantities say what their sign means."""
    import re

    root = Path(__file__).resolve().parents[1] / "workflow"
    rules = (root / "rules" / "report.smk").read_text()
    used = set(re.findall(r'category="([^"]+)"', rules))
    landing = (root / "report" / "workflow.rst").read_text()
    assert used and all(f"**{c}**" in landing for c in used), used
    for caption in (root / "report").glob("*.rst"):
        text = caption.read_text()
        m = re.match(r'\.\. category: "([^"]+)"', text)
        if m:
            assert m.group(1) in used, caption.name
    metrics = " ".join((root / "report" / "metrics_vs_cycle.rst").read_text().split())
    assert "> 0 the LocScale map is blurrier than the global target" in metrics
    assert "> 0 = the LocScale map is blurrier" in " ".join((root / "report" / "cycle_table.rst").read_text().split())

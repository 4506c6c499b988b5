"""The workflow's side of what we refuse (README, "What we refuse and why"), in real snakemake runs on the crop of
EMD-3488: datasets run side by side and a failing one names itself; cycle 0 keeps min_model_inside 0, removes
hydrogens for every cycle and says so, and stops with one line on a full disk; a dry run sources and runs nothing;
a config file that repeats a key stops the run before any job."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml
from test_refusals import in_small_disk
from test_workflow import REPO, crop_config, jobs_in_order, needs_servalcat, output, snakemake

from locscale.mapio import read_map
from locscale.models import read_model, shift_model, write_model


@pytest.mark.slow
@needs_servalcat
def test_datasets_run_side_by_side_and_a_failing_one_names_itself(tmp_path, crop):  # noqa: F811
    """Three datasets, one cycle each, --cores 2: `a` and `b` are the crop, `c` the crop with its model moved by
    two voxels (refused in cycle 0). The rule `all` used to walk the datasets' checkpoints one after the other, so
    `b` started only after `a` had converged, and `c`'s failure stopped everything with "At least one job did not
    complete successfully"."""
    crop_map, crop_model = crop
    moved = write_model(shift_model(read_model(crop_model), [2 * read_map(crop_map).apix, 0, 0]),
                        tmp_path / "moved.cif")
    cfg = crop_config(crop_map, crop_model, max_cycles=1, min_cycles=1, model_validation={"tools": []})
    cfg["refine"]["servalcat"]["ncycle"] = 2
    cfg["datasets"] = {"a": dict(cfg["datasets"]["crop"]), "b": dict(cfg["datasets"]["crop"]),
                       "c": {**cfg["datasets"]["crop"], "model": str(moved)}}
    r = snakemake(tmp_path, "--keep-going", config=cfg)
    text = output(r)
    jobs = jobs_in_order(r)
    first = {ds: next(i for i, (_, w) in enumerate(jobs) if w.get("ds") == ds) for ds in "abc"}
    converged = {ds: next(i for i, (rule, w) in enumerate(jobs) if rule == "converged" and w.get("ds") == ds)
                 for ds in "ab"}
    print({ds: [rule for rule, w in jobs if w.get("ds") == ds] for ds in "abc"})
    # interleaved: each dataset started before the other had finished its cycle
    assert first["b"] < converged["a"] and first["a"] < converged["b"], jobs
    assert r.returncode != 0, text[-3000:]
    for ds in "ab":
        assert (tmp_path / "results" / ds / "final" / "locscale.mrc").exists()
        assert f"LocScale cycles: {ds}" in text
    assert not (tmp_path / "results" / "c" / "cycle_01").exists()
    assert "LocScale cycles: c FAILED in step prepare_inputs (cycle 0)" in text and "not where it fits" in text


def test_cycle_zero_min_model_inside_hydrogens_and_a_full_disk(tmp_path, crop):  # noqa: F811
    """Cycle 0 only (prepare_inputs of two datasets, --keep-going):

    * `hyd`: the crop's model with a riding H on every N and a copy of 15 % of its residues 100 Å outside the box,
      with min_model_inside: 0 (allowed by the schema, but `or 0.9` in the script turned it into 0.9): accepted;
      hydrogens removed from cycle 0's model, as refinement (servalcat --hydrogen no) removes them from every later
      cycle's, and inputs.json says so;
    * `full`: results/full/ on a 300 KB file system: one line naming the map file, what it needs and what is free,
      and no map file left behind.
    """
    from conftest import add_hydrogens

    crop_map, crop_model = crop
    st = read_model(crop_model)
    add_hydrogens(st)
    far = shift_model(st, [100.0, 0.0, 0.0])
    chain = far[0]["A"]
    for i in reversed(range(len(chain))):
        if i % 7:
            del chain[i]
    chain.name = "Z"
    st[0].add_chain(chain)
    model = write_model(st, tmp_path / "hyd.pdb")
    n_h = sum(at.is_hydrogen() for ch in st[0] for res in ch for at in res)
    cfg = crop_config(crop_map, crop_model)
    cfg["datasets"] = {"hyd": {"map": str(crop_map), "model": str(model), "resolution": 3.2, "min_model_inside": 0},
                       "full": {"map": str(crop_map), "model": str(crop_model), "resolution": 3.2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = "results/hyd/cycle_00/inputs.json results/full/cycle_00/inputs.json"
    r = in_small_disk(tmp_path / "results" / "full", "300k",
                      f"cd '{tmp_path}' && {sys.executable} -m snakemake {targets} --snakefile '{REPO}/Snakefile' "
                      "--cores 2 --keep-going --configfile config.yaml; "
                      "echo exit=$?; ls -A results/full/cycle_00; echo listed")
    text = r.stdout + r.stderr
    info = json.loads((tmp_path / "results" / "hyd" / "cycle_00" / "inputs.json").read_text())
    assert 0.8 < info["model_inside_fraction"] < 0.9
    assert info["hydrogens"]["removed"] == n_h > 50 and "--hydrogen no" in info["hydrogens"]["policy"]
    assert info["model_summary"]["hydrogens"] == 0
    assert not any(at.is_hydrogen() for res in read_model(tmp_path / "results/hyd/cycle_00/model.cif")[0]["A"]
                   for at in res)
    assert "exit=0" not in text
    line = next(ln for ln in text.splitlines() if ln.startswith("rule prepare_inputs ({'ds': 'full'})"))
    assert "results/full/cycle_00/map.mrc: not enough disk space to write this file: it needs 538" in line, line
    assert "free there" in line
    listing = r.stdout.split("exit=")[-1].splitlines()
    assert "map.mrc" not in listing and not [f for f in listing if ".partial" in f], listing


def test_dry_run_runs_nothing_and_repeated_keys_stop_the_run(tmp_path, crop):  # noqa: F811
    """`phenix.env_script` was sourced even by `snakemake -n`; a config file repeating a key ran with the last
    value."""
    marker = tmp_path / "SOURCED"
    script = tmp_path / "phenix_env.sh"
    script.write_text(f"touch '{marker}'\n")
    cfg = crop_config(*crop, refine={"engine": "phenix", "phenix": {"env_script": str(script)}})
    r = snakemake(tmp_path, "-n", config=cfg)
    assert r.returncode == 0 and "prepare_inputs" in output(r), output(r)[-3000:]
    assert not marker.exists()
    if not shutil.which("phenix.real_space_refine"):
        r = snakemake(tmp_path, config=cfg)  # a real run checks (and sources) before any job
        assert r.returncode != 0 and "refinement engine not available" in output(r)
        assert marker.exists() and not (tmp_path / "results").exists()

    cfg = crop_config(*crop)
    text = yaml.safe_dump(cfg, sort_keys=False) + "max_cycles: 1\n"
    (tmp_path / "dup.yaml").write_text(text)
    r = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "dup.yaml"))
    assert r.returncode != 0 and "repeats the key(s) max_cycles" in output(r), output(r)[-3000:]

"""The cluster profile (profiles/slurm) running this repository's workflow on a real single-node SLURM started by
the test (docs/cluster.md).

The daemons (munged, slurmctld, slurmd) are started from tests/slurm_cluster.py in a temporary folder and
stopped afterwards. The test skips, with the reason, only where SLURM cannot be installed or started (no
binaries -- CI installs them with .ci/slurm-setup.sh --, not root, or a SLURM already configured on the
machine); set LOCSCALE_REQUIRE_SLURM=1 to turn a failed start into a failure instead.

The real run is the root Snakefile on the small crop of EMD-3488 of tests/test_workflow.py with max_cycles 1;
every rule that is not a localrule runs inside a SLURM job (sbatch, then srun inside the job). A SLURM job costs
~14 s here beyond its work (Snakemake starting inside the job, the plugin's status polls), so the run groups the
rules with Snakemake's `--groups` (the user-facing option for clusters with long queue waits): cycles 0 and 1
as one job, the report (summary + ChimeraX script) as another; the `converged` checkpoint runs locally in
between. `--cores 2` (the node's CPUs) matters with groups: Snakemake sums the threads of a group's jobs that
could run side by side (validate_inputs next to refine: 1 + 2) and only stacks them in series to fit `--cores`;
without it the group asks for 3 CPUs and pends forever on a 2-CPU node (squeue reason PartitionConfig).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmCluster, SlurmStartError, unavailable_reason
from test_workflow import crop_config, jobs_run, needs_servalcat

REPO = Path(__file__).resolve().parents[1]

#: Snakemake job groups of the real run (rule=group) and the connected components each may span
GROUPS = {
    **dict.fromkeys(("prepare_inputs", "refine_unsharpened", "global_sharpen", "validate_inputs", "model_validation",
                     "refine", "simulate", "sharpen", "validate"), "cycle"),
    **dict.fromkeys(("summary", "chimerax"), "report"),  # two components: summary and chimerax share no file
}
GROUP_ARGS = ("--cores", "2", "--groups", *(f"{rule}={group}" for rule, group in GROUPS.items()),
              "--group-components", "report=2")
#: the localrules of a one-cycle run on a full map, as jobs_run lists them (it skips `all`: no wildcards)
LOCAL_RULES = {"converged", "final"}


def _snakemake(workdir: Path, env: dict, *extra: str, timeout: float = 480) -> subprocess.CompletedProcess:
    """The root Snakefile on workdir/config.yaml through profiles/slurm; Snakemake adds profiles/default (next
    to the Snakefile) as the workflow profile by itself, as for a user."""
    cmd = ["nice", sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--profile", str(REPO / "profiles" / "slurm"),
           "--max-threads", "2",  # the test node has CPUs=2
           "--slurm-init-seconds-before-status-checks", "2",  # poll soon: the jobs take seconds
           *extra]
    env = dict(env)
    env.pop("CLIBD_MON", None)  # unrestrained refinement, as in tests/test_workflow.py
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def _on_cluster(cluster: SlurmCluster, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    try:
        return _snakemake(workdir, cluster.env, *extra)
    except subprocess.TimeoutExpired as exc:  # e.g. a job SLURM can never schedule
        pytest.fail(f"snakemake did not finish in {exc.timeout:.0f} s\n{cluster.queue()}\n{_slurm_logs(workdir)}"
                    f"\n{cluster.logs()}")


def _out(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


def _slurm_logs(workdir: Path, n: int = 40) -> str:
    """Tails of the per-job logs the SLURM plugin writes under .snakemake/slurm_logs/."""
    parts = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        parts.append(f"--- {log.relative_to(workdir)}\n" + "\n".join(lines[-n:]))
    return "\n".join(parts)


@needs_servalcat
def test_profiles_are_valid_snakemake_settings(repo_root, tmp_path, crop):
    """Both profiles parse with the installed Snakemake + SLURM plugin, and the real workflow builds its DAG
    under the cluster profile with the real rules' resources (a dry run needs no cluster)."""
    slurm = yaml.safe_load((repo_root / "profiles" / "slurm" / "config.yaml").read_text())
    default = yaml.safe_load((repo_root / "profiles" / "default" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"  # works without accounting
    # the workflow profile overrides --profile key by key; a default-resources key there would drop the
    # cluster's partition/account, and executor/jobs/cores there would break one of the two modes
    assert not {"executor", "jobs", "cores", "default-resources", "latency-wait"} & set(default)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(crop_config(*crop, max_cycles=1), sort_keys=False))
    r = _snakemake(tmp_path, dict(os.environ), "--dry-run", timeout=300)
    assert r.returncode == 0, _out(r)[-4000:]
    ran = {rule for rule, _ in jobs_run(r)}
    assert {"prepare_inputs", "refine", "sharpen", "converged"} <= ran, ran  # dry runs stop at the checkpoint
    assert f"workflow specific profile {REPO / 'profiles' / 'default'}" in _out(r)


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no local SLURM: {reason}")
    cluster = SlurmCluster(cpus=2)
    try:
        cluster.start()
    except SlurmStartError as exc:
        if os.environ.get("LOCSCALE_REQUIRE_SLURM") == "1":
            raise
        pytest.skip(f"SLURM is installed but its daemons did not start here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slurm
@pytest.mark.slow
@needs_servalcat
def test_slurm_profile_runs_the_workflow_on_local_cluster(slurm_cluster, tmp_path, crop):
    """One real refinement cycle on the crop through profiles/slurm: every cluster rule ran inside a SLURM job
    that COMPLETED, the cycle table has cycle 1 filled, and a re-run submits nothing."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(crop_config(*crop, max_cycles=1), sort_keys=False))
    t0 = time.perf_counter()
    r = _on_cluster(slurm_cluster, tmp_path, *GROUP_ARGS, "--slurm-keep-successful-logs")
    wall = time.perf_counter() - t0
    log = f"--- snakemake\n{_out(r)[-6000:]}\n{slurm_cluster.queue()}\n{_slurm_logs(tmp_path)}"
    assert r.returncode == 0, log + slurm_cluster.logs()

    # the whole cycle ran, the cluster rules as two SLURM jobs (one per group) that both COMPLETED
    assert {rule for rule, _ in jobs_run(r)} == set(GROUPS) | LOCAL_RULES, log
    states = slurm_cluster.job_states()
    assert len(states) == 2 and set(states.values()) == {"COMPLETED"}, log
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", _out(r)))
    assert submitted == set(states), log
    # ... and inside those jobs: each job's own Snakemake (the plugin's log of the job) ran the group's rules
    job_logs = {p.stem: p.read_text() for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert set(job_logs) == submitted, log
    ran_in_jobs = {rule for text in job_logs.values() for rule in re.findall(r"^\s*rule (\w+):", text, re.M)}
    assert ran_in_jobs == set(GROUPS), (ran_in_jobs, log)

    res = tmp_path / "results" / "crop"
    table = pd.read_csv(res / "summary_upto_01.tsv", sep="\t")
    assert table["cycle"].tolist() == [0, 1]
    row = table[table["cycle"] == 1]
    empty = [c for c in table.columns if row[c].isna().any() and not c.endswith("_reused_from")]
    assert not empty, f"empty cells in cycle 1: {empty}"
    for col in ("cc_mask", "fsc_average", "kurtosis", "b_mean", "b_std", "engine"):
        assert col in table.columns
    assert json.loads((res / "cycle_01" / "converged.json").read_text())["status"] in ("converged", "not_converged")
    assert "reached max_cycles = 1" in _out(r), log
    assert (res / "summary_upto_01" / "radial_profiles.png").stat().st_size > 5000
    assert "open locscale.mrc" in (res / "cycle_01" / "chimerax.cxc").read_text()

    # a re-run submits nothing
    again = _on_cluster(slurm_cluster, tmp_path, *GROUP_ARGS)
    assert again.returncode == 0, _out(again)[-3000:]
    assert "Nothing to be done" in _out(again)
    assert slurm_cluster.job_states() == states
    print(f"\nworkflow (cycles 0-1) on the SLURM test cluster: {wall:.0f} s, {len(states)} SLURM jobs")

"""Where the time of a refinement cycle goes at the paper's scale: the TRPV1 case at full size, rule by rule.

A realistic phantom of the whole 3J5P tetramer (../shared/data/models/pdb3j5p_refined.pdb, 18 636 atoms, B-refined
against EMD-5778; the truth keeps the atoms' own B) in EMD-5778's grid (256³ voxels of 1.2156 Å), half maps at
3.4 Å (``locscale phantom``, seed 0, global B 100), run through the real workflow with default settings, a fixed
number of cycles (default 2), ``snakemake --cores N`` (default 2). Printed:

* the run: wall time, CPU seconds (user + system of Snakemake and every process it started, from the kernel:
  ``wait4``) and the average CPU use (CPU seconds / wall, 200 % = both cores of a 2-core machine busy), and the
  load average before and after (other processes on the machine add noise to wall times, not to CPU seconds);
* one row per job: start (seconds after the run's start), wall seconds, CPU seconds of the job's processes (the
  script and the tools it waited for, from the kernel), CPU use, its share of the run's CPU seconds, the peak
  resident memory of the job's script and of its largest tool process (from the kernel, not Snakemake's
  sampled benchmark file), the rule's ``mem_mb`` request and the tool's own timing (``refine_seconds`` etc.);
* per cycle: its span (first job start to last job end) and its critical path (refine start to converged end);
* with ``--compare RUN``: the per-cycle tables (``summary_upto_NN.tsv``) of the two runs, column by column
  (timing columns and reuse notes left out): the largest difference and the columns that differ by more than
  1e-6.

    python benchmarks/bench_cycle.py                          # this checkout, 2 cycles, 2 cores
    python benchmarks/bench_cycle.py --repo /path/to/other/checkout --label before
    python benchmarks/bench_cycle.py --label after --compare benchmarks/out/bench_cycle/before
    python benchmarks/bench_cycle.py --analyse benchmarks/out/bench_cycle/after   # print a finished run again

Each run is its own folder under benchmarks/out/bench_cycle/ (gitignored; a finished run is re-analysed, not
re-run, unless --rerun). The per-job figures come from the ``# resources:`` line every workflow script writes at
the end of its log (locscale.tools.process.usage_line); the Snakemake benchmark files are read too (``bench_s``).
Needs ../shared/data (or $LOCSCALE_SHARED_DATA). On a shared machine, run the before/after pair back to back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import _LAUNCHER, SHARED, table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "bench_cycle"
MODEL = SHARED / "models" / "pdb3j5p_refined.pdb"
BOX, APIX, RESOLUTION, SEED = 256, 1.2156, 3.4, 0
DS = "trpv1"
#: per-cycle table columns that measure time or say what was reused (they differ between runs by nature)
TIMING = re.compile(r"(seconds|_s$|^bench_|reused|_cpu|_peak|_wall)")


def make_phantom() -> Path:
    """The phantom's folder (built once: about 30 s)."""
    out = OUT / "phantom"
    if (out / "SIMULATED_phantom.json").exists():
        return out
    if not MODEL.exists():
        raise SystemExit(f"{MODEL} not found: this benchmark needs ../shared/data (or LOCSCALE_SHARED_DATA)")
    from locscale.mapio import Map, write_map

    out.mkdir(parents=True, exist_ok=True)
    grid = OUT / "grid_emd5778.mrc"
    write_map(grid, Map(np.zeros((BOX,) * 3, dtype=np.float32), voxel_size=APIX), label="EMD-5778 grid")
    subprocess.run([sys.executable, "-m", "locscale.cli", "phantom", str(MODEL), "-o", str(out), "--like",
                    str(grid), "-r", str(RESOLUTION), "--seed", str(SEED)], check=True)
    return out


def config(phantom: Path, cycles: int) -> dict:
    return {"datasets": {DS: {"half_maps": [str(phantom / "SIMULATED_half1.mrc"), str(phantom / "SIMULATED_half2.mrc")],
                              "model": str(phantom / "SIMULATED_model.pdb"), "resolution": RESOLUTION,
                              "truth": str(phantom / "SIMULATED_truth.mrc"),
                              "truth_model": str(phantom / "SIMULATED_model_true.pdb")}},
            "max_cycles": cycles, "min_cycles": cycles}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(repo: Path, workdir: Path, cycles: int, cores: int, nice: int) -> dict:
    """Run the workflow of `repo` in `workdir`; the run's record (also written to workdir/run.json)."""
    import yaml

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config(make_phantom(), cycles), sort_keys=False))
    env = dict(os.environ)
    env.pop("CLIBD_MON", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    usage = workdir / "snakemake.usage"
    cmd = ["nice", "-n", str(nice), sys.executable, "-S", "-c", _LAUNCHER.replace(
        "usage.ru_maxrss / 1024.0}", "usage.ru_maxrss / 1024.0} {usage.ru_utime + usage.ru_stime}"), str(usage),
           sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", str(cores)]
    before, t_start = uptime(), time.time()
    print(f"# running {repo} in {workdir} ({uptime()})", flush=True)
    t0 = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=repo)
    wall = time.perf_counter() - t0
    rc, peak, cpu = usage.read_text().split()
    record = {"repo": str(repo), "commit": git_commit(repo), "cores": cores, "cycles": cycles, "nice": nice,
              "exit": int(rc), "start": t_start, "wall_s": wall, "cpu_s": float(cpu), "peak_any_mb": float(peak),
              "uptime_before": before, "uptime_after": uptime()}
    (workdir / "run.json").write_text(json.dumps(record, indent=1))
    if int(rc) != 0:
        raise SystemExit(f"snakemake failed (exit {rc}); see {workdir / 'snakemake.log'}")
    return record


def git_commit(repo: Path) -> str:
    r = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown (not a git checkout)"


#: rules of cycle 0 (no cycle wildcard; their logs are in cycle_00/)
CYCLE_0_RULES = ("prepare_inputs", "refine_unsharpened", "global_sharpen", "validate_inputs")


def _mem_requests(workdir: Path) -> dict[tuple[str, str], int]:
    """(rule, cycle) -> mem_mb, from the Snakemake log's job blocks (cycle from the wildcards; '--' without)."""
    out, rule, cyc = {}, None, "--"
    for line in (workdir / "snakemake.log").read_text(errors="replace").splitlines():
        m = re.match(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", line)
        if m:
            rule, cyc = m.group(1), "--"
            continue
        m = re.search(r"wildcards:.*\bv?cycle=(\d\d)", line)
        if rule and m:
            cyc = m.group(1)
        m = re.search(r"mem_mb=(\d+)", line)
        if rule and m:
            out[(rule, "00" if rule in CYCLE_0_RULES else cyc)] = \
                int(m.group(1))
            rule = None
    return out


def _tool_seconds(results: Path, rule: str, cyc: str) -> str:
    d = results / f"cycle_{cyc}"
    try:
        if rule == "refine":
            return f"servalcat {json.loads((d / 'refine.json').read_text())['refine_seconds']:.1f}"
        if rule == "crossval":
            r = json.loads((d / "crossval.json").read_text())
            return ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k.endswith("_seconds") and isinstance(v, float))
        if rule == "model_validation":
            det = json.loads((d / "model_validation" / "model_validation_details.json").read_text())
            return ", ".join(f"{k} {v:.1f}" for k, v in det.get("seconds", {}).items())
    except (OSError, KeyError, ValueError):
        pass
    return ""


def jobs(workdir: Path, start: float) -> pd.DataFrame:
    """One row per job, from the '# resources:' line at the end of each job's log."""
    sys.path.insert(0, str(REPO))
    from locscale.tools.process import read_usage_line

    results = workdir / "results" / DS
    mem = _mem_requests(workdir)
    rows = []
    for log in sorted(results.glob("cycle_*/logs/*.log")) + sorted(results.glob("logs/*.log")):
        u = read_usage_line(log)
        if u is None:
            continue
        cyc = log.parent.parent.name[-2:] if log.parent.parent.name.startswith("cycle_") else "--"
        rule = log.stem.split("_upto_")[0]
        if cyc == "00" and rule == "validate":
            rule = "validate_inputs"
        bench = log.parent.parent / "benchmarks" / f"{rule}.tsv"
        bench_s = float(pd.read_csv(bench, sep="\t")["s"].iloc[0]) if bench.exists() else math.nan
        cpu = u["cpu_self_s"] + u["cpu_children_s"]
        rows.append({"cycle": cyc, "rule": rule, "start_s": u["start"] - start, "wall_s": u["wall_s"],
                     "bench_s": bench_s, "cpu_s": cpu, "cpu_pct": 100 * cpu / max(u["wall_s"], 1e-9),
                     "peak_script_mb": u["peak_self_mb"], "peak_tool_mb": u["peak_children_mb"],
                     "mem_mb_request": mem.get((rule, cyc), mem.get((log.stem, cyc))),
                     "tool_seconds": _tool_seconds(results, rule, cyc)})
    return pd.DataFrame(rows).sort_values("start_s", kind="stable").reset_index(drop=True)


def analyse(workdir: Path) -> dict:
    rec = json.loads((workdir / "run.json").read_text())
    j = jobs(workdir, rec["start"])
    total_cpu = j["cpu_s"].sum()
    j["cpu_share_pct"] = 100 * j["cpu_s"] / total_cpu
    print(f"\n## {workdir.name}: {rec['repo']} ({rec['commit']}), {rec['cycles']} cycles, --cores {rec['cores']}, "
          f"nice {rec['nice']}")
    print(f"load before: {rec['uptime_before']}\nload after:  {rec['uptime_after']}")
    print(f"\nrun: wall {rec['wall_s']:.1f} s, CPU {rec['cpu_s']:.1f} s (user + system, every process), average CPU "
          f"use {100 * rec['cpu_s'] / rec['wall_s']:.0f} % (of {100 * rec['cores']} %); jobs' CPU {total_cpu:.1f} s, "
          f"largest process {rec['peak_any_mb']:.0f} MB\n")
    cols = ["cycle", "rule", "start_s", "wall_s", "bench_s", "cpu_s", "cpu_pct", "cpu_share_pct", "peak_script_mb",
            "peak_tool_mb", "mem_mb_request", "tool_seconds"]
    print(table(j.to_dict("records"), cols))
    # per rule (all cycles)
    by_rule = j.groupby("rule", sort=False).agg(jobs=("rule", "size"), wall_s=("wall_s", "sum"),
                                                cpu_s=("cpu_s", "sum"), peak_mb=("peak_tool_mb", "max"),
                                                peak_script_mb=("peak_script_mb", "max"))
    by_rule["cpu_share_pct"] = 100 * by_rule["cpu_s"] / total_cpu
    print("\nper rule, all cycles:\n")
    print(table(by_rule.reset_index().to_dict("records"), ["rule", "jobs", "wall_s", "cpu_s", "cpu_share_pct",
                                                            "peak_script_mb", "peak_mb"]))
    cycles = []
    for cyc, g in j.groupby("cycle"):
        end = (g["start_s"] + g["wall_s"]).max()
        row = {"cycle": cyc, "first_start_s": g["start_s"].min(), "last_end_s": end, "span_s": end - g["start_s"].min(),
               "cpu_s": g["cpu_s"].sum()}
        r, c = g[g.rule == "refine"], g[g.rule == "converged"]
        if len(r) and len(c):
            row["refine_to_converged_s"] = (c["start_s"] + c["wall_s"]).max() - r["start_s"].min()
        cycles.append(row)
    print("\nper cycle (span: its first job's start to its last job's end, crossval and model validation included; "
          "refine_to_converged: the cycle's critical path):\n")
    print(table(cycles, ["cycle", "first_start_s", "last_end_s", "span_s", "refine_to_converged_s", "cpu_s"]))
    j.to_csv(workdir / "jobs.tsv", sep="\t", index=False)
    return {"run": rec, "jobs": j, "cycles": cycles}


def compare(a: Path, b: Path, cycles: int) -> float:
    """Largest difference between the per-cycle tables of two runs (numeric, non-timing columns)."""
    name = f"results/{DS}/summary_upto_{cycles:02d}.tsv"
    ta, tb = pd.read_csv(a / name, sep="\t"), pd.read_csv(b / name, sep="\t")
    print(f"\n## per-cycle tables: {a.name} vs {b.name} ({name})\n")
    only = sorted(set(ta.columns) ^ set(tb.columns))
    if only:
        print(f"columns in one table only: {only}")
    worst, differ = 0.0, []
    for col in [c for c in ta.columns if c in tb.columns and not TIMING.search(c)]:
        x, y = ta[col], tb[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            d = np.abs(x.to_numpy(float) - y.to_numpy(float))
            both_nan = np.isnan(x.to_numpy(float)) & np.isnan(y.to_numpy(float))
            d = np.where(both_nan, 0.0, d)
            m = float(np.nanmax(np.where(np.isnan(d), np.inf, d))) if len(d) else 0.0
            worst = max(worst, m)
            if m > 1e-6:
                differ.append(f"{col} (max |Δ| {m:.3g})")
        elif not x.astype(str).equals(y.astype(str)):
            differ.append(f"{col} (text)")
    print(f"largest |Δ| over {len(ta)} cycles and the numeric columns: {worst:.3g}")
    print("columns differing by more than 1e-6: " + (", ".join(differ) if differ else "none"))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose Snakefile and locscale run")
    ap.add_argument("--label", default="run", help="run folder name under benchmarks/out/bench_cycle/")
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--rerun", action="store_true", help="run again even if the folder holds a finished run")
    ap.add_argument("--analyse", type=Path, help="only print the analysis of this finished run folder")
    ap.add_argument("--compare", type=Path, help="a finished run folder whose per-cycle table to compare with")
    args = ap.parse_args(argv)
    if args.analyse:
        workdir = args.analyse
    else:
        workdir = OUT / args.label
        if args.rerun or not (workdir / "run.json").exists():
            run(args.repo.resolve(), workdir, args.cycles, args.cores, args.nice)
    result = analyse(workdir)
    if args.compare:
        compare(args.compare, workdir, result["run"]["cycles"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

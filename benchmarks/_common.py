"""Shared pieces of the benchmark scripts: inputs, one-run-per-subprocess timing, LocScale 2, tables.

Every timed run is a fresh Python process (benchmarks/_run_mode.py, or LocScale 2's CLI) so its peak memory
(ru_maxrss from os.wait4, the figure /usr/bin/time -v prints) belongs to that run alone. Inputs are written once
per case under benchmarks/out/inputs/ (gitignored) and reused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
INPUTS = OUT / "inputs"
SHARED = Path(os.environ.get("LOCSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE = REPO / "examples" / "emd3488"


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class Case:
    name: str
    npz: Path          # map, model, mask arrays ([x, y, z])
    mrc: dict          # "map", "model", "mask" MRC paths for LocScale 2
    apix: float
    window: int        # voxels
    note: str
    pdb: Path | None = None
    resolution: float = 3.2
    extra: dict = field(default_factory=dict)

    def load(self):
        d = np.load(self.npz)
        return d["map"], d["model"], d["mask"]


def _write_mrc(path: Path, data: np.ndarray, apix: float) -> None:
    from locscale.mapio import Map, write_map

    write_map(path, Map(np.asarray(data, dtype=np.float32), voxel_size=apix), label="locscale benchmark input")


def _save_case(name: str, emap, model, mask, apix: float) -> tuple[Path, dict]:
    d = INPUTS / name
    d.mkdir(parents=True, exist_ok=True)
    npz = d / "inputs.npz"
    np.savez(npz, map=emap.astype(np.float32), model=model.astype(np.float32), mask=mask.astype(bool))
    mrc = {k: d / f"{k}.mrc" for k in ("map", "model", "mask")}
    _write_mrc(mrc["map"], emap, apix)
    _write_mrc(mrc["model"], model, apix)
    _write_mrc(mrc["mask"], mask.astype(np.float32), apix)
    return npz, mrc


def _bundled_arrays():
    """EMD-3488 with LocScale 2's own model map and mask (../shared/data) or, without them, our simulated
    model map of 5me2 and a 3 Å model envelope."""
    from locscale.mapio import read_map

    emap = read_map(EXAMPLE / "emd_3488.mrc")
    ls2 = SHARED / "emd3488" / "locscale2_output"
    if (ls2 / "locscale2_modelmap.mrc").exists():
        model = read_map(ls2 / "locscale2_modelmap.mrc").data
        mask = read_map(ls2 / "locscale2_mask.mrc").data >= 0.5
        note = "EMD-3488, LocScale 2's model map and FDR mask"
    else:
        from locscale.models import envelope_mask, read_model
        from locscale.simulate import simulate_model_map

        st = read_model(EXAMPLE / "5me2.pdb")
        model = simulate_model_map(st, emap).data
        mask = envelope_mask(st, emap, 3.0)
        note = "EMD-3488, simulated 5me2 model map, 3 Å envelope mask"
    return emap, model, mask, note


def case_bundled() -> Case:
    emap, model, mask, note = _bundled_arrays()
    npz, mrc = INPUTS / "bundled" / "inputs.npz", {k: INPUTS / "bundled" / f"{k}.mrc" for k in ("map", "model", "mask")}
    if not npz.exists():
        npz, mrc = _save_case("bundled", emap.data, model, mask, emap.apix)
    return Case("bundled 100³", npz, mrc, emap.apix, 24, note, pdb=EXAMPLE / "5me2.pdb")


def _resample(a: np.ndarray, n: int) -> np.ndarray:
    import scipy.signal

    for axis in range(3):
        a = scipy.signal.resample(a, n, axis=axis)
    return a.astype(np.float32)


def case_160() -> Case:
    """The bundled case Fourier-resampled to 160³ (0.65625 Å); window = LocScale 2's default
    ceil(25 Å / apix) rounded up to even = 40 voxels. The mask is LocScale 2's, resampled linearly (≥ 0.5)."""
    import scipy.ndimage

    n = 160
    emap, model, mask, note = _bundled_arrays()
    apix = emap.apix * emap.shape[0] / n
    w = math.ceil(25.0 / apix)
    w += w % 2
    npz = INPUTS / "b160" / "inputs.npz"
    mrc = {k: INPUTS / "b160" / f"{k}.mrc" for k in ("map", "model", "mask")}
    if not npz.exists():
        g = np.arange(n) * (emap.shape[0] / n)
        coords = np.meshgrid(g, g, g, indexing="ij")
        m160 = scipy.ndimage.map_coordinates(mask.astype(np.float32), coords, order=1) >= 0.5
        npz, mrc = _save_case("b160", _resample(emap.data, n), _resample(model, n), m160, apix)
    return Case("bundled resampled 160³", npz, mrc, apix, w, note + ", Fourier-resampled to 160³",
                pdb=EXAMPLE / "5me2.pdb")


def case_256(radius: float | None = None) -> Case:
    """A 256³ phantom of TRPV1 (3J5P refined, 1.2156 Å): the map is the model blurred by a radial B gradient
    plus noise (locscale.phantoms.phantom), the model map the refined model's (locscale.simulate), the mask the model
    envelope of `radius` Å (default 20 Å: > 1 M voxels, the size of map the GPU path is meant for). Window 24 voxels
    (29 Å)."""
    from locscale.mapio import Map
    from locscale.models import envelope_mask, read_model
    from locscale.phantoms.phantom import make_phantom
    from locscale.simulate import simulate_model_map

    pdb = SHARED / "models" / "pdb3j5p_refined.pdb"
    npz = INPUTS / "p256" / "inputs.npz"
    mrc = {k: INPUTS / "p256" / f"{k}.mrc" for k in ("map", "model", "mask")}
    apix = 1.2156
    w = 24
    radius = 20.0 if radius is None else radius
    if not npz.exists():
        if not pdb.exists():
            raise FileNotFoundError(f"{pdb} not found (set LOCSCALE_SHARED_DATA)")
        st = read_model(pdb)
        grid = Map(np.zeros((256, 256, 256), dtype=np.float32), voxel_size=apix)
        ph = make_phantom(st, grid, seed=0, resolution=3.4)
        model = simulate_model_map(ph.model, grid).data
        mask = envelope_mask(ph.model, grid, radius)
        npz, mrc = _save_case("p256", ph.full.data, model, mask, apix)
    return Case("TRPV1 phantom 256³", npz, mrc, apix, w, f"3J5P refined phantom, {radius:.1f} Å envelope mask",
                pdb=pdb, resolution=3.4)


def case_400() -> Case:
    """Memory and time at the size users run: the 256³ TRPV1 phantom case Fourier-resampled to 400³
    (0.778 Å), its 20 Å envelope mask resampled linearly (≥ 0.5; about 4 M voxels), window 36 voxels (28 Å,
    as at 256³). Exact mode would take over 20 min on 2 cores: run near-exact and fast (agreement with exact
    is the 256³ case's)."""
    import scipy.ndimage

    n = 400
    base = case_256()
    npz = INPUTS / "p400" / "inputs.npz"
    mrc = {k: INPUTS / "p400" / f"{k}.mrc" for k in ("map", "model", "mask")}
    apix = base.apix * 256 / n
    if not npz.exists():
        emap, model, mask = base.load()
        g = np.arange(n) * (256 / n)
        coords = np.meshgrid(g, g, g, indexing="ij")
        m400 = scipy.ndimage.map_coordinates(mask.astype(np.float32), coords, order=1) >= 0.5
        del coords
        npz, mrc = _save_case("p400", _resample(emap, n), _resample(model, n), m400, apix)
    return Case("TRPV1 phantom 400³", npz, mrc, apix, 36, base.note + ", Fourier-resampled to 400³",
                pdb=base.pdb, resolution=base.resolution)


CASES = {"bundled": case_bundled, "160": case_160, "256": case_256, "400": case_400}


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Run:
    label: str
    wall_s: float              # whole process
    compute_s: float | None    # the scaling call alone (our modes)
    peak_mb: float
    output: Path | None
    ok: bool = True
    message: str = ""


#: Runs the command given after the peak file and writes its exit code and peak resident memory (MB) there.
#: Started with `python -S` (≈ 13 MB), so the command's ru_maxrss is its own: Linux carries the peak resident
#: memory of the process that forks across exec, so a command started straight from this (large) benchmark
#: process would report at least this process's peak (measured: a child that allocates nothing reported 2 GB
#: when started from a 2 GB parent, 13 MB through this launcher).
_LAUNCHER = """import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss / 1024.0}")
"""


def _wait(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> tuple[int, float, float]:
    """Run `cmd` with output to `log`: (exit code, wall seconds, the command's own peak resident memory in MB)."""
    peak_file = log.with_suffix(".peak")
    peak_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        launcher = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(peak_file), *cmd], stdout=fh,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if not peak_file.exists():
        return launcher.returncode or 1, wall, float("nan")
    rc, peak = peak_file.read_text().split()
    return int(rc), wall, float(peak)


def run_tag(case: Case, mode: str, window: int | None = None, **options) -> str:
    """File stem of a run's output under benchmarks/out/runs/ (also used to reuse an earlier exact run)."""
    w = window or case.window
    parts = [case.npz.parent.name, case.npz.stem, mode, f"w{w}"] + [f"{k}{v}" for k, v in sorted(options.items())]
    return "_".join(parts)


def run_mode(case: Case, mode: str, window: int | None = None, **options) -> Run:
    """One of our modes on `case` in a fresh process; options: stride, device, workers, batch_size."""
    w = window or case.window
    out = OUT / "runs" / f"{run_tag(case, mode, w, **options)}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(BENCH / "_run_mode.py"), str(case.npz), mode, str(w), str(out),
           json.dumps(options)]
    log = out.with_suffix(".log")
    rc, wall, peak = _wait(cmd, log)
    text = log.read_text()
    if rc != 0:
        last = text.strip().splitlines()[-1][:200] if text.strip() else f"exit {rc}"
        return Run(mode, wall, None, peak, None, ok=False, message=last)
    info = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    return Run(mode, wall, info["seconds"], peak, None if mode == "fft-floor" else out)


def with_mask(case: Case, mask, name: str) -> Case:
    """The same map and model map with another mask (saved once under the case's input folder)."""
    npz = case.npz.parent / f"{name}.npz"
    if not npz.exists():
        emap, model, _ = case.load()
        np.savez(npz, map=emap, model=model, mask=np.asarray(mask, dtype=bool))
    return Case(f"{case.name}, {name}", npz, case.mrc, case.apix, case.window, case.note, case.pdb,
                case.resolution)


def locscale2_bin() -> Path | None:
    """LocScale 2.4.1's `locscale` command: $LOCSCALE2_BIN, else ../ls2venv/bin/locscale next to the repo."""
    env = os.environ.get("LOCSCALE2_BIN")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "ls2venv" / "bin" / "locscale"]:
        if cand.exists():
            return cand
    return None


def run_locscale2(case: Case, *, end_to_end: bool = False, window: int | None = None) -> Run:
    """LocScale 2.4.1 on the case's files in a fresh process.

    Default: the same inputs as ours (-mm model map, -ma mask, -wn window), so only its scaling and its
    own pre/post-processing are timed. `end_to_end`: the documented model-based call (`-mc MODEL -res D
    --skip_refine`): it simulates its own model map and computes its FDR mask first."""
    exe = locscale2_bin()
    if exe is None:
        return Run("LocScale 2.4.1", math.nan, None, math.nan, None, ok=False,
                   message="LocScale 2.4.1 not found: set LOCSCALE2_BIN or create ../ls2venv (see docs/benchmarks.md)")
    work = Path(tempfile.mkdtemp(prefix="ls2_", dir=OUT))
    emap = work / "emmap.mrc"
    shutil.copy(case.mrc["map"], emap)
    out = work / "locscale2_output.mrc"
    if end_to_end:
        shutil.copy(case.pdb, work / case.pdb.name)
        args = ["-mc", case.pdb.name, "-res", str(case.resolution), "--skip_refine"]
        label = "LocScale 2.4.1 (-mc, end to end)"
    else:
        shutil.copy(case.mrc["model"], work / "modelmap.mrc")
        shutil.copy(case.mrc["mask"], work / "mask.mrc")
        args = ["-mm", "modelmap.mrc", "-ma", "mask.mrc", "-wn", str(window or case.window)]
        label = "LocScale 2.4.1 (-mm -ma, same inputs)"
    cmd = [str(exe), "-em", "emmap.mrc", *args, "-o", out.name, "-op", "processing", "-v"]
    # the same import name: a PYTHONPATH that points at this checkout would make LocScale 2 import our package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    rc, wall, peak = _wait(cmd, work / "run.log", env=env, cwd=work)
    if rc != 0 or not out.exists():
        tail = (work / "run.log").read_text().strip().splitlines()[-1:] or [""]
        return Run(label, wall, None, peak, None, ok=False, message=f"exit {rc}: {tail[0][:200]}")
    return Run(label, wall, None, peak, out)


def load_output(run: Run) -> np.ndarray | None:
    if run.output is None:
        return None
    if run.output.suffix == ".npy":
        return np.load(run.output)
    from locscale.mapio import read_map

    return read_map(run.output).data


def cc(a: np.ndarray | None, b: np.ndarray | None, mask: np.ndarray) -> float:
    if a is None or b is None:
        return math.nan
    return float(np.corrcoef(a[mask].astype(np.float64), b[mask].astype(np.float64))[0, 1])


# ---------------------------------------------------------------------------------------------- reporting
def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        if abs(v) < 10:
            return f"{v:.5g}"
        if abs(v) < 1000:
            return f"{v:.4g}"
        return f"{v:,.0f}"
    if isinstance(v, int) and abs(v) >= 10000:
        return f"{v:,}"
    return str(v)


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_tsv(name: str, rows: list[dict], columns: list[str]) -> Path:
    """Append `rows` (with a run_at timestamp) to benchmarks/out/`name`, writing the header for a new file."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    new = not path.exists()
    with open(path, "a") as fh:
        if new:
            fh.write("\t".join(["run_at", *columns]) + "\n")
        for r in rows:
            fh.write("\t".join([stamp] + ["" if r.get(c) is None else str(r.get(c)) for c in columns]) + "\n")
    return path


def machine_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (f"{os.cpu_count()} cores, load average {load:.1f} at start (other processes may add timing noise; "
            f"runs use `nice` when started with it)")


def run_workflow(workdir: Path, config: dict, cores: int, label: str) -> float:
    """Run the repository's Snakefile in `workdir` with `config` (written to workdir/config.yaml; $CLIBD_MON unset
    so the configured library decides); the log goes to workdir/snakemake.log. Returns the wall seconds."""
    import yaml

    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ)
    env.pop("CLIBD_MON", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores",
                        str(cores)], capture_output=True, text=True, env=env)
    (workdir / "snakemake.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"{label}: snakemake failed, see {workdir / 'snakemake.log'}")
    seconds = time.perf_counter() - t0
    print(f"# {label}: {seconds:.0f} s", flush=True)
    return seconds


def write_into_doc(page: str, marker: str, text: str) -> Path:
    """Put `text` (a markdown table) into docs/`page` between its ``<!-- marker:start -->`` and
    ``<!-- marker:end -->`` lines, atomically: benchmarks write their tables into docs/, never into the README."""
    doc = REPO / "docs" / page
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    s = doc.read_text()
    i, j = s.find(start), s.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{doc} has no {start} … {end} block to write the table into")
    tmp = doc.with_suffix(".md.partial")
    tmp.write_text(s[:i + len(start)] + "\n" + text + "\n" + s[j:])
    tmp.replace(doc)
    print(f"table written into {doc}")
    return doc

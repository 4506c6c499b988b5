"""Running external programs (refinement engines, model-validation and model-building tools): each in its own
process, with its output in a log and a clear error naming the log when it fails."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path


def tool_environment() -> dict[str, str]:
    """``os.environ`` with the directory holding this ``locscale`` package first on ``PYTHONPATH``: the
    environment for ``python -m locscale.<tool>`` processes (coot and cctbx crash in one process, so they run
    apart), so they run this code whether or not the interpreter has the package installed (e.g. a tool
    environment without it)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def run_logged(cmd: list[str] | str, workdir: str | os.PathLike, log: str | os.PathLike, *,
               threads: int = 1, shell: bool = False, timeout: float | None = None) -> float:
    """Run `cmd` in `workdir` with stdout+stderr appended to `log`; return wall seconds.

    OpenMP/BLAS thread counts are set to `threads`. A non-zero exit raises RuntimeError with the log's last lines.
    """
    workdir = Path(workdir)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(max(1, int(threads)))
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"# in {workdir}: {cmd if isinstance(cmd, str) else shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(["bash", "-c", cmd] if shell else cmd, cwd=workdir, stdout=fh,
                              stderr=subprocess.STDOUT, env=env, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "".join(Path(log).read_text(errors="replace").splitlines(keepends=True)[-25:])
        name = cmd.split()[0] if isinstance(cmd, str) else Path(cmd[0]).name
        raise RuntimeError(f"{name} failed (exit status {proc.returncode}) in {workdir}; last lines of {log}:\n"
                           f"{tail}")
    return seconds


def absolute(path) -> str:
    return str(Path(path).resolve())


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


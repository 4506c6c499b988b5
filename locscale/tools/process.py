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
               threads: int = 1, shell: bool = False, timeout: float | None = None,
               clean_on_failure: bool = False) -> float:
    """Run `cmd` in `workdir` with stdout+stderr appended to `log`; return wall seconds.

    OpenMP/BLAS thread counts are set to `threads`. A non-zero exit raises RuntimeError with the log's last lines;
    one that ran out of disk space raises :func:`locscale.outputs.disk_full_error` (one line: the folder, what
    was written, what is free). `clean_on_failure`: a failed run's files in `workdir` (the program's own
    outputs, which may be truncated but carry their final names) are removed, its ``*.log`` files kept.
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
        try:
            tail = "".join(Path(log).read_text(errors="replace").splitlines(keepends=True)[-25:])
        except OSError:
            tail = ""
        written = remove_outputs(workdir) if clean_on_failure else None
        if "No space left on device" in tail or "[Errno 28]" in tail or "Disk quota exceeded" in tail:
            from ..outputs import disk_full_error

            raise disk_full_error(workdir, written=written) from None
        name = cmd.split()[0] if isinstance(cmd, str) else Path(cmd[0]).name
        raise RuntimeError(f"{name} failed (exit status {proc.returncode}) in {workdir}; last lines of {log}:\n"
                           f"{tail}")
    return seconds


def remove_outputs(workdir: str | os.PathLike) -> int:
    """Remove every file under `workdir` but its ``*.log`` files (a failed program's outputs may be truncated yet
    carry their final names); returns the bytes removed."""
    removed = 0
    for path in sorted(Path(workdir).rglob("*"), reverse=True):
        if path.is_file() and path.suffix != ".log":
            removed += path.stat().st_size
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


def format_command(template: str, fields: dict) -> str:
    """A shell command line from a configured `template` with ``{placeholder}`` fields: every value is substituted
    shell-quoted (:func:`shlex.quote`), so a path with spaces or shell characters (``my dir;touch x``) stays one
    argument and runs nothing. Raises KeyError/IndexError for an unknown placeholder."""
    return template.format(**{k: shlex.quote(str(v)) for k, v in fields.items()})


def absolute(path) -> str:
    return str(Path(path).resolve())


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


"""Running external programs (refinement engines, model-validation and model-building tools): each in its own
process, with its output in a log and a clear error naming the log when it fails."""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import subprocess
import time
from pathlib import Path

#: the prefix of the one line :func:`usage_line` writes into a job's log (read back by :func:`read_usage_line`)
USAGE_PREFIX = "# resources: "


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
               clean_on_failure: bool = False, environ: dict[str, str] | None = None) -> float:
    """Run `cmd` in `workdir` with stdout+stderr appended to `log`; return wall seconds.

    OpenMP/BLAS thread counts are set to `threads`; `environ` is the environment (default ``os.environ``). A
    non-zero exit raises RuntimeError with the log's last lines; one that ran out of disk space raises
    :func:`locscale.outputs.disk_full_error` (one line: the folder, what was written, what is free).
    `clean_on_failure`: a failed run's files in `workdir` (the program's own outputs, which may be truncated but
    carry their final names) are removed, its ``*.log`` files kept.
    """
    workdir = Path(workdir)
    env = dict(os.environ if environ is None else environ)
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



def process_usage(start: float | None = None) -> dict:
    """CPU seconds (user + system) and peak resident memory (MB) of this process and of its finished children
    (every tool it ran and waited for), measured by the kernel (``getrusage``), plus the wall clock (epoch
    seconds) from `start` to now. ``peak_children_mb`` is the largest single child's peak, not a sum; a child
    started by forking this process counts this process's memory at the fork too, so self + children bounds what
    the job held at once from above."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    end = time.time()
    out = {"cpu_self_s": round(me.ru_utime + me.ru_stime, 3), "cpu_children_s": round(kids.ru_utime + kids.ru_stime, 3),
           "peak_self_mb": round(me.ru_maxrss / 1024.0, 1), "peak_children_mb": round(kids.ru_maxrss / 1024.0, 1),
           "end": round(end, 3)}
    if start is not None:
        out.update(start=round(start, 3), wall_s=round(end - start, 3))
    return out


def usage_line(start: float | None = None) -> str:
    """:func:`process_usage` as one log line (``# resources: {json}``)."""
    return USAGE_PREFIX + json.dumps(process_usage(start))


def read_usage_line(log: str | os.PathLike) -> dict | None:
    """The last :func:`usage_line` record in the log file `log` (None when it has none)."""
    found = None
    try:
        with open(log, errors="replace") as fh:
            for line in fh:
                if line.startswith(USAGE_PREFIX):
                    found = line
    except OSError:
        return None
    return None if found is None else json.loads(found[len(USAGE_PREFIX):])

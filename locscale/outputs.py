"""Outputs a command or a workflow step may write, and how they are written.

* :func:`guard_outputs`: checked before any computation — never write over an input (same file by path, symbolic
  link or hard link), never replace a read-only file, find an unwritable folder before the work, not after.
* :func:`atomic_output` (and :func:`write_text_atomic`, :func:`save_figure`): every file is written under a
  temporary name beside its destination and renamed only when complete, so an interrupted run never leaves a
  partial file that looks complete. A full disk (or quota, or file-size limit) ends with one
  :class:`LocScaleInputError` naming the file, the space it needs and the space free (:func:`require_space` checks
  before writing when the size is known), and the partial file is removed.

This module imports nothing heavier than :mod:`locscale.errors`, so the tool processes (coot, cctbx) use it too.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import LocScaleInputError


def _stat(path: Path):
    try:
        return os.stat(path)
    except OSError:
        return None


def guard_outputs(outputs: dict[str, str | os.PathLike | None],
                  inputs: Iterable[str | os.PathLike | None]) -> None:
    """Check every output before any computation: refuse one that is (resolves to, or is a hard link of) an
    input or another output, an existing folder, a read-only file, or lies in a folder that cannot be
    written. `outputs` maps an option name (for the message, e.g. '-o') to a path; None entries are skipped.
    Missing parent folders are fine when they can be created (the writers create them)."""
    ins = [Path(p) for p in inputs if p is not None]
    in_stats = [(p, _stat(p)) for p in ins]
    in_real = {os.path.realpath(p): p for p in ins}
    seen: dict[str, str] = {}
    for option, out in outputs.items():
        if out is None:
            continue
        out = Path(out)
        real = os.path.realpath(out)
        if real in in_real:
            raise LocScaleInputError(f"the output ({option}) is the input {in_real[real]}: writing it would destroy "
                                     "the input", f"give {option} a new file name", out)
        st = _stat(out)
        if st is not None:
            for p, ist in in_stats:
                if ist is not None and (st.st_dev, st.st_ino) == (ist.st_dev, ist.st_ino):
                    raise LocScaleInputError(f"the output ({option}) is the same file as the input {p} (a hard "
                                             "link): writing it would destroy the input",
                                             f"give {option} a new file name", out)
        if real in seen:
            raise LocScaleInputError(f"the outputs {seen[real]} and {option} are the same file",
                                     "give every output its own file name", out)
        seen[real] = option
        if out.is_dir():
            raise LocScaleInputError(f"the output ({option}) is a folder", f"give {option} a file name, e.g. "
                                     f"{out / 'out.mrc'}", out)
        if st is not None and is_read_only(st):
            raise LocScaleInputError(f"the output ({option}) exists and is read-only; it is not replaced",
                                     "remove it or make it writable (chmod u+w) if you mean to replace it, or "
                                     "give another file name", out)
        parent = Path(real).parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not folder_writable(parent):
            raise LocScaleInputError(f"cannot write the output ({option}): {parent} is not a folder you can write "
                                     "to", "choose an output in a folder you can write to", out)


def is_read_only(st: os.stat_result) -> bool:
    """True when a file has no write permission bit at all (0444 and the like; root could still write it)."""
    return not (st.st_mode & 0o222)


def folder_writable(folder: Path) -> bool:
    """Whether a file can be created in `folder`: tried for real (a temporary file, removed at once), since
    permission bits do not tell for root, read-only mounts or special file systems."""
    if not folder.is_dir():
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".locscale-write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True



#: errors of a write that ran out of room: disk full, quota exceeded, file-size limit (ulimit -f)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def free_space(folder: str | os.PathLike) -> int | None:
    """Bytes free for an unprivileged write in `folder` (or its nearest existing parent); None if unknown."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:
        return None


def is_disk_full(exc: BaseException) -> bool:
    """True for an error of a write that ran out of room (:data:`DISK_FULL_ERRNOS`), also as raised by libraries
    that report it as text (gemmi: "No space left on device")."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def disk_full_error(path: str | os.PathLike, needed: int | None = None,
                    written: int | None = None) -> LocScaleInputError:
    """The one-line error for `path` that did not fit: what it needs (or had written when the disk filled) and what
    is free."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    free = free_space(folder)
    need = (f"it needs {human_bytes(needed)}" if needed else
            f"it needs more than the {human_bytes(written or 0)} written when the disk filled")
    have = f"{human_bytes(free)} free there" if free is not None else "free space unknown"
    what = "the files of this folder" if Path(path).is_dir() else "this file"
    return LocScaleInputError(f"not enough disk space to write {what}: {need}, {have}",
                              "free space on that file system, or run where there is more (nothing incomplete was "
                              "left behind)", path)


def require_space(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse to start writing `nbytes` to `path` when its file system has less free space (one line naming the
    file, the space needed and the space free)."""
    free = free_space(Path(path).parent)
    if free is not None and free < nbytes:
        raise disk_full_error(path, needed=nbytes)


def atomic_output(path: str | os.PathLike, suffix: str | None = None, size: int | None = None):
    """Context manager yielding a temporary path beside `path`; renamed to `path` only on success. `size` (bytes,
    when known) is checked against the free space first (:func:`require_space`); a write that fills the disk ends
    with :func:`disk_full_error` and leaves nothing behind."""
    return _AtomicOutput(Path(path), suffix, size)


class _AtomicOutput:
    def __init__(self, path: Path, suffix: str | None, size: int | None = None):
        self.path = path
        self.suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
        self.size = size

    def __enter__(self) -> Path:
        if self.path.is_dir():
            raise LocScaleInputError("the output is a folder", "give a file name", self.path)
        if self.path.exists() and is_read_only(self.path.stat()):
            raise LocScaleInputError("the output exists and is read-only; it is not replaced",
                                     "remove it or make it writable (chmod u+w), or give another file name",
                                     self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocScaleInputError(f"cannot create the output's folder ({exc.strerror})",
                                     "choose an output in a folder you can write to", self.path) from None
        if not folder_writable(self.path.parent):
            raise LocScaleInputError(f"cannot write in folder {self.path.parent}",
                                     "choose an output in a folder you can write to", self.path)
        if self.size:
            require_space(self.path, self.size)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".partial{self.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            # mkstemp creates 0600 files; outputs get the usual permissions (0666 minus the umask)
            umask = os.umask(0)
            os.umask(umask)
            try:
                os.chmod(self.tmp, 0o666 & ~umask)
                os.replace(self.tmp, self.path)
            except OSError as err:  # e.g. the target became a folder meanwhile: leave nothing behind
                self.tmp.unlink(missing_ok=True)
                raise LocScaleInputError(f"cannot write the output ({err.strerror})",
                                         "give a file name in a folder you can write to", self.path) from None
        else:
            try:
                written = self.tmp.stat().st_size
            except OSError:
                written = None
            self.tmp.unlink(missing_ok=True)
            if exc is not None and is_disk_full(exc):
                raise disk_full_error(self.path, self.size, written) from None
        return False



def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through :func:`atomic_output` (temporary name, renamed when complete)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


#: resolution of the figures (PNG) every report writes
FIGURE_DPI = 110


def save_figure(fig, path: str | os.PathLike, *, dpi: int = FIGURE_DPI, bbox_inches: str | None = "tight",
                suffix: str = ".png") -> Path:
    """Write a matplotlib Figure as PNG, atomically (temporary name, renamed when complete).

    Uses the Agg canvas directly: no pyplot, no global backend switch, so it works on headless nodes and leaves
    the caller's matplotlib state alone. Build the figure with ``matplotlib.figure.Figure(...)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_output(path, suffix=suffix) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox_inches)
    return path


def write_tsv(frame, path: str | os.PathLike) -> Path:
    """Write a pandas table as TSV (8 significant digits) through :func:`atomic_output`."""
    with atomic_output(path, suffix=".tsv") as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.8g")
    return Path(path)

"""JSON records (run info, metrics, decisions): numpy values converted, provenance added, written atomically."""

from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .outputs import atomic_output


def jsonable(o):
    """`json.dumps` default: numpy scalars → Python numbers, arrays → lists, anything else → str."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def dumps(record, **kw) -> str:
    """`record` as JSON text (NaN allowed, numpy values converted)."""
    return json.dumps(record, default=jsonable, **kw)


#: the packages whose installed versions every record names (those not installed are left out)
PROVENANCE_PACKAGES = ("locscale", "numpy", "gemmi", "servalcat", "snakemake")


@functools.cache
def provenance() -> dict:
    """What made a record: the installed versions of locscale and its key dependencies
    (:data:`PROVENANCE_PACKAGES`, from the package metadata, nothing imported) and the command line; computed once
    per process."""
    from importlib import metadata

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {**versions, "command": " ".join(sys.argv)}


def write_json(path: str | os.PathLike, record, *, sort_keys: bool = False, warnings: list | None = None,
               with_provenance: bool = True) -> Path:
    """Write `record` as indented JSON, atomically (temporary name, then rename).

    With `warnings` (default: the list of the innermost active :func:`collect_warnings` block, if any), a dict
    record gets a ``warnings`` list: what was degenerate about the inputs (``locscale.checks``), so a result
    made from them says so itself. A dict record also gets a ``provenance`` dict (:func:`provenance`: versions and
    command line) unless `with_provenance` is False."""
    path = Path(path)
    if warnings is None and _ACTIVE:
        warnings = _ACTIVE[-1]
    if warnings is not None and isinstance(record, dict):
        record = {**record, "warnings": [str(w) for w in warnings]}
    if with_provenance and isinstance(record, dict):
        record = {**record, "provenance": provenance()}
    with atomic_output(path, suffix=".json") as tmp:
        Path(tmp).write_text(dumps(record, indent=2, sort_keys=sort_keys) + "\n")
    return path


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


@contextmanager
def collect_warnings(echo=None):
    """Collect the text of every UserWarning (``locscale.checks.LocScaleWarning`` included) raised inside the
    block into the yielded list, once each; `echo(text)` is called for each (e.g. to print it on one line).
    Other warnings (deprecations, numpy's) are shown as usual. Every :func:`write_json` inside the block adds
    the list as the record's ``warnings`` (so a script gets them in every record by running inside one)."""
    import warnings

    collected: list[str] = []
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, UserWarning):
            return previous(message, category, filename, lineno, file, line)
        text = " ".join(str(message).split())
        if text not in collected:
            collected.append(text)
            if echo is not None:
                echo(text)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        _ACTIVE.append(collected)
        try:
            yield collected
        finally:
            _ACTIVE.pop()


#: the lists of the active collect_warnings blocks (innermost last), read by write_json
_ACTIVE: list[list[str]] = []

"""JSON records (run info, metrics, decisions): numpy values converted, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .mapio import atomic_output


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


def write_json(path: str | os.PathLike, record, *, sort_keys: bool = False) -> Path:
    """Write `record` as indented JSON, atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_output(path, suffix=".json") as tmp:
        Path(tmp).write_text(dumps(record, indent=2, sort_keys=sort_keys) + "\n")
    return path


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())

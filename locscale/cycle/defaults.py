"""The workflow config's defaults, read from its schema (``workflow/schemas/config.schema.yaml``), the only place
they are written.

Snakemake fills a workflow config with them (``snakemake.utils.validate``) and the workflow's code reads
``config[...]`` directly; library code that takes a section of the config from elsewhere (the refinement engines'
``make_engine``, the final-cycle selection, model completion) fills it with :func:`with_schema_defaults`. This
module imports nothing from locscale, so every layer may read it (like the metric registry).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

#: the workflow's config schema in a checkout (the package sits at the repository root)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@lru_cache(maxsize=4)
def schema(path: str | None = None) -> dict:
    """The config schema (default :data:`SCHEMA_PATH`), parsed once."""
    import yaml

    path = Path(path or SCHEMA_PATH)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the workflow's config schema is missing; run from a checkout of the "
                                "LocScale repository (the package next to workflow/)")
    return yaml.safe_load(path.read_text())


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in node.items() if k != "$ref"}}


def fill_schema_defaults(instance: dict, node: dict, root: dict | None = None) -> dict:
    """Fill `instance` in place with the defaults of schema `node`, as ``snakemake.utils.validate`` does: a missing
    property with a ``default`` gets a copy of it, and objects (given or defaulted) are filled recursively (also
    the entries of an object whose ``additionalProperties`` is a schema). Returns `instance`."""
    root = node if root is None else root
    node = _resolve(node, root)
    if not isinstance(instance, dict):
        return instance
    props = node.get("properties") or {}
    for key, sub in props.items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict):
            fill_schema_defaults(instance[key], sub, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in props and isinstance(value, dict):
                fill_schema_defaults(value, extra, root)
    return instance


def with_schema_defaults(section: str, partial: dict | None = None, schema_path=None) -> dict:
    """A copy of config section `section` (e.g. ``"refine"``) with every default the schema gives filled in."""
    root = schema(str(schema_path) if schema_path else None)
    return fill_schema_defaults(copy.deepcopy(dict(partial or {})), root["properties"][section], root)

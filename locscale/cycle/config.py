"""The workflow's config: schema errors as one line per key with what it expects, then what a JSON schema
cannot say (NaN values, the command line's value limits, min_cycles ≤ max_cycles, no input inside
``results/``). The Snakefile calls :func:`validate_workflow_config` before any job runs."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LocScaleInputError
from ..limits import check_cycles, check_mask_radius, check_resolution, check_window, check_window_angstrom


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _expected(err) -> str:
    v, val = err.validator, err.validator_value
    if v == "type":
        types = val if isinstance(val, list) else [val]
        return "expected type: " + " or ".join(str(t) for t in types)
    if v == "required":
        return f"required keys: {', '.join(val)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"expected a number {sign} {val}"
    if v == "enum":
        return "expected one of: " + ", ".join(repr(x) for x in val)
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return ("allowed keys: " + ", ".join(allowed)) if allowed else "no other keys allowed"
    if v == "pattern":
        return f"expected text matching {val}"
    return f"expected: {v} {str(val)[:80]}"


def config_errors(config: dict, schema: dict) -> list[str]:
    """One short line per schema violation: the key, what is wrong and what is expected (not the schema)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        msg = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        lines.append(f"key {_key(err.absolute_path)}: {msg} ({_expected(err)})")
    return lines


def check_config(config: dict, results_dir: str | os.PathLike = "results") -> None:
    """What a JSON schema cannot say: NaN/Inf values (a schema's bounds let NaN through), the same value
    limits as the command line, min_cycles ≤ max_cycles, and no input inside the workflow's results folder
    (where a cycle's output could overwrite it)."""
    def at(key, check, value):
        try:
            check(value)
        except LocScaleInputError as err:
            raise LocScaleInputError(f"key {key}: {err.problem}", err.fix) from None

    for name, ds in (config.get("datasets") or {}).items():
        if isinstance(ds, dict) and ds.get("resolution") is not None:
            at(f"datasets.{name}.resolution", check_resolution, ds["resolution"])
    sh = config.get("sharpen") or {}
    for key, check in (("window", check_window), ("window_angstrom", check_window_angstrom),
                       ("mask_radius", check_mask_radius)):
        if sh.get(key) is not None:
            at(f"sharpen.{key}", check, sh[key])
    if config.get("min_cycles") is not None and config.get("max_cycles") is not None:
        check_cycles(int(config["min_cycles"]), int(config["max_cycles"]))
    results = os.path.realpath(results_dir)
    for name, ds in (config.get("datasets") or {}).items():
        if not isinstance(ds, dict):
            continue
        paths = [(k, ds.get(k)) for k in ("map", "model", "mask")]
        paths += [(f"half_maps[{i}]", p) for i, p in enumerate(ds.get("half_maps") or [])]
        for key, p in paths:
            if isinstance(p, str) and os.path.commonpath([results, os.path.realpath(p)]) == results:
                raise LocScaleInputError(f"key datasets.{name}.{key}: the input {p} lies inside the workflow's "
                                         f"results folder {results_dir}/, where the cycles write their outputs "
                                         "and could overwrite it",
                                         "copy the file elsewhere (e.g. data/) and point the config at the copy")


def validate_config(config: dict, schema_path: str | os.PathLike, fill_defaults=None) -> None:
    """Check a workflow config against its schema with short messages (:func:`config_errors`), then fill in
    the schema's defaults with `fill_defaults(config, schema_path)` (Snakemake's ``snakemake.utils.validate``)
    and apply :func:`check_config`. Raises :class:`LocScaleInputError`."""
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = config_errors(config, schema)
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise LocScaleInputError("invalid config: " + "; ".join(errors[:5]) + more,
                                 "fix these keys (every key is described in docs/configuration.md)")
    if fill_defaults is not None:
        fill_defaults(config, str(schema_path))
    check_config(config)


def validate_workflow_config(config: dict, basedir: str | os.PathLike, fill_defaults=None) -> None:
    """:func:`validate_config` against the workflow's ``workflow/schemas/config.schema.yaml`` under `basedir`, for the
    Snakefile: a problem ends the run before any job with Snakemake's WorkflowError and our short message."""
    from snakemake.exceptions import WorkflowError

    try:
        validate_config(config, Path(basedir) / "workflow" / "schemas" / "config.schema.yaml", fill_defaults)
    except LocScaleInputError as err:
        raise WorkflowError(f"config: {err}") from None



# ---------------------------------------------------------------------- the key reference in docs/
def _resolve(node: dict, defs: dict) -> dict:
    """`node` with a ``$ref`` to ``#/$defs/NAME`` merged in (the node's own keys win)."""
    ref = node.get("$ref")
    if not ref:
        return node
    return {**_resolve(defs[ref.rsplit("/", 1)[-1]], defs), **{k: v for k, v in node.items() if k != "$ref"}}


def _type_text(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    t = node.get("type", "")
    types = [str(x) for x in (t if isinstance(t, list) else [t]) if x]
    if node.get("anyOf"):
        types += [" \\| ".join(f"`{v}`" for v in alt["enum"]) for alt in node["anyOf"] if "enum" in alt]
    text = " or ".join(types)
    if "array" in types and isinstance(node.get("items"), dict):
        item = node["items"]
        inner = _type_text(item) if "type" in item or "enum" in item else "path"
        text = text.replace("array", f"list of {inner}")
    bounds = [f"{s} {node[k]}" for k, s in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                                             ("exclusiveMaximum", "<")) if k in node]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default_text(node: dict) -> str:
    if "default" not in node:
        return ""
    import json

    d = node["default"]
    if d == {} and node.get("properties"):
        return ""
    return f"`{json.dumps(d, ensure_ascii=False)}`"


def _rows(node: dict, defs: dict, prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, child in (node.get("properties") or {}).items():
        child = _resolve(child, defs)
        key = f"{prefix}{name}"
        desc = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        rows.append((key, _type_text(child), _default_text(child), desc))
        if child.get("properties"):
            rows += _rows(child, defs, f"{key}.")
        extra = child.get("additionalProperties")
        if isinstance(extra, dict):
            extra = _resolve(extra, defs)
            if extra.get("properties"):
                rows += _rows(extra, defs, f"{key}.<name>.")
    return rows


def config_reference(schema: dict) -> str:
    """Every key of the workflow config as a markdown table (key, type, default, description), generated from
    the schema (``workflow/schemas/config.schema.yaml``); docs/configuration.md holds it between markers and a
    test checks that it is up to date (``python -m locscale.cycle.config --write-docs`` regenerates it)."""
    defs = schema.get("$defs", {})
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {t} | {d} | {desc} |" for k, t, d, desc in _rows(schema, defs, "")]
    return "\n".join(lines) + "\n"


REFERENCE_START, REFERENCE_END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def replace_between_markers(text: str, start: str, end: str, block: str) -> str:
    """`text` with what lies between the marker lines `start` and `end` replaced by `block`."""
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + block + text[j:]


def main(argv: list[str] | None = None) -> int:
    import argparse

    import yaml

    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description="Print the workflow config's key reference (from its schema), or "
                                 "write it into docs/configuration.md")
    ap.add_argument("--write-docs", action="store_true", help="update docs/configuration.md in place")
    a = ap.parse_args(argv)
    table = config_reference(yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text()))
    if not a.write_docs:
        print(table, end="")
        return 0
    doc = root / "docs" / "configuration.md"
    doc.write_text(replace_between_markers(doc.read_text(), REFERENCE_START, REFERENCE_END, table))
    print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The workflow's config: schema errors as one line per key with what it expects, then what a JSON schema
cannot say (NaN and infinite values anywhere, duplicate keys in the YAML files, the command line's value limits,
min_cycles ≤ max_cycles, no input inside ``results/``, extra arguments and placeholders that could run a
command or write elsewhere). The Snakefile calls :func:`validate_workflow_config` before any job runs.

Defaults live only in the schema (``workflow/schemas/config.schema.yaml``): Snakemake fills them in
(``snakemake.utils.validate``), code reads ``config[...]`` directly, and library code that takes a section of the
config from elsewhere fills it from the same schema (:mod:`locscale.cycle.defaults`).
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path

from ..errors import LocScaleInputError
from ..limits import check_cycles, check_mask_radius, check_resolution, check_window, check_window_angstrom
from .defaults import SCHEMA_PATH, fill_schema_defaults
from .defaults import schema as _schema


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


def check_config(config: dict, results_dir: str | os.PathLike = "results", schema_path=None) -> None:
    """What a JSON schema cannot say: NaN/Inf values anywhere (a schema's bounds let NaN through), the same value
    limits as the command line, min_cycles ≤ max_cycles, no input inside the workflow's results folder (where a
    cycle's output could overwrite it), and a model-completion command whose placeholders are known and unquoted.
    A partial config is checked with the schema's defaults filled in (on a copy)."""
    def at(key, check, value):
        try:
            check(value)
        except LocScaleInputError as err:
            raise LocScaleInputError(f"key {key}: {err.problem}", err.fix) from None

    bad = non_finite_values(config)
    if bad:
        also = f" (also: {', '.join(k for k, _ in bad[1:4])})" if len(bad) > 1 else ""
        raise LocScaleInputError(f"key {bad[0][0]}: {bad[0][1]} is not a finite number{also}",
                                 "give a finite number (or null where the key allows it)")
    root = _schema(str(schema_path or SCHEMA_PATH))
    config = fill_schema_defaults(copy.deepcopy(config), root)
    datasets = config["datasets"] if isinstance(config.get("datasets"), dict) else {}
    for name, ds in datasets.items():
        if isinstance(ds, dict) and ds.get("resolution") is not None:
            at(f"datasets.{name}.resolution", check_resolution, ds["resolution"])
    sh = config["sharpen"]
    for key, check in (("window", check_window), ("window_angstrom", check_window_angstrom),
                       ("mask_radius", check_mask_radius)):
        if sh[key] is not None:
            at(f"sharpen.{key}", check, sh[key])
    if sh["pseudo_atom_b"] == "refined" and config["refine"]["engine"] != "servalcat":
        raise LocScaleInputError(f"key sharpen.pseudo_atom_b: refined needs the servalcat engine (refine.engine is "
                                 f"{config['refine']['engine']})",
                                 "use sharpen.pseudo_atom_b: model_median, or refine.engine: servalcat")
    check_cycles(int(config["min_cycles"]), int(config["max_cycles"]))
    check_command_template(config["model_completion"]["command"])
    results = os.path.realpath(results_dir)
    for name, ds in datasets.items():
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
    bad = non_finite_values(config)
    if bad:
        check_config(config, schema_path=schema_path)  # raises, naming the key
    errors = config_errors(config, schema)
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise LocScaleInputError("invalid config: " + "; ".join(errors[:5]) + more,
                                 "fix these keys (every key is described in docs/configuration.md)")
    if fill_defaults is not None:
        fill_defaults(config, str(schema_path))
    else:
        fill_schema_defaults(config, schema)
    check_config(config, schema_path=schema_path)


def validate_workflow_config(config: dict, basedir: str | os.PathLike, fill_defaults=None,
                             configfiles=()) -> None:
    """:func:`check_config_files` on the YAML files the config came from, then :func:`validate_config` against the
    workflow's ``workflow/schemas/config.schema.yaml`` under `basedir`, for the Snakefile: a problem ends the run
    before any job with Snakemake's WorkflowError and our short message."""
    from snakemake.exceptions import WorkflowError

    try:
        check_config_files(configfiles)
        validate_config(config, Path(basedir) / "workflow" / "schemas" / "config.schema.yaml", fill_defaults)
    except LocScaleInputError as err:
        raise WorkflowError(f"config: {err}") from None



# ---------------------------------------------------------------------------------------------- values
def non_finite_values(config, key: str = "") -> list[tuple[str, float]]:
    """(dotted key, value) of every NaN or infinite number anywhere in `config`."""
    if isinstance(config, float) and not math.isfinite(config):
        return [(key or "(top level)", config)]
    if isinstance(config, dict):
        return [k for name, v in config.items() for k in non_finite_values(v, f"{key}.{name}" if key else str(name))]
    if isinstance(config, (list, tuple)):
        return [k for i, v in enumerate(config) for k in non_finite_values(v, f"{key}[{i}]")]
    return []


def duplicate_yaml_keys(path: str | os.PathLike) -> list[str]:
    """'key (line N)' for every mapping key a YAML file repeats (YAML loaders keep the last one silently)."""
    import yaml

    found: list[str] = []

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                found.append(f"{key} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    yaml.load(Path(path).read_text(), Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    return sorted(found, key=lambda text: int(text.rsplit("line ", 1)[1].rstrip(")")))


def check_config_files(paths) -> None:
    """Refuse config files that repeat a key (the later value would silently win)."""
    for path in paths:
        dups = duplicate_yaml_keys(path)
        if dups:
            raise LocScaleInputError(f"the config file repeats the key(s) {', '.join(dups)}: only the last value "
                                     "would be used", "keep one value per key", path)


#: the placeholders of model_completion.command
COMMAND_PLACEHOLDERS = ("map", "locscale_map", "model", "resolution", "output_cif", "output_pdb", "workdir",
                        "threads")


def check_command_template(template: str | None) -> None:
    """model_completion.command: only known placeholders, none inside quotes (each is substituted shell-quoted,
    so quotes around one would become part of the value)."""
    if template is None:
        return
    import string

    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise LocScaleInputError(f"key model_completion.command: cannot read the placeholders ({err})",
                                 "write placeholders as {name}; double a literal brace: {{ }}") from None
    unknown = sorted({repr(n) for n in names if n not in COMMAND_PLACEHOLDERS})
    if unknown:
        raise LocScaleInputError(f"key model_completion.command: unknown placeholder(s) {', '.join(unknown)}",
                                 "use only {" + "}, {".join(COMMAND_PLACEHOLDERS) + "} (see config/README.md)")
    quoted = re.findall(r"""(["'])\{(\w+)\}\1""", template)
    if quoted:
        raise LocScaleInputError(
            f"key model_completion.command: the placeholder {{{quoted[0][1]}}} is inside quotes; placeholders are "
            "substituted already quoted for the shell, so the quotes would become part of the value",
            "remove the quotes around the placeholders")


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

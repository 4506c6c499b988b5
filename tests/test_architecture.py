"""The package's parts and the arrows allowed between them (docs/architecture.md): imports point down the layers,
and no module imports (directly or through others, at module level or inside a function) a module that imports it
back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "locscale"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the locscale modules it imports anywhere in its source (function-level imports included).
    ``from . import x`` counts as importing the submodule x when there is one, else the package; importing
    a submodule does not count as importing its parent package (Python runs the parent's ``__init__`` first,
    but that is no dependency of the importer's code)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif target in modules:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "locscale.scaling.engine" in graph["locscale.scaling.exact"]
    assert "locscale.shells" in graph["locscale.scaling.near_exact"]       # from .. import shells
    assert "locscale.scaling" in graph["locscale.sharpen"]
    assert "locscale.scaling.backends" in graph["locscale.limits"]         # inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_old_scaling_modules_are_gone():
    for old in ("localscale", "convolution", "gpu", "compat"):
        assert not (PACKAGE / f"{old}.py").exists()


# ---------------------------------------------------------------------- the parts and their arrows
#: the parts, bottom to top: a module may import its own part and the parts below it (docs/architecture.md)
LAYERS = (
    ("core", "scaling", "hybrid"),  # I/O, numerics and input guards (the top-level modules), LocScale's scaling
    # modes and the hybrid reference
    ("tools", "phantoms"),  # running external programs; phantoms and truth scores
    ("engines",),  # refinement engines
    ("validation",),  # map metrics, model validation, cross-validation
    ("building",),  # model completion
    ("cycle",),  # the refinement cycle's logic (config, table, convergence, selection, report, job)
    ("experiments",),  # the paper's experiments on phantoms
    ("commands",),  # the `locscale` subcommands
    ("cli",),
)
#: leaves any module may import: definitions that import nothing from locscale
SHARED_LEAVES = {"locscale.cycle.registry", "locscale.cycle.defaults"}
#: the only modules at the top of locscale/ (the command-line entry, the I/O and numerical core, the input guards)
TOP_LEVEL = {"__init__", "cli", "mapio", "models", "simulate", "metrics", "shells", "padding", "sharpen",
             "global_sharpen", "localres", "records", "errors", "download", "limits", "outputs", "checks"}


def part_of(module: str) -> str:
    parts = module.split(".")
    if module == "locscale.cli":
        return "cli"
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "core"


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def arrows_against_the_layers(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target in SHARED_LEAVES or target == "locscale":
                continue
            if layer_of(part_of(target)) > layer_of(part_of(module)):
                bad.append(f"{module} -> {target}")
    return bad


def test_top_level_holds_only_the_core():
    extra = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL)
    assert not extra, f"modules at the top of locscale/ outside a part: {extra}"
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert parts == {p for layer in LAYERS for p in layer} - {"core", "cli"}, parts


def test_imports_point_down_the_layers():
    bad = arrows_against_the_layers(import_graph())
    assert not bad, "imports against the layers (docs/architecture.md): " + "; ".join(bad)


def test_the_arrow_check_catches_an_upward_import():
    graph = {"locscale.validation.model": {"locscale.building.completion"}, "locscale.cycle.table":
             {"locscale.validation.model", "locscale.mapio"}, "locscale.mapio": {"locscale.cycle.registry"}}
    assert arrows_against_the_layers(graph) == ["locscale.validation.model -> locscale.building.completion"]


def test_shared_leaves_import_nothing_from_locscale():
    graph = import_graph()
    for leaf in SHARED_LEAVES:
        assert not graph[leaf], f"{leaf} must stay a leaf: it imports {graph[leaf]}"


def test_the_architecture_picture_shows_the_layers_in_order():
    """docs/architecture.md draws the layers top (cli) to bottom (core) in the order LAYERS has them."""
    picture = (PACKAGE.parent / "docs" / "architecture.md").read_text().split("```")[1]

    def row(name):
        pos = picture.find({"cli": "│ cli ", "core": "│ core:"}.get(name, f"{name}/"))
        assert pos >= 0, f"{name} is not in the picture"
        return picture[:pos].count("\n")

    rows = [[row(name) for name in layer] for layer in LAYERS]
    for lower, upper in zip(rows, rows[1:], strict=False):
        assert max(upper) < min(lower), rows


def test_scaling_imports_without_pandas_or_scipy():
    """Every scaling call (the CLI's, the workflow's, each benchmark process) pays for what locscale.scaling
    imports. pandas (0.16 s here) serves only the tapered mode's solvent noise spectrum and scipy (0.2 s for
    scipy.fft) only stands in for ducc0's transforms, so both are imported where they are used, not when the
    package loads."""
    import subprocess
    import sys

    code = ("import sys, locscale.scaling; "
            "print(sorted(m for m in ('pandas', 'scipy.fft', 'scipy.ndimage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

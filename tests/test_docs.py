"""The documentation: the README's tour runs as written, the README stays short, the config key reference matches
the schema, and the repository refers only to documents it contains."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from locscale.cli import main
from locscale.cycle.config import REFERENCE_END, REFERENCE_START, config_reference

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))


def readme_commands() -> list[str]:
    """Every `locscale ...` line inside the README's ```bash blocks, as written."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("locscale ")]


def test_readme_is_short_and_its_tour_has_commands():
    assert len(README.read_text().splitlines()) <= 150
    assert len(readme_commands()) >= 5


def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    """Each `locscale` line of the README, run from a folder that looks like the repository root (the bundled
    examples/ linked in), exits 0 and writes the outputs it names."""
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for line in readme_commands():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "locscale"
        rc = main(argv[1:])
        assert rc == 0, line
        for flag in ("-o", "--info"):
            if flag in argv:
                assert (tmp_path / argv[argv.index(flag) + 1]).stat().st_size > 0, line


def test_config_reference_matches_the_schema():
    """docs/configuration.md lists every key of the schema as `python -m locscale.cycle.config` prints it."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    doc = (REPO / "docs" / "configuration.md").read_text()
    table = doc[doc.index(REFERENCE_START) + len(REFERENCE_START):doc.index(REFERENCE_END)].strip()
    assert table == config_reference(schema).strip(), (
        "docs/configuration.md is out of date: run `python -m locscale.cycle.config --write-docs`")
    for key in ("datasets.<name>.use_half_maps", "refine.b_target", "download.emdb_mirrors", "sharpen.mode"):
        assert f"| `{key}` |" in table


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_links_point_into_the_repository(page):
    """Every relative link of the README and docs/ names a file that exists."""
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def _tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        paths = [REPO / n for n in names.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an unpacked archive)
        paths = [p for p in REPO.rglob("*") if ".git" not in p.parts and ".venv" not in p.parts]
    return [p for p in paths if p.is_file() and p.suffix not in (".npz", ".mrc", ".cif", ".pdb", ".gz")]


def test_no_references_to_documents_outside_the_repository_or_to_issue_numbers():
    """Code, docs, comments and tests point at docs/ pages or say it in plain words: a reader of a clone cannot
    follow a note kept elsewhere (the team's design notebook) or an issue number."""
    pattern = re.compile("DESIGN" + r"\.md|[Ii]ssue #?[0-9]+")
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(REPO)}:{i}" for i, line in enumerate(text.splitlines(), 1)
                  if pattern.search(line)]
    assert found == [], found

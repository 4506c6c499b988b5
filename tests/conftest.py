"""Shared fixtures: the bundled EMD-3488 example and the optional ../shared/data files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "emd3488"
SHARED_DATA = Path(os.environ.get("LOCSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def emd3488_map() -> Path:
    return EXAMPLE / "emd_3488.mrc"


@pytest.fixture(scope="session")
def model_5me2() -> Path:
    return EXAMPLE / "5me2.pdb"


@pytest.fixture(scope="session")
def model_5ni1() -> Path:
    return EXAMPLE / "5ni1_updated.cif"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (edge cases, paper models, monomer library); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (set LOCSCALE_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def monlib(shared_data) -> Path:
    path = shared_data / "monlib"
    if not (path / "list" / "mon_lib_list.cif").exists():
        pytest.skip(f"monomer library subset not found at {path}")
    return path

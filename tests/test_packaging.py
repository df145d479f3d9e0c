"""The wheel holds every sub-package: setuptools lists them by hand (handlers/ becomes opase),
so a new folder left out of pyproject.toml would install a server that cannot import."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"opase.generated"} | {
        ".".join(("opase", *init.parent.relative_to(REPO / "handlers").parts)).rstrip(".")
        for init in (REPO / "handlers").rglob("__init__.py")
    }
    assert found == listed

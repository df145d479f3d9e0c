"""The layout's rules, which no linter checks: each package says what it holds in its
docstring and holds no code (only re-exports); no two modules of different layers share a
name (a grep or a traceback names one place); operation modules are `api/<server>/<tag>.py`.
(The import layering itself is `lint-imports`, in `nox -s lint`.)"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from opase_generated.routes import OPERATIONS

PACKAGE = Path(__file__).resolve().parent.parent / "handlers" / "opase"
MIGRATIONS = PACKAGE / "storage" / "migrations"


def _packages() -> list[Path]:
    return sorted(init for init in PACKAGE.rglob("__init__.py") if MIGRATIONS not in init.parents)


@pytest.mark.parametrize("init", _packages(), ids=lambda p: str(p.parent.relative_to(PACKAGE)))
def test_a_package_says_what_it_holds_and_only_re_exports(init: Path) -> None:
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"{init} needs a docstring saying what the folder holds"
    for node in tree.body[1:]:
        allowed = isinstance(node, ast.Import | ast.ImportFrom) or (
            isinstance(node, ast.Assign)
            and all(
                isinstance(t, ast.Name) and t.id in {"__all__", "__version__"} for t in node.targets
            )
        )
        assert allowed, f"{init}:{node.lineno}: code belongs in a module of its own"


LAYERS = {"cli": "cli", "api": "operations", "idp": "operations", "web": "request path"}
"""Top-level folders outside the domain; every other folder is a domain package (storage
included), and the modules at the package root are a layer of their own."""


def _layer(module: Path) -> str:
    relative = module.relative_to(PACKAGE)
    if len(relative.parts) == 1:
        return "root"
    return LAYERS.get(relative.parts[0], "domain")


def test_no_two_modules_of_different_layers_share_a_name() -> None:
    layers: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for module in PACKAGE.rglob("*.py"):
        if module.name in {"__init__.py", "__main__.py"} or MIGRATIONS in module.parents:
            continue
        layers[module.name][_layer(module)].append(module.relative_to(PACKAGE))
    shared = {name: dict(by_layer) for name, by_layer in layers.items() if len(by_layer) > 1}
    assert shared == {}


def test_every_operation_module_is_api_server_tag() -> None:
    for operation in OPERATIONS:
        module, _, function = operation.handler.partition(":")
        parts = module.split(".")
        assert parts[:3] == ["opase", "api", operation.server], operation.handler
        assert (PACKAGE.joinpath(*parts[1:])).with_suffix(".py").is_file(), operation.handler
        assert function == operation.operation_id.replace("-", "_")

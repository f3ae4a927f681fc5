"""The layers of the tree (docs/architecture.md): each package imports only from the layers below it,
so the storage foundation, the keys and the pure consent domain never reach up into the web app."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bottom to top: a package may import itself and the packages before it, never one after it.
LAYERS = ("store", "keys", "consent", "idp")


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """The first-party top-level packages a module imports (anywhere in it), with the line."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return {(name, line) for name, line in found if name in LAYERS}


def test_no_package_imports_a_layer_above_it() -> None:
    upward = []
    for rank, package in enumerate(LAYERS):
        above = set(LAYERS[rank + 1:])
        for path in sorted((ROOT / package).rglob("*.py")):
            upward += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                       for name, line in sorted(imported_packages(path)) if name in above]
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text("import os\nfrom idp.services import db\n\ndef f():\n    from consent import ledger\n")
    assert imported_packages(module) == {("idp", 2), ("consent", 5)}

"""The package layout holds: imports flow one way through the concept packages (README, "Layout")."""

from __future__ import annotations

import ast

from tests.conftest import REPO

#: Lower first: a module may import from its own package and from those before it, never from those after it.
ORDER = [
    "errors", "paths", "atomic", "metrics", "model", "config", "data", "study", "best", "inference", "evaluation",
    "train", "search", "views", "cli",
]  # fmt: skip


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_flow_down_the_layers_only() -> None:
    upward = []
    for path in sorted((REPO / "hpo").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        source = _package(module)
        if source not in ORDER:
            continue  # hpo/__init__.py re-exports lazily from every layer
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hpo."):
                target = _package(node.module)
                if target in ORDER and ORDER.index(target) > ORDER.index(source):
                    upward.append(f"{path.relative_to(REPO)} imports {node.module}")
    assert upward == []


def test_every_module_under_hpo_belongs_to_a_known_layer() -> None:
    names = {path.stem for path in (REPO / "hpo").glob("*.py")} | {
        path.name for path in (REPO / "hpo").iterdir() if (path / "__init__.py").is_file()
    }
    assert names - {"__init__"} <= set(ORDER)

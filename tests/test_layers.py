"""The package's layers: each module imports only from the layers below it, and strands not from each other.

Layer order (isafe_helpers/__init__.py): portable (what the platform offers);
config, resources and outputs; stats (arrays
in, results out: no trial data); data; results; the strands impact, process
and cost; publish; run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "isafe_helpers"
RANK = {
    "portable": -1,
    "config": 0,
    "resources": 0,
    "outputs": 0,
    "stats": 1,
    "data": 2,
    "results": 3,
    "impact": 4,
    "process": 4,
    "cost": 4,
    "publish": 5,
    "run": 6,
    "__init__": 7,
    "__main__": 7,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("isafe_helpers"):
            if node.module == "isafe_helpers":
                out += [f"isafe_helpers.{a.name}" for a in node.names]
            else:
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("isafe_helpers")]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path):
    me = _layer(".".join(("isafe_helpers", *path.relative_to(PACKAGE).with_suffix("").parts)))
    for target in _imports(path):
        them = _layer(target)
        if them == me:
            continue
        assert RANK[them] < RANK[me], f"{path.relative_to(PACKAGE)} ({me}) imports {target} ({them})"


def test_every_layer_is_ranked():
    layers = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert layers <= set(RANK), layers - set(RANK)


def _module_name(path: Path) -> str:
    parts = ("isafe_helpers", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (in functions too, and by ``importlib.import_module("...")``)."""
    names = {_module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        me = _module_name(path)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                targets.add(node.args[0].value)
        # a package's __init__ is run by importing any of its modules: not a circle of its own
        graph[me] = {t for t in targets if t in names and t != me and not me.startswith(t + ".")}
    return graph


def test_no_module_imports_itself_through_others():
    """No import circles, not even inside a layer or through a function-level import (issue 27)."""
    graph = _graph()
    circles = []
    for start in graph:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not circles, circles[:5]

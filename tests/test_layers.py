"""The package's layers: each module imports only from the layers below it, and strands not from each other.

Layer order (isafe_helpers/__init__.py): config, resources and outputs; stats (arrays
in, results out: no trial data); data; results; the strands impact, process
and cost; publish; run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "isafe_helpers"
RANK = {
    "config": 0,
    "resources": 0,
    "outputs": 0,
    "portable": 0,
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

"""The result protocol, enforced: every analysis returns a result with ``tidy()`` and ``table()``, and the
committed notebooks use results only through that protocol.

An *analysis* is a callable that ``isafe_helpers.impact``, ``.process`` or ``.cost`` exports and whose
return annotation is not a plain value (``str``, ``bool``, ``int | None``: texts, flags and the price year,
which are helpers, not analyses). Each analysis is run on a small generated two-LA root (cheap settings for
the resampling ones) and must return a :class:`~isafe_helpers.results.protocol.Result` whose ``tidy()`` has
the estimates.csv columns and whose ``table()`` is a :class:`~isafe_helpers.results.table.Table` (the
per-outcome ``primary`` and ``cace`` are members of a set, ``primary_all`` / ``cace_all``, which is the
display table: they need ``tidy()`` only).

The notebook rule (CONTRIBUTING, *The result protocol*) is checked on the notebooks' code cells, parsed with
``ast``: no attribute whose name starts with ``_`` is read from anything, so no notebook reaches into a
result's private state.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

from isafe_helpers import cost, impact, process
from isafe_helpers.data.loading import load_root
from isafe_helpers.results.estimates import ROW_COLUMNS
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Table

ROOT = Path(__file__).resolve().parents[1]
PLAIN = {"str", "bool", "int | None", "float"}


def exported():
    for module in (impact, process, cost):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                yield f"{module.__name__.rsplit('.', 1)[1]}.{name}", obj


def analyses():
    return [(n, f) for n, f in exported() if str(inspect.signature(f).return_annotation) not in PLAIN]


def test_the_analyses_are_found():
    names = {n for n, _ in analyses()}
    assert {"impact.primary_all", "impact.change_summary", "process.reach", "cost.unit_cost"} <= names
    assert "impact.scope_caveat" not in names and "cost.report_price_year" not in names


@pytest.fixture(scope="module")
def data(_small_root_template):
    return load_root(_small_root_template)


@pytest.fixture(scope="module")
def fitted(data):
    return impact.primary_all(data), impact.moderators(data)


#: Per-outcome members of a set: each has ``tidy()``; the set (``*_all``) is what has ``table()``.
MEMBERS = {"impact.primary": "primary_all", "impact.cace": "cace_all"}


def arguments(f, data, fitted, tmp_path) -> dict:
    """Arguments for ``f`` by parameter name; the resampling ones get cheap settings."""
    primary, mods = fitted
    given = {
        "data": data,
        "primary": primary[0] if f is impact.cace else primary,
        "pooled": list(primary),
        "mods": mods,
        "outcome": data.instrument.scale_names[0],
        "scope": "trial",
        "output_dir": tmp_path,
        "n_perm": 19,
        "n_imputations": 2,
    }
    params = inspect.signature(f).parameters
    return {
        k: given[k] for k, p in params.items() if k in given and (p.default is inspect._empty or k.startswith("n_"))
    }


@pytest.mark.parametrize("name", [n for n, _ in analyses()])
def test_every_analysis_returns_a_result_with_tidy_and_table(name, data, fitted, tmp_path):
    f = dict(analyses())[name]
    out = f(**arguments(f, data, fitted, tmp_path))
    assert isinstance(out, Result), f"{name} returns {type(out).__name__}, not a Result"
    tidy = out.tidy()
    assert isinstance(tidy, pd.DataFrame) and list(tidy.columns) == list(ROW_COLUMNS)
    if name in MEMBERS:  # one outcome of a set: the set is displayed
        assert hasattr(impact, MEMBERS[name])
    else:
        assert isinstance(out.table(), Table)


def notebook_code(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def private_reads(source: str) -> list[str]:
    """``x._name`` attribute reads in a cell (IPython magics and shell lines left out)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return [
        f"{ast.unparse(node.value)}.{node.attr}"
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    ]


def test_the_rule_catches_a_private_read():
    assert private_reads("t = result._frame\nprint(r.table())") == ["result._frame"]
    assert private_reads("x = r.table().data") == []


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_use_results_only_through_their_public_protocol(notebook):
    found = [hit for cell in notebook_code(notebook) for hit in private_reads(cell)]
    assert not found, f"{notebook.name} reads private attributes: {found}"

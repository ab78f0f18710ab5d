"""What the notebooks show: the page's notice, numbered tables, figures and prose, and the estimates written.

A notebook calls these once per section; each shows one thing and returns
nothing, so no text representation is stored in the notebook.

Disclosure control is book-wide (:mod:`isafe_helpers.publish.ledger`): a
count suppressed on one page must stay hidden on every other. So a page
records what it shows as *specs* (each table, each figure's tables, each
piece of prose built from numbers), rendered now under the page's own
ledger for the analyst who runs the notebook, and written beside its
estimates (``<strand>.specs.pkl``, private like ``estimates.csv``). When the
book is built, the specs of every page are registered in one ledger, solved
together, and every table, figure and prose output of the staged pages is
rendered again from them (:func:`isafe_helpers.publish.book.stage`). Each
output carries its spec's id in its metadata (``isafe``).
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from isafe_helpers.config import threshold
from isafe_helpers.data.loading import TrialData, load_root
from isafe_helpers.data.validated import handed_over
from isafe_helpers.publish import SPECS, tables
from isafe_helpers.publish.escape import md
from isafe_helpers.publish.ledger import Ledger, Plan
from isafe_helpers.results import estimates as E
from isafe_helpers.results.protocol import tidy_all
from isafe_helpers.results.table import Table


@dataclass
class Spec:
    """One output of a page: a table, a figure or prose, and what it is rendered from.

    ``renderer`` is the dotted name of a function ``f(views, **kwargs)`` for
    figures and prose (``views``: the ``tables`` as they may be published:
    withheld values NaN); tables render with :func:`tables.render`.
    ``shown`` keeps the protected cells the page rendered, and ``exempt``
    the cells its ledger published whatever their size, so that a build
    renders an output again only when the book's ledger changes either.
    """

    id: str
    kind: str  # table | figure | prose
    number: int
    tables: list[Table]
    caption: str = ""
    renderer: str = ""
    kwargs: dict = field(default_factory=dict)
    shown: list[pd.DataFrame] = field(default_factory=list)
    exempt: list[list[tuple[int, str]]] | None = None


@dataclass
class Page:
    scope: str = ""
    strand: str = ""
    las: list[str] = field(default_factory=list)
    specs: list[Spec] = field(default_factory=list)
    counters: dict = field(default_factory=lambda: {"table": 0, "figure": 0})
    ledger: Ledger | None = None


_PAGE = Page()


def load_scope(data_root: str, scope: str) -> TrialData:
    """The scope's validated data: as the run validated it, else validated here.

    A run of the pipeline validates the data root once and hands the result
    to its notebooks (:mod:`isafe_helpers.data.validated`); a notebook run
    any other way, or whose data root changed since, validates the root itself.
    """
    data = handed_over(data_root)
    return (data if data is not None else load_root(data_root)).for_scope(scope)


def notice(data: TrialData, scope: str, strand: str = "") -> None:
    """Start a page: say what it is built from, and plainly when the data are synthetic."""
    global _PAGE
    _PAGE = Page(scope, strand, list(data.las), ledger=Ledger(threshold()))
    tables.LA_NAMES.clear()
    tables.LA_NAMES.update(getattr(data, "la_names", {}) or {})
    name = tables.LA_NAMES.get(scope)
    what = (
        "the pooled trial"
        if scope == "trial"
        else f"local authority {md(name)} ({md(scope)})"
        if name
        else f"local authority {md(scope)}"
    )
    text = f"This page analyses {what}: {len(data.las)} LA(s), {len(data.teams)} teams."
    if data.is_synthetic:
        text = (
            "> **Synthetic data.** These results come from a synthetic trial with the ISAFE design, "
            "made by the handbook's generator. The numbers are illustrative, not the ISAFE trial's.\n\n" + text
        )
    display(Markdown(text))


def _register(spec: Spec) -> tuple[Plan, list[dict]]:
    ledger = _PAGE.ledger or Ledger(threshold())
    keys = [
        ledger.register(t, f"{_PAGE.scope}/{_PAGE.strand}/{spec.id}/{j}", _PAGE.las or None)
        for j, t in enumerate(spec.tables)
    ]
    return ledger.solve(), keys


def _show(spec: Spec) -> None:
    plan, keys = _register(spec)
    html = render_spec(spec, plan, keys)
    spec.shown = [tables.protected(t, plan, k) for t, k in zip(spec.tables, keys)]
    spec.exempt = [tables.exempt_cells(plan, k) for k in keys]
    _PAGE.specs.append(spec)
    display(HTML(html), metadata={"isafe": {"spec": spec.id, "kind": spec.kind}})


def show(item) -> None:
    """Show a result's table (or a :class:`Table`) under disclosure control, numbered."""
    table = item if isinstance(item, Table) else item.table()
    _PAGE.counters["table"] += 1
    n = _PAGE.counters["table"]
    _show(Spec(f"table-{n}", "table", n, [table], table.caption))


def figure(renderer: str, *tabs: Table, caption: str, **kwargs) -> None:
    """Show a figure drawn by ``renderer`` from the published values of ``tabs``, numbered and captioned.

    ``renderer`` names a function in :mod:`isafe_helpers.publish.figures`
    (``"process.reach"``) that takes the views of the tables and returns the
    figure and its alt text (:func:`isafe_helpers.publish.figures.svg`).
    """
    _PAGE.counters["figure"] += 1
    n = _PAGE.counters["figure"]
    _show(Spec(f"figure-{n}", "figure", n, list(tabs), caption, f"isafe_helpers.publish.figures.{renderer}", kwargs))


def prose(renderer: str, *tabs: Table, **kwargs) -> None:
    """Show Markdown written by ``renderer`` (in :mod:`isafe_helpers.publish.prose`) from the published values of ``tabs``."""
    n = len(_PAGE.specs) + 1
    _show(Spec(f"prose-{n}", "prose", 0, list(tabs), "", f"isafe_helpers.publish.prose.{renderer}", kwargs))


def views(spec: Spec, plan: Plan | None, keys: list[dict]) -> list[pd.DataFrame]:
    """The spec's tables as they may be published: their data with every withheld value NaN."""
    out = []
    for t, k in zip(spec.tables, keys):
        shown = tables.protected(t, plan, k)
        declared = [c.key for c in t.columns] + [p for c in t.columns if c.kind == "ci" for p in c.parts or ()]
        data = t.data.reset_index(drop=True)[list(dict.fromkeys(declared))].copy()
        for c in t.columns:
            if c.kind != "text":
                mask = (shown[c.key] == tables.CONFIDENTIAL).to_numpy(bool)
                for col in (c.key, *(c.parts or ())):
                    data[col] = pd.to_numeric(data[col], errors="coerce").astype(float).where(~mask)
        out.append(data)
    return out


def _function(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def render_spec(spec: Spec, plan: Plan | None, keys: list[dict]) -> str:
    """The HTML of one spec under ``plan``."""
    if spec.kind == "table":
        return tables.render(spec.tables[0], spec.number, plan, keys[0])
    fn = _function(spec.renderer)
    if spec.kind == "prose":
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark").enable("table").render(fn(views(spec, plan, keys), **spec.kwargs))
    from isafe_helpers.publish.figures import figure_html

    fig, alt = fn(views(spec, plan, keys), **spec.kwargs)
    # a coarsened table (one holding counts it does not print) says under its figure what it grouped, and why
    notes = [n for t in spec.tables if getattr(t, "unpublished", ()) for n in t.notes]
    return figure_html(fig, alt, spec.number, spec.caption, notes)


def write(results: list, scope: str, strand: str, output_dir: str) -> str:
    """Write the results' rows to ``<output_dir>/estimates.csv`` and the page's specs beside them."""
    rows = tidy_all(*results)
    df = E.frame(rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows, scope, strand)
    E.write_estimates(df, output_dir)
    path = Path(output_dir) / SPECS.format(strand=strand)
    with open(path, "wb") as fh:
        pickle.dump({"scope": scope, "strand": strand, "las": _PAGE.las, "specs": _PAGE.specs}, fh)
    return f"{len(df)} {strand} rows written to estimates.csv for scope {scope}."

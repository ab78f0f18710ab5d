"""Book-wide disclosure control: every page's specs in one ledger, solved once, rendered again.

Each notebook recorded what its page shows (:mod:`isafe_helpers.publish.report`).
:class:`BookDisclosure` registers every table of every page of the book, and
the tables the build adds itself (the summary's, each LA's index page), in
one :class:`~isafe_helpers.publish.ledger.Ledger`, solves it, and renders
each table, figure and prose output again under the book's plan: a count
suppressed on any page is suppressed on every page, and no suppressed count
follows from what the whole book publishes. A table or figure is rendered
again only when its cells differ from those its page showed (the page's
output is kept as it is otherwise).

:meth:`BookDisclosure.published` is the table of every number a scope's
pages publish after disclosure control, for the reader's download.
"""

from __future__ import annotations

import hashlib
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from isafe_helpers import portable
from isafe_helpers.data.contract import TRIAL_SCOPE
from isafe_helpers.publish import facts, tables
from isafe_helpers.publish.ledger import Ledger, Plan
from isafe_helpers.publish.report import SPECS, Spec, render_spec
from isafe_helpers.results.table import Table


@dataclass
class PageSpecs:
    """The specs one notebook recorded."""

    scope: str
    strand: str
    specs: list[Spec]
    las: list[str] = field(default_factory=list)
    keys: dict[str, list[dict]] = field(default_factory=dict)
    #: SHA-256 of the page's recorded specs and its executed notebook (what staging it reads)
    digest: str = ""


def load_pages(results: Path, scopes: list[str], strands: list[str], skip: set[tuple[str, str]]) -> list[PageSpecs]:
    """Every recorded page of the run, but those in ``skip`` (failed notebooks)."""
    pages = []
    for scope in scopes:
        for strand in strands:
            path = results / scope / SPECS.format(strand=strand)
            if (scope, strand) in skip or not path.is_file():
                continue
            raw = path.read_bytes()
            rec = pickle.loads(raw)
            h = hashlib.sha256(raw)
            nb = results / scope / f"{strand}.ipynb"
            h.update(nb.read_bytes() if nb.is_file() else b"")
            pages.append(PageSpecs(scope, strand, rec["specs"], list(rec.get("las", [])), digest=h.hexdigest()))
    return pages


#: The book a forked staging process renders pages of (set by :meth:`BookDisclosure.render_pages`).
_RENDERING: BookDisclosure | None = None


def _render_share(indices: list[int]) -> dict[tuple[str, str], tuple[dict, list]]:
    """In a forked staging process: render the book's pages at ``indices``."""
    assert _RENDERING is not None
    return _RENDERING._render(indices)


class BookDisclosure:
    """One ledger for the book: register pages and extra tables, then :meth:`solve` and render."""

    def __init__(self, pages: list[PageSpecs], limit: int):
        self.pages = pages
        self.ledger = Ledger(limit)
        self.extra: dict[str, tuple[Table, dict]] = {}
        self.idents: dict[str, str] = {}
        for page in pages:
            for spec in page.specs:
                page.keys[spec.id] = [
                    self.ledger.register(t, f"{page.scope}/{page.strand}/{spec.id}/{j}", page.las or None)
                    for j, t in enumerate(spec.tables)
                ]
        self.plan: Plan | None = None
        self._facts: dict | None = None

    def add(self, where: str, table: Table, ident: str | None = None) -> None:
        """Register a table the build itself publishes (summary, LA index pages), before :meth:`solve`.

        ``ident`` is its id in the page (an anchor) and in the published-numbers CSV.
        """
        scope = where.partition("/")[0]
        # the summary is the pooled trial's; an LA index page's tables are its LA's (issue 22: pooled = sum of LAs)
        las = sorted({la for p in self.pages for la in p.las}) if scope == "summary" else [scope]
        self.extra[where] = (table, self.ledger.register(table, where, las or None))
        if ident:
            self.idents[where] = ident

    def solve(self) -> Plan:
        self.plan = self.ledger.solve()
        self._facts = None
        return self.plan

    def facts(self) -> dict:
        """Every fact the results pages' tables publish under the book's plan (:func:`facts.collect`), by key."""
        assert self.plan is not None, "solve the ledger first"
        if self._facts is None:
            self._facts = facts.collect(self.pages, self.plan)  # the module, not this method
        return self._facts

    def refill(self, where: str, table: Table) -> None:
        """Put the filled version of a table registered with :meth:`add` in its place (after :meth:`solve`).

        A table whose ``view`` cells read the solved book's facts is
        registered before the solve with those cells empty; its people cells
        (what the ledger saw) must be the same in both.
        """
        old, keys = self.extra[where]
        for col in old.people:
            a = old.data[col].reset_index(drop=True)
            b = table.data[col].reset_index(drop=True)
            if not a.equals(b):
                raise ValueError(f"{where}: the counts of column {col!r} changed after the ledger was solved")
        self.extra[where] = (table, keys)

    def cells(self, where: str) -> pd.DataFrame:
        """A table registered with :meth:`add`, as printed (strings, with its symbols)."""
        table, keys = self.extra[where]
        return tables.protected(table, self.plan, keys)

    def render_table(self, where: str, number: int | None = None) -> str:
        """The HTML of a table registered with :meth:`add`."""
        table, keys = self.extra[where]
        return tables.render(table, number, self.plan, keys, anchor=self.idents.get(where))

    def view(self, where: str) -> pd.DataFrame:
        """A table registered with :meth:`add`, as it may be published (withheld values NaN)."""
        from isafe_helpers.publish.report import views

        table, keys = self.extra[where]
        return views(Spec(where, "table", 0, [table]), self.plan, [keys])[0]

    def outputs(self, page: PageSpecs) -> dict[str, str]:
        """The page's outputs under the book's plan, by spec id: the tables and figures whose cells changed.

        A table or figure is rendered from its cells alone (a table's, too,
        from which counts are exempt): when the book's plan gives the cells
        the page's own ledger gave, the page's output stands as it is.
        Prose is always written again.
        """
        out = {}
        for spec in page.specs:
            keys = page.keys[spec.id]
            if spec.kind in ("figure", "table"):
                now = [tables.protected(t, self.plan, k) for t, k in zip(spec.tables, keys)]
                same = len(now) == len(spec.shown) and all(a.equals(b) for a, b in zip(now, spec.shown))
                if same and spec.kind == "table":
                    same = getattr(spec, "exempt", None) == [tables.exempt_cells(self.plan, k) for k in keys]
                if same:
                    continue
            out[spec.id] = render_spec(spec, self.plan, keys)
        return out

    def render_pages(self, pages: list[PageSpecs], jobs: int = 1) -> dict[tuple[str, str], tuple[dict, list]]:
        """Each page's :meth:`outputs` and :meth:`page_cells`, by (scope, strand), in ``jobs`` processes.

        Rendering is the book stage's work (figures drawn again, tables
        protected); the plan is solved and no longer changes, so pages can be
        rendered apart. The pages are dealt out in turn between this process
        and ``jobs - 1`` forked ones (POSIX; elsewhere, or for one page, all
        here). What a forked process renders is what this one would: the
        same code on the same state, and figures are drawn deterministically.
        """
        global _RENDERING
        position = {id(p): i for i, p in enumerate(self.pages)}
        indices = [position[id(p)] for p in pages]
        jobs = min(jobs, len(indices))
        if jobs < 2 or not portable.can_fork():  # POSIX, unless ISAFE_PORTABLE=1
            return self._render(indices)
        _RENDERING = self
        try:
            with ProcessPoolExecutor(jobs - 1, mp_context=get_context("fork")) as pool:
                others = {j: pool.submit(_render_share, indices[j::jobs]) for j in range(1, jobs)}
                out = self._render(indices[0::jobs])
                for j, fut in others.items():
                    try:
                        out.update(fut.result())
                    except BrokenProcessPool:  # a forked process was killed (out of memory): its share here
                        out.update(self._render(indices[j::jobs]))
        finally:
            _RENDERING = None
        return out

    def _render(self, indices: list[int]) -> dict[tuple[str, str], tuple[dict, list]]:
        out = {}
        for i in indices:
            page = self.pages[i]
            out[(page.scope, page.strand)] = (self.outputs(page), self.page_cells(page))
        return out

    def withheld_on(self, page: PageSpecs) -> list[list[str]]:
        """The page's counts the plan suppresses, and those it marks exempt (the trial flow).

        With the page's digest, all that its staged output takes from the
        book's plan (a count can be made exempt, or withheld, by another page).
        """
        assert self.plan is not None
        keys = {k for maps in page.keys.values() for m in maps for k in m.values()}
        return [sorted(k for k in keys if self.plan.hidden(k)), sorted(keys & self.plan.exempt)]

    def page_cells(self, page: PageSpecs) -> list[dict]:
        """Every number the page's tables and figures publish, as printed (rows of :meth:`published`)."""
        rows: list[dict] = []
        for spec in page.specs:
            ident = facts.table_id(page.scope, page.strand, spec.kind, spec.number or int(spec.id.rpartition("-")[2]))
            for t, keys in zip(spec.tables, page.keys[spec.id]):
                rows += facts.csv_rows(page.strand, ident, t, tables.protected(t, self.plan, keys), page.scope)
        return rows

    def published(self, scope: str, cells: dict[str, list[dict]] | None = None) -> pd.DataFrame:
        """Every number the scope's tables publish, as printed (after disclosure control): the CSV's rows.

        The scope's pages (their rows from ``cells`` by strand where given,
        else computed), then the tables the build adds for it: the executive
        summary's for the pooled trial, the index page's for an LA.
        Columns: :data:`facts.CSV_COLUMNS`.
        """
        rows: list[dict] = []
        for page in (p for p in self.pages if p.scope == scope):
            rows += cells[page.strand] if cells is not None and page.strand in cells else self.page_cells(page)
        prefix = "summary/" if scope == TRIAL_SCOPE else f"{scope}/"
        for where, (t, keys) in self.extra.items():
            if where.startswith(prefix):
                name = "summary" if scope == TRIAL_SCOPE else "index"
                ident = self.idents.get(where, where.replace("/", "-"))
                rows += facts.csv_rows(name, ident, t, tables.protected(t, self.plan, keys), scope)
        out = pd.DataFrame(rows, columns=facts.CSV_COLUMNS)
        out["value"] = out["value"].astype(float)  # plain numbers: never text, never neutralised
        return out

"""The book keeps a page's own table or figure when the book's plan gives it the same cells (issue 16).

A page's table is rendered under the page's own ledger when its notebook
runs; the book registers every page in one ledger and renders an output
again only when that ledger gives it other cells, or publishes other counts
of it whatever their size (an exempt trial-flow count). These tests build
pages as a notebook would and check both ways, and that what the book
would render afresh equals what it keeps.
"""

from __future__ import annotations

import pandas as pd

from isafe_helpers.publish import tables
from isafe_helpers.publish.assemble import BookDisclosure, PageSpecs
from isafe_helpers.publish.ledger import Ledger
from isafe_helpers.publish.report import Spec, render_spec
from isafe_helpers.results.keys import key
from isafe_helpers.results.table import Col, Table

LIMIT = 10


def _table(la: str, n: int, exempt: bool = False) -> Table:
    k = key([la], "staff", arm="treatment")
    return Table(
        pd.DataFrame({"group": ["staff"], "n": [n]}),
        [Col("group", "Group", "text"), Col("n", "Staff", "people")],
        "Staff",
        keys={"n": [k]},
        exempt={k} if exempt else set(),
    )


def _page(scope: str, strand: str, table: Table) -> PageSpecs:
    """A page as its notebook records it: the table shown under the page's own ledger."""
    ledger = Ledger(LIMIT)
    keys = ledger.register(table, f"{scope}/{strand}/table-1/0")
    plan = ledger.solve()
    spec = Spec("table-1", "table", 1, [table], table.caption)
    spec.shown = [tables.protected(table, plan, keys)]
    spec.exempt = [tables.exempt_cells(plan, keys)]
    return PageSpecs(scope, strand, [spec])


def test_a_table_the_book_shows_as_its_page_did_is_kept():
    book = BookDisclosure([_page("LA01", "impact", _table("LA01", 40))], LIMIT)
    book.solve()
    assert book.outputs(book.pages[0]) == {}


def test_a_table_is_rendered_again_when_the_book_publishes_its_count_whatever_its_size():
    # the same count: on its impact page an ordinary count, on the flow page exempt (published whatever its size)
    impact = _page("LA01", "impact", _table("LA01", 4))
    flow = _page("LA01", "process", _table("LA01", 4, exempt=True))
    assert impact.specs[0].shown[0].loc[0, "n"] == tables.CONFIDENTIAL  # its page withheld it
    book = BookDisclosure([impact, flow], LIMIT)
    book.solve()
    again = book.outputs(impact)
    assert list(again) == ["table-1"] and 'class="num people exempt">4<' in again["table-1"]
    assert book.outputs(flow) == {}  # the flow page had it exempt already


def test_a_kept_output_is_what_the_book_would_render():
    page = _page("LA02", "cost", _table("LA02", 25))
    book = BookDisclosure([page], LIMIT)
    book.solve()
    spec = page.specs[0]
    mine = tables.render(spec.tables[0], 1, *_page_plan(spec))
    assert book.outputs(page) == {} and render_spec(spec, book.plan, page.keys[spec.id]) == mine


def _page_plan(spec: Spec):
    ledger = Ledger(LIMIT)
    keys = ledger.register(spec.tables[0], "page")
    return ledger.solve(), keys


def test_protected_within_remembered_is_worked_out_once_and_handed_out_as_copies(monkeypatch):
    t = _table("LA03", 30)
    ledger = Ledger(LIMIT)
    keys = ledger.register(t, "x")
    plan = ledger.solve()
    calls = []
    real = tables._protected
    monkeypatch.setattr(tables, "_protected", lambda *a: calls.append(1) or real(*a))
    with tables.remembered():
        first = tables.protected(t, plan, keys)
        first.loc[0, "n"] = "changed"
        second = tables.protected(t, plan, keys)
    assert len(calls) == 1 and second.loc[0, "n"] == "30"
    tables.protected(t, plan, keys)  # outside the block, worked out again
    assert len(calls) == 2


def test_pages_staged_in_two_processes_equal_pages_staged_in_one(bundled_run, tmp_path):
    from isafe_helpers.publish.book import stage

    stage(bundled_run, tmp_path / "one", None, jobs=1)
    stage(bundled_run, tmp_path / "two", None, jobs=2)
    one = {p.relative_to(tmp_path / "one"): p for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert sorted(one) == sorted(two) and len(one) > 40

    def text(p):  # the status page says when the book was built
        return "\n".join(line for line in p.read_text("utf-8").splitlines() if not line.startswith("- Book built:"))

    differ = [
        rel
        for rel in one
        if (text(one[rel]) if rel.suffix == ".md" else one[rel].read_bytes())
        != (text(two[rel]) if rel.suffix == ".md" else two[rel].read_bytes())
    ]
    assert differ == []


def _die(indices):
    """A forked staging process killed before it answers (as by the out-of-memory killer)."""
    import os

    os._exit(1)


def test_pages_of_a_forked_process_that_dies_are_rendered_here(monkeypatch):
    from isafe_helpers.publish import assemble

    pages = [_page("LA01", "impact", _table("LA01", 4)), _page("LA01", "process", _table("LA01", 4, exempt=True))]
    book = BookDisclosure(pages, LIMIT)
    book.solve()
    expected = book._render([0, 1])
    monkeypatch.setattr(assemble, "_render_share", _die)
    assert book.render_pages(pages, jobs=2) == expected

"""Issue 22's attack classes on hand-made tables: each closed by the ledger (fast; the built-book attack is
tests/test_attacker.py)."""

from __future__ import annotations

import pandas as pd
from test_ledger import recoverable

from isafe_helpers.publish import tables
from isafe_helpers.publish.ledger import Ledger
from isafe_helpers.results.table import Col, Table

LIMIT = 10


def test_a_share_beside_its_base_is_withheld_when_the_rest_of_the_base_is_small():
    """88.0% of 25 staff reached: 22 reached and 3 not. The base is large, but the rest is a count under 10."""
    t = Table(
        pd.DataFrame({"la": ["LA01", "LA02"], "staff": [25, 40], "reach": [88.0, 50.0]}),
        [Col("la", "LA", "text"), Col("staff", "Staff", "people"), Col("reach", "Reach (%)", "pct", 1, base="staff")],
        "Reach in each LA",
    )
    ledger = Ledger(LIMIT)
    keys = ledger.register(t, "process", ["LA01", "LA02"])
    cells = tables.protected(t, ledger.solve(), keys)
    assert cells["reach"].tolist() == ["[c]", "50.0"]  # 20 of 40 and 20 not: both published
    assert cells["staff"].tolist() == ["25", "40"]


def test_one_count_printed_by_two_tables_is_withheld_in_both():
    """A table withholds 11 attendees (with 4 of 15) as secondary suppression; another table prints the
    same row and column: 11 there would give 4 = 15 - 11 back."""
    cols = [Col("session", "Session", "text"), *(Col(c, c.title(), "people") for c in ("all", "came", "late"))]
    a = Table(pd.DataFrame({"session": ["MI"], "all": [15], "came": [11], "late": [4]}), cols, "Attendance")
    b = Table(
        pd.DataFrame({"session": ["MI"], "came": [11]}),
        [Col("session", "Session", "text"), Col("came", "Came", "people")],
        "Response",
    )
    ledger = Ledger(LIMIT)
    ka = ledger.register(a, "process/a", ["LA01"])
    kb = ledger.register(b, "process/b", ["LA01"])
    plan = ledger.solve()
    shown_a, shown_b = tables.protected(a, plan, ka), tables.protected(b, plan, kb)
    assert shown_a.at[0, "late"] == "[c]"
    assert not (shown_a.at[0, "came"] == "[c]" and shown_b.at[0, "came"] == "11")
    assert recoverable(ledger, plan) == []


def test_a_distribution_with_every_category_zero_but_one_is_withheld():
    """12 respondents, every one very satisfied: 0, 0, 12 says what each of them answered."""
    t = Table(
        pd.DataFrame({"session": ["FE", "MI"], "n": [12, 20], "low": [0, 5], "mid": [0, 7], "high": [12, 8]}),
        [Col("session", "Session", "text"), *(Col(c, c, "people") for c in ("n", "low", "mid", "high"))],
        "Satisfaction",
    )
    ledger = Ledger(LIMIT)
    keys = ledger.register(t, "process", ["LA01"])
    cells = tables.protected(t, ledger.solve(), keys)
    assert cells.loc[0, ["low", "mid", "high"]].tolist() == ["[c]", "[c]", "[c]"]
    assert cells.at[0, "n"] == "12"  # coarsened to its total


def test_the_book_ties_each_pooled_count_to_the_sum_of_its_las():
    """The pooled page prints 14 respondents, LA02's page 10 and LA01's 4 ([c]): 14 - 10 = 4 unless the
    book's ledger knows the pooled count is the LAs' sum (its pages are registered with their LAs)."""
    from isafe_helpers.publish.assemble import BookDisclosure, PageSpecs
    from isafe_helpers.publish.report import Spec

    def page(scope: str, las: list[str], n: int) -> PageSpecs:
        t = Table(
            pd.DataFrame({"session": ["FE"], "n": [n]}),
            [Col("session", "Session", "text"), Col("n", "Respondents", "people")],
            "Feedback returned",
        )
        return PageSpecs(scope, "process", [Spec("process-table-1", "table", 1, [t])], las)

    las = ["LA01", "LA02"]
    book = BookDisclosure([page("trial", las, 14), page("LA01", ["LA01"], 4), page("LA02", ["LA02"], 10)], LIMIT)
    plan = book.solve()
    shown = {p.scope: tables.protected(p.specs[0].tables[0], plan, p.keys["process-table-1"][0]) for p in book.pages}
    assert shown["LA01"].at[0, "n"] == "[c]"
    assert "[c]" in (shown["trial"].at[0, "n"], shown["LA02"].at[0, "n"])

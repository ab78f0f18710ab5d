"""Disclosure control of one table as the book prints it (``tables.protected``, through the ledger).

Issue 27 deleted the second disclosure engine (``disclosure.suppress``/``protect``); these are its
tests that describe behaviour the book has, ported to the path the book uses. The secondary-suppression
guarantee is checked against an independent oracle: for every suppressed cell, linear programming
(scipy's HiGHS) finds the smallest and largest value the cell can take given every published cell,
every total and non-negativity. The cell is protected when the two differ by at least one person.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from isafe_helpers.publish import disclosure as D
from isafe_helpers.publish import tables
from isafe_helpers.results.table import Col, Table

C = tables.CONFIDENTIAL


def cell_range(table: np.ndarray, mask: np.ndarray, cell: tuple[int, int]) -> tuple[float, float]:
    """Min and max of a suppressed cell over all non-negative tables that agree
    with what is published: unsuppressed cells and every row and column total
    (the last row and last column of ``table`` are the totals)."""
    unknown = [tuple(x) for x in np.argwhere(mask)]
    idx = {c: i for i, c in enumerate(unknown)}
    a_eq, b_eq = [], []
    nr, nc = table.shape
    lines = [[(r, c) for c in range(nc - 1)] + [(r, nc - 1)] for r in range(nr)]
    lines += [[(r, c) for r in range(nr - 1)] + [(nr - 1, c)] for c in range(nc)]
    for line in lines:  # parts - total = 0
        coef, const = np.zeros(len(unknown)), 0.0
        for k, (r, c) in enumerate(line):
            sign = -1.0 if k == len(line) - 1 else 1.0
            if (r, c) in idx:
                coef[idx[(r, c)]] += sign
            else:
                const -= sign * table[r, c]
        a_eq.append(coef)
        b_eq.append(const)
    obj = np.zeros(len(unknown))
    obj[idx[cell]] = 1.0
    lo = linprog(obj, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
    hi = linprog(-obj, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
    assert lo.status == 0 and hi.status in (0, 3)  # 3: unbounded above (every total suppressed)
    return lo.fun, (np.inf if hi.status == 3 else -hi.fun)


def with_totals(body: np.ndarray) -> pd.DataFrame:
    """A count table with a total column and a total row, labelled like the notebooks'."""
    nr, nc = body.shape
    full = np.zeros((nr + 1, nc + 1), dtype=int)
    full[:nr, :nc] = body
    full[:nr, nc] = body.sum(axis=1)
    full[nr, :] = full[:nr, :].sum(axis=0)
    cols = [f"c{j}" for j in range(nc)] + ["total"]
    df = pd.DataFrame(full, columns=cols)
    df.insert(0, "group", [f"g{i}" for i in range(nr)] + ["all"])
    return df


def protect(df: pd.DataFrame, people: tuple[str, ...], limit: int | None = None, **kinds) -> pd.DataFrame:
    """``df`` printed as the book prints a table: text columns, ``people`` counts, other columns numbers."""
    cols = []
    for c in df.columns:
        if c in people:
            cols.append(Col(c, c, "people"))
        elif c in kinds:
            cols.append(kinds[c])
        elif pd.api.types.is_numeric_dtype(df[c]):
            cols.append(Col(c, c, "number"))
        else:
            cols.append(Col(c, c, "text"))
    return tables.protected(Table(df, cols, "A table"), limit=limit)


def test_counts_under_threshold_are_c_and_the_rest_are_shown():
    out = protect(pd.DataFrame({"component": ["a", "b", "c"], "n": [9, 10, 250]}), ("n",), limit=10)
    assert out["n"].tolist() == [C, "10", "250"]


def test_a_lone_small_cell_beside_a_total_row_takes_a_second_cell_with_it():
    out = protect(pd.DataFrame({"component": ["a", "b", "c", "all"], "n": [3, 40, 25, 68]}), ("n",), limit=10)
    # 3 alone would be 68 - 40 - 25: a second cell goes too
    assert out["n"].tolist()[0] == C and out["n"].tolist().count(C) >= 2


def test_a_total_column_is_found_and_protected_row_by_row():
    t = pd.DataFrame({"arm": ["treatment", "control"], "men": [4, 30], "women": [50, 28], "all": [54, 58]})
    out = protect(t, ("men", "women", "all"), limit=10)
    assert out.loc[0, ["men", "women", "all"]].tolist().count(C) >= 2
    assert out.loc[1].tolist() == ["control", "30", "28", "58"]


def test_rates_on_few_people_and_rates_beside_a_suppressed_count_are_withheld():
    t = pd.DataFrame(
        {"k": ["a", "b", "c"], "attendees": [5, 9, 40], "intended_n": [20, 8, 50], "reach_pct": [25.0, 112.5, 80.0]}
    )
    out = protect(
        t, ("attendees", "intended_n"), limit=10, reach_pct=Col("reach_pct", "Reach", "percent", 1, "intended_n")
    )
    # a: 25% of 20 would give the 5 attendees back; b: rests on 8 people
    assert out["reach_pct"].tolist()[:2] == [C, C] and out["reach_pct"].tolist()[2] != C


def test_the_threshold_is_configured_in_one_place(monkeypatch):
    t = pd.DataFrame({"k": ["a", "b"], "n": [12, 30]})
    monkeypatch.setenv(D.THRESHOLD_ENV, "15")
    assert D.threshold() == 15
    assert protect(t, ("n",))["n"].tolist() == [C, "30"]
    monkeypatch.delenv(D.THRESHOLD_ENV)
    assert D.threshold() == D.DEFAULT_THRESHOLD == 10
    assert protect(t, ("n",))["n"].tolist() == ["12", "30"]


@pytest.mark.parametrize("bad", ["ten", "0", "-3", "2.5"])
def test_a_bad_threshold_setting_is_refused_with_its_value(monkeypatch, bad):
    monkeypatch.setenv(D.THRESHOLD_ENV, bad)
    with pytest.raises(ValueError, match=f"{D.THRESHOLD_ENV} must be a whole number >= 1, got '{bad}'"):
        D.threshold()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 4).flatmap(
        lambda nr: st.integers(2, 4).flatmap(
            lambda nc: st.lists(
                st.one_of(st.integers(1, 9), st.integers(10, 60)), min_size=nr * nc, max_size=nr * nc
            ).map(lambda v: np.array(v).reshape(nr, nc))
        )
    )
)
@example(body=np.array([1, 1, 1, 1, 1, 2, 2, 2, 10]).reshape(3, 3))
def test_no_suppressed_count_can_be_recovered_from_the_totals(body):
    """No zeros: a sum found by value with a zero part is not a relation the ledger protects, and a zero is
    published unless it puts a whole group in one category (both tested in tests/test_ledger.py)."""
    df = with_totals(body)
    counts = tuple(c for c in df.columns if c != "group")
    out = protect(df, counts, limit=10)
    table = df[list(counts)].to_numpy()
    mask = (out[list(counts)] == C).to_numpy()
    assert (mask | (table >= 10)).all()  # every small count is suppressed
    for cell in map(tuple, np.argwhere(mask)):
        lo, hi = cell_range(table, mask, cell)
        assert lo <= table[cell] <= hi
        assert hi - lo >= 1 - 1e-9, f"cell {cell} of\n{df}\nis recoverable from\n{out}"


def test_a_cost_per_participant_that_would_give_a_suppressed_count_back_is_withheld():
    t = pd.DataFrame(
        {
            "la": ["LA01", "LA02"],
            "total_cost_gbp": [7905.7, 81413.0],
            "participants_reached": [3, 296],
            "cost_per_participant_gbp": [7905.7 / 3, 81413.0 / 296],
            "staff": [40, 40],
        }
    )
    # both costs declare what they rest on (the staff), so only the derived-number check can withhold them
    gbp = {c: Col(c, c, "gbp", base="staff", reveals="staff") for c in ("total_cost_gbp", "cost_per_participant_gbp")}
    out = protect(t, ("participants_reached", "staff"), limit=10, **gbp)
    assert out.loc[0].tolist() == ["LA01", "£7,905.70", C, C, "40"]  # 7,905.70 / 2,635.23 would be 3
    assert C not in out.loc[1].tolist()


def test_an_undeclared_percentage_of_a_shown_base_is_withheld_beside_its_suppressed_numerator():
    t = pd.DataFrame({"k": ["a"], "base": [40], "yes": [6], "yes_pct": [15.0], "effect": [0.37]})
    out = protect(t, ("base", "yes"), limit=10, effect=Col("effect", "Effect", "number", reveals="base"))
    assert out.loc[0].tolist() == ["a", "40", C, C, "0.37"]  # 15% of 40 would be 6


def test_a_number_that_gives_back_a_suppressed_count_by_division_is_withheld_in_the_printed_table():
    """Row a: 5 staff (suppressed) had 15 sessions, shown beside 3.00 sessions per person (declared on
    another base): 15 / 3.00 gives the 5 back, so the rate is withheld too. The check once marked a copy
    of the printed table and its marks were lost (the rate was printed)."""
    data = pd.DataFrame({"group": ["a", "b"], "n": [5, 40], "sessions": [15, 120], "m": [30, 30], "rate": [3.0, 3.0]})
    cols = [
        Col("group", "Group", "text"),
        Col("n", "Staff", "people"),
        Col("sessions", "Sessions", "int"),
        Col("m", "Staff offered", "people"),
        Col("rate", "Sessions per person", "number", base="m", reveals="m"),
    ]
    out = tables.protected(Table(data, cols, "Sessions"), limit=10)
    assert out.loc[0, "n"] == tables.CONFIDENTIAL and out.loc[0, "rate"] == tables.CONFIDENTIAL
    assert out.loc[1].tolist() == ["b", "40", "120", "30", "3.00"]

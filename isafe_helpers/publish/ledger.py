"""The book's disclosure ledger: every published count of people, every relation between them, solved once.

Every table the book publishes registers its people cells here: each cell's
value under the key of the population it counts
(:mod:`isafe_helpers.results.keys`), and the relations a reader could use
against them: totals and breakdowns declared by the analyses, column and row
totals found in the table by value, and "a pooled count is the sum of its
LAs' counts", added here for every key whose LAs are all registered. The
same key on two pages is one unknown, so a count suppressed on one page
cannot be recovered from another.

:meth:`Ledger.solve` applies the methods page's rules to the whole system:

1. **Primary suppression.** A count under the threshold is suppressed. A
   zero is published, unless it is part of a breakdown of people by a
   characteristic in which every member of the group falls in one category
   (class disclosure): then that breakdown's cells are suppressed, which
   coarsens it to its total.
2. **Secondary suppression.** More counts are suppressed until no
   suppressed count follows from the published ones by any linear
   combination of the relations: no relation holds exactly one suppressed
   count; a null-space test finds no suppressed count fixed by the
   relations together; and linear programming (counts are not negative)
   finds none pinned to within one person. Which count goes next is a
   choice of cost: a count no table prints (one a statistic rests on) goes
   first, then a count published in one place before one that
   several pages use (a headline count, such as the staff reached), and a
   smaller one before a larger; for a count the relations fix, the cheapest
   one count, or failing that two counts near it, whose suppression leaves
   it unfixed (a pooled sum gives back one LA's count, not two); for a count
   pinned within one person, the counts near it whose suppression gives it a
   person's room, found by linear programming (:meth:`Ledger._unpin`). The
   pinned counts of a group of linked counts are protected together, in one
   pass. The choice is greedy, not the fewest cells possible.
3. **Exempt counts** (the trial-flow counts CONSORT requires) are never
   suppressed; relations among only exempt counts are left as they are, and
   the trial flow merges small categories instead (see
   :mod:`isafe_helpers.impact.flow`).

Statistics resting on people (:class:`~isafe_helpers.results.table.Col`
``base``) are withheld when their base is under the threshold or
suppressed, and those that give a count back (``reveals``) when that count
is suppressed: :func:`isafe_helpers.publish.tables.protected` applies it.
The counts a percentage alone gives back (its numerator and the rest of its
base) are suppressed with it (:meth:`Ledger._derived`): a withheld statistic
publishes nothing.
"""

from __future__ import annotations

import heapq
import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from isafe_helpers.results.keys import SEP, key, split
from isafe_helpers.results.table import Table


class LedgerError(ValueError):
    """Two tables give one population different counts: a bug in the keys, never a data problem."""


@dataclass(frozen=True)
class Relation:
    """``total = sum(parts)`` between ledger keys; ``kind`` ``sum`` or ``breakdown``."""

    total: str
    parts: tuple[str, ...]
    kind: str = "sum"
    #: the total, then the parts (read in every pass of the solve: kept, not rebuilt)
    cells: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", (self.total, *self.parts))


@dataclass
class Plan:
    """What the ledger decided: the suppressed keys, and relations it could not protect."""

    suppressed: set[str]
    limit: int
    values: dict[str, float]
    unprotectable: list[Relation] = field(default_factory=list)
    #: counts published whatever their size (the trial flow CONSORT requires)
    exempt: set[str] = field(default_factory=set)

    def hidden(self, key: str | None) -> bool:
        return key is not None and key in self.suppressed

    def small(self, key: str | None) -> bool:
        """True when the count is under the threshold (a statistic resting on it is withheld)."""
        v = self.values.get(key) if key is not None else None
        return v is not None and v < self.limit


class Ledger:
    """The people counts of a book (or of one page) and the relations between them."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.values: dict[str, float] = {}
        self.where: dict[str, str] = {}
        self.relations: list[Relation] = []
        self.exempt: set[str] = set()
        self.uses: dict[str, int] = defaultdict(int)
        #: counts printed somewhere (a table's people cell, or one a percentage gives back); the others are only
        #: what a statistic rests on (``Table.rests``), cheaper to suppress: that withholds a statistic, not a count
        self.shown: set[str] = set()
        self._rel_seen: set[tuple] = set()
        #: the first key registered under each (LAs, row, column label): the same count printed by two tables
        self._labels: dict[tuple, str] = {}
        # during a solve only: the last decomposition, the component the breaker judges, the last system built
        self._last: _Decomposition | None = None
        self._visit: _Visit | None = None
        self._built: tuple | None = None
        self._by_cell: dict[str, list[Relation]] = {}  # each count's relations
        self._batched: set[str] = set()  # counts a batch of solutions left open (_exposed)
        #: what a percentage gives back, by the counts whose suppression withholds it (:meth:`_derived`)
        self._gives: dict[str, set[str]] = defaultdict(set)
        self._printed: set[str] = set()  # counts a table prints in a people column
        #: counts a table holds but does not print (the five answers behind a table coarsened to three bands):
        #: what the printed counts sum, and what another scope may print (``Table.unpublished``)
        self.unpublished: set[str] = set()
        self._free: set[str] = set()  # during a solve: unpublished counts with nothing to protect
        #: during a solve: the lowest and highest value each count takes in a solution found so far (_exposed)
        self._seen: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------------ input
    def add(self, key: str, value: float, where: str, exempt: bool = False, shown: bool = True) -> None:
        """Register one published count under ``key`` (``shown=False``: one a statistic rests on, not printed)."""
        v = float(value)
        old = self.values.get(key)
        if old is not None and not math.isclose(old, v, abs_tol=1e-9):
            raise LedgerError(f"population {key!r} is {old:g} in {self.where[key]} but {v:g} in {where}")
        if old is None:
            self.values[key], self.where[key] = v, where
        if shown:  # a count only a statistic rests on is not a use: it is printed nowhere
            self.uses[key] += 1
            self.shown.add(key)
        if exempt:
            self.exempt.add(key)

    def relate(self, total: str, parts, kind: str = "sum") -> None:
        """Register ``total = sum(parts)`` (each key must be registered, or it is ignored)."""
        parts = tuple(parts)
        sig = (total, tuple(sorted(parts)))
        if len(parts) < 1 or total in parts:
            return
        if sig in self._rel_seen:  # found by value and declared too: the declaration says what it is
            if kind == "breakdown":
                self.relations = [
                    Relation(r.total, r.parts, kind) if (r.total, tuple(sorted(r.parts))) == sig else r
                    for r in self.relations
                ]
            return
        self._rel_seen.add(sig)
        self.relations.append(Relation(total, parts, kind))

    def register(self, table: Table, where: str, las: list[str] | None = None) -> dict[tuple[int, str], str]:
        """Register a table's people cells and relations; return each cell's key by (row, column).

        A cell whose population the table does not name gets a key from the
        page's LAs (``las``), the table's caption, the row's text cells and
        the column: the same table on the pooled page and on each LA's page
        then counts the same populations, and the ledger adds "pooled = sum
        of the LAs" for them. Without ``las`` the key is the table's own
        (``<where>|row|column``).
        """
        from isafe_helpers.publish.disclosure import find_relations

        data = table.data.reset_index(drop=True)
        keys: dict[tuple[int, str], str] = {}
        text_cols = [c.key for c in table.columns if c.kind == "text"]
        seen: set[str] = set()

        def auto(i: int, col: str) -> str:
            if las is None:
                return f"{where}{SEP}{i}{SEP}{col}"
            row = "/".join(str(data.loc[i, c]) for c in text_cols) or str(i)
            k = key(las, "auto", table.caption, row, col)
            if k in seen:  # two rows alike in their text: keep them apart
                k = f"{k}{SEP}{i}"
            seen.add(k)
            return k

        labels = {c.key: c.label for c in table.columns}
        for col in table.people:
            for i, v in enumerate(data[col]):
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    continue
                if math.isnan(x):
                    continue
                k = table.cell_key(i, col) or auto(i, col)
                self.add(k, x, where, exempt=k in table.exempt)
                self._printed.add(k)
                keys[(i, col)] = k
                if las is not None:  # the same row and column label in the same LAs: one count, printed twice
                    row = "/".join(str(data.loc[i, c]) for c in text_cols) or str(i)
                    lab = (tuple(sorted(las)), row, labels[col])
                    other = self._labels.setdefault(lab, k)
                    if other != k and math.isclose(self.values[other], x):
                        self.relate(other, [k])
        # counts held, not printed (a coarsened table's finer counts), under the keys a print would have: before
        # the sums, which tie the printed counts to them
        for col in getattr(table, "unpublished", ()):
            for i, v in enumerate(data[col]):
                x = pd.to_numeric(v, errors="coerce")
                if pd.isna(x):
                    continue
                k = table.cell_key(i, col) or auto(i, col)
                self.add(k, float(x), where, exempt=k in table.exempt, shown=False)
                self.unpublished.add(k)
                keys[(i, col)] = k
        for c in table.columns:  # a percentage and its "out of" count give back two counts: the ledger sees both
            if not c.of:
                continue
            for i in range(len(data)):
                ok = keys.get((i, c.of))
                try:
                    pct, base = float(data.loc[i, c.key]), float(data.loc[i, c.of])
                except (TypeError, ValueError):
                    continue
                if ok is None or not (math.isfinite(pct) and math.isfinite(base)):
                    continue
                given = float(round(pct * base / 100))
                # the table may name the population the percentage counts (the staff reached), so that a count
                # withheld on another page withholds the percentage here too
                share = table.cell_key(i, f"{c.key}{SEP}share") or f"{ok}{SEP}share={c.key}"
                rest = table.cell_key(i, f"{c.key}{SEP}rest") or f"{ok}{SEP}rest={c.key}"
                self.add(share, given, where)
                self.add(rest, base - given, where)
                keys[(i, f"{c.key}{SEP}share")], keys[(i, f"{c.key}{SEP}rest")] = share, rest
                self.relate(ok, [share, rest])
                # withheld (protected()) when the count it gives back or the rest is suppressed
                self._derived([share, rest], [share, rest])
        self._rates(table, data, keys, where)
        for total, parts in table.sums.items():  # declared column sums hold row by row
            for i in range(len(data)):
                found = [keys.get((i, c)) for c in (total, *parts)]
                cells = [c for c in found if c]
                if len(cells) == len(found):
                    self.relate(cells[0], cells[1:])
        # a column that is, in every row of at least two, the sum of all the other count columns is a
        # distribution's total (respondents over satisfaction categories): a breakdown, zeros and all, so a
        # row with every category zero but one is class disclosure (issue 22)
        totals = set()
        if len(data) >= 2 and len(table.people) >= 3:
            vals = data[table.people].apply(pd.to_numeric, errors="coerce")
            if not vals.isna().any().any():
                for col in table.people:
                    others = [c for c in table.people if c != col]
                    if np.allclose(vals[others].sum(axis=1), vals[col]) and (vals[col] > 0).any():
                        totals.add(col)
        for rel in find_relations(data, table.people):
            found = [keys.get(c) for c in rel.cells]
            cells = [c for c in found if c]
            if len(cells) != len(found):
                continue
            row_total = rel.total[1] in totals and all(p[0] == rel.total[0] for p in rel.parts)
            if row_total:
                self.relate(cells[0], cells[1:], "breakdown")
            # a sum found by value with a zero part (12 = 12 + 0) is a coincidence, not arithmetic a reader can use
            elif all(self.values[c] != 0 for c in cells[1:]):
                self.relate(cells[0], cells[1:])
        for col, rows in getattr(
            table, "rests", {}
        ).items():  # counts a statistic rests on that the table does not show
            for i, cells in enumerate(rows):
                for j, (k, v) in enumerate(cells):
                    if k is not None:
                        self.add(k, v, where, exempt=k in table.exempt, shown=False)
                        keys[(i, f"{col}#rests{j}")] = k
        for total, parts, kind in table.relations:
            self.relate(total, parts, kind)
        return keys

    def _rates(self, table: Table, data, keys: dict, where: str) -> None:
        """A percentage of a people count: its numerator and the rest of its base are counts too.

        ``88.0%`` beside a base of 25 gives 22 reached and 3 not reached; both
        are registered (``<base key>|rate=<column>|num`` and ``|rest``, the
        numerator the declared ``reveals`` count where there is one) with
        ``base = numerator + rest``, so a small rest is suppressed and the rate
        withheld with it (:func:`isafe_helpers.publish.tables.protected` reads
        them under ``(row, "<column>#num")`` and ``"#rest"``).
        """
        for c in table.columns:
            if c.kind != "pct" or not c.base:
                continue
            for i, v in enumerate(data[c.key]):
                bk = keys.get((i, c.base))
                try:
                    pct = float(v)
                except (TypeError, ValueError):
                    continue
                if bk is None or not math.isfinite(pct):
                    continue
                base = self.values[bk]
                num = pct * base / 100
                if abs(num - round(num)) > 1e-6 or not 0 <= round(num) <= base:
                    continue  # not a share of whole people of this base (a mean percentage, say)
                num = float(round(num))
                stem = f"{bk}{SEP}rate={c.label}"
                if any(self.values.get(f"{stem}{SEP}{p}", x) != x for p, x in (("num", num), ("rest", base - num))):
                    stem = f"{stem}{SEP}{where}{SEP}{i}"  # another rate of that name on the same base: its own
                nk = keys.get((i, c.reveals)) if c.reveals else None
                if nk is None:
                    nk = f"{stem}{SEP}num"
                    self.add(nk, num, where)
                rk = f"{stem}{SEP}rest"
                self.add(rk, base - num, where)
                keys[(i, f"{c.key}#num")], keys[(i, f"{c.key}#rest")] = nk, rk
                self.relate(bk, [nk, rk])
                # protected() withholds the rate when its base, numerator or rest is suppressed: then it gives
                # back neither of the counts it alone publishes
                self._derived([bk, nk, rk], [nk, rk])

    def _derived(self, withheld_by: list[str], gives: list[str]) -> None:
        """A statistic that publishes the counts ``gives`` is withheld when any of ``withheld_by`` is suppressed.

        Those of them no table prints in a people column (a reached count the
        percentage names may be printed as a headline elsewhere) are then
        published nowhere: :meth:`solve` suppresses them
        with it, at no cost to the book, and judges them like any other
        suppressed count (before, they stood as published and pinned their
        neighbours: a withheld 100% of 2 respondents "published" that none
        was less than very satisfied, and a trial's whole satisfaction
        distribution was withheld to protect it).
        """
        for k in withheld_by:
            self._gives[k].update(gives)

    def _with_statistics(self, picks, supp: set[str]) -> list[str]:
        """``picks`` and the counts that only the statistics they withhold published (:meth:`_derived`)."""
        out, todo = [], list(picks)
        while todo:
            c = todo.pop()
            if c in out:
                continue
            out.append(c)
            todo += [
                g
                for g in self._gives.get(c, ())
                if g not in supp and g not in out and g not in self.exempt and g not in self._printed
            ]
        return out

    def pool(self) -> None:
        """Add "a pooled count is the sum of its LAs' counts" for every pooled key whose LAs are all registered."""
        by_population: dict[str, dict[str, str]] = defaultdict(dict)
        for k in self.values:
            las, population = split(k)
            if len(las) == 1:
                by_population[population][las[0]] = k
        for k in list(self.values):
            las, population = split(k)
            if len(las) > 1:
                singles = by_population.get(population, {})
                if all(la in singles for la in las):
                    self.relate(k, [singles[la] for la in las])

    # ------------------------------------------------------------------ solve
    def solve(self) -> Plan:
        """Suppress counts until none can be recovered (module docstring)."""
        _Block._known.clear()  # the blocks this solve decomposes (kept from pass to pass, freed at the end)
        try:
            return self._solve()
        finally:
            _Block._known.clear()
            self._last = self._visit = self._built = None  # large, needed only during the solve
            self._by_cell, self._seen = {}, {}

    def _solve(self) -> Plan:
        self.pool()
        rels = [r for r in self.relations if all(c in self.values for c in r.cells)]
        supp = {k for k, v in self.values.items() if 0 < v < self.limit and k not in self.exempt}
        for r in rels:  # class disclosure: every member of a group in one category
            if r.kind == "breakdown" and self.values[r.total] > 0:
                nonzero = [p for p in r.parts if self.values[p] > 0]
                if len(nonzero) == 1 and len(r.parts) > 1:
                    supp |= {p for p in r.parts if p not in self.exempt}
        supp |= set(self._with_statistics(sorted(supp), set()))
        # a count no table prints is withheld from the start; one of them that is neither under the threshold nor
        # zero has nothing to protect (working it out gives back a count the book could have printed), and is
        # an unknown of the system only
        unprinted = {k for k in self.unpublished if k not in self.shown and k not in self.exempt}
        supp |= unprinted
        free = self._free = {k for k in unprinted if not 0 < self.values[k] < self.limit}
        unprotectable: list[Relation] = []
        # what _exposed found for a component, by its relations and suppressed counts: the answer
        # depends on nothing else, and most components are unchanged from one pass to the next
        exposed: dict[tuple[frozenset, frozenset], list[tuple[str, bool]]] = {}
        # the lowest and highest value each count takes in a solution found so far (_exposed): suppressing more
        # only widens what the published counts allow, so a solution of an earlier system stays one
        self._seen = {}
        self._batched = set()
        incidence = _Incidence(rels)
        places = incidence.places
        by_cell = self._by_cell = {c: [rels[i] for i in ix] for c, ix in places.items()}
        # A scan of the relations in order, as if over all of them, reads only those a suppressed count has
        # changed since the last: the rest hold what they held (at 150 LAs a pass suppresses a few counts of
        # 100,000, and reading every relation was most of a pass).
        pending, queued = set(range(len(rels))), set(supp)
        for _ in range(len(self.values) + 1):
            changed = False
            for c in supp - queued:  # suppressed since the last scan, by the components below
                pending.update(places[c])
            queued |= supp
            heap = sorted(pending)
            todo, pending = set(heap), set()
            while heap:  # no relation may hold exactly one suppressed count
                i = heapq.heappop(heap)
                r = rels[i]
                hidden = [c for c in r.cells if c in supp]
                if len(hidden) == 1 and hidden[0] not in free:
                    pick = self._second(r, supp)
                    if pick is None:
                        if r not in unprotectable:
                            unprotectable.append(r)
                        continue
                    changed = True
                    for c in self._with_statistics([pick], supp):
                        supp.add(c)
                        queued.add(c)
                        for j in places[c]:  # later in this scan, or in the next
                            if j <= i:
                                pending.add(j)
                            elif j not in todo:
                                todo.add(j)
                                heapq.heappush(heap, j)
            if changed:
                continue
            restart = False
            for comp in self._components(rels, supp, incidence):
                sig = (frozenset(comp), frozenset(c for r in comp for c in r.cells if c in supp))
                # Exposed counts are taken in order. Protecting one changes the system; when the counts suppressed
                # for it bring no new relation into the component, the system has only gained columns, and the
                # next determined count is judged on the same decomposition with those columns added (_breaker;
                # this chooses what to suppress, it decides nothing: the next pass judges the whole system again,
                # and the solve ends only after a pass that suppresses nothing); otherwise the pass starts again.
                known = exposed.get(sig)
                members = set(comp)
                done: list[tuple[str, bool]] = []
                since: list[str] = []  # counts suppressed in this component during this pass
                pinned_picks = False
                near: set[str] = set()  # counts in a relation with one suppressed in this pass for a pinned count
                for k, determined in known if known is not None else self._exposed(comp, supp):
                    done.append((k, determined))
                    # A pinned count is protected in the same pass as the pinned counts before it, from the same
                    # linear programmes, until one is within two relations of a count suppressed in this pass (a
                    # pooled sum of many LAs not counted): that may have unpinned it, so it and the rest wait for
                    # the next pass, which judges them again (the test's random systems: 128 passes against 143,
                    # 631 counts withheld against 626). Going on past it, from programmes gone stale, cost more
                    # than the passes it saved at 150 LAs.
                    if (
                        not determined
                        and since
                        and (not _PINNED_TOGETHER or any(c in near for r in by_cell[k] for c in r.cells))
                    ):
                        pinned_picks = True  # and the rest wait too: their programmes would be run again
                        break
                    picks = self._breaker(comp, supp, k, since)
                    if picks is None:  # no longer determined: the counts suppressed since unfixed it
                        continue
                    if not picks and not determined:  # pinned: the counts near it that widen it, by LP
                        picks = self._unpin(comp, supp, k)
                        if picks is None:  # freed by the counts suppressed before it in this pass
                            continue
                    if not picks:  # another count in a relation of the exposed one; failing that, anywhere
                        for r in sorted(comp, key=lambda r: k not in r.cells):
                            pick = self._second(r, supp)
                            if pick is not None:
                                picks = [pick]
                                break
                    if picks:
                        picks = self._with_statistics(picks, supp)
                        supp.update(picks)
                        changed = True
                        since += picks
                        if determined and all(r in members for p in picks for r in by_cell[p]):
                            continue
                        if not determined and _PINNED_TOGETHER:
                            # a pooled sum of many LAs is not a near tie: one more count in it moves little
                            near.update(
                                c for p in picks for r in by_cell[p] if len(r.cells) <= _NEAR_CELLS for c in r.cells
                            )
                            pinned_picks = True
                            continue
                        restart = True
                        break
                    unprotectable += [r for r in comp if k in r.cells and r not in unprotectable]
                else:  # every exposed count of the component seen: kept for the next pass
                    if not since:
                        exposed[sig] = done
                if restart or pinned_picks:
                    break
            if not changed:
                break
        return Plan(supp, self.limit, dict(self.values), unprotectable, set(self.exempt))

    def _unpin(self, comp: list[Relation], supp: set[str], k: str, rounds: int = 4, most: int = 12) -> list[str] | None:
        """Published counts near a pinned ``k`` whose suppression leaves it a person or more of room, by LP.

        The published totals of ``k``'s relations, then the counts within one
        relation of it, then two (relations of a few counts: a pooled sum of
        many LAs is not followed), the cheapest first (:meth:`_cost`; ``most``
        in all), are columns of one model, held at their values; each
        is let go in turn, with a second count in each relation it would be
        alone in (an LA's count beside another LA's, under their pooled sum:
        :meth:`_second`), and the least and greatest ``k`` found. The first
        that gives ``k`` room of a person is the answer; failing that, the one
        that gives most room is kept and the others are tried again beside it
        (up to ``rounds`` counts). Empty when none widens it: the caller then
        suppresses a neighbour, as before. This chooses, it decides nothing:
        the next pass judges the whole system again. A relation outside the
        component that holds a withheld count other than these is left out,
        which can only widen ``k`` (the next pass sees it). None when ``k``
        already has a person's room (the counts suppressed before it in this
        pass freed it); empty, too, when the model cannot be solved (published
        counts outside the component that do not add up: only a choice is
        lost, the book is judged as before). At 150 LAs one pinned count took
        a pass per neighbour, and up to 16 passes.
        """
        by_cell, members = self._by_cell, set(comp)

        def ties(cells) -> set[str]:  # the counts sharing a relation with these: a pooled sum of many LAs is no tie
            return {
                c
                for x in cells
                for r in by_cell.get(x, ())
                if r in members and len(r.cells) <= _NEAR_CELLS
                for c in r.cells
            }

        hop1 = ties([k])
        hop2 = ties(hop1) - hop1
        # the totals of its own relations first: a published total of zero pins every part to zero (a pooled 0
        # pins each LA's count, and suppressing one more LA's zero does not help), and only the total lets go
        own = {r.total for r in by_cell.get(k, ()) if r in members}
        free = [c for c in (own | hop1 | hop2) if c not in supp and c not in self.exempt and c != k]
        cands = sorted(free, key=lambda c: (c not in own, c not in hop1, *self._cost(c)))[:most]
        if not cands:
            return []

        def partners(c: str) -> list[str]:
            """What suppressing ``c`` needs beside it: a second count in each relation it would be alone in."""
            out = []
            for r in by_cell.get(c, ()):
                if not any(x in supp for x in r.cells if x != c):
                    pick = self._second(r, supp | {c})
                    if pick is not None and pick not in out:
                        out.append(pick)
            return out

        moves = {c: [c, *partners(c)] for c in cands}
        cols = {x for m in moves.values() for x in m}
        inside = {c for r in comp for c in r.cells}
        extra = [r for x in cols for r in by_cell.get(x, ()) if r not in members]
        rels = list(dict.fromkeys([*comp, *(r for r in extra if all(x not in supp or x in inside for x in r.cells))]))
        index, matrix, b = self._system(rels, supp | cols)
        lp = _Ranges(matrix, b)

        def hold(xs, free_: bool) -> None:
            for x in xs:
                lo, hi = (0.0, highspy.kHighsInf) if free_ else (self.values[x], self.values[x])
                lp.h.changeColBounds(index[x], lo, hi)

        hold(cols, False)  # published, for now
        ik = index[k]

        def room() -> float:
            lo, hi = lp.bound(ik, maximise=False), lp.bound(ik, maximise=True)
            return math.inf if hi.status != 0 else hi.fun - lo.fun

        try:
            now = room()
            if now >= 1 - 1e-9:
                return None
            return self._widen(moves, hold, room, now, rounds)
        except LedgerError:
            return []

    @staticmethod
    def _widen(moves: dict[str, list[str]], hold, room, now: float, rounds: int) -> list[str]:
        """The moves of :meth:`_unpin` that give its count a person's room: the first that does, or the widest
        and then again beside it (``rounds`` in all); empty when none widens it."""
        chosen: list[str] = []
        for _ in range(rounds):
            best: tuple[float, str] | None = None
            for c, move in moves.items():
                if c in chosen:
                    continue
                trial = [x for x in move if x not in chosen]
                hold(trial, True)
                width = room()
                hold(trial, False)
                if width >= 1 - 1e-9:
                    return list(dict.fromkeys([*chosen, *move]))
                if best is None or width > best[0] + 1e-9:
                    best = (width, c)
            if best is None or best[0] <= now + 1e-9:
                return []
            now, c = best
            chosen += [x for x in moves[c] if x not in chosen]
            hold(moves[c], True)
        return []

    def _second(self, r: Relation, supp: set[str]) -> str | None:
        """The cell to suppress next in ``r``: the smallest free part, else the total (never an exempt count).

        A count published in one place goes before one published in several.
        """
        free = [c for c in r.parts if c not in supp and c not in self.exempt]
        if not free and r.total not in supp and r.total not in self.exempt:
            free = [r.total]
        return min(free, key=self._cost) if free else None

    def _cost(self, c: str) -> tuple:
        """What suppressing a count costs: one only a statistic rests on first (it withholds the statistic, not a
        printed count), then one published in one place before one published in several (a headline count), then
        its size."""
        return (c in self.shown, self.uses[c] > 1, self.values[c], c)

    def _breaker(
        self,
        comp: list[Relation],
        supp: set[str],
        k: str,
        since: list[str] | tuple = (),
        singles_of: int = 40,
        pairs_of: int = 12,
    ) -> list[str] | None:
        """The cheapest one or two published counts whose suppression leaves ``k`` undetermined.

        One count is tried first (the ``singles_of`` cheapest, those within three
        relations of ``k`` first; :meth:`_cost`); failing that, pairs among the
        ``pairs_of`` cheapest counts nearest ``k`` (a pooled
        sum may give back one LA's count, so two LAs' counts go together).
        Empty when none does it, or when ``k`` is pinned within one person
        rather than determined (the caller falls back to its neighbours).
        Every trial is answered from one decomposition of the component's
        system (:class:`_Unfixing`), not by solving it again: the system
        without the counts suppressed ``since`` it was decomposed (they are
        added as columns to every trial); None when they already leave ``k``
        undetermined.
        """
        visit = self._visit
        if visit is None or visit.comp is not comp:  # the first count of the component judged in this pass
            visit = self._visit = _Visit(self, comp, supp - set(since))
        # every relation of a component holds a suppressed count: one row each, in order (as visit.columns)
        assert visit.matrix.shape[0] == len(comp)
        test = _Unfixing(self._decomposed(visit.index, visit.matrix), visit.index[k])
        if not test.determined:
            return []
        extra = list(visit.columns(list(since)).values())
        if extra and test.unfixed_by(extra):
            return None
        near: set[str] = set()
        frontier = {k}
        for _ in range(3):  # counts within three relations of k
            rels = {r for c in frontier for r in visit.by_cell.get(c, ()) if r in visit.members}
            frontier = {c for r in rels for c in r.cells} - near
            near |= frontier
        # A count in a relation outside the component brings that relation in when suppressed, and with it, most
        # often, the need to suppress another count there (the trial does not judge that): counts whose relations
        # are all in the component go first (at 150 LAs, the other order chained one LA's count after another
        # through the pooled sums, a pass each).
        outside = visit.outside
        free = [c for c in visit.free if c not in supp]  # by cost, those inside first
        singles = ([c for c in free if c in near] + [c for c in free if c not in near])[:singles_of]
        singles = sorted(singles, key=lambda c: c in outside)
        cols = visit.columns(singles)
        test.prepare(cols)
        for c in singles:
            if test.unfixed_by([*extra, cols[c]]):
                return [c]
        near_free = [c for c in free if c in near][:pairs_of]
        best = None
        for i, a in enumerate(near_free):
            for b in near_free[i + 1 :]:
                cost = sorted([(a in outside, *self._cost(a)), (b in outside, *self._cost(b))], reverse=True)
                if (best is None or cost < best[0]) and test.unfixed_by([*extra, cols[a], cols[b]]):
                    best = (cost, [a, b])
        return best[1] if best else []

    def _system(self, comp: list[Relation], supp: set[str]) -> tuple[dict[str, int], sparse.csr_array, list[float]]:
        """The component's relations as ``A x = b`` over its suppressed counts ``x`` (index: count -> column).

        ``A`` is sparse: a relation holds a handful of counts.
        """
        unknown = sorted({c for r in comp for c in r.cells if c in supp})
        index = {k: i for i, k in enumerate(unknown)}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        b: list[float] = []
        for r in comp:
            row: dict[int, float] = defaultdict(float)
            const = 0.0
            for c, sign in [(r.total, -1.0), *((p, 1.0) for p in r.parts)]:
                if c in index:
                    row[index[c]] += sign
                else:
                    const -= sign * self.values[c]
            row = {j: v for j, v in row.items() if v != 0.0}
            if row:
                rows += [len(b)] * len(row)
                cols += list(row)
                vals += list(row.values())
                b.append(const)
        matrix = sparse.csr_array((vals, (rows, cols)), shape=(len(b), len(unknown)))
        return index, matrix, b

    def _decomposed(self, index: dict[str, int], matrix: sparse.csr_array) -> _Decomposition:
        """``matrix``'s decomposition, its counts in blocks by scope (their LAs); the last one is kept (the breaker
        reads the system :meth:`_exposed` just read)."""
        last = getattr(self, "_last", None)
        if last is None or last.matrix.shape != matrix.shape or (last.matrix != matrix).nnz:
            last = self._last = _Decomposition(matrix, ["+".join(split(k)[0]) for k in index])
        return last

    @staticmethod
    def _components(rels: list[Relation], supp: set[str], incidence: _Incidence | None = None) -> list[list[Relation]]:
        """Relations holding a suppressed count, grouped into connected components (linked by any shared count),
        each in the order of ``rels``, the components in the order of their first relation."""
        inc = incidence if incidence is not None else _Incidence(rels)
        return inc.components(supp)

    def _exposed(self, comp: list[Relation], supp: set[str]) -> Iterator[tuple[str, bool]]:
        """Suppressed counts of a component that the published counts determine, or pin within one person.

        Yielded in order, as found, each with whether it is determined (the
        system fixes it) rather than pinned (by the counts' signs): the
        caller may stop at the first it protects.
        """
        index, matrix, b = self._system(comp, supp)
        self._built = (comp, set(index), index, matrix)  # _Visit reads it back (the same system)
        if not matrix.shape[0]:
            return
        dec = self._decomposed(index, matrix)
        free = self._free
        determined = sorted(_fixed(index, dec) - free)
        if determined:
            yield from ((k, True) for k in determined)
            return
        x0 = np.array([self.values[k] for k in index])
        # Every solution found so far (the true counts, when they solve the system, and each LP's optimum) is a
        # point of the polytope: where two of them differ by a person or more in a count, that count is not
        # pinned and needs no LP of its own. The ranges are exact where an LP runs, so the answer is the same.
        # When the true counts solve the system, so does a solution of an earlier system of these counts (its
        # other counts at their true values): what solve() saw before (self._seen) counts too.
        solves = bool(np.allclose(matrix @ x0, b, rtol=0.0, atol=1e-6))
        seen = self._seen if solves else {}
        low = (
            np.array([seen.get(k, (v, v))[0] for k, v in zip(index, x0)], float) if solves else np.full(len(x0), np.inf)
        )
        high = (
            np.array([seen.get(k, (v, v))[1] for k, v in zip(index, x0)], float)
            if solves
            else np.full(len(x0), -np.inf)
        )

        # a move along the null space certifies more counts at once (_moves), tried for those no solution spread
        moves = _moves(x0, dec, np.asarray(b), [i for i in range(len(x0)) if not high[i] - low[i] >= 1 + 1e-6])

        def spread(i: int) -> bool:
            return moves[i] >= 1 + 1e-6 or high[i] - low[i] >= 1 + 1e-6

        def witness(res) -> None:
            if res.status == 0 and res.x is not None:
                np.minimum(low, res.x, out=low)
                np.maximum(high, res.x, out=high)
                if solves:
                    seen.update(zip(index, zip(low.tolist(), high.tolist())))

        lp: _Ranges | None = None
        # batches of solutions first (_witnesses), unless few counts are open that no batch has tried: those a
        # batch left open are most often pinned (at 150 LAs, each pass that protects one sees the rest again)
        untried = [k for k, i in index.items() if not spread(i) and k not in self._batched and k not in free]
        if len(untried) > _BATCH_FROM:
            lp = _Ranges(matrix, b)
            for x in _witnesses(lp, x0 if solves else None, spread):
                witness(x)
            self._batched.update(k for k, i in index.items() if not spread(i))
        for k, i in index.items():
            if spread(i) or k in free:  # two solutions a person or more apart: not pinned, no LP needed
                continue
            lp = lp or _Ranges(matrix, b)
            lo = lp.bound(i, maximise=False)
            witness(lo)
            if spread(i):
                continue
            hi = lp.bound(i, maximise=True)
            witness(hi)
            if lo.status == 0 and hi.status == 0 and hi.fun - lo.fun < 1 - 1e-9:
                yield k, False


@dataclass
class _Bound:
    """One linear programme's answer, as :func:`scipy.optimize.linprog` gives it: status 0 when optimal."""

    status: int
    fun: float
    x: np.ndarray | None


_UNBOUNDED = (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible)


class _Ranges:
    """The least and greatest value of each count over ``{matrix x = b, x >= 0}``, by linear programming.

    One HiGHS model per system, kept between programmes: only the
    objective changes (one count, minimised or maximised), so each solve
    starts from the last optimal basis. At 150 LAs a system of 5,600
    relations and 9,300 counts took about 0.1 s a programme solved afresh
    (:func:`scipy.optimize.linprog`), and the solve ran thousands.

    :meth:`optimum` takes any objective (:func:`_witnesses`), and
    :meth:`rays` finds the directions in which counts grow without bound.
    """

    def __init__(self, matrix, b):
        self.matrix, self.b = matrix, np.asarray(b, float)
        self.n = matrix.shape[1]
        self.a = sparse.csc_array(matrix, dtype=float)  # column-wise, as HiGHS takes it (rays() too)
        self.h = _highs(self.a, self.b)
        self.last: int | None = None  # the count the objective holds (-1: a whole objective, optimum())

    def bound(self, i: int, maximise: bool) -> _Bound:
        h = self.h
        if self.last == -1:  # the objective of optimum(): cleared
            h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), np.zeros(self.n))
        elif self.last is not None and self.last != i:
            h.changeColCost(self.last, 0.0)
        h.changeColCost(i, 1.0)
        self.last = i
        return self._run(maximise)

    def optimum(self, cost: np.ndarray, maximise: bool) -> _Bound:
        """The optimum of ``cost @ x`` (status 1, no point, when unbounded)."""
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), np.asarray(cost, float))
        self.last = -1
        return self._run(maximise)

    def rays(self) -> np.ndarray:
        """A ``d >= 0`` with ``matrix d = 0``, positive in every count some such ``d`` moves (zero elsewhere).

        Along such a ``d`` every solution can grow without bound, so each
        count it moves takes every value from its true one up. An interior
        point method without crossover, on the box ``0 <= d <= 1`` with no
        objective, ends in the relative interior of that cone's slice
        (strict complementarity), so one programme finds the union of every
        ray's counts; the simplex method ends on a vertex, a few rays each.
        Presolve is off: it fixes columns of an objective-free programme at
        a bound, which hides their rays.
        """
        m, n = self.a.shape
        h = _highs(self.a, np.zeros(m), upper=np.ones(n))
        for option, value in (
            ("solver", "ipm"),
            ("run_crossover", "off"),
            ("presolve", "off"),
            ("ipm_optimality_tolerance", 1e-10),
            ("primal_feasibility_tolerance", 1e-10),
            ("dual_feasibility_tolerance", 1e-10),
        ):
            h.setOptionValue(option, value)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return np.zeros(n)  # proves nothing: the counts keep their own programmes
        return np.clip(np.array(h.getSolution().col_value), 0.0, None)

    def _run(self, maximise: bool) -> _Bound:
        h = self.h
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize)
        h.run()
        status = h.getModelStatus()
        if status not in (highspy.HighsModelStatus.kOptimal, *_UNBOUNDED):  # a warm start gone wrong: once cold
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
        if status in _UNBOUNDED:  # not pinned (the true counts are a solution, so it is not infeasible)
            return _Bound(1, np.nan, None)
        if status != highspy.HighsModelStatus.kOptimal:  # never read as "not pinned": that would publish it
            raise LedgerError(f"the linear programme for a withheld count ended {status}: the book is not built")
        return _Bound(0, float(h.getInfo().objective_function_value), np.array(h.getSolution().col_value))


def _highs(a: sparse.csc_array, b: np.ndarray, upper: np.ndarray | None = None) -> highspy.Highs:
    """A quiet HiGHS model of ``{a x = b, 0 <= x <= upper}`` (no upper bound when None), objective zero."""
    m, n = a.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, highspy.kHighsInf) if upper is None else np.asarray(upper, float)
    lp.row_lower_ = lp.row_upper_ = b
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data
    h = _quiet_highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    return h


_HIGHS_BANNER_SHOWN = False


def _quiet_highs() -> highspy.Highs:
    """A new ``highspy.Highs``, without the banner the first one in a process prints.

    HiGHS writes it to the process's standard output (file descriptor 1)
    before any option can be set, and a notebook kernel captures that
    descriptor: the banner would be published on the page. The first
    construction runs with descriptor 1 on the null device.
    """
    global _HIGHS_BANNER_SHOWN
    if _HIGHS_BANNER_SHOWN:
        return highspy.Highs()
    _HIGHS_BANNER_SHOWN = True
    try:
        if sys.stdout is not None:  # None in a process started without one (pythonw, fd 1 closed)
            sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no standard output to guard (a process without a console): nothing to print to
        return highspy.Highs()
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                return highspy.Highs()
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)


#: more open counts than this, new to batches, and :meth:`Ledger._exposed` looks for solutions in batches
#: (:func:`_witnesses`): below it a pair of programmes per count costs less than a batch (the bundled book's
#: ledgers, and the suite's, run 50% longer with batches from 8 counts)
_BATCH_FROM = 200
#: Protect the pinned counts of a component together, in one pass (but those near a count suppressed in it): _solve.
_PINNED_TOGETHER = True
#: a relation of more counts than this does not make its counts near one another (_solve)
_NEAR_CELLS = 8
#: the weighted optima of a batch stop when no more counts than this are left open
_ROUNDS_UNTIL = 8


def _witnesses(lp: _Ranges, x0: np.ndarray | None, spread, rounds: int = 12) -> Iterator[_Bound]:
    """Solutions of ``lp``'s system that move many counts at once, before any count gets programmes of its own.

    At 150 LAs a component held 9,300 withheld counts, nearly all not
    pinned, and a pair of programmes each (0.1 to 0.5 s a pair) was most of
    the book's build. Two kinds of solution certify most of them in a few
    programmes:

    - **Rays.** When ``x0`` (the true counts) solves the system, ``x0 + t d``
      does for every ray ``d`` (:meth:`_Ranges.rays`) and ``t >= 0``: with
      ``t`` the reciprocal of ``d``'s smallest positive entry, every count
      the rays move rises by a person or more. Yielded only when it solves
      the system to 1e-6 (as ``x0`` must), so a rounding error in ``d``
      cannot pass for a solution.
    - **Weighted optima.** The greatest, then the least, weighted sum of the
      counts ``spread(i)`` does not yet certify (equal weights first, then
      random ones in [1, 2] from a fixed seed: equal weights leave a count
      where an exchange between two counts gains nothing). Repeated while
      each round certifies more than a few counts.

    Each is a solution, so where two differ by a person in a count, that
    count is not pinned; the counts left still get their own pair of
    programmes (:meth:`Ledger._exposed`), so which counts are pinned does
    not depend on these.
    """
    if x0 is not None:
        d = lp.rays()
        moved = d > 1e-6
        if moved.any():
            x = x0 + np.where(moved, d, 0.0) / d[moved].min()
            if np.abs(lp.matrix @ x - lp.b).max() <= 1e-6:
                yield _Bound(0, np.nan, x)
    rng = np.random.default_rng(0)
    n = lp.n
    for r in range(rounds):
        open_ = np.array([i for i in range(n) if not spread(i)], dtype=int)
        if len(open_) <= _ROUNDS_UNTIL:
            return
        cost = np.zeros(n)
        cost[open_] = 1.0 if r == 0 else rng.uniform(1.0, 2.0, len(open_))
        for maximise in (True, False):
            try:
                yield lp.optimum(cost, maximise)
            except LedgerError:  # no witness: the counts left get their own programmes, which start cold
                lp.h.clearSolver()
                return
        if r and len(open_) - sum(not spread(i) for i in open_) < max(2, len(open_) // 100):
            return


class _Visit:
    """A component as :meth:`Ledger._breaker` judges it in one pass: its system before the counts suppressed in it
    during the pass, and what every trial reads (built once per component and pass)."""

    def __init__(self, ledger: Ledger, comp: list[Relation], supp: set[str]):
        self.comp = comp
        self.members = set(comp)
        self.row = {r: i for i, r in enumerate(comp)}
        self.by_cell = ledger._by_cell
        built = getattr(ledger, "_built", None)
        if built is not None and built[0] is comp and built[1] == {c for r in comp for c in r.cells if c in supp}:
            self.index, self.matrix = built[2], built[3]
        else:
            self.index, self.matrix, _ = ledger._system(comp, supp)
        cells = {c for r in comp for c in r.cells if c not in ledger.exempt}
        self.outside = {c for c in cells if any(r not in self.members for r in self.by_cell.get(c, ()))}
        # by cost, and those whose relations are all in the component first (stable: by cost within each)
        self.free = sorted(cells, key=lambda c: (c in self.outside, ledger._cost(c)))

    def columns(self, counts: list[str]) -> dict[str, np.ndarray]:
        """Each count's coefficients in the component's relations (``sum(parts) - total = 0``), one per relation."""
        out = {c: np.zeros(len(self.comp)) for c in counts}
        for c in counts:
            for r in self.by_cell.get(c, ()):
                i = self.row.get(r)
                if i is not None:
                    out[c][i] += (-1.0 if r.total == c else 0.0) + sum(1.0 for p in r.parts if p == c)
        return out


class _Incidence:
    """Which relation holds which count, as a sparse matrix, to group relations into components at C speed."""

    def __init__(self, rels: list[Relation]):
        self.rels = rels
        self.col = {c: j for j, c in enumerate(dict.fromkeys(c for r in rels for c in r.cells))}
        #: each count's relations, by place in ``rels``
        self.places: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rels):
            for c in set(r.cells):
                self.places[c].append(i)
        rows = [i for i, r in enumerate(rels) for _ in r.cells]
        cols = [self.col[c] for r in rels for c in r.cells]
        self.matrix = sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(len(rels), len(self.col)))

    def components(self, supp: set[str]) -> list[list[Relation]]:
        hidden = np.zeros(len(self.col))
        hidden[[self.col[c] for c in supp if c in self.col]] = 1.0
        touched = np.flatnonzero(self.matrix @ hidden)
        if not len(touched):
            return []
        sub = self.matrix[touched]
        n = len(touched)
        graph = sparse.bmat([[None, sub], [sub.T, None]], format="csr")
        _, labels = csgraph.connected_components(graph, directed=False)
        labels = labels[:n]
        order = np.unique(labels, return_index=True)[1]  # each component's first relation (touched is in order)
        groups: dict[int, list[Relation]] = {int(labels[i]): [] for i in sorted(order)}
        for i, lab in zip(touched, labels):
            groups[int(lab)].append(self.rels[i])
        return list(groups.values())


class _Block:
    """One block of a system (:class:`_Decomposition`): its local relations' SVD, pseudo-inverse and null spaces."""

    def __init__(self, cols: np.ndarray, rows: np.ndarray, local: np.ndarray):
        self.cols, self.rows = cols, rows
        u, sv, vt = np.linalg.svd(local, full_matrices=True)
        tol = (sv.max() if len(sv) else 0.0) * max(local.shape) * np.finfo(float).eps
        rank = int(np.sum(sv > tol))
        self.u, self.sv, self.vt = u[:, :rank], sv[:rank], vt[:rank]
        self.null = vt[rank:].T  # its unknowns' moves that keep its local relations
        self.left = u[:, rank:]  # what of a right-hand side its local relations cannot reach

    #: blocks decomposed before, by their local relations: from one pass of the solve to the next most blocks
    #: of a component are unchanged (an SVD each is most of a decomposition at 150 LAs)
    _known: dict[tuple, tuple] = {}

    @classmethod
    def of(cls, cols: np.ndarray, rows: np.ndarray, local: np.ndarray) -> _Block:
        """A block of ``local`` relations, its SVD reused when the same relations were decomposed before."""
        sig = (local.shape, local.tobytes())
        known = cls._known.get(sig)
        if known is None:
            if len(cls._known) > 5_000:  # a few hundred MB at most
                cls._known.clear()
            known = cls._known[sig] = cls(cols, rows, local).parts()
        blk = cls.__new__(cls)
        blk.cols, blk.rows = cols, rows
        blk.u, blk.sv, blk.vt, blk.null, blk.left = known
        return blk

    def parts(self) -> tuple:
        return self.u, self.sv, self.vt, self.null, self.left

    def pinv(self, rhs: np.ndarray) -> np.ndarray:
        """The least-norm solution of the local relations with right-hand side ``rhs`` (columns)."""
        return self.vt.T @ ((self.u.T @ rhs) / self.sv[:, None])


class _Decomposition:
    """A system's null space and the solutions of its equations, from its blocks.

    The system ``A x = b`` of a component couples counts of many scopes
    (an LA, the pooled trial), but only through few relations (a pooled
    count is the sum of its LAs'): most relations hold counts of one scope.
    The unknowns are split into blocks by ``blocks`` (a label per column;
    one block when absent), the relations into those local to one block
    (``B``, block-diagonal) and the coupling ones (``C``). Then the null
    space of ``A`` is ``N_B V``, with ``N_B`` the blocks' null spaces and
    ``V`` the null space of the small matrix ``M = C N_B``; a right-hand
    side ``c`` is reachable (``c`` in the column space of ``A``) exactly
    when each block's local part is reachable by the block and ``M``
    reaches what the blocks' solutions leave of the coupling part
    (:meth:`solve`). Each SVD is of one block or of ``M``: at 150 LAs the
    largest component (4,709 relations x 4,805 counts) took 96 s as one
    dense SVD, and takes well under a second in blocks of about 40 counts.
    Tolerances are :func:`scipy.linalg.null_space`'s (relative,
    ``max(shape) * eps``), per block and for ``M``.
    """

    def __init__(self, matrix, blocks: list | None = None):
        a = sparse.csr_array(matrix, dtype=float)
        self.matrix = a
        m, n = a.shape
        labels = np.zeros(n, int) if blocks is None else pd.factorize(pd.Series(blocks, dtype=object))[0]
        coo = a.tocoo()
        nz = coo.data != 0
        r, c = coo.row[nz], coo.col[nz]
        lo = np.full(m, np.iinfo(int).max)
        hi = np.full(m, -1)
        np.minimum.at(lo, r, labels[c])
        np.maximum.at(hi, r, labels[c])
        local = (lo == hi) | (hi < 0)  # a row of zeros is local to no block: kept out of both
        self.coupling = np.flatnonzero(hi > lo)
        self.empty = np.flatnonzero(hi < 0)  # relations of no unknown: reachable only by zero
        self.row_block = np.where(local & (hi >= 0), hi, -1)
        dense = a.toarray() if m * n <= 4_000_000 else None
        self.blocks: list[_Block] = []
        self.col_pos = np.zeros(n, int)  # a column's place in its block
        self.col_block = labels
        for b in range(int(labels.max()) + 1 if n else 0):
            cols = np.flatnonzero(labels == b)
            rows = np.flatnonzero(self.row_block == b)
            sub = dense[np.ix_(rows, cols)] if dense is not None else a[rows][:, cols].toarray()
            self.col_pos[cols] = np.arange(len(cols))
            self.blocks.append(_Block.of(cols, rows, sub))
        # M = C N_B, the coupling relations on the blocks' null spaces
        self.offsets = np.cumsum([0] + [blk.null.shape[1] for blk in self.blocks])
        cpl = a[self.coupling].toarray() if len(self.coupling) else np.zeros((0, n))
        mm = np.zeros((len(self.coupling), int(self.offsets[-1])))
        for blk, o in zip(self.blocks, self.offsets[:-1]):
            mm[:, o : o + blk.null.shape[1]] = cpl[:, blk.cols] @ blk.null
        self.coupled = cpl
        # M is wide (a few dozen coupling relations, thousands of block moves): a thin SVD gives its rank and row
        # space, all that solve() needs
        u, sv, vt = np.linalg.svd(mm, full_matrices=mm.shape[0] >= mm.shape[1])
        tol = (sv.max() if len(sv) else 0.0) * max(mm.shape) * np.finfo(float).eps
        rank = int(np.sum(sv > tol))
        self.mu, self.msv, self.mvt = u[:, :rank], sv[:rank], vt[:rank]
        self.mleft = u[:, rank:]
        self.zero: np.ndarray | None = None  # the counts it fixes (_fixed)

    def _block_rows(self, b: int, rows: np.ndarray) -> np.ndarray:
        """``P n_k`` for the unknowns ``rows`` (places in block ``b``): ``n_k`` the block null space's row of
        unknown ``k`` (placed among all blocks' moves), ``P`` the projection on the null space of ``M``."""
        blk, o = self.blocks[b], int(self.offsets[b])
        w = blk.null[rows]
        out = -(w @ self.mvt[:, o : o + w.shape[1]].T) @ self.mvt
        out[:, o : o + w.shape[1]] += w
        return out

    def free_norms(self) -> np.ndarray:
        """For each unknown, the length of its row in an orthonormal basis of the null space (zero: the system
        fixes it): ``|P n_k|``, as ``N_B`` has orthonormal columns. Computed block by block, without the basis."""
        out = np.zeros(self.matrix.shape[1])
        for b, blk in enumerate(self.blocks):
            o, w = int(self.offsets[b]), blk.null
            y = w @ self.mvt[:, o : o + w.shape[1]].T
            # |P n_k|^2 = |n_k|^2 - |V n_k|^2 loses to cancellation what is below about 1e-8 in length, so it
            # settles only the clearly free counts; the others get their vector P n_k itself
            est = np.einsum("ij,ij->i", w, w) - np.einsum("ij,ij->i", y, y)
            out[blk.cols] = np.sqrt(np.maximum(est, 0.0))
            near = np.flatnonzero(est <= 1e-10)  # lengths under 1e-5: rounding here is about 1e-14
            if near.size:
                out[blk.cols[near]] = np.linalg.norm(self._block_rows(b, near), axis=1)
        return out

    def projections(self, ks) -> np.ndarray:
        """The projections of the unit vectors of unknowns ``ks`` on the null space (unknowns x ``ks``): for each,
        the move of the counts that keeps every relation and moves that count the most (``N_B P n_k``)."""
        ks = np.asarray(ks, int)
        z = np.zeros((int(self.offsets[-1]), len(ks)))
        for j, k in enumerate(ks):
            b = int(self.col_block[k])
            z[:, j] = self._block_rows(b, np.array([self.col_pos[k]]))[0]
        out = np.zeros((self.matrix.shape[1], len(ks)))
        for blk, o in zip(self.blocks, self.offsets[:-1]):
            out[blk.cols] = blk.null @ z[o : o + blk.null.shape[1]]
        return out

    @property
    def basis(self) -> np.ndarray:
        """An orthonormal basis of the null space (unknowns x vectors), dense: for tests and small systems."""
        n = self.matrix.shape[1]
        proj = self.projections(np.arange(n))
        if not proj.size:
            return np.zeros((n, 0))
        u, sv, _ = np.linalg.svd(proj)
        return u[:, : int(np.sum(sv > 1e-9))]

    def solve(self, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For right-hand sides ``rhs`` (relations x columns): a solution ``x`` of ``A x = rhs`` where one exists,
        and a residual, zero exactly where it exists (columns of each, in order).

        The residual stacks what each block's local relations cannot reach and
        what ``M`` cannot reach of the coupling relations; it is linear in
        ``rhs``, so its null space is the combinations that are reachable.
        """
        rhs = np.asarray(rhs, float).reshape(self.matrix.shape[0], -1)
        x = np.zeros((self.matrix.shape[1], rhs.shape[1]))
        resid = [rhs[self.empty]]
        for blk in self.blocks:
            part = rhs[blk.rows]
            if blk.rows.size:
                x[blk.cols] = blk.pinv(part)
                resid.append(blk.left.T @ part)
        g = rhs[self.coupling] - self.coupled @ x
        resid.append(self.mleft.T @ g)
        z = self.mvt.T @ ((self.mu.T @ g) / self.msv[:, None])
        for blk, o in zip(self.blocks, self.offsets[:-1]):
            x[blk.cols] += blk.null @ z[o : o + blk.null.shape[1]]
        return x, np.vstack(resid)


def _fixed(index: dict[str, int], dec: _Decomposition) -> set[str]:
    """The unknowns of ``matrix x = b`` that the system fixes whatever ``b``: their rows in an orthonormal basis
    of the null space are zero, to 1e-9 in length (:meth:`_Decomposition.free_norms`; the dense SVD this replaced
    compared the largest entry, which differs only within rounding noise)."""
    if not dec.matrix.shape[0]:
        return set()
    if dec.zero is None:  # every row at once, once per system
        dec.zero = dec.free_norms() <= 1e-9
    return {k for k, i in index.items() if dec.zero[i]}


class _Unfixing:
    """Does suppressing more counts leave unknown ``k`` of ``matrix x = b`` undetermined?

    ``k`` is determined when every null-space vector of ``matrix`` is zero at
    ``k``. Suppressing counts adds their columns ``C``; the new null space
    holds ``(x, s)`` with ``matrix x + C s = 0``, which needs ``C s``
    reachable (in the column space of ``matrix``) and then has ``x_k`` equal
    to minus the ``k``-th entry of any solution of ``matrix x = C s`` (all
    agree at ``k``, as ``k`` is determined). :meth:`_Decomposition.solve`
    gives, for the columns of ``C``, solutions ``X`` and residuals ``R``,
    both linear: ``C s`` is reachable exactly when ``R s = 0``, and then
    ``X s`` solves it. So ``k`` becomes undetermined exactly when some ``s``
    with ``R s = 0`` has ``(X s)_k != 0``: one decomposition of ``matrix``
    answers every trial, where solving each enlarged system again cost one
    each. Tolerances are those of :func:`_fixed`.
    """

    def __init__(self, dec: _Decomposition, k: int):
        self.dec, self.k = dec, k
        self.determined = bool(_fixed({"k": k}, dec))
        self._solved: dict[bytes, tuple[float, np.ndarray]] = {}

    def prepare(self, cols: dict[str, np.ndarray]) -> None:
        """Solve for many columns at once (one pass over the blocks); :meth:`unfixed_by` then reads them."""
        if not cols:
            return
        c = np.column_stack(list(cols.values()))
        x, resid = self.dec.solve(c)
        for i, col in enumerate(cols.values()):
            self._solved[col.tobytes()] = (float(x[self.k, i]), resid[:, i])

    def unfixed_by(self, cols: list[np.ndarray]) -> bool:
        missing = {str(i): col for i, col in enumerate(cols) if col.tobytes() not in self._solved}
        self.prepare(missing)
        q = np.array([self._solved[col.tobytes()][0] for col in cols])  # the k-th entry of a solution, per column
        resid = np.column_stack([self._solved[col.tobytes()][1] for col in cols])
        scale = max(1.0, max(float(np.abs(col).max()) for col in cols))
        if len(cols) == 1:
            return bool(np.linalg.norm(resid) <= 1e-9 * scale and abs(q[0]) > 1e-9)
        if not len(resid):  # every combination reachable
            s = np.eye(len(cols))
        else:
            _, rs, rvt = np.linalg.svd(resid, full_matrices=True)
            s = rvt[int(np.sum(rs > 1e-9 * scale)) :]  # each row an s with R s = 0
        return bool(len(s) and np.any(np.abs(s @ q) > 1e-9))


def _moves(x0: np.ndarray, dec: _Decomposition, b: np.ndarray, counts=None, batch: int = 256) -> np.ndarray:
    """For each unknown, a range its value can take among the solutions of ``matrix x = b, x >= 0`` (a lower bound).

    ``x0`` (the true counts) is one solution; along each null-space vector
    ``d`` the counts stay non-negative for ``t`` in an interval, so unknown
    ``i`` takes every value in ``x0_i + d_i t`` over it. The vectors tried
    are the projections of ``counts``' unit vectors (all unknowns when None)
    on the null space (:meth:`_Decomposition.projections`), each the move
    that shifts its count the most; each serves every unknown. A range of
    one person or more is a certificate that the count is not pinned, found
    without linear programming; a smaller one proves nothing (zeros). Zeros
    too when ``x0`` does not solve the system (then the LP decides).
    """
    out = np.zeros(len(x0))
    if not np.allclose(dec.matrix @ x0, b, rtol=0.0, atol=1e-6):  # absolute: counts of 100,000 too
        return out
    counts = np.arange(len(x0)) if counts is None else np.asarray(counts, int)
    for start in range(0, len(counts), batch):
        d = dec.projections(counts[start : start + batch])
        d = np.where(np.abs(d) <= 1e-9, 0.0, d)  # zero as _fixed counts it: noise neither moves nor blocks
        x = x0[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):  # where d is zero: discarded
            up = np.where(d < 0, x / -d, np.inf).min(axis=0)
            down = np.where(d > 0, x / d, np.inf).min(axis=0)
            span = np.where(d != 0, np.abs(d) * (up + down), 0.0)  # inf: unbounded
        out = np.maximum(out, span.max(axis=1))
    return out

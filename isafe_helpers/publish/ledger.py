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
   it unfixed (a pooled sum gives back one LA's count, not two). The choice
   is greedy, not the fewest cells possible.
3. **Exempt counts** (the trial-flow counts CONSORT requires) are never
   suppressed; relations among only exempt counts are left as they are, and
   the trial flow merges small categories instead (see
   :mod:`isafe_helpers.impact.flow`).

Statistics resting on people (:class:`~isafe_helpers.results.table.Col`
``base``) are withheld when their base is under the threshold or
suppressed, and those that give a count back (``reveals``) when that count
is suppressed: :func:`isafe_helpers.publish.tables.protected` applies it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linprog

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

    @property
    def cells(self) -> tuple[str, ...]:
        return (self.total, *self.parts)


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
                keys[(i, col)] = k
                if las is not None:  # the same row and column label in the same LAs: one count, printed twice
                    row = "/".join(str(data.loc[i, c]) for c in text_cols) or str(i)
                    lab = (tuple(sorted(las)), row, labels[col])
                    other = self._labels.setdefault(lab, k)
                    if other != k and math.isclose(self.values[other], x):
                        self.relate(other, [k])
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
        self.pool()
        rels = [r for r in self.relations if all(c in self.values for c in r.cells)]
        supp = {k for k, v in self.values.items() if 0 < v < self.limit and k not in self.exempt}
        for r in rels:  # class disclosure: every member of a group in one category
            if r.kind == "breakdown" and self.values[r.total] > 0:
                nonzero = [p for p in r.parts if self.values[p] > 0]
                if len(nonzero) == 1 and len(r.parts) > 1:
                    supp |= {p for p in r.parts if p not in self.exempt}
        unprotectable: list[Relation] = []
        # what _exposed found for a component, by its relations and suppressed counts: the answer
        # depends on nothing else, and most components are unchanged from one pass to the next
        exposed: dict[tuple[frozenset, frozenset], list[str]] = {}
        # the lowest and highest value each count takes in a solution found so far (_exposed): suppressing more
        # only widens what the published counts allow, so a solution of an earlier system stays one
        self._seen: dict[str, tuple[float, float]] = {}
        for _ in range(len(self.values) + 1):
            changed = False
            for r in rels:  # no relation may hold exactly one suppressed count
                hidden = [c for c in r.cells if c in supp]
                if len(hidden) == 1:
                    pick = self._second(r, supp)
                    if pick is None:
                        if r not in unprotectable:
                            unprotectable.append(r)
                        continue
                    supp.add(pick)
                    changed = True
            if changed:
                continue
            for comp in self._components(rels, supp):
                sig = (frozenset(comp), frozenset(c for r in comp for c in r.cells if c in supp))
                # exposed counts are found one at a time, in order: the first one protected changes the system
                known = exposed.get(sig)
                done: list[str] = []
                for k in known if known is not None else self._exposed(comp, supp):
                    done.append(k)
                    picks = self._breaker(comp, supp, k)
                    if not picks:  # another count in a relation of the exposed one; failing that, anywhere
                        for r in sorted(comp, key=lambda r: k not in r.cells):
                            pick = self._second(r, supp)
                            if pick is not None:
                                picks = [pick]
                                break
                    if picks:
                        supp.update(picks)
                        changed = True
                        break
                    unprotectable += [r for r in comp if k in r.cells and r not in unprotectable]
                else:  # every exposed count of the component seen: kept for the next pass
                    exposed[sig] = done
                if changed:
                    break
            if not changed:
                break
        return Plan(supp, self.limit, dict(self.values), unprotectable, set(self.exempt))

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
        self, comp: list[Relation], supp: set[str], k: str, singles_of: int = 40, pairs_of: int = 12
    ) -> list[str]:
        """The cheapest one or two published counts whose suppression leaves ``k`` undetermined.

        One count is tried first (the ``singles_of`` cheapest, those within three
        relations of ``k`` first; :meth:`_cost`); failing that, pairs among the
        ``pairs_of`` cheapest counts nearest ``k`` (a pooled
        sum may give back one LA's count, so two LAs' counts go together).
        Empty when none does it, or when ``k`` is pinned within one person
        rather than determined (the caller falls back to its neighbours).
        Every trial is answered from one decomposition of the component's
        system (:class:`_Unfixing`), not by solving it again.
        """
        index, matrix, _ = self._system(comp, supp)
        # every relation of a component holds a suppressed count: one row each, in order (as _column)
        assert matrix.shape[0] == len(comp)
        test = _Unfixing(self._decomposed(matrix), index[k])
        if not test.determined:
            return []
        free = sorted({c for r in comp for c in r.cells if c not in supp and c not in self.exempt}, key=self._cost)
        near: set[str] = set()
        frontier = {k}
        for _ in range(3):  # counts within three relations of k
            rels = [r for r in comp if frontier & set(r.cells)]
            frontier = {c for r in rels for c in r.cells} - near
            near |= frontier
        singles = ([c for c in free if c in near] + [c for c in free if c not in near])[:singles_of]
        cols = {c: _column(comp, c) for c in singles}
        for c in singles:
            if test.unfixed_by([cols[c]]):
                return [c]
        near_free = [c for c in free if c in near][:pairs_of]
        best = None
        for i, a in enumerate(near_free):
            for b in near_free[i + 1 :]:
                cost = sorted([self._cost(a), self._cost(b)], reverse=True)
                if (best is None or cost < best[0]) and test.unfixed_by([cols[a], cols[b]]):
                    best = (cost, [a, b])
        return best[1] if best else []

    def _system(self, comp: list[Relation], supp: set[str]) -> tuple[dict[str, int], np.ndarray, list[float]]:
        """The component's relations as ``A x = b`` over its suppressed counts ``x`` (index: count -> column)."""
        unknown = sorted({c for r in comp for c in r.cells if c in supp})
        index = {k: i for i, k in enumerate(unknown)}
        rows, b = [], []
        for r in comp:
            row, const = np.zeros(len(unknown)), 0.0
            for c, sign in [(r.total, -1.0), *((p, 1.0) for p in r.parts)]:
                if c in index:
                    row[index[c]] += sign
                else:
                    const -= sign * self.values[c]
            if row.any():
                rows.append(row)
                b.append(const)
        return index, np.array(rows).reshape(len(rows), len(unknown)), b

    def _decomposed(self, matrix: np.ndarray) -> _Decomposition:
        """``matrix``'s decomposition; the last one is kept (the breaker reads the system :meth:`_exposed` just read)."""
        last = getattr(self, "_last", None)
        if last is None or last.matrix.shape != matrix.shape or not np.array_equal(last.matrix, matrix):
            last = self._last = _Decomposition(matrix)
        return last

    @staticmethod
    def _components(rels: list[Relation], supp: set[str]) -> list[list[Relation]]:
        """Relations holding a suppressed count, grouped into connected components."""
        parent: dict[str, str] = {}

        def find(x):
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        touched = [r for r in rels if any(c in supp for c in r.cells)]
        for r in touched:
            for c in r.cells[1:]:
                parent[find(c)] = find(r.cells[0])
        groups: dict[str, list[Relation]] = defaultdict(list)
        for r in touched:
            groups[find(r.total)].append(r)
        return list(groups.values())

    def _exposed(self, comp: list[Relation], supp: set[str]) -> Iterator[str]:
        """Suppressed counts of a component that the published counts determine, or pin within one person.

        Yielded in order, as found: the caller stops at the first it protects.
        """
        index, matrix, b = self._system(comp, supp)
        if not len(matrix):
            return
        dec = self._decomposed(matrix)
        determined = sorted(_fixed(index, dec))
        if determined:
            yield from determined
            return
        x0 = np.array([self.values[k] for k in index])
        moves = _moves(x0, dec, np.asarray(b))
        # Every solution found so far (the true counts, when they solve the system, and each LP's optimum) is a
        # point of the polytope: where two of them differ by a person or more in a count, that count is not
        # pinned and needs no LP of its own. The ranges are exact where an LP runs, so the answer is the same.
        # When the true counts solve the system, so does a solution of an earlier system of these counts (its
        # other counts at their true values): what solve() saw before (self._seen) counts too.
        solves = bool(np.allclose(matrix @ x0, b, rtol=0.0, atol=1e-6))
        seen = getattr(self, "_seen", {}) if solves else {}
        low = (
            np.array([seen.get(k, (v, v))[0] for k, v in zip(index, x0)], float) if solves else np.full(len(x0), np.inf)
        )
        high = (
            np.array([seen.get(k, (v, v))[1] for k, v in zip(index, x0)], float)
            if solves
            else np.full(len(x0), -np.inf)
        )

        def spread(i: int) -> bool:
            return moves[i] >= 1 + 1e-6 or high[i] - low[i] >= 1 + 1e-6

        def witness(res) -> None:
            if res.status == 0 and res.x is not None:
                np.minimum(low, res.x, out=low)
                np.maximum(high, res.x, out=high)
                if solves:
                    seen.update(zip(index, zip(low.tolist(), high.tolist())))

        for k, i in index.items():
            if spread(i):  # two solutions a person or more apart: not pinned, no LP needed
                continue
            obj = np.zeros(len(index))
            obj[i] = 1.0
            lo = linprog(obj, A_eq=matrix, b_eq=b, bounds=(0, None), method="highs")
            witness(lo)
            if spread(i):
                continue
            hi = linprog(-obj, A_eq=matrix, b_eq=b, bounds=(0, None), method="highs")
            witness(hi)
            if lo.status == 0 and hi.status == 0 and (-hi.fun) - lo.fun < 1 - 1e-9:
                yield k


class _Decomposition:
    """A system matrix's singular value decomposition: its rank, column space and null space.

    As :func:`scipy.linalg.null_space` computes them (relative tolerance
    ``max(shape) * eps``), computed once per system. The SVD is full only
    where the null space needs it (fewer relations than unknowns): with more
    relations than unknowns the thin SVD already holds every right singular
    vector, and the full left factor (relations x relations) is never used.
    """

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        u, sv, vt = np.linalg.svd(matrix, full_matrices=matrix.shape[0] < matrix.shape[1])
        tol = (sv.max() if len(sv) else 0.0) * max(matrix.shape) * np.finfo(float).eps
        rank = int(np.sum(sv > tol))
        self.u, self.sv, self.vt = u[:, :rank], sv[:rank], vt[:rank]
        self.basis = vt[rank:].T  # the null space


def _fixed(index: dict[str, int], dec: _Decomposition) -> set[str]:
    """The unknowns of ``matrix x = b`` that the system fixes whatever ``b`` (their null-space rows are zero)."""
    if not len(dec.matrix):
        return set()
    if dec.basis.shape[1] == 0:
        return set(index)
    zero = np.abs(dec.basis).max(axis=1) <= 1e-9  # np.allclose(row, 0, atol=1e-9), every row at once
    return {k for k, i in index.items() if zero[i]}


def _column(comp: list[Relation], c: str) -> np.ndarray:
    """Count ``c``'s coefficients in the component's relations (``sum(parts) - total = 0``), one per relation."""
    return np.array([(-1.0 if r.total == c else 0.0) + sum(1.0 for p in r.parts if p == c) for r in comp])


class _Unfixing:
    """Does suppressing more counts leave unknown ``k`` of ``matrix x = b`` undetermined?

    ``k`` is determined when every null-space vector of ``matrix`` is zero at
    ``k``. Suppressing counts adds their columns ``C``; the new null space
    holds ``(x, s)`` with ``matrix x + C s = 0``, which needs ``C s`` in the
    column space of ``matrix`` (``P C s = 0``, ``P`` the projection on its
    complement) and then has ``x_k = -(pinv(matrix) C s)_k``, whatever part of
    the old null space is added (zero at ``k``). So ``k`` becomes undetermined
    exactly when some ``s`` in the null space of ``P C`` has
    ``(pinv(matrix) C s)_k != 0``: one singular value decomposition of
    ``matrix`` answers every trial, where solving each enlarged system again
    cost one each. Tolerances are those of :func:`_fixed`.
    """

    def __init__(self, dec: _Decomposition, k: int):
        self.u = dec.u
        self.row = dec.vt[:, k] / dec.sv  # (pinv(matrix) y)_k = row . (u^T y)
        self.determined = bool(_fixed({"k": k}, dec))

    def unfixed_by(self, cols: list[np.ndarray]) -> bool:
        c = np.column_stack(cols)
        proj = self.u.T @ c
        resid = c - self.u @ proj  # P C
        scale = max(1.0, float(np.abs(c).max()))
        q = self.row @ proj  # (pinv(matrix) C)_k, one per column
        if len(cols) == 1:
            return bool(np.linalg.norm(resid) <= 1e-9 * scale and abs(q[0]) > 1e-9)
        _, rs, rvt = np.linalg.svd(resid, full_matrices=False)
        ranks = int(np.sum(rs > 1e-9 * scale))
        s = rvt[ranks:]  # each row an s with P C s = 0
        return bool(len(s) and np.any(np.abs(s @ q) > 1e-9))


def _moves(x0: np.ndarray, dec: _Decomposition, b: np.ndarray) -> np.ndarray:
    """For each unknown, a range its value can take among the solutions of ``matrix x = b, x >= 0`` (a lower bound).

    ``x0`` (the true counts) is one solution; along each null-space vector
    ``d`` the counts stay non-negative for ``t`` in an interval, so unknown
    ``i`` takes every value in ``x0_i + d_i t`` over it. A range of one
    person or more is a certificate that the count is not pinned, found
    without linear programming; a smaller one proves nothing (zeros). Zeros
    too when ``x0`` does not solve the system (then the LP decides).
    """
    out = np.zeros(len(x0))
    if not np.allclose(dec.matrix @ x0, b, rtol=0.0, atol=1e-6):  # absolute: counts of 100,000 too
        return out
    for d in dec.basis.T:
        d = np.where(np.abs(d) <= 1e-9, 0.0, d)  # zero as _fixed counts it: noise neither moves nor blocks
        up = np.min(x0[d < 0] / -d[d < 0]) if np.any(d < 0) else np.inf
        down = np.min(x0[d > 0] / d[d > 0]) if np.any(d > 0) else np.inf
        with np.errstate(invalid="ignore"):  # 0 * inf where d is zero, discarded (a warning would reach the page)
            out = np.maximum(out, np.where(d != 0, np.abs(d) * (up + down), 0.0))  # inf: unbounded
    return out

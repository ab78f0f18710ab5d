"""An intruder's attack on a staged book: every number it publishes, and the arithmetic one would try on them.

The suite's adversary for the disclosure ledger (issue 22). It reads what a
reader can download and see, never the ledger:

- :func:`harvest`: every cell of every ``<scope>-published-numbers.csv`` of a
  staged book (tables, figures' data, the summary and LA index tables, prose
  numbers), one row per cell, with its ``value`` (NaN when withheld) and
  ``symbol``;
- :func:`stage_pair`: the book staged twice from one results folder, as
  published and at threshold 1 (nothing withheld for size): the second is the
  truth the attacker is checked against, cell by cell (the same tables, rows
  and columns);
- :func:`attack`: each attack class of issue 22, returning every success with
  the numbers it used, the value recovered and the truth:

  * ``twin``: a withheld cell printed elsewhere in its scope (the same
    ``estimates.csv`` key, or the same row and column of another table);
  * ``linear``: pooled = sum of the LAs' cells (same table, row and column)
    and a table's row and column totals, then linear programming over
    non-negative counts: a withheld count pinned to within one person;
  * ``rate``: a percentage beside a count in one row, with the percentage's
    rounding interval (printed to 0.1): the numerator (and the base minus it)
    when one whole number fits and it is withheld in that row, or it is a
    count under the threshold the row does not print;
  * ``class``: a distribution of people (at least three categories) whose
    every category is zero but one withheld: everyone is in that one;
  * ``integer``: the team sizes behind a mean team size (harmonic or arithmetic), its
    teams and a staff count of the same outcome (every solution sharing a
    team under the threshold pins it). Its truth is not checked (the analysed
    team sizes are not a published cell): the value reported is the pinned one;
  * ``cox``: the age bands by arm behind one sample's Cox indexes (printed
    to 0.001; each analysed sample's, and the baseline report's randomised
    staff) and its staff: every whole-number table of bands by arm that
    gives the printed indexes, for the split into arms the published counts
    give (or every split); a band not printed takes what the others leave
    when it is the only one; a band whose count in an arm is the same in
    every solution and under the threshold (or withheld where the
    characteristics table prints it) is recovered;
  * ``attrition``: an outcome's staff differential attrition (printed to 0.1
    percentage points) with its staff randomised and analysed and the staff
    randomised by arm (the trial flow): every whole number of staff lost in
    each arm that gives it; when one fits, the arms' analysed staff are
    pinned, and one under the threshold is recovered (its truth is checked
    where the headline table prints it). The staff not analysed follow from
    the analysed by arm and the randomised by arm, counts CONSORT asks for
    (the trial flow and the headline print them), so they are not a target;
  * ``nested``: an outcome's staff analysed minus the count of an analysis
    nested in them (a moderator model's staff, those with a characteristic
    recorded): the staff left out, recovered when under the threshold.

An attacker who knows relations the truth holds by coincidence would overreach;
this one uses only relations a reader can name (pooled versus LAs, totals), and
decides "pinned" from published numbers only, then checks the recovered value
against the truth. What it does not try (yet): numbers in alt text and SVG
text, the PDFs and the search index.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linprog

#: Column labels that are not counts of people, whatever their values.
NOT_COUNT = re.compile(
    r"%|GBP|£|mean|SD\b|SE\b|rating|percentile|median|\bp\b|p,|CI|effect|points|variance|ICC|Hedges|"
    r"\bg\b|estimate|years|interval|MDES|R-squared|Q\b|degrees|tau|I-squared|F\b|harmonic|CACE|difference|"
    r"elements|sessions|quality|cost|places|teams",
    re.IGNORECASE,
)
#: Column labels of a percentage (not an interval's end).
RATE = re.compile(r"%", re.IGNORECASE)

ID = ["scope", "table", "row", "column", "occ"]


@dataclass(frozen=True)
class Success:
    attack: str
    scope: str
    cell: str
    used: str
    recovered: float
    truth: float

    def __str__(self) -> str:
        return f"[{self.attack}] {self.scope}: {self.cell} = {self.recovered:g} (truth {self.truth:g}) from {self.used}"


def harvest(stage: Path) -> pd.DataFrame:
    """Every published cell of the staged book, one row each (``occ`` numbers repeats of a row and column)."""
    frames = []
    for f in sorted((stage / "book" / "downloads").glob("*-published-numbers.csv")):
        d = pd.read_csv(f, keep_default_na=False, dtype=str).rename(columns={"scope": "kscope"})
        d.insert(0, "scope", f.name.removesuffix("-published-numbers.csv"))
        frames.append(d)
    d = pd.concat(frames, ignore_index=True)
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d["occ"] = d.groupby(["scope", "table", "row", "column"]).cumcount()
    d["suffix"] = [t[len(s) + 1 :] if t.startswith(s + "-") else t for s, t in zip(d["scope"], d["table"])]
    d["key"] = [
        "|".join((s, st, a, o, q, fl)) if q else ""
        for s, st, a, o, q, fl in zip(d["kscope"], d["strand"], d["analysis"], d["outcome"], d["quantity"], d["field"])
    ]
    return d


def stage_pair(results: Path, work: Path) -> tuple[Path, Path]:
    """The book staged from ``results`` as published, and at threshold 1 (the truth): their stage folders."""
    from isafe_helpers.publish import book

    published = work / "published"
    book.stage(results, published)
    truth_results = work / "truth-results"
    shutil.copytree(results, truth_results)
    run = json.loads((truth_results / "run.json").read_text())
    run["disclosure_threshold"] = 1
    (truth_results / "run.json").write_text(json.dumps(run))
    old = os.environ.get("ISAFE_DISCLOSURE_THRESHOLD")
    os.environ["ISAFE_DISCLOSURE_THRESHOLD"] = "1"
    try:
        truth = work / "truth"
        book.stage(truth_results, truth)
    finally:
        if old is None:
            del os.environ["ISAFE_DISCLOSURE_THRESHOLD"]
        else:
            os.environ["ISAFE_DISCLOSURE_THRESHOLD"] = old
    return published, truth


def _integral(x: float) -> bool:
    return math.isfinite(x) and abs(x - round(x)) < 1e-9


def _cell(r) -> str:
    return f"{r.table} / {r.row} / {r.column}" + (f" #{r.occ}" if r.occ else "")


def attack(pub: pd.DataFrame, truth: pd.DataFrame, limit: int) -> list[Success]:
    """Every success of every attack class on the published cells ``pub``, checked against ``truth``."""
    d = pub.merge(truth[[*ID, "value"]].rename(columns={"value": "truth"}), on=ID, how="left")
    # a count column: its label is not a statistic's, and every true value of it is a whole number
    whole = d.groupby("column")["truth"].agg(lambda v: bool(v.dropna().map(_integral).all()))
    d["count"] = [bool(whole.get(c, False)) and not NOT_COUNT.search(c) for c in d["column"]]
    withheld = d[(d["symbol"] == "[c]") & d["count"] & d["truth"].notna()]
    out: list[Success] = []
    out += _twins(d, withheld)
    out += _linear(d, withheld)
    out += _rates(d, limit)
    out += _classes(d)
    out += _harmonic(d, limit)
    out += _cox(d, limit)
    out += _attrition(d, limit)
    out += _nested(d, limit)
    return out


#: The analyses whose ``n`` counts a subset of an outcome's analysed staff chosen by a characteristic: the
#: moderator models (those with the moderator recorded, in the levels kept) and baseline equivalence (those with
#: the characteristic recorded). Others print counts of other populations (a dose group, a team count), whose
#: difference from the staff analysed is no one group a reader can name; the linear attack covers their relations.
NESTED = ("subgroup_age", "subgroup_experience", "subgroup_la", "baseline_equivalence")


def _nested(d: pd.DataFrame, limit: int) -> list[Success]:
    """The staff an analysis of an outcome leaves out: the outcome's staff analysed minus the analysis's own count.

    Every analysis of an outcome's analysed sample (a moderator model, the
    baseline equivalence of a characteristic) uses those staff or fewer (the
    ones with the moderator recorded, or in the levels the model keeps), and
    its ``n`` (``estimates.csv``) is a published cell wherever a table prints
    it: a difference from the primary model's staff analysed under the
    threshold (and not zero) counts staff left out. Only cells whose
    ``outcome`` starts with an outcome the primary model has are compared; a
    difference the same analysis prints for that outcome is not new (an
    arm's staff analysed minus the other arm's: the trial flow's counts,
    which CONSORT asks for); the truth is the same difference at threshold 1.
    """
    out = []
    n = d[(d["field"] == "n") & d["value"].notna() & d["analysis"].isin(NESTED)]
    printed = {(r.scope, r.analysis, str(r.outcome).split(":")[0], r.value) for r in n.itertuples()}
    prim = d[(d["analysis"] == "primary") & (d["field"] == "n") & d["value"].notna()]
    analysed = prim.drop_duplicates(["scope", "outcome"]).set_index(["scope", "outcome"])[["value", "truth"]]
    seen = set()
    for r in n.itertuples():
        key = (r.scope, str(r.outcome).split(":")[0])
        if key not in analysed.index:
            continue
        whole, whole_truth = analysed.loc[key, "value"], analysed.loc[key, "truth"]
        gap = whole - r.value
        if (r.scope, r.analysis, key[1], gap) in printed:
            continue
        if 0 < gap < limit and (r.scope, r.analysis, r.outcome, r.value) not in seen:
            seen.add((r.scope, r.analysis, r.outcome, r.value))
            used = f"{int(whole)} staff analysed ({key[1]}) minus {_cell(r)} = {int(r.value)}"
            out.append(
                Success(
                    "nested",
                    str(r.scope),
                    f"{r.analysis} / {r.outcome} / left out",
                    used,
                    gap,
                    float(whole_truth - r.truth),
                )
            )
    return out


def _attrition(d: pd.DataFrame, limit: int) -> list[Success]:
    """The arms' analysed staff of an outcome from its differential attrition (module docstring)."""
    out = []
    shown = d[d["value"].notna()]
    truth = d[d["analysis"] == "primary"]
    for scope, g in shown.groupby("scope"):
        flow = g[(g["analysis"] == "trial_flow") & (g["quantity"] == "staff")].drop_duplicates("outcome")
        flow = flow.set_index("outcome")["value"]
        if not {"allocated_treatment", "allocated_control"} <= set(flow.index):
            continue
        rt, rc = int(flow["allocated_treatment"]), int(flow["allocated_control"])
        printed = (flow.get("analysed_treatment"), flow.get("analysed_control"))
        att = g[(g["analysis"] == "attrition") & g["outcome"].str.endswith(":participants")]
        for o, a in att.groupby("outcome"):
            get = a.drop_duplicates(["quantity", "field"]).set_index(["quantity", "field"])["value"]
            diff = get.get(("differential_attrition_pct", "estimate"))
            big_r, big_a = get.get(("overall_attrition_pct", "n")), get.get(("analysed", "estimate"))
            if diff is None or big_r is None or big_a is None or int(big_r) != rt + rc:
                continue
            lost = int(big_r - big_a)
            fits = [
                lt
                for lt in range(max(0, lost - rc), min(lost, rt) + 1)
                if abs(abs(100 * lt / rt - 100 * (lost - lt) / rc) - diff) <= 0.05 + 1e-9
            ]
            if len(fits) != 1:
                continue
            lt = fits[0]
            at, ac = rt - lt, rc - (lost - lt)
            if (at, ac) == printed:  # the trial flow's own sample: CONSORT prints its counts by arm
                continue
            used = f"differential {diff:g} pp with {int(big_r)} randomised ({rt}, {rc}) and {int(big_a)} analysed"
            outcome = o.removesuffix(":participants")
            for arm, v in (("treatment", at), ("control", ac)):
                head = truth[(truth["scope"] == scope) & (truth["quantity"] == f"analysed_{arm}")]
                head = head[head["row"].map(lambda r, o=outcome: r.lower().startswith(_label(d, o)))]
                t = float(head["truth"].iloc[0]) if len(head) else float("nan")
                if 0 < v < limit:
                    out.append(Success("attrition", str(scope), f"{outcome} / analysed, {arm}", used, v, t))
    return out


def _label(d: pd.DataFrame, outcome: str) -> str:
    """An outcome's row label, lower case and without "(primary)", as the attrition table prints it."""
    rows = d.loc[d["outcome"] == f"{outcome}:participants", "row"]
    return rows.iloc[0].lower().removesuffix(" (primary)") if len(rows) else outcome


def _partitions(total: int, parts: int, lo: float, hi: float, least: int = 1, cap: int = 200_000):
    """Non-decreasing ``parts`` whole numbers of at least ``least`` summing to ``total``, with the sum of
    their reciprocals in ``[lo, hi]`` (a harmonic mean's rounding interval); at most ``cap`` of them."""
    found: list[tuple[int, ...]] = []

    def walk(prefix: list[int], left: int, k: int, recip: float):
        if len(found) >= cap:
            return
        if k == 0:
            if left == 0 and lo - 1e-12 <= recip <= hi + 1e-12:
                found.append(tuple(prefix))
            return
        a = prefix[-1] if prefix else least
        for n in range(a, left // k + 1):
            # the reciprocals still to come: at most (k - 1) / n + 1 / (left - n - (k - 2) n), at least k^2 / left
            most = recip + 1 / n + (k - 1) / n
            least_sum = recip + k * k / left
            if most < lo - 1e-12:
                break
            if least_sum > hi + 1e-12:
                return
            walk([*prefix, n], left - n, k - 1, recip + 1 / n)

    walk([], total, parts, 0.0)
    return found


def _harmonic(d: pd.DataFrame, limit: int) -> list[Success]:
    """Team sizes from a mean team size (harmonic or arithmetic), its teams and a staff count of the same outcome.

    Every multiset of ``k`` team sizes summing to ``N`` whose harmonic mean rounds to the printed one
    (to 0.1); when they all share a team under the threshold, that team's size is pinned as a small count.
    An arithmetic mean only says ``N / k``: every split of ``N`` into ``k`` teams fits, and their smallest team
    runs from 1 to ``N // k``, pinned (at 1) only when ``N < 2k``.
    """
    out = []
    hm = d[d["column"].str.contains("per analysed team|harmonic", case=False) & d["value"].notna()]
    for r in hm.itertuples():
        row = d[(d["scope"] == r.scope) & (d["table"] == r.table) & (d["row"] == r.row) & (d["occ"] == r.occ)]
        teams = row[row["column"].str.contains("Teams analysed") & row["value"].notna()]
        staff = d[
            (d["scope"] == r.scope)
            & (d["row"] == r.row)
            & d["column"].isin(["Staff in the model", "Staff analysed"])
            & d["value"].notna()
        ]
        if teams.empty or staff.empty:
            continue
        k = int(teams["value"].iloc[0])
        # the attacker does not know which staff count the mean is of: every candidate must agree
        smallest, used = set(), []
        for n in sorted(set(staff["value"].astype(int))):
            if not 0 < k <= n or n > 120 or k > 10:
                continue
            if "harmonic" not in r.column.lower():
                if abs(n / k - r.value) <= 0.05 + 1e-9:  # the mean is this staff count's
                    smallest |= set(range(1, n // k + 1))
                    used.append(f"{n} staff (any split into {k} teams)")
                continue
            sols = _partitions(n, k, k / (r.value + 0.05), k / (r.value - 0.05) if r.value > 0.05 else math.inf)
            if sols and len(sols) < 200_000:
                smallest |= {s[0] for s in sols}
                used.append(f"{n} staff ({len(sols)} solution(s))")
        if len(smallest) == 1 and (m := next(iter(smallest))) < limit:
            how = f"{r.column} {r.value:g} of {k} teams with " + " or ".join(used)
            out.append(Success("integer", r.scope, f"{r.table} / {r.row} / smallest team", how, m, float("nan")))
    return out


def _cox_index(at: np.ndarray, nt: int, ac: np.ndarray, nc: int) -> np.ndarray:
    """WWC's Cox index of ``at`` of ``nt`` against ``ac`` of ``nc`` (the handbook's ``flow._cox``), as a grid."""
    lt = np.log(at / (nt - at))[:, None]
    lc = np.log(ac / (nc - ac))[None, :]
    return (1 - 3 / (4 * (nt + nc) - 9)) * (lt - lc) / 1.65


def _band_solutions(indexes: list[float], nt: int, nc: int) -> list[set[tuple[int, int]]] | None:
    """Per band, the (treatment, control) counts that fit its printed index and a whole table of bands.

    ``indexes``: one per band, NaN where not printed (that band is free). The
    bands' counts sum to ``nt`` and ``nc`` (at most, when a band is free).
    None when nothing fits.
    """
    at, ac = np.arange(1, nt, dtype=float), np.arange(1, nc, dtype=float)
    if not len(at) or not len(ac):
        return None
    cands: list[set[tuple[int, int]] | None] = []
    for v in indexes:
        if not math.isfinite(v):
            cands.append(None)
            continue
        g = _cox_index(at, nt, ac, nc)
        i, j = np.nonzero(np.abs(g - v) <= 0.0005 + 1e-12)
        if not len(i):
            return None
        cands.append({(int(a) + 1, int(c) + 1) for a, c in zip(i, j)})
    exact = all(c is not None for c in cands)  # else a band not printed takes what the others leave
    fixed = [c for c in cands if c is not None]

    def reach(parts):
        r = [{(0, 0)}]
        for c in parts:
            r.append({(a + x, b + y) for a, b in r[-1] for x, y in c if a + x <= nt and b + y <= nc})
        return r

    fwd, bwd = reach(fixed), reach(fixed[::-1])[::-1]
    out = []
    for k, c in enumerate(fixed):
        after = bwd[k + 1]
        keep = set()
        for x, y in c:
            for a, b in fwd[k]:
                if exact:
                    if (nt - a - x, nc - b - y) in after:
                        keep.add((x, y))
                        break
                elif any(a + x + p <= nt and b + y + q <= nc for p, q in after):
                    keep.add((x, y))
                    break
        if not keep:
            return None
        out.append(keep)
    # one band not printed: it is what the printed ones leave of each arm
    left = {(nt - a, nc - b) for a, b in fwd[-1]} if len(fixed) == len(cands) - 1 else set()
    # back to one entry per band (a free band: its leftovers when it is the only one, else nothing)
    it = iter(out)
    return [next(it) if c is not None else left for c in cands]


def _cox_samples(d: pd.DataFrame):
    """Each sample whose age bands' Cox indexes are printed: (scope, sample, suffix, bands, indexes, truths, n,
    arms), ``suffix`` naming the characteristics table's cells of the sample (``analysed`` or ``randomised``),
    ``arms`` the intervention staff with a band recorded when printed counts give them (else None)."""
    chars = d[(d["analysis"] == "baseline_characteristics") & (d["field"] == "estimate")]
    be = d[(d["analysis"] == "baseline_equivalence") & d["outcome"].str.contains(":age_", regex=False)]
    for (scope, sample), g in be.groupby([be["scope"], be["outcome"].str.split(":").str[0]]):
        est = g[g["field"] == "estimate"].drop_duplicates("outcome")
        ns = g.loc[(g["field"] == "n") & g["value"].notna(), "value"]
        if ns.empty or est["value"].notna().sum() == 0:
            continue
        c = chars[(chars["scope"] == scope) & chars["quantity"].str.endswith("_analysed")]
        c = c[(c["outcome"] == "age_band") | (c["outcome"] == "all")].drop_duplicates("quantity")
        c = c.set_index("quantity")["value"]
        got = [c.get(f"n_{a}_analysed") for a in ("treatment", "control")]
        gone = [c.get(f"n_not_recorded_{a}_analysed") for a in ("treatment", "control")]
        n, arms = int(ns.iloc[0]), None
        known = all(v is not None and math.isfinite(v) for v in [*got, *gone])
        if known and got[0] - gone[0] + got[1] - gone[1] == n:
            arms = int(got[0] - gone[0])
        bands = sorted(est["outcome"].str.split(":age_").str[1])
        e = est.set_index("outcome")
        indexes = [float(e.at[f"{sample}:age_{b}", "value"]) for b in bands]
        truths = [float(e.at[f"{sample}:age_{b}", "truth"]) for b in bands]
        yield scope, sample, "analysed", bands, indexes, truths, n, arms
    # the baseline report's balance table: the randomised staff, each arm's printed beside the index
    bb = d[(d["analysis"] == "baseline_balance") & d["outcome"].str.startswith("age_") & (d["field"] == "estimate")]
    desc = d[(d["analysis"] == "descriptives") & d["outcome"].str.startswith("age_") & d["value"].notna()]
    for scope, g in bb.groupby("scope"):
        est = g.drop_duplicates("outcome").set_index("outcome")
        if est["value"].notna().sum() == 0:
            continue
        bands = sorted(o.removeprefix("age_") for o in est.index)
        dd = desc[desc["scope"] == scope].drop_duplicates(["outcome", "quantity"])
        t = dd.loc[dd["quantity"] == "n_baseline_treatment", "value"]
        k = dd.loc[dd["quantity"] == "n_baseline_control", "value"]
        if t.empty or k.empty:
            continue
        indexes = [float(est.at[f"age_{b}", "value"]) for b in bands]
        truths = [float(est.at[f"age_{b}", "truth"]) for b in bands]
        yield scope, "randomised", "randomised", bands, indexes, truths, int(t.iloc[0] + k.iloc[0]), int(t.iloc[0])


def _cox(d: pd.DataFrame, limit: int, most: int = 150) -> list[Success]:
    """Age-band counts by arm from one sample's Cox indexes and its staff (module docstring).

    The samples: each analysed sample (baseline-equivalence table) and the randomised staff (the baseline
    report's balance table). With the arms' staff printed (the characteristics or balance table), that split
    alone; otherwise every split of the sample's staff into arms (up to ``most`` staff). A band not printed
    takes what the printed ones leave when it is the only one. A count pinned under the threshold, or pinned
    to the true value of a withheld characteristics cell, is a success.
    """
    out = []
    chars = d[(d["analysis"] == "baseline_characteristics") & (d["field"] == "estimate")]
    for scope, sample, suffix, bands, indexes, truths, n, arms in _cox_samples(d):
        splits = [arms] if arms is not None else (range(2, n - 1) if n <= most else [])
        seen: list[dict[tuple[str, str], set[int]]] = []
        for nt in splits:
            sols = _band_solutions(indexes, nt, n - nt)
            if sols is None:
                continue
            per: dict[tuple[str, str], set[int]] = {}
            for b, s in zip(bands, sols):
                if s:
                    per[(b, "treatment")] = {x for x, _ in s}
                    per[(b, "control")] = {y for _, y in s}
            seen.append(per)
        if not seen:
            continue
        c = chars[(chars["scope"] == scope) & (chars["outcome"] == "age_band")].drop_duplicates("quantity")
        c = c.set_index("quantity")

        def cell(b: str, a: str, what: str = "truth", c=c, suffix=suffix):
            return c[what].get(f"n_{b}_{a}_{suffix}") if what in c else None

        # the truth of a band count is a published cell only for the sample the characteristics table describes:
        # the one whose true indexes its true band counts give
        mine = True
        nt_, nc_ = (sum(cell(b, a) or 0 for b in bands) for a in ("treatment", "control"))
        for b, v in zip(bands, truths):
            x = [cell(b, a) for a in ("treatment", "control")]
            if any(y is None or not math.isfinite(y) for y in x) or not (0 < x[0] < nt_ and 0 < x[1] < nc_):
                mine = mine and not math.isfinite(v)
                continue
            mine = mine and math.isclose(
                float(_cox_index(np.array([x[0]]), int(nt_), np.array([x[1]]), int(nc_))[0, 0]), v, abs_tol=6e-4
            )
        for key in seen[0]:
            vals = set().union(*(p.get(key, {-1}) for p in seen))
            if len(vals) != 1:
                continue
            v = next(iter(vals))
            band, arm = key
            truth = cell(band, arm) if mine else None
            withheld = cell(band, arm, "symbol") == "[c]" and truth is not None and math.isclose(truth, v)
            if 0 < v < limit or withheld:
                used = f"{len(indexes)} Cox indexes of {sample} with {n} staff ({len(seen)} arm split(s) fit)"
                t = float(truth) if truth is not None and truth == truth else float("nan")
                out.append(Success("cox", scope, f"{sample} / age {band} / {arm}", used, v, t))
    return out


def _twins(d: pd.DataFrame, withheld: pd.DataFrame) -> list[Success]:
    shown = d[d["value"].notna()]
    by_key = {k: r for r in shown.itertuples() if (k := r.key)}
    by_label = {(r.scope, r.row, r.column, r.occ): r for r in shown[shown["count"]].itertuples()}
    out = []
    for r in withheld.itertuples():
        twin = by_key.get(r.key) if r.key else None
        twin = twin or by_label.get((r.scope, r.row, r.column, r.occ))
        if twin is not None and math.isclose(twin.value, r.truth):
            out.append(Success("twin", r.scope, _cell(r), _cell(twin), twin.value, r.truth))
    return out


def _relations(d: pd.DataFrame) -> list[tuple[int, list[int]]]:
    """Relations a reader can name, as (total row index, part row indices) of ``d``, each holding in the truth."""
    counts = d[d["count"] & d["truth"].notna()]
    rels: list[tuple[int, list[int]]] = []
    # pooled = the sum of its LAs: the same table, row and column in the pooled scope and every LA
    las = sorted(s for s in d["scope"].unique() if s != "trial")
    idx = {(r.scope, r.suffix, r.row, r.column, r.occ): r.Index for r in counts.itertuples()}
    for (scope, suffix, row, col, occ), i in idx.items():
        if scope != "trial" or len(las) < 2:
            continue
        parts = [idx.get((la, suffix, row, col, occ)) for la in las]
        if all(p is not None for p in parts) and math.isclose(d.at[i, "truth"], sum(d.at[p, "truth"] for p in parts)):
            rels.append((i, parts))
    # a table's column totals and row totals (two parts or more, none zero)
    for (_scope, _table), g in counts.groupby(["scope", "table"]):
        for _col, c in g.groupby(["column", "occ"]):
            if len(c) >= 3:
                tot = c["truth"].sum()
                for i, v in c["truth"].items():
                    parts = [j for j in c.index if j != i]
                    if v > 0 and math.isclose(v, tot - v) and all(d.at[j, "truth"] != 0 for j in parts):
                        rels.append((i, parts))
        for _row, c in g.groupby(["row", "occ"]):
            if len(c) >= 3:
                tot = c["truth"].sum()
                for i, v in c["truth"].items():
                    parts = [j for j in c.index if j != i]
                    if v > 0 and math.isclose(v, tot - v) and all(d.at[j, "truth"] != 0 for j in parts):
                        rels.append((i, parts))
    return rels


def _linear(d: pd.DataFrame, withheld: pd.DataFrame) -> list[Success]:
    """Linear programming over the relations: a withheld count between bounds less than a person apart."""
    rels = _relations(d)
    # one unknown per withheld population: the same estimates key, or the same row and column in the scope
    name = {}
    for r in withheld.itertuples():
        name[r.Index] = r.key or f"{r.scope}|{r.row}|{r.column}|{r.occ}"
    unknowns = sorted(set(name.values()))
    col = {u: j for j, u in enumerate(unknowns)}
    rows, rhs = [], []
    for total, parts in rels:
        row, const, ok = np.zeros(len(unknowns)), 0.0, True
        for i, sign in [(total, -1.0), *((p, 1.0) for p in parts)]:
            if i in name:
                row[col[name[i]]] += sign
            elif not math.isnan(d.at[i, "value"]):
                const -= sign * d.at[i, "value"]
            else:  # withheld but not a count the attacker models: the relation is of no use
                ok = False
        if ok and row.any():
            rows.append(row)
            rhs.append(const)
    if not rows:
        return []
    a, b = np.array(rows), np.array(rhs)
    out = []
    first = {u: next(i for i, n in name.items() if n == u) for u in unknowns}
    for u, j in col.items():
        touching = np.abs(a[:, j]) > 0
        if not touching.any():
            continue
        # the unknowns connected to this one: solve their component only
        comp = {j}
        while True:
            rows_in = np.abs(a[:, sorted(comp)]).sum(axis=1) > 0
            more = set(np.nonzero(np.abs(a[rows_in]).sum(axis=0) > 0)[0]) | comp
            if more == comp:
                break
            comp = more
        cols = sorted(comp)
        sub, sb = a[rows_in][:, cols], b[rows_in]
        obj = np.zeros(len(cols))
        obj[cols.index(j)] = 1.0
        lo = linprog(obj, A_eq=sub, b_eq=sb, bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=sub, b_eq=sb, bounds=(0, None), method="highs")
        if lo.status == 0 and hi.status == 0 and (-hi.fun) - lo.fun < 1 - 1e-9:
            r = d.loc[first[u]]
            got = math.ceil(lo.fun - 1e-9)
            used = f"{int(touching.sum())} relation(s) over pooled/LA cells and totals"
            cell = f"{r['table']} / {r['row']} / {r['column']}"
            out.append(Success("linear", r["scope"], cell, used, got, float(r["truth"])))
    return out


def _rates(d: pd.DataFrame, limit: int) -> list[Success]:
    """A printed percentage times a printed count of its row: a numerator one whole number fits."""
    out = []
    # a row label can repeat (an LA's row per component): the i-th of each column is the i-th row
    for (scope, _table, _row, _occ), g in d.groupby(["scope", "table", "row", "occ"]):
        rates = g[g["column"].str.contains(RATE) & ~g["column"].str.contains("CI") & g["value"].notna()]
        bases = g[g["count"] & g["value"].notna() & (g["value"] > 0)]
        if rates.empty or bases.empty:
            continue
        shown = set(g.loc[g["value"].notna() & g["count"], "value"])
        hidden = g[(g["symbol"] == "[c]") & g["count"] & g["truth"].notna()]
        # a category's own share (``Very satisfied (%)`` beside ``Very satisfied``) names its numerator, and a
        # category is not a base
        numerators = {c.replace(" (%)", "").strip() for c in rates["column"]}
        bases = bases[~bases["column"].isin(numerators)]
        for p in rates.itertuples():
            if not 0 <= p.value <= 100:
                continue
            for base in bases.itertuples():
                n = base.value
                lo, hi = (p.value - 0.05) * n / 100, (p.value + 0.05) * n / 100
                ks = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
                if len(ks) != 1:
                    continue
                k = ks[0]
                used = f"{p.column} {p.value:g} x {base.column} {n:g}"
                own = p.column.replace(" (%)", "").strip()
                for h in hidden.itertuples():
                    if own in numerators and h.column in numerators and h.column != own:
                        continue  # another category's count: not what this share counts
                    for v in (k, n - k):
                        if v >= 1 and math.isclose(v, h.truth):
                            out.append(Success("rate", scope, _cell(h), used, v, h.truth))
                if k in shown:  # the rate gives back a count its row prints: the rest is the base's
                    for v in (n - k,):
                        if 0 < v < limit and v not in shown:
                            out.append(Success("rate", scope, f"{_cell(base)} minus {p.column}", used, v, v))
    return out


def _classes(d: pd.DataFrame) -> list[Success]:
    """A distribution of people with every category zero but one withheld: everyone is in that category."""
    out = []
    counts = d[d["count"]]
    for (scope, _table, _row, _occ), g in counts.groupby(["scope", "table", "row", "occ"]):
        if len(g) < 3:
            continue
        zero = int((g["value"] == 0).sum())
        hidden = g[g["symbol"] == "[c]"]
        if zero < 2 or zero + len(hidden) != len(g) or not 1 <= len(hidden) <= 2:
            continue
        if len(hidden) == 2:  # a withheld total and one withheld category: everyone is in that category
            t = hidden["truth"].tolist()
            if not (max(t) > 0 and math.isclose(max(t), g["truth"].sum() - max(t))):
                continue
            hidden = hidden[hidden["truth"] != max(t)] if t[0] != t[1] else hidden.iloc[:1]
        if len(hidden):
            h = hidden.iloc[0]
            out.append(
                Success(
                    "class",
                    scope,
                    f"{h['table']} / {h['row']} / {h['column']}",
                    f"{zero} zero categories",
                    float("nan"),
                    float(h["truth"]),
                )
            )
    return out


def successes_by_attack(found: list[Success]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for s in found:
        out[s.attack] += 1
    return dict(out)

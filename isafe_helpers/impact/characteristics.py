"""Impact strand: baseline characteristics of the staff by arm, randomised and analysed.

The characteristics the participants file records (data contract): role, age
band and years qualified, described by arm in two samples:

- ``randomised``: every member of staff in the participants file (staff of
  randomised teams at baseline);
- ``analysed``: the primary analysis sample, staff with the reference outcome
  scored at both waves (the protocol's primary outcome when it is a survey
  scale, else the instrument's first scale; the sample the trial flow calls
  analysed). Before follow-up there is none, and only the randomised sample
  is described.

``estimates.csv`` rows (analysis ``baseline_characteristics``):

- outcome ``all``: ``n_<arm>_<sample>``, the staff of the arm in the sample;
- outcome ``role`` and ``age_band``: ``n_<level>_<arm>_<sample>`` (staff) and
  ``pct_<level>_<arm>_<sample>`` (their percentage of the arm's sample,
  0-100); a blank age band is level ``not_recorded``;
- outcome ``years_qualified``: ``mean_<arm>_<sample>``, ``sd_<arm>_<sample>``
  (n - 1), ``n_<arm>_<sample>`` (staff with it recorded) and
  ``n_not_recorded_<arm>_<sample>``.

The book shows them in one table under disclosure control: the counts are
people (each level of a characteristic is a breakdown of the arm's staff, so
a small or class-disclosing cell is withheld with what would give it back),
and a percentage, mean or SD is withheld with the count it rests on. These
describe the arms; no test is made (CONSORT 15: baseline differences between
randomised arms are chance). The WWC balance of the outcome-domain baselines
is the baseline-equivalence table's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import AGE_BANDS, ROLES
from isafe_helpers.data.followup import awaits_followup
from isafe_helpers.data.frames import analysis_frame, with_arm
from isafe_helpers.data.loading import TrialData
from isafe_helpers.data.protocol import protocol_of
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import NOT_APPLICABLE, Col, FactKey, Table

ARMS = ("treatment", "control")
SAMPLES = ("randomised", "analysed")
NOT_RECORDED = "not_recorded"
ANALYSIS = "baseline_characteristics"


def _key(las: list[str], sample: str, outcome: str, arm: str, **level: str) -> str:
    """The ledger key of a count of staff of ``arm`` in ``sample`` (with a characteristic's level)."""
    if sample == "randomised":
        return K.key(las, "staff", arm=arm, **level)
    return K.key(las, "staff", arm=arm, analysed=outcome, **level)


@dataclass
class BaselineCharacteristics(Result):
    """Role, age band and years qualified by arm, randomised and analysed.

    ``frame``: one row per (characteristic, level, arm, sample) with ``n``
    (staff), ``value`` (percentage of the arm's sample, or the mean / SD of
    years qualified) and ``kind`` (``total``, ``count``, ``mean``, ``sd``).
    ``outcome``: the outcome whose analysed sample is described (None before
    follow-up); ``samples`` the samples described.
    """

    frame: pd.DataFrame
    outcome: str | None
    samples: tuple[str, ...]
    las: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        out = []
        what = {
            "randomised": "every member of staff randomised (participants file)",
            "analysed": f"the primary analysis sample ({self.outcome} scored at both waves)",
        }
        for r in self.frame.itertuples():
            suffix = f"{r.arm}_{r.sample}"
            if r.kind == "total":
                out.append(est_row(ANALYSIS, "all", f"n_{suffix}", r.n, n=r.n, note=f"staff: {what[r.sample]}"))
            elif r.kind == "count":
                base = f"{r.level}_{suffix}"
                note = f"staff with this {r.characteristic.replace('_', ' ')}: {what[r.sample]}"
                out.append(est_row(ANALYSIS, r.characteristic, f"n_{base}", r.n, n=r.n, note=note))
                out.append(
                    est_row(
                        ANALYSIS,
                        r.characteristic,
                        f"pct_{base}",
                        r.value,
                        n=r.total,
                        note=f"percentage of the arm's staff (n: the arm's staff): {what[r.sample]}",
                    )
                )
            elif r.kind == "not_recorded":
                out.append(
                    est_row(
                        ANALYSIS,
                        r.characteristic,
                        f"n_not_recorded_{suffix}",
                        r.n,
                        n=r.n,
                        note=f"staff without it recorded: {what[r.sample]}",
                    )
                )
            else:  # mean, sd of years qualified
                note = f"{'SD (n - 1)' if r.kind == 'sd' else 'mean'} over staff with it recorded: {what[r.sample]}"
                if r.kind == "mean":
                    out.append(
                        est_row(
                            ANALYSIS,
                            r.characteristic,
                            f"n_{suffix}",
                            r.n,
                            n=r.n,
                            note=f"staff with it recorded: {what[r.sample]}",
                        )
                    )
                out.append(est_row(ANALYSIS, r.characteristic, f"{r.kind}_{suffix}", r.value, n=r.n, note=note))
        return out

    def table(self) -> Table:
        """One row per characteristic and level; per arm and sample, staff and % (years qualified: mean, SD)."""
        f = self.frame
        order = list(dict.fromkeys(zip(f["characteristic"], f["level"], f["kind"])))
        recs: list[dict[str, Any]] = []
        keys: dict[str, list[str | None]] = {}
        fcts: dict[str, list[FactKey | None]] = {}
        for s in self.samples:
            for a in ARMS:
                keys[f"n_{a}_{s}"] = []
                for c in ("n", "v"):
                    fcts[f"{c}_{a}_{s}"] = []
        for ch, lev, kind in order:
            rec: dict[str, Any] = {
                "characteristic": "Staff" if kind == "total" else label(ch),
                "level": {
                    "total": "All",
                    "mean": "Recorded: mean",
                    "sd": "Recorded: SD",
                    "not_recorded": "Not recorded",
                }.get(kind, label(lev)),
            }
            for s in self.samples:
                for a in ARMS:
                    hit = f[(f["characteristic"] == ch) & (f["level"] == lev) & (f["kind"] == kind)]
                    hit = hit[(hit["arm"] == a) & (hit["sample"] == s)]
                    n = float(hit["n"].iloc[0]) if len(hit) else np.nan
                    v = float(hit["value"].iloc[0]) if len(hit) else np.nan
                    # the whole arm as a share of itself, and staff without years recorded: no number to show
                    rec[f"n_{a}_{s}"] = n
                    rec[f"v_{a}_{s}"] = NOT_APPLICABLE if kind in ("total", "not_recorded") else v
                    suffix = f"{a}_{s}"
                    if kind == "total":
                        k = _key(self.las, s, self.outcome or "", a)
                        fn: tuple | None = (ANALYSIS, "all", f"n_{suffix}")
                        fv: tuple | None = None
                    elif kind == "count":
                        k = _key(self.las, s, self.outcome or "", a, **{ch: lev})
                        fn, fv = (ANALYSIS, ch, f"n_{lev}_{suffix}"), (ANALYSIS, ch, f"pct_{lev}_{suffix}")
                    elif kind == "not_recorded":
                        k = _key(self.las, s, self.outcome or "", a, **{ch: NOT_RECORDED})
                        fn, fv = (ANALYSIS, ch, f"n_not_recorded_{suffix}"), None
                    else:
                        k = _key(self.las, s, self.outcome or "", a, **{ch: "recorded"})
                        fn, fv = (ANALYSIS, ch, f"n_{suffix}"), (ANALYSIS, ch, f"{kind}_{suffix}")
                    keys[f"n_{suffix}"].append(k if self.las else None)
                    fcts[f"n_{suffix}"].append(("impact", *fn, "estimate") if fn else None)
                    fcts[f"v_{suffix}"].append(("impact", *fv, "estimate") if fv else None)
            recs.append(rec)
        relations = []
        if self.las:
            for s in self.samples:
                for a in ARMS:
                    total = _key(self.las, s, self.outcome or "", a)
                    for ch, levels in (("role", ROLES), ("age_band", (*AGE_BANDS, NOT_RECORDED))):
                        parts = tuple(_key(self.las, s, self.outcome or "", a, **{ch: lev}) for lev in levels)
                        relations.append((total, parts, "breakdown"))
                    relations.append(
                        (
                            total,
                            tuple(
                                _key(self.las, s, self.outcome or "", a, years_qualified=v)
                                for v in ("recorded", NOT_RECORDED)
                            ),
                            "breakdown",
                        )
                    )
        cols = [Col("characteristic", "Characteristic", "text"), Col("level", "Level", "text")]
        for s in self.samples:
            for a in ARMS:
                who = f"{label(a)}, {s}"
                cols += [
                    Col(f"n_{a}_{s}", f"{who}: staff", "people"),
                    Col(
                        f"v_{a}_{s}",
                        f"{who}: % (years: mean or SD)",
                        "number",
                        1,
                        base=f"n_{a}_{s}",
                        reveals=f"n_{a}_{s}",
                    ),
                ]
        notes = [
            "Randomised: every member of staff of the randomised teams at baseline. "
            + (
                f"Analysed: staff with {label(self.outcome).lower()} scored at both waves (the primary analysis). "
                if self.outcome
                else "No analysed sample yet: follow-up has not been collected. "
            )
            + "Percentages are of the arm's staff in that sample; years qualified is described over the staff who "
            "recorded it (mean and SD, n - 1).",
            "These describe the arms; no significance test is made, since differences between randomised arms "
            "are due to chance. Counts under the disclosure threshold, and what would give them back, are withheld "
            "with the percentages or means resting on them.",
        ]
        return Table(
            pd.DataFrame(recs),
            cols,
            caption="Baseline characteristics of the staff by arm, randomised and analysed",
            notes=notes,
            keys=keys,
            relations=relations,
            facts=fcts,
        )


def _describe(df: pd.DataFrame, sample: str) -> list[dict]:
    recs = []
    for a in ARMS:
        d = df[df["arm"] == a]
        tot = len(d)
        base = dict(arm=a, sample=sample, total=tot)
        recs.append(dict(base, characteristic="all", level="all", kind="total", n=tot, value=np.nan))
        role = d["role"].astype(str)
        for lev in ROLES:
            n = int((role == lev).sum())
            recs.append(
                dict(base, characteristic="role", level=lev, kind="count", n=n, value=100 * n / tot if tot else np.nan)
            )
        age = d["age_band"].where(d["age_band"].notna() & (d["age_band"].astype(str) != ""), NOT_RECORDED).astype(str)
        for lev in (*AGE_BANDS, NOT_RECORDED):
            n = int((age == lev).sum())
            recs.append(
                dict(
                    base,
                    characteristic="age_band",
                    level=lev,
                    kind="count",
                    n=n,
                    value=100 * n / tot if tot else np.nan,
                )
            )
        yq = pd.to_numeric(d["years_qualified"], errors="coerce")
        known = yq.dropna().to_numpy(float)
        m = float(known.mean()) if known.size else np.nan
        sd = float(known.std(ddof=1)) if known.size > 1 else np.nan
        recs.append(dict(base, characteristic="years_qualified", level="recorded", kind="mean", n=known.size, value=m))
        recs.append(dict(base, characteristic="years_qualified", level="recorded", kind="sd", n=known.size, value=sd))
        recs.append(
            dict(
                base,
                characteristic="years_qualified",
                level=NOT_RECORDED,
                kind="not_recorded",
                n=tot - known.size,
                value=np.nan,
            )
        )
    return recs


def baseline_characteristics(data: TrialData) -> BaselineCharacteristics:
    """Role, age band and years qualified by arm, in the randomised and (after follow-up) the analysed sample."""
    parts = with_arm(data)
    recs = _describe(parts, "randomised")
    samples: tuple[str, ...] = ("randomised",)
    outcome = None
    if not awaits_followup(data):
        outcome = protocol_of(data).reference_outcome(data.instrument.scale_names)
        ids = set(analysis_frame(data, outcome)["participant_id"])
        recs += _describe(parts[parts["participant_id"].isin(ids)], "analysed")
        samples = SAMPLES
    return BaselineCharacteristics(pd.DataFrame(recs), outcome, samples, list(data.las))

"""Names of the populations whose counts the book publishes: the keys of the disclosure ledger.

A count of people is published on many pages: the staff randomised to an
arm in an LA appear in the trial flow, the attrition table, the dose table
and the cost page's denominators. The disclosure ledger
(:mod:`isafe_helpers.publish.ledger`) must see them as one unknown, so every
table names the population each of its people cells counts with a key made
here, and never spells one itself.

A key is ``<las>|<population>``: ``<las>`` is one LA code, or the LA codes of
a pooled scope joined by ``+`` (the ledger adds the relation "pooled = sum
of the LAs" itself); ``<population>`` is a ``|``-joined path such as
``staff|arm=treatment|stage=analysed|outcome=confidence``.
"""

from __future__ import annotations

from collections.abc import Iterable

SEP = "|"
LA_JOIN = "+"


def las_tag(las: Iterable[str]) -> str:
    """The LA part of a key: one LA code, or the sorted codes joined by ``+``.

    >>> las_tag(["LA02", "LA01"]), las_tag(["LA07"])
    ('LA01+LA02', 'LA07')
    """
    return LA_JOIN.join(sorted(las))


def key(las: Iterable[str] | str, *parts: str, **fields) -> str:
    """A ledger key: the LAs, then the population's parts and ``name=value`` fields in order given.

    >>> key(["LA01"], "staff", arm="treatment", stage="analysed")
    'LA01|staff|arm=treatment|stage=analysed'
    """
    tag = las if isinstance(las, str) else las_tag(las)
    bits = [*parts, *(f"{k}={v}" for k, v in fields.items() if v is not None)]
    return SEP.join([tag, *bits])


def split(k: str) -> tuple[list[str], str]:
    """The LAs of a key and its population.

    >>> split("LA01+LA02|staff|arm=control")
    (['LA01', 'LA02'], 'staff|arm=control')
    """
    tag, _, population = k.partition(SEP)
    return tag.split(LA_JOIN), population


# ---------------------------------------------------------------------------
# The populations the book counts, named once (every table uses these)
# ---------------------------------------------------------------------------
def staff(las, arm: str | None = None) -> str:
    """Staff randomised (in the participants file), in an arm or both."""
    return key(las, "staff", arm=arm)


def analysed(las, outcome: str, arm: str | None = None) -> str:
    """Staff in the analysed sample of ``outcome`` (both waves scored), in an arm or both."""
    return key(las, "staff", arm=arm, analysed=outcome)


def stage(las, name: str, arm: str | None = None) -> str:
    """Staff at a stage of the trial flow (followed up, lost, not analysed ...), in an arm or both."""
    return key(las, "staff", arm=arm, stage=name)


def dose(las, sessions: str) -> str:
    """Intervention-team staff by practice-pathway sessions attended (``none``, ``one``, ``both``)."""
    return key(las, "staff", arm="treatment", dose=sessions)


def reached(las) -> str:
    """Intervention-team staff who attended at least one practice-pathway session (= dose one + both)."""
    return key(las, "staff", arm="treatment", reached="yes")


def attendees(las, component: str) -> str:
    """Distinct people who attended a component (staff outside the participants file included)."""
    return key(las, "attendees", component=component)


def respondents(las, component: str, answer: str | None = None) -> str:
    """Distinct people who gave feedback on a component (``answer``: a rating or group of ratings)."""
    return key(las, "respondents", component=component, answer=answer)

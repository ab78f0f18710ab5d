"""Property-based tests (issue 23): small valid roots with degenerate features never break an analysis.

Hypothesis draws a root's shape (one or two LAs; every team in one arm; one
team per arm; one member per team) and its degenerate features (constant
items; a scale constant by wave or LA; case files that separate the arms; an
LA with no case files; no feedback; no fidelity log; no costs of a phase;
every follow-up survey missing in one arm; duplicated answers; values at
the bounds of the rules), and asserts what a reader may rely on: the
analyses do not raise, every value not estimable has a reason, and every
published statistic is finite (:func:`degenerate.check`).

Two tiers. The many examples vary a loaded root's tables in memory
(:func:`degenerate.vary`) and run each model of one scale; a few examples
write the root to disk, load it through the data contract and run every
analysis the notebooks run. A whole book is built from such roots by
``tests/test_not_estimable.py`` (the five roots of the issue).

Profiles (``ISAFE_PROPERTY_PROFILE``): ``ci`` (the default: 200 in-memory
roots and 5 on disk, derandomised so every run checks the same examples, a
few minutes on 2 cores) and ``deep`` (5,000 and 200, random: a weekly run,
about an hour), e.g.
``ISAFE_PROPERTY_PROFILE=deep pytest tests/test_degenerate_properties.py -o addopts=""``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from functools import cache
from pathlib import Path

import pytest
from degenerate import ITEMS, SCALE_ITEMS, Spec, analyse, analyse_light, check, make_root, vary
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from isafe_helpers.data.loading import load_root

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_CI = dict(derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking in CI time
settings.register_profile("isafe-ci", max_examples=200, **_CI, **_COMMON)
settings.register_profile("isafe-ci-disk", max_examples=5, **_CI, **_COMMON)
settings.register_profile("isafe-deep", max_examples=5000, **_COMMON)
settings.register_profile("isafe-deep-disk", max_examples=200, **_COMMON)
PROFILE = os.environ.get("ISAFE_PROPERTY_PROFILE", "ci")
if PROFILE not in ("ci", "deep"):
    raise ValueError(f"ISAFE_PROPERTY_PROFILE must be ci or deep, got {PROFILE!r}")

#: Shapes: per LA the arm of each team, and staff per team.
SHAPES = (
    (("ttcc", "tcct"), 3),  # an ordinary two-LA trial
    (("ttcc",), 3),  # one LA
    (("tc", "ct"), 3),  # one team per arm in each LA
    (("tttt", "tcct"), 2),  # an LA with every team in one arm
    (("cccc", "cccc"), 2),  # one arm only
    (("tcct",), 1),  # one member per team
)
SCALES = tuple(SCALE_ITEMS)


@st.composite
def specs(draw, shape=None) -> tuple[Spec, str]:
    arms, staff = shape if shape is not None else draw(st.sampled_from(SHAPES))
    spec = Spec(
        arms=list(arms),
        staff=staff,
        seed=draw(st.integers(0, 2**16)),
        constant_scales=draw(
            st.lists(
                st.tuples(
                    st.sampled_from(SCALES),
                    st.one_of(st.none(), st.integers(0, 1)),
                    st.sampled_from([None, "baseline", "followup"]),
                ),
                max_size=2,
            )
        ),
        constant_items=draw(st.lists(st.sampled_from(ITEMS), max_size=3)),
        separation=draw(st.booleans()),
        no_casefiles=draw(st.lists(st.integers(0, len(arms) - 1), max_size=1)),
        feedback=draw(st.booleans()),
        fidelity=draw(st.booleans()),
        no_cost_phase=draw(st.sampled_from([None, "setup", "delivery"])),
        no_followup_arm=draw(st.sampled_from([None, None, "treatment", "control"])),
        duplicated=draw(st.booleans()),
        extremes=draw(st.booleans()),
    )
    return spec, draw(st.sampled_from(SCALES))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """The loaded root of each shape, made once per module (loading validates every file)."""

    @cache
    def base(shape):
        return load_root(make_root(tmp_path_factory.mktemp("shape"), Spec(arms=list(shape[0]), staff=shape[1])))

    return base


@settings(settings.get_profile(f"isafe-{PROFILE}"))
@given(st.data())
def test_degenerate_tables_give_reasons_not_errors(bases, data):
    shape = data.draw(st.sampled_from(SHAPES))
    spec, scale = data.draw(specs(shape))
    varied = vary(bases(shape), spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = analyse_light(varied, scale)
    assert check(results) > 0


@settings(settings.get_profile(f"isafe-{PROFILE}-disk"))
@given(specs())
def test_degenerate_roots_load_and_every_analysis_says_why(drawn):
    spec, _scale = drawn
    with tempfile.TemporaryDirectory() as tmp:  # one folder per example, removed after it
        data = load_root(make_root(Path(tmp), spec))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = analyse(data, heavy=False)
    assert check(results) > 0

"""The standardised effect size g = beta / sqrt(s2_B + s2_W) and its interval (methods.md).

Hand-computed cases and the property that defines the interval: it is the
model's interval for beta over the same SD, so it excludes 0 exactly when the
model's test rejects at 5%. The g of the primary model on the bundled data is
pinned to lme4/lmerTest in ``test_impact_kr_reference.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from isafe_helpers.stats.effect_size import StandardisedEffect, standardised_effect
from isafe_helpers.stats.inference import interval


def test_hand_computed_case():
    # beta 0.3, SE 0.1, CI (0.1, 0.5); s2_B 0.05 + s2_W 0.2 = 0.25 -> SD 0.5
    g = standardised_effect(0.3, 0.1, 0.1, 0.5, 0.05, 0.2)
    assert isinstance(g, StandardisedEffect)
    assert (g.estimate, g.se, g.ci_low, g.ci_high, g.sd) == pytest.approx((0.6, 0.2, 0.2, 1.0, 0.5), rel=1e-15)


def test_no_bias_factor_and_no_separate_variance():
    """Unlike Hedges (2007), g does not shrink with the team sizes and its SE is the model's SE over the SD."""
    g = standardised_effect(0.25, 0.08, 0.09, 0.41, 0.1, 0.9)
    assert g.estimate == 0.25  # SD = 1: g is beta itself
    assert g.se == 0.08 and (g.ci_low, g.ci_high) == (0.09, 0.41)


@pytest.mark.parametrize("seed", range(20))
def test_the_g_interval_agrees_with_the_models_test(seed):
    rng = np.random.default_rng(seed)
    beta, se, df = rng.normal(0, 0.2), rng.uniform(0.02, 0.2), rng.uniform(3, 80)
    s2b, s2w = rng.uniform(0, 0.3), rng.uniform(0.2, 1.5)
    ci = interval(beta, se, df)
    g = standardised_effect(beta, se, ci.ci_low, ci.ci_high, s2b, s2w)
    sd = math.sqrt(s2b + s2w)
    assert g.ci_low == pytest.approx(ci.ci_low / sd, rel=1e-14) and g.ci_high == pytest.approx(ci.ci_high / sd)
    assert (g.ci_low > 0 or g.ci_high < 0) == (ci.p_value < 0.05)
    assert interval(g.estimate, g.se, df).p_value == pytest.approx(ci.p_value, rel=1e-12)


def test_sign_and_zero_team_variance():
    pos = standardised_effect(0.3, 0.1, 0.1, 0.5, 0.0, 4.0)
    neg = standardised_effect(-0.3, 0.1, -0.5, -0.1, 0.0, 4.0)
    assert neg.estimate == -pos.estimate and (neg.ci_low, neg.ci_high) == (-pos.ci_high, -pos.ci_low)
    assert pos.sd == 2.0


@pytest.mark.parametrize("s2b, s2w", [(-0.1, 1.0), (0.0, 0.0), (np.inf, 1.0), (np.nan, 1.0)])
def test_bad_variances_are_refused(s2b, s2w):
    with pytest.raises(ValueError, match="variances must be finite and non-negative"):
        standardised_effect(0.3, 0.1, 0.1, 0.5, s2b, s2w)

"""The analysis frames are reshaped once per TrialData and outcome, and every caller gets its own copy."""

from __future__ import annotations

import gc

import pandas as pd

from isafe_helpers.data import frames
from isafe_helpers.data.loading import load_root


def _fresh(data, outcome):
    """The frame as reshaped from scratch (what the cached one must equal)."""
    df = frames._scores(frames.with_arm(data), data, outcome)
    return frames._typed(df.dropna(subset=frames.WAVES_WIDE).copy())


def test_a_cached_frame_equals_a_fresh_one_and_is_a_copy(small_root):
    data = load_root(small_root)
    outcome = "confidence"
    first = frames.analysis_frame(data, outcome)
    pd.testing.assert_frame_equal(first, _fresh(data, outcome))
    first["baseline"] = -1.0  # a caller changing its frame changes no other caller's
    again = frames.analysis_frame(data, outcome)
    pd.testing.assert_frame_equal(again, _fresh(data, outcome))
    assert frames.survey_wide(data, outcome) is not frames.survey_wide(data, outcome)


def test_frames_of_other_data_are_their_own_and_go_with_their_data(small_root):
    data = load_root(small_root)
    one = data.for_scope(data.las[0])
    a = frames.analysis_frame(data, "confidence")
    b = frames.analysis_frame(one, "confidence")
    assert set(b["la"]) == {data.las[0]} and len(a) > len(b)
    ident = id(one)
    del one
    gc.collect()
    assert ident not in frames._MADE

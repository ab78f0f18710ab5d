"""Scale scores, as the data contract defines them."""

from __future__ import annotations

import pandas as pd

from isafe_helpers.data.contract import Instrument


def score_scales(survey: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Add one score column per scale to a survey frame.

    A scale score is the mean of the answered items after reverse coding
    (``x -> min + max - x``, i.e. ``6 - x`` for a 1-5 item), computed only
    when at least ``ceil(2k/3)`` of its ``k`` items are answered; otherwise
    it is missing.

    Parameters
    ----------
    survey : DataFrame
        Validated survey rows with the instrument's item columns.
    instrument : Instrument
        The scales, their items and reverse-coded items.

    Returns
    -------
    DataFrame
        A copy of ``survey`` with a float column per scale name.

    Examples
    --------
    >>> from isafe_helpers.data.contract import Instrument, Scale
    >>> inst = Instrument((Scale("s", ("a", "b", "c"), reverse=("c",)),))
    >>> df = pd.DataFrame({"a": [5, 4, None], "b": [3, None, None], "c": [1, 2, 2]})
    >>> score_scales(df, inst)["s"].tolist()
    [4.333333333333333, 4.0, nan]
    """
    out = survey.copy()
    for scale in instrument.scales:
        items = pd.DataFrame(
            {
                i: pd.to_numeric(out[i], errors="coerce").astype(float) if i in out else float("nan")
                for i in scale.items
            },
            index=out.index,
        )
        for i in scale.reverse:
            items[i] = scale.min + scale.max - items[i]
        answered = items.notna().sum(axis=1)
        out[scale.name] = items.mean(axis=1).where(answered >= scale.min_answered).astype(float)
    return out

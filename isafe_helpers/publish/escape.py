"""The one way data-derived text reaches a page (:mod:`isafe_helpers.results.escape`, re-exported here).

The functions live in the results layer so that an analysis composing a
sentence from data-derived names (a scale's name from ``instrument.yml``)
escapes it where it composes it.
"""

from isafe_helpers.results.escape import html_text, md

__all__ = ["html_text", "md"]

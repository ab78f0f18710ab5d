"""Publishing: disclosure control, tables, figures, prose, the executive summary and the book."""

#: The file beside a scope's ``estimates.csv`` in which a strand's notebook records what its page shows
#: (:mod:`isafe_helpers.publish.report`); here, so the pipeline names it without importing the publisher.
SPECS = "{strand}.specs.pkl"

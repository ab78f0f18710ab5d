"""The ISAFE analysis handbook's package.

Layers, each importing only from those above it in this list:

- :mod:`~isafe_helpers.portable`: what the platform offers (fork, Unix sockets, file locks), with portable fallbacks;
- :mod:`~isafe_helpers.config`, :mod:`~isafe_helpers.resources`: settings and where the handbook's files are;
- :mod:`~isafe_helpers.outputs`: the folders the handbook makes and alone deletes, and spreadsheet-safe cells;
- :mod:`~isafe_helpers.data`: the data contract, reading and validating a data root, analysis frames, the
  synthetic trial;
- :mod:`~isafe_helpers.stats`: estimators on arrays (REML, small-sample intervals, GEE, cluster-robust,
  randomisation, imputation, effect size, power);
- :mod:`~isafe_helpers.results`: the shape of a result (``tidy()``, ``table()``), ``estimates.csv``, labels;
- :mod:`~isafe_helpers.impact`, :mod:`~isafe_helpers.process`, :mod:`~isafe_helpers.cost`: the three strands'
  analyses (they do not import each other);
- :mod:`~isafe_helpers.publish`: disclosure control, tables, figures, the summary and the book;
- :mod:`~isafe_helpers.run`: the command line and the pipeline that runs the notebooks.
"""

__version__ = "0.2.0"

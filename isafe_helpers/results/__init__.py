"""Results: the one shape every analysis returns (``tidy()``, ``table()``), ``estimates.csv`` and labels."""

"""Data: the contract, reading and validating a data root, analysis frames, and the synthetic trial."""

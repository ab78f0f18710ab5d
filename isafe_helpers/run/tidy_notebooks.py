"""Strip volatile metadata (timings, papermill's run record, random cell ids) from notebooks.

Used on the committed notebooks after `make notebooks`, so that rerunning
them changes a file only where an output changed.

    python -m isafe_helpers.run.tidy_notebooks notebooks/*.ipynb
"""

from __future__ import annotations

import sys

import nbformat


def tidy(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill gives it a random id
    nbformat.write(nb, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        tidy(p)

"""Run Jupyter Book's Sphinx build in a process of its own (:func:`isafe_helpers.publish.build.build_book` starts it).

``python -m isafe_helpers.publish.sphinx_build SOURCE WORK JOBS``. A module
apart from :mod:`~isafe_helpers.publish.build`, so the process imports Sphinx
and nothing of the handbook's staging.
"""

from __future__ import annotations

import sys
from pathlib import Path


def run(source: str, work: str, jobs: str) -> int:
    """Run Jupyter Book's Sphinx build as ``jupyter-book build --path-output work -W --keep-going`` would, with ``-j``."""
    from jupyter_book.sphinx import build_sphinx

    src = Path(source)
    result = build_sphinx(
        src,
        Path(work) / "html",
        use_external_toc=True,
        noconfig=True,
        path_config=str(src / "_config.yml"),
        confoverrides={"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False},
        doctreedir=Path(work) / "doctrees",
        builder="html",
        warningiserror=True,
        keep_going=True,
        jobs=int(jobs),
    )
    return result if isinstance(result, int) else 1


if __name__ == "__main__":
    sys.exit(run(*sys.argv[1:4]))

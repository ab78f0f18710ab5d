"""Where the handbook's own files are: in a checkout, or beside an installed package.

The notebooks and the book's sources (``notebooks/``, ``book/``,
``_config.yml``, ``_toc.yml``) live at the root of a checkout. An installed
wheel carries them as data files under ``<prefix>/share/isafe-handbook/``.
:data:`SOURCES` is whichever holds them: the checkout when the package is
imported from one (an editable install included), else the installed copy.
Results and the built book default to ``results/`` and ``_build/`` in the
checkout, or in the working folder when installed; ``--out``, ``--build``
and ``--data`` set them for a run.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _checkout() -> Path | None:
    root = PACKAGE.parent
    return root if (root / "_toc.yml").is_file() and (root / "notebooks").is_dir() else None


#: The checkout holding this package, or None when it is installed.
CHECKOUT = _checkout()
#: Where an installed wheel puts the notebooks and the book's sources.
SHARE = Path(sysconfig.get_path("data")) / "share" / "isafe-handbook"
#: The folder holding ``notebooks/``, ``book/``, ``_config.yml`` and ``_toc.yml``.
SOURCES = CHECKOUT or SHARE
NOTEBOOKS = SOURCES / "notebooks"
BOOK_PAGES = SOURCES / "book"
#: The bundled synthetic trial (in a checkout; an installed package needs ``--data``).
BUNDLED_DATA = SOURCES / "data" / "synthetic"
_HOME = CHECKOUT or Path.cwd()
DEFAULT_OUT = _HOME / "results"
BUILD = _HOME / "_build"

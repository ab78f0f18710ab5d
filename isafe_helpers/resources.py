"""Where the handbook's own files are: in a checkout, or beside an installed package.

The notebooks and the book's sources (``notebooks/``, ``book/``,
``_config.yml``, ``_toc.yml``) live at the root of a checkout. An installed
wheel carries them as data files (``[tool.setuptools.data-files]`` in
``pyproject.toml``) under ``<prefix>/share/isafe-handbook/``; the prefix is
found from the installed distribution's file list, so a ``--user`` or
``--prefix`` install works too. :data:`SOURCES` is whichever holds them: the
checkout when the package is imported from one (an editable install
included), else the installed copy.
Results and the built book default to ``results/`` and ``_build/`` in the
checkout, or in the working folder when installed; ``--out``, ``--build``
and ``--data`` set them for a run.
"""

from __future__ import annotations

import sysconfig
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: The distribution (``pyproject.toml``'s ``project.name``) that installs this package.
DISTRIBUTION = "isafe-helpers"
#: The folder, under an install's data prefix, that holds the notebooks and the book's sources.
SHARE_NAME = "isafe-handbook"


def _checkout() -> Path | None:
    root = PACKAGE.parent
    return root if (root / "_toc.yml").is_file() and (root / "notebooks").is_dir() else None


def _installed_share() -> Path:
    """``share/isafe-handbook`` of the install that holds this very package.

    The distribution's RECORD lists every installed file relative to its
    site-packages, data files included, so this finds them wherever pip put
    the prefix. Falls back to the interpreter's data prefix.
    """
    for dist in metadata.distributions(name=DISTRIBUTION):
        if Path(str(dist.locate_file("isafe_helpers/__init__.py"))).resolve() != PACKAGE / "__init__.py":
            continue  # another install of the same name earlier on sys.path
        for f in dist.files or ():
            if f.name == "_toc.yml" and f.parent.name == SHARE_NAME:
                return Path(str(dist.locate_file(f))).resolve().parent
    return Path(sysconfig.get_path("data")) / "share" / SHARE_NAME


#: The checkout holding this package, or None when it is installed.
CHECKOUT = _checkout()
#: Where an installed wheel put the notebooks and the book's sources.
SHARE = _installed_share() if CHECKOUT is None else Path(sysconfig.get_path("data")) / "share" / SHARE_NAME
#: The folder holding ``notebooks/``, ``book/``, ``_config.yml`` and ``_toc.yml``.
SOURCES = CHECKOUT or SHARE
NOTEBOOKS = SOURCES / "notebooks"
BOOK_PAGES = SOURCES / "book"
#: The bundled synthetic trial (in a checkout; an installed package needs ``--data``).
BUNDLED_DATA = SOURCES / "data" / "synthetic"
_HOME = CHECKOUT or Path.cwd()
DEFAULT_OUT = _HOME / "results"
BUILD = _HOME / "_build"

"""A small Sphinx extension for the book: pages that open cleanly offline.

- Each page's scripts are de-duplicated: sphinx-thebe registers its inline
  configuration once per read of the sources, and a page that declares
  ``const THEBE_JS_URL`` twice logs a JavaScript error.
- The print header's page title is escaped: sphinx-book-theme writes it raw.
- The theme's colour mode defaults to ``light``: without a stored choice the
  pydata theme reads an empty mode, and logs an error before falling back.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``.
"""

from __future__ import annotations

import html


def _clean_page(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        seen, kept = set(), []
        for js in scripts:
            # an inline script's filename is None or "", depending on who added it
            key = (
                str(getattr(js, "filename", js) or ""),
                tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())),
            )
            if key not in seen:
                seen.add(key)
                kept.append(js)
        scripts[:] = kept
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    # sphinx-book-theme writes the page title's plain text raw into the print
    # header (``<h1>{{ pagetitle }}</h1>``): a title made from data (an LA's
    # name) must be escaped there like everywhere else
    if context.get("pagetitle"):
        context["pagetitle"] = html.escape(context["pagetitle"], quote=False)


def setup(app):
    app.connect("html-page-context", _clean_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

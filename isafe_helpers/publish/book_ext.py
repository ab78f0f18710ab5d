"""A small Sphinx extension for the book: pages that open cleanly offline, and builds that scale.

Pages:

- Each page's scripts are de-duplicated: sphinx-thebe registers its inline
  configuration once per read of the sources, and a page that declares
  ``const THEBE_JS_URL`` twice logs a JavaScript error.
- The print header's page title is escaped: sphinx-book-theme writes it raw.
- The theme's colour mode defaults to ``light``: without a stored choice the
  pydata theme reads an empty mode, and logs an error before falling back.
- The search page writes what it found as text, never as HTML: Sphinx
  7.4's ``searchtools.js`` sets each result's title (and an object's
  description) with ``innerHTML``, and a title holds data-derived text (an
  LA's name from ``la.yml``), so ``<img src=x onerror=...>`` in a name ran
  script on the search page (Sphinx issue 13355, fixed upstream in 8.2 by
  escaping them). The script copied into ``_static`` is rewritten to set
  them with ``textContent`` (:func:`safe_searchtools`), before any page is
  written (so every page links it with its checksum); a script with any
  other ``innerHTML`` assignment fails the build rather than shipping
  unchecked. Rewriting the script rather than escaping the search index
  keeps the index holding the text as it is (searching for ``&`` or ``<``
  finds it) and covers every title, whatever its source; the rewrite is
  two lines, checked on every build against the Sphinx in use.
- The download menu keeps "print to PDF" only: the HTML carries no copy of
  the page sources (``html_copy_source: false`` in ``_config.yml``), so
  their links would lead nowhere.

Builds (:mod:`isafe_helpers.publish.build` runs Sphinx incrementally, in
parallel):

- Parallel reading and writing are declared safe for three extensions
  that do not declare it, and keep no state per document:
  ``sphinx-mathjax-offline`` (it only copies MathJax into ``_static`` when
  the build has finished), ``sphinx_jupyterbook_latex`` (its transforms
  change each document's own doctree; its environment state is set for
  LaTeX builds only) and ``sphinx_multitoc_numbering`` (loaded by Jupyter
  Book when a ``_toc.yml`` numbers its chapters; it replaces the section
  numbering that Sphinx runs once, in the main process, after every
  document has been read). Left undeclared, Sphinx warns under ``-j``, and
  ``-W`` makes that an error.
- Every page carries the navigation (titles and the table of contents of
  the whole book). When a rebuild changes any title or the table of
  contents, every page is rewritten, so an incremental build equals a clean
  one; otherwise only the pages that changed are written.
- MathJax and myst-nb's stylesheet, which their extensions copy only when
  the build has finished, are copied before any page is written: a page
  links an asset with its checksum (``?v=...``) only when the asset is
  already in the output, so without this a page written by a clean build
  and the same page written by an incremental one would differ.
- Search terms left with no page by an incremental build (Sphinx drops
  the rewritten pages from the loaded index, not the words only they had)
  are dropped before the index is written, as a clean build never has them.
- Images no page uses any more (figures of a page since rewritten) are
  deleted from ``_images`` after a build, as a clean build would not have them.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path


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
    toctree = context.get("generate_toctree_html")
    if callable(toctree) and not getattr(toctree, "isafe_named", False):
        context["generate_toctree_html"] = _named_toggles(toctree)
    for group in context.get("header_buttons") or []:
        if group.get("label") == "download-buttons":
            group["buttons"] = [
                b
                for b in group.get("buttons", [])
                if b.get("label") not in ("download-source-button", "download-notebook-button")
            ]


def _named_toggles(toctree):
    """The theme's sidebar builder, with each expand/collapse toggle given a name.

    pydata-sphinx-theme draws a ``<summary>`` holding only a chevron icon,
    which a screen reader announces as an unnamed control (axe-core's
    ``summary-name``, WCAG 4.1.2). Each toggle is named after the page whose
    sub-pages it shows: "Show or hide the pages under Ashvale (LA01)". The
    theme caches the (BeautifulSoup) tree it returns, so naming is idempotent.
    """

    def named(*args, **kwargs):
        out = toctree(*args, **kwargs)
        for summary in out.select("details > summary") if hasattr(out, "select") else []:
            if summary.get("aria-label"):
                continue
            link = summary.parent.parent.find("a", recursive=False) if summary.parent.parent else None
            text = " ".join(link.get_text().split()) if link is not None else ""
            summary["aria-label"] = f"Show or hide the pages under {text}" if text else "Show or hide the pages"
        return out

    named.isafe_named = True  # type: ignore[attr-defined]
    return named


# --------------------------------------------------------------------------
# Parallel reading
# --------------------------------------------------------------------------
#: Extensions that keep no state per document but do not say they are parallel-safe (see above).
PARALLEL_SAFE = ("sphinx-mathjax-offline", "sphinx_jupyterbook_latex", "sphinx_multitoc_numbering")


def _declare_parallel_safe(app, env, docnames) -> None:
    for name in PARALLEL_SAFE:
        ext = app.extensions.get(name)
        if ext is not None:
            ext.parallel_read_safe = ext.parallel_write_safe = True


# --------------------------------------------------------------------------
# Navigation: rewrite every page when it changes
# --------------------------------------------------------------------------
def _navigation(env) -> str:
    titles = {d: env.titles[d].astext() for d in sorted(env.titles) if d in env.found_docs}
    tree = {d: list(v) for d, v in sorted(env.toctree_includes.items())}
    numbers = {d: sorted(map(str, v.items())) for d, v in sorted(env.toc_secnumbers.items())}
    text = json.dumps([titles, tree, numbers, sorted(env.found_docs)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _rewrite_all_if_navigation_changed(app, env) -> list[str]:
    nav = _navigation(env)
    old = env.__dict__.get("isafe_navigation")
    env.isafe_navigation = nav
    return sorted(env.found_docs) if old is not None and old != nav else []


# --------------------------------------------------------------------------
# Assets copied at the end by their extensions: copy them before the pages
# --------------------------------------------------------------------------
def _late_assets_first(app, env) -> None:
    if app.builder.format != "html":
        return
    ext = app.extensions.get("sphinx-mathjax-offline")
    if ext is not None and hasattr(ext.module, "copy_mathjax_files"):
        ext.module.copy_mathjax_files(app, None)
    if "myst_nb" in app.extensions:
        from myst_nb.sphinx_ext import add_global_html_resources

        add_global_html_resources(app, None)


# --------------------------------------------------------------------------
# Search terms with no page left
# --------------------------------------------------------------------------
def _drop_empty_search_terms(app) -> list:
    indexer = getattr(app.builder, "indexer", None)
    for name in ("_mapping", "_title_mapping"):
        mapping = getattr(indexer, name, None)
        if isinstance(mapping, dict):
            for word in [w for w, docs in mapping.items() if not docs]:
                del mapping[word]
    _restore_index_entries(app, indexer)
    return []  # an html-collect-pages handler: no pages of its own


def _restore_index_entries(app, indexer) -> None:
    """Give back the index entries (glossary terms) of pages an incremental build did not rewrite.

    Sphinx 7.4 reloads the previous search index's words and titles for the
    pages it does not write again, but not their index entries, so an
    incremental build would drop every glossary term from the search. They
    are read back from the previous ``searchindex.js``; the entries are then
    ordered by page, as a clean build's are whatever order pages were written in.
    """
    entries = getattr(indexer, "_index_entries", None)
    if not isinstance(entries, dict):
        return
    old = Path(app.outdir) / "searchindex.js"
    if old.is_file():
        text = old.read_text(encoding="utf-8")
        try:
            frozen = json.loads(text[text.index("(") + 1 : text.rindex(")")])
        except ValueError:
            frozen = {}
        names = frozen.get("docnames", [])
        restored: dict[str, set] = {}
        for entry, places in (frozen.get("indexentries") or {}).items():
            for doc, target, main in places:
                name = names[doc] if 0 <= doc < len(names) else None
                if name is not None and name not in entries and name in app.env.found_docs:
                    restored.setdefault(name, set()).add((entry, target, "main" if main else ""))
        for name, found in restored.items():
            entries[name] = sorted(found)
    ordered = sorted(entries.items())
    entries.clear()
    entries.update(ordered)


# --------------------------------------------------------------------------
# Images no page uses any more
# --------------------------------------------------------------------------
def _drop_unused_images(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    used = {name for _, name in app.env.images.values()}
    folder = Path(app.outdir) / "_images"
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and p.name not in used:
                p.unlink()


#: ``searchtools.js``'s writes of a result's title and description as HTML, and their text-node forms.
_SEARCH_AS_TEXT = (
    ("linkEl.innerHTML = title;", "linkEl.textContent = title;"),
    (
        'listItem.appendChild(document.createElement("span")).innerHTML =',
        'listItem.appendChild(document.createElement("span")).textContent =',
    ),
)
#: An assignment to ``innerHTML`` whose value is not escaped first.
_UNSAFE_HTML = re.compile(r"\.innerHTML\s*=(?!\s*_escapeHTML\()")


def safe_searchtools(text: str) -> str:
    """Sphinx's ``searchtools.js`` with every search result written as text (``textContent``), not HTML.

    Raises
    ------
    ValueError
        The script still assigns ``innerHTML`` an unescaped value (a Sphinx
        whose script this rewrite does not know): the build stops rather than
        publish a search page that may run a title as HTML.
    """
    for unsafe, safe in _SEARCH_AS_TEXT:
        text = text.replace(unsafe, safe)
    left = [ln.strip() for ln in text.splitlines() if _UNSAFE_HTML.search(ln)]
    if left:
        raise ValueError(f"searchtools.js writes HTML from the search index in a way not reviewed: {left[0]}")
    return text


def _text_titles() -> None:
    """Have the search index hold each page's title as text, as it holds section titles (as Sphinx 8.2 does).

    Sphinx 7.4 stores a page's title as HTML (``&lt;`` for ``<``) and its
    section titles as text; the search script, which now writes text, would
    show the entities.
    """
    from sphinx.search import IndexBuilder

    if getattr(IndexBuilder.feed, "_isafe_text", False):
        return
    feed = IndexBuilder.feed

    def text_feed(self, docname, filename, title, doctree):
        return feed(self, docname, filename, html.unescape(re.sub(r"<[^>]*>", "", title)), doctree)

    text_feed._isafe_text = True  # type: ignore[attr-defined]
    IndexBuilder.feed = text_feed  # type: ignore[method-assign]


def _search_writes_text(app) -> None:
    """Have the builder rewrite ``_static/searchtools.js`` (:func:`safe_searchtools`) right after copying it."""
    builder = app.builder
    _text_titles()
    if builder.format != "html" or not hasattr(builder, "copy_static_files"):
        return
    copy = builder.copy_static_files

    def copy_then_rewrite() -> None:
        copy()
        path = Path(builder.outdir) / "_static" / "searchtools.js"
        if path.is_file():
            from sphinx.errors import ExtensionError

            old = path.read_text(encoding="utf-8")
            try:
                new = safe_searchtools(old)
            except ValueError as err:
                raise ExtensionError(str(err)) from None
            if new != old:
                path.write_text(new, encoding="utf-8")

    builder.copy_static_files = copy_then_rewrite


def setup(app):
    app.connect("builder-inited", _search_writes_text)
    app.connect("env-before-read-docs", _declare_parallel_safe)
    app.connect("env-get-updated", _rewrite_all_if_navigation_changed)
    app.connect("env-updated", _late_assets_first)
    app.connect("html-page-context", _clean_page, priority=900)
    app.connect("html-collect-pages", _drop_empty_search_terms)
    app.connect("build-finished", _drop_unused_images)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

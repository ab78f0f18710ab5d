"""The evaluator's own pages (``report/`` at the data root) staged into the book, their numbers read from its facts.

The pages were checked when the data root was validated
(:mod:`isafe_helpers.data.report_pages`), before any notebook ran. Here, once
the book's disclosure ledger is solved, each ``{fact}`KEY``` is replaced by
the text the book publishes for that cell (:meth:`BookDisclosure.facts`):
its value at the book's rounding, or the symbol the book shows (``[c]``
withheld, ``[x]`` not available). So an authored page can never show a
number the results pages do not, nor one the disclosure plan withholds.

Why at staging, not as a Sphinx role: the facts exist only in the staging
process (after the ledger is solved); a role would need them passed to
Sphinx in a side file, and the PDF is printed from the built HTML, so
substituting here gives the HTML and both PDFs the same text with no new
machinery.

A cited fact no page of the book publishes (a key that exists in no
``estimates.csv``, or a cell no results table shows) is refused with a
:class:`~isafe_helpers.publish.book.BookError` naming the file and line
("not published on any page"): the book prints no number of its own, and
an authored page is no exception.

The inserted text goes through the project's one escaping function
(:func:`isafe_helpers.publish.escape.md`). The evaluator's own words keep
their Markdown (headings, emphasis, lists, links, tables, admonitions,
figures): validation has already refused what could run code, read other
files or pass raw HTML through, and ``{{ }}`` substitutions; nothing else
in MyST can reach outside the page.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from isafe_helpers.data import report_pages as R
from isafe_helpers.publish.escape import md
from isafe_helpers.publish.tables import NOT_AVAILABLE

#: Where the pages go in the staged book (``book/report/<page>.md``).
STAGED = "book/report"

_FACT = re.compile(r"\{fact\}`([^`]*)`|(`+).*?\2")  # a fact, or a code span (left as written)


def substitute(file: str, text: str, facts: dict, pages: set | None = None) -> tuple[str, list[str]]:
    """``text`` with each ``{fact}`` replaced by its published text; and the citations no page publishes.

    >>> from types import SimpleNamespace as NS
    >>> f = {("trial", "impact", "primary", "confidence", "hedges_g", "estimate"): NS(text="0.17")}
    >>> substitute("p.md", "g = {fact}`trial/impact/primary/confidence/hedges_g`.", f)
    ('g = 0&#46;17.', [])
    >>> print(*substitute("p.md", "{fact}`trial/cost/x//y:n`", f)[1])
    p.md, line 1: {fact}`trial/cost/x//y:n` is not published on any page of the book
    """
    missing: list[str] = []
    lines = text.splitlines(keepends=True)
    prose = {n for n, _ in R.prose_lines(text)}
    for i, line in enumerate(lines):
        if i + 1 not in prose:
            continue

        def swap(m: re.Match, line_no: int = i + 1) -> str:
            if m.group(2):
                return m.group(0)
            key, why = R.parse_fact(m.group(1))
            fact = facts.get(key) if key is not None else None
            if fact is None and key is not None and pages is not None and (key[0], key[1]) not in pages:
                return md(NOT_AVAILABLE)  # its page did not run (failed, or not in this run): not available
            if fact is None:
                missing.append(
                    f"{file}, line {line_no}: {{fact}}`{m.group(1)}` "
                    + ("is not published on any page of the book" if key is not None else why)
                )
                return m.group(0)
            return md(fact.text)

        lines[i] = _FACT.sub(swap, line)
    return "".join(lines), missing


def stage_report(data_root: Path, book_dir: Path, facts: dict, pages: set | None = None) -> tuple[list[str], list[str]]:
    """Write the authored pages (and the other files of ``report/``: images) into ``book_dir/report``.

    Returns the staged pages' toc entries (``book/report/<stem>``, in
    ``report.yml``'s order) and every citation no page publishes. ``pages``
    are the (scope, strand) results pages of this book: a fact of a page
    that is not among them (its notebook failed, or was not in this run)
    shows ``[x]``, as the book shows what it could not compute; a fact of
    a page that is there but not published on it is refused.
    """
    folder = Path(data_root) / R.FOLDER
    listed = R.page_list(Path(data_root)) if folder.is_dir() else []
    if not listed:
        return [], []
    out = book_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():  # images and anything else the pages include (checked: inside report/)
        if f.is_file() and f.suffix != ".md" and f.name != R.INDEX and not f.name.startswith("."):
            shutil.copy2(f, out / f.name)
    entries, missing = [], []
    for name in listed:
        text, lost = substitute(f"{R.FOLDER}/{name}", (folder / name).read_text(encoding="utf-8"), facts, pages)
        missing += lost
        (out / name).write_text(text, encoding="utf-8")
        entries.append(f"{STAGED}/{Path(name).stem}")
    return entries, missing


def with_report(toc: dict, entries: list[str]) -> dict:
    """``toc`` with the authored pages first in its Overview part, right after the executive summary (the root)."""
    if not entries:
        return toc
    parts = toc.get("parts") or []
    for part in parts:
        if part.get("caption") == "Overview":
            part["chapters"] = [{"file": e} for e in entries] + list(part.get("chapters") or [])
            return toc
    parts.insert(0, {"caption": "Overview", "chapters": [{"file": e} for e in entries]})
    return toc

"""The evaluator's own pages: ``report/`` at the data root, read and checked before any notebook runs.

``report/report.yml`` lists (``pages:``) the Markdown files of ``report/``
that the book shows, in that order, in its overview part right after the
executive summary (:mod:`isafe_helpers.publish.book`). Each page is MyST
Markdown written by the evaluator; a number is cited, never typed, with
the role ``{fact}`SCOPE/STRAND/ANALYSIS/OUTCOME/QUANTITY``` (an
``estimates.csv`` key; an empty OUTCOME is an empty segment), optionally
followed by ``:FIELD`` (one of :data:`FIELDS`).

:func:`check_report` is the validation step :func:`isafe_helpers.data.loading.load_root`
runs: every problem names the file and line. Refused:

- a key in ``report.yml`` other than ``pages``, a page that is missing,
  not a ``.md`` file or outside ``report/``, a page listed twice;
- raw HTML (tags and comments), which the book would pass through
  unescaped;
- a directive or role that runs code or reads other files (:data:`FORBIDDEN`);
- an image that is not a file inside ``report/``;
- a ``{fact}`` key that is malformed, names a scope that is neither
  ``trial`` nor an LA of the data root, a strand that is not one of the
  three, or a field that is not one of :data:`FIELDS`.

Whether an analysis, outcome and quantity exist is known only once the
notebooks have run: the book checks it when it is staged, and refuses a
cited fact that no page of the book publishes ("not published on any
page"), rather than print a number no table shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from isafe_helpers.data import contract as C
from isafe_helpers.data.readers import Problem

#: The folder at the data root holding the evaluator's pages (never an LA folder).
FOLDER = C.REPORT_FOLDER
#: Its index file.
INDEX = "report.yml"
#: The keys ``report.yml`` may hold.
KEYS = ("pages",)
#: The fields a ``{fact}`` may name after its key (the estimate itself when none is given).
FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_clusters")
#: Directives (and roles) that run code or read other files: refused on an authored page.
FORBIDDEN = ("raw", "eval-rst", "include", "literalinclude", "code-cell", "eval", "glue", "glue:text", "glue:md")

_FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\s*(\{([^}]*)\})?\s*(.*)$")
_ROLE = re.compile(r"\{([A-Za-z0-9_:+-]+)\}`([^`]*)`|(`+).*?\3")  # a role, or a code span (literal)
_TAG = re.compile(r"<!--|</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)")
_IMAGE_DIRECTIVES = ("figure", "image")


@dataclass(frozen=True)
class FactRef:
    """One ``{fact}`` citation: its key (scope, strand, analysis, outcome, quantity, field) and where it is."""

    key: tuple[str, str, str, str, str, str]
    text: str  # as written between the backticks
    file: str
    line: int


def parse_fact(text: str) -> tuple[tuple[str, str, str, str, str, str] | None, str]:
    """The key a ``{fact}`` names, or None and why not.

    >>> parse_fact("trial/impact/primary/confidence/hedges_g")
    (('trial', 'impact', 'primary', 'confidence', 'hedges_g', 'estimate'), '')
    >>> parse_fact("LA01/cost/unit_cost//participants_reached:n")[0]
    ('LA01', 'cost', 'unit_cost', '', 'participants_reached', 'n')
    >>> parse_fact("trial/impact/primary")[1]
    'a fact is SCOPE/STRAND/ANALYSIS/OUTCOME/QUANTITY (five segments, OUTCOME may be empty), optionally :FIELD'
    """
    body, _, fld = text.strip().partition(":")
    parts = body.split("/")
    if len(parts) != 5 or not all(parts[i] for i in (0, 1, 2, 4)):
        return None, (
            "a fact is SCOPE/STRAND/ANALYSIS/OUTCOME/QUANTITY (five segments, OUTCOME may be empty), optionally :FIELD"
        )
    if parts[1] not in C.STRANDS:
        return None, f"strand {parts[1]!r} is not one of {', '.join(C.STRANDS)}"
    fld = fld.strip() or "estimate"
    if fld not in FIELDS:
        return None, f"field {fld!r} is not one of {', '.join(FIELDS)}"
    return (parts[0], parts[1], parts[2], parts[3], parts[4], fld), ""


def page_list(root: Path) -> list[str]:
    """The pages ``report/report.yml`` lists, in order (none without a readable index); checked by :func:`check_report`."""
    index = Path(root) / FOLDER / INDEX
    try:
        data = yaml.safe_load(index.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    pages = data.get("pages") if isinstance(data, dict) else None
    return [str(p) for p in pages] if isinstance(pages, list) else []


def fact_refs(file: str, text: str) -> list[FactRef]:
    """Every ``{fact}`` of a page's text, with its line (outside literal code blocks and spans)."""
    out = []
    for line_no, line in prose_lines(text):
        for m in _ROLE.finditer(line):
            if m.group(1) == "fact":
                key, _ = parse_fact(m.group(2))
                if key is not None:
                    out.append(FactRef(key, m.group(2), file, line_no))
    return out


def prose_lines(text: str):
    """(line number, line) of the lines outside plain (literal) code fences.

    A directive's fence (```` ```{note} ````, ``:::{figure}``) is kept, as
    its body is Markdown; the bare fence that closes it is skipped.

    >>> [n for n, _ in prose_lines("a\\n```{note}\\nb\\n```\\n```\\ncode\\n```\\nc")]
    [1, 2, 3, 8]
    """
    literal = None
    stack: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        mark = m.group(1) if m else ""
        bare = m is not None and not m.group(2) and not m.group(4)
        if literal is not None:
            if bare and mark[0] == literal[0] and len(mark) >= len(literal):
                literal = None
            continue
        if m and m.group(2):
            stack.append(m.group(1))
        elif bare and stack and mark[0] == stack[-1][0] and len(mark) >= len(stack[-1]):
            stack.pop()
            continue
        elif m and m.group(1)[0] in "`~":
            literal = m.group(1)
            continue
        yield n, line


def check_page(file: str, text: str, folder: Path, scopes: set[str]) -> list[Problem]:
    """The problems of one authored page (``file`` as the data root names it), each with its line."""
    problems = []

    def bad(line: int, value: str, rule: str) -> None:
        problems.append(Problem(file, line, None, value, rule))

    for n, line in enumerate(text.splitlines(), 1):  # directives, in and out of fences
        m = _FENCE.match(line)
        if m and m.group(2):
            name = m.group(3).strip()
            if name in FORBIDDEN:
                bad(n, name, f"directive {{{name}}} runs code or reads other files: not allowed on an authored page")
            elif name in _IMAGE_DIRECTIVES:
                problems += _check_image(file, n, m.group(4).strip(), folder)
    for n, line in prose_lines(text):
        prose = _ROLE.sub(lambda m: " " if m.group(3) else m.group(0), line)  # code spans are literal
        for m in _TAG.finditer(prose):
            bad(n, m.group(0)[:40], "raw HTML is not allowed on an authored page: write Markdown")
        for m in _ROLE.finditer(prose):
            if m.group(3):
                continue
            role, body = m.group(1), m.group(2)
            if role in FORBIDDEN:
                bad(n, role, f"role {{{role}}} runs code or reads other files: not allowed on an authored page")
            elif role == "fact":
                key, why = parse_fact(body)
                if key is None:
                    bad(n, body, f"unknown fact key: {why}")
                elif key[0] not in scopes:
                    bad(n, body, f"unknown fact key: scope {key[0]!r} is neither 'trial' nor an LA of the data root")
        for m in _IMAGE.finditer(prose):
            problems += _check_image(file, n, m.group(1), folder)
        if "{{" in prose:
            bad(n, "{{", "substitutions are not allowed on an authored page: cite a number with {fact}")
    return problems


def _check_image(file: str, line: int, target: str, folder: Path) -> list[Problem]:
    path = (folder / target).resolve()
    inside = path.is_relative_to(folder.resolve())
    if not target or "://" in target or not inside or not path.is_file():
        return [Problem(file, line, None, target, "an image must be a file inside report/ (a relative path)")]
    return []


def check_report(root: Path, las: list[str]) -> list[Problem]:
    """Every problem of the data root's ``report/`` folder (none when it has none), each naming file and line."""
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        return []
    where = f"{FOLDER}/{INDEX}"
    index = folder / INDEX
    if not index.is_file():
        return [Problem(where, None, None, None, "report/ has no report.yml listing its pages (pages: [...])")]
    try:
        data = yaml.safe_load(index.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return [
            Problem(where, getattr(getattr(exc, "problem_mark", None), "line", None), None, None, f"unreadable: {exc}")
        ]
    if not isinstance(data, dict):
        return [Problem(where, None, None, None, "must be a mapping with the key pages: a list of Markdown files")]
    problems = [
        Problem(where, _line_of(index, k), k, None, f"unknown key: report.yml holds only {', '.join(KEYS)}")
        for k in data
        if k not in KEYS
    ]
    pages = data.get("pages")
    if not isinstance(pages, list) or not pages:
        problems.append(
            Problem(where, _line_of(index, "pages"), "pages", None, "pages must be a list of Markdown files")
        )
        return problems
    scopes = {C.TRIAL_SCOPE, *las}
    seen: set[str] = set()
    for page in pages:
        name = str(page)
        line = _line_of(index, name)
        path = (folder / name).resolve()
        if name in seen:
            problems.append(Problem(where, line, "pages", name, "page listed twice"))
            continue
        seen.add(name)
        if not name.endswith(".md") or "/" in name or "\\" in name or name == INDEX:
            problems.append(Problem(where, line, "pages", name, "a page is a Markdown file (.md) directly in report/"))
        elif not path.is_file():
            problems.append(Problem(where, line, "pages", name, "missing page: no such file in report/"))
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(f"{FOLDER}/{name}", None, None, None, "not UTF-8 text"))
                continue
            problems += check_page(f"{FOLDER}/{name}", text, folder, scopes)
    return problems


def _line_of(path: Path, word: str) -> int | None:
    """The first line of ``path`` mentioning ``word`` (for messages), or None."""
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if word in line:
            return n
    return None


# --------------------------------------------------------------------------
# The starter folder (``isafe template``) and the bundled synthetic trial's
# --------------------------------------------------------------------------
_HOW = (
    "Cite a number with ``{fact}`SCOPE/STRAND/ANALYSIS/OUTCOME/QUANTITY` `` (a row of a results page's "
    "`estimates.csv`, for example `trial/impact/primary/confidence/hedges_g_total`), optionally followed by "
    "`:ci_low`, `:ci_high`, `:p_value`, `:se`, `:n` or `:n_clusters`: the book shows the number its results "
    "pages publish, or `[c]` where it is withheld. Never type a result by hand."
)

#: The starter pages, one per section a Foundations evaluation report has: (file, title, what belongs there).
STARTER: tuple[tuple[str, str, str], ...] = (
    (
        "intervention.md",
        "The intervention and its logic model",
        "Describe the intervention as delivered: who it is for, its components (training, coaching, audit, "
        "champions, leaders' sessions), who delivered it and how often. Set out the logic model: the inputs, "
        "activities, outputs, the short-term outcomes for practitioners and the longer-term outcomes for "
        "children and families it aims at. A logic model diagram saved in this folder can be shown with "
        "`![Logic model](logic_model.png)`.",
    ),
    (
        "research_questions.md",
        "Research questions",
        "List the impact, implementation and process, and cost questions the trial set out to answer, as "
        "registered, and say which results page answers each. Say which outcome is primary and why.",
    ),
    (
        "ipe_findings.md",
        "Implementation and process findings",
        "Report the qualitative findings of the implementation and process evaluation: the barriers and "
        "facilitators to delivery, how the intervention was received, the mechanisms through which it may "
        "work, and differences between local authorities. Describe the interviews and focus groups (how many, "
        "with whom, how analysed) without naming or quoting anyone who could be identified.",
    ),
    (
        "implications.md",
        "Implications",
        "Say what the findings mean for local authorities, practitioners, the developer and funders, and "
        "for further research, within what the trial can show: its outcomes are practitioners', not "
        "children's or families'.",
    ),
)


def write_starter(folder: Path) -> list[Path]:
    """Write a starter ``report/`` folder (``report.yml`` and :data:`STARTER`'s pages); never over a file.

    Returns the files written. A page that exists is left as it is.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    index = folder / INDEX
    if not index.exists():
        index.write_text(
            "# The evaluator's own pages, in the order the book shows them after the executive summary.\n"
            "pages:\n" + "".join(f"  - {name}\n" for name, _, _ in STARTER),
            encoding="utf-8",
            newline="\n",
        )
        written.append(index)
    for name, title, what in STARTER:
        page = folder / name
        if page.exists():
            continue
        page.write_text(
            f"# {title}\n\n```{{note}}\nWhat belongs here: {what}\n\n{_HOW}\n\nDelete this note once the page is "
            "written.\n```\n",
            encoding="utf-8",
            newline="\n",
        )
        written.append(page)
    return written


#: The bundled synthetic trial's pages: short, marked synthetic, each citing a few facts.
SYNTHETIC_PAGES: tuple[tuple[str, str], ...] = (
    (
        "intervention.md",
        "# The intervention (synthetic)\n\n"
        "```{warning}\nThis page is synthetic: it was written for the bundled synthetic trial to show where an "
        "evaluator's own words go. It describes no real evaluation.\n```\n\n"
        "ISAFE trains children's social care practitioners to engage fathers: two training courses (father "
        "engagement and motivational interviewing), a case-file audit, team champions and a leaders' webinar. "
        "Its logic model runs from this training to practitioners' confidence, competence and practice, and "
        "from there, in the longer term, to outcomes for children and families, which this trial did not "
        "measure.\n\n"
        "Across the trial, {fact}`trial/process/reach/father_engagement/reach_pct` per cent of intervention-team "
        "staff attended father engagement training.\n",
    ),
    (
        "implications.md",
        "# Implications (synthetic)\n\n"
        "```{warning}\nThis page is synthetic: its words are illustrative, its numbers are the synthetic "
        "trial's.\n```\n\n"
        "On the primary outcome, confidence in engaging fathers, the effect was g = "
        "{fact}`trial/impact/primary/confidence/hedges_g_total` (95% CI "
        "{fact}`trial/impact/primary/confidence/hedges_g_total:ci_low` to "
        "{fact}`trial/impact/primary/confidence/hedges_g_total:ci_high`), at a cost of "
        "{fact}`trial/cost/unit_cost/total/cost_per_participant_gbp` per participant reached. A local "
        "authority weighing the programme should read these beside the implementation findings: the outcomes "
        "are practitioners' reports, and no child or family outcome was measured.\n",
    ),
)


def write_synthetic(folder: Path) -> None:
    """Write the bundled synthetic trial's ``report/`` (:data:`SYNTHETIC_PAGES`) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).write_text(
        "# Synthetic: the bundled trial's evaluator pages, written to show the feature.\n"
        "pages:\n" + "".join(f"  - {name}\n" for name, _ in SYNTHETIC_PAGES),
        encoding="utf-8",
        newline="\n",
    )
    for name, text in SYNTHETIC_PAGES:
        (folder / name).write_text(text, encoding="utf-8", newline="\n")

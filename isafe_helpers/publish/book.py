"""Build the Jupyter Book from a results folder.

The book's sources are the repository root's ``_config.yml``, ``_toc.yml``
and ``book/`` pages, plus the executed notebooks of a run. The build copies
them into a staging folder (``_build/.source``) laid out like the repository
root, adds the generated pages (data dictionary, status, one page per failed
notebook), and runs Jupyter Book 1.x there with warnings as errors and
notebook execution off (papermill already executed them). The HTML is built
in a temporary folder and moved to ``_build/html`` only when complete, so a
failed build never destroys the previous book.

``_toc.yml`` is a template: the pooled notebooks are picked up by pattern
(``results/trial/*``) and the entry ``glob: book/las/*`` is expanded
at staging into one section per LA (a generated index page with the LA's
three pages under it), so a data root of 3 or 30 LAs needs no hand edits.

Generated at staging, never typed: the executive summary's numbers (``{{ s_* }}``
in the pages of ``book/``, written into the staged pages by :func:`fill_pages`, from
:mod:`isafe_helpers.publish.summary`), its findings tables (``book/findings.md``),
its headline chart (``book/figures/headline.png``), the disclosure threshold
stated on the methods page, each LA's index page, the data dictionary and
the status page.

The build is offline: MathJax is served from the book's own ``_static``
(``sphinx-mathjax-offline``), so opening a page fetches nothing from the
network.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import nbformat
import pandas as pd
import yaml

from isafe_helpers.data import contract as C
from isafe_helpers.data.files import code_hash
from isafe_helpers.data.protocol import read_protocol
from isafe_helpers.data.validated import load_saved, write_saved
from isafe_helpers.outputs import MARKER, neutralise_frame
from isafe_helpers.publish import authored as A
from isafe_helpers.publish import baseline as B
from isafe_helpers.publish import disclosure, tables
from isafe_helpers.publish import facts as F
from isafe_helpers.publish import summary as S
from isafe_helpers.publish.assemble import BookDisclosure, load_pages
from isafe_helpers.publish.escape import html_text, md
from isafe_helpers.publish.tables import number
from isafe_helpers.resources import SOURCES
from isafe_helpers.results import estimates as E
from isafe_helpers.results.estimates import Lookup
from isafe_helpers.results.labels import label

STRAND_TITLES = {"impact": "Impact", "process": "Implementation and process", "cost": "Cost"}


#: Staged file names: a prefix keeps the strands in report order.
STAGED_NAME = {"impact": "1_impact", "process": "2_process", "cost": "3_cost"}


RUN_FILE = "run.json"


PACKAGES = (
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "pandera",
    "papermill",
    "jupyter-book",
    "Sphinx",
    "myst-nb",
    "sphinx-book-theme",
    "sphinx-mathjax-offline",
    "matplotlib",
    "seaborn",
    "nbval",
    "playwright",
)


#: Notebook parameters holding local paths, blanked in the published sources.
PATH_PARAMETERS = ("data_root", "output_dir")


#: The ``_toc.yml`` entry expanded into one section per LA.
LA_GLOB = "book/las/*"


class BookError(Exception):
    """The book could not be built; the previous book is untouched."""


#: LA names of the run being staged (from each LA's ``la.yml``, recorded in ``run.json``).
_NAMES: dict[str, str] = {}


def scope_label(scope: str) -> str:
    """The reader's name of a scope: ``Pooled trial``, or the LA's name and code."""
    if scope == C.TRIAL_SCOPE:
        return "Pooled trial"
    return f"{md(_NAMES[scope])} ({md(scope)})" if scope in _NAMES else f"Local authority {md(scope)}"


def synthetic_notice(run: dict) -> str:
    seed = (run.get("synthetic") or {}).get("seed")
    return html_text(
        "Synthetic data: every number in this book comes from a synthetic trial with the ISAFE design, made by the "
        f"handbook's generator (seed {seed}). The numbers are illustrative, not the ISAFE trial's."
    )


def read_run(results: Path) -> dict:
    path = results / RUN_FILE
    if not path.is_file():
        raise BookError(f"{results} holds no run ({RUN_FILE} missing): run `python -m isafe_helpers run` first")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# Generated pages
# --------------------------------------------------------------------------
def html_table(header, rows, code=(), caption: str = "", links=None) -> str:
    """A plain HTML table for a Markdown page, every cell escaped (names from ``instrument.yml`` are data).

    Columns whose index is in ``code`` are set as code; ``caption`` (already
    numbered, e.g. "Table 1. ...") is escaped too; ``links`` gives, per row,
    a relative URL for the first cell (made by the handbook, never data).
    """

    def cell(j, v):
        v = html_text(v)
        return f"<code>{v}</code>" if j in code else v

    def first(i, v):
        return f'<a href="{links[i]}">{html_text(v)}</a>' if links else cell(0, v)

    head = "".join(f'<th scope="col">{html_text(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{first(i, v) if j == 0 else cell(j, v)}</td>" for j, v in enumerate(r)) + "</tr>"
        for i, r in enumerate(rows)
    )
    cap = f"<caption>{html_text(caption)}</caption>" if caption else ""
    # a box that scrolls sideways must be reachable from the keyboard (WCAG 2.1.1;
    # axe-core's scrollable-region-focusable): a named, focusable region, as in tables.py
    region = f' tabindex="0" role="region" aria-label="{html_text(caption or "Table of " + ", ".join(map(str, header[:3])))}"'
    return (
        f'<div class="isafe-table"><div class="isafe-table-scroll"{region}><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div></div>"
    )


def data_dictionary_markdown(instrument: C.Instrument = C.DEFAULT_INSTRUMENT) -> str:
    """The data dictionary page, generated from the contract: its reading, value and cross-file rules, files and scales."""
    out = [
        "# Data dictionary",
        "",
        "Generated from the schemas and rules in `isafe_helpers.data.contract`, which the loader validates "
        "every file against: this page and the checks cannot disagree.",
        "",
        "A data root is a folder with one subfolder per local authority, named by its LA code "
        "(letters, digits, `_` and `-` only). Each LA folder holds the files below as `.csv` or `.xlsx`, "
        f"or as the sheets of one workbook `{C.RETURNS_WORKBOOK}`. Blank cells mean "
        "missing; column order does not matter; IDs are text (`007` stays `007`); dates are "
        "`YYYY-MM-DD`. Unknown extra columns are reported as a warning and never used. An optional "
        "`instrument.yml` (survey scales and feedback themes) and `deflators.csv` (price index) sit at the "
        "data root.",
        "",
        "Choices where the contract is silent: the case-file audit has at most one row per "
        "participant and wave; a column whose rule says *blank allowed* must still be present "
        "unless it says *column optional*; whole numbers may be written `3` or `3.0` (as "
        "spreadsheets export them) but never `3.5`; numbers the contract leaves unbounded carry a "
        "*declared bound* against typing errors.",
        "",
        "## The return template",
        "",
        f"`python -m isafe_helpers template --out {C.RETURNS_WORKBOOK}` writes a workbook an LA can fill in and "
        "send: a sheet per file below with its columns, a dropdown for every fixed vocabulary, range checks "
        "on numbers, an input message on every header cell saying what the column holds and its rule, and "
        f"an instructions sheet generated from the same rules as this page. Saved as `{C.RETURNS_WORKBOOK}` in "
        "an LA folder, it is read as that LA's files.",
        "",
    ]
    for title, rules in (
        ("How files are found and read", C.READING_RULES),
        ("Values", C.VALUE_RULES),
        ("Rules between files", C.CROSS_FILE_RULES),
        ("Before follow-up: the baseline report", C.FOLLOWUP_RULES),
        ("Problems", C.REPORT_RULES),
    ):
        out += [f"## {title}", "", *(f"- {r}" for r in rules), ""]
    specs = C.file_specs(instrument)
    need = {"always": "required", "treatment": "required in an LA with a treatment team", "optional": "optional"}
    for spec in [*specs.values(), C.DEFLATORS_SPEC]:
        where = "data root" if spec is C.DEFLATORS_SPEC else "LA folder"
        out += [f"## `{spec.name}`", "", f"{spec.description} ({need[spec.required]}; in the {where}.)", ""]
        if spec.unique:
            out += [f"Unique key within the file: {', '.join(f'`{u}`' for u in spec.unique)}.", ""]
        out += [*(f"- {n}" for n in spec.notes), ""] if spec.notes else []
        rows: list[tuple[str, ...]] = [(f.name, f.dtype, f.description, f.rule()) for f in spec.fields]
        out += [html_table(("column", "type", "meaning", "rule"), rows, code=(0,)), ""]
    out += [
        "## Scales",
        "",
        "A scale score is the mean of the answered items after reverse coding (x -> min + max - x), "
        "computed only when at least ceil(2k/3) of its k items are answered; otherwise it is missing.",
        "",
    ]
    rows = [
        (
            s.name,
            ", ".join(s.items),
            ", ".join(s.reverse) or "none",
            f"{s.min} to {s.max}",
            f"{s.min_answered} of {len(s.items)}",
        )
        for s in instrument.scales
    ]
    out += [html_table(("scale", "items", "reverse-coded", "range", "items needed"), rows, code=(0,)), ""]
    out += [
        "",
        "## Feedback themes",
        "",
        "The fixed list a `theme` in `feedback` is taken from"
        + (" (the default list: `instrument.yml` gives none)" if instrument.themes == C.DEFAULT_THEMES else "")
        + ": "
        + (", ".join(f"`{t}`" for t in instrument.themes) or "none, so every theme is an error")
        + ". Each is a code of letters, digits, `_` and `-`; `instrument.yml` sets the list with "
        "`themes: [practical, too_long, other]`.",
        "",
    ]
    return "\n".join(out)


def status_markdown(run: dict) -> str:
    """Package versions, the data root's fingerprint and the run date (every data-derived string escaped)."""
    versions = []
    for pkg in PACKAGES:
        try:
            versions.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            versions.append((pkg, "not installed"))
    tasks = [(t["scope"], t["strand"], t["status"], t.get("message", "")) for t in run.get("tasks", [])]
    return "\n".join(
        [
            "# Status of this build",
            "",
            f"- Data root: {md(Path(run['data_root']).name)} ({'synthetic' if run.get('synthetic') else 'real'} data)",
            f"- Data root fingerprint (SHA-256 of every file's path and bytes): `{run['fingerprint']}`",
            f"- Local authorities: {md(', '.join(run['las']))}",
            f"- Run finished: {md(run['finished'])}",
            f"- Book built: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- Python {md(run['python'])}",
            f"- Disclosure threshold: {int(run.get('disclosure_threshold') or disclosure.threshold())} people "
            f"(set by `{disclosure.THRESHOLD_ENV}` when the notebooks ran)",
            "",
            "## Notebooks of the last run",
            "",
            html_table(("scope", "strand", "status", "message"), tasks),
            "",
            "## Package versions",
            "",
            html_table(("package", "version"), versions),
            "",
        ]
    )


def failure_markdown(scope: str, strand: str, message: str) -> str:
    return "\n".join(
        [
            f"# {STRAND_TITLES[strand]}: {scope_label(scope)}",
            "",
            "```{warning}",
            f"This page's notebook failed in the last run, so it has no results. The error was: {md(message)}",
            "```",
            "",
            "Fix the cause and run `python -m isafe_helpers run` again; see the status page.",
            "",
        ]
    )


def not_run_markdown(scope: str, strand: str) -> str:
    return "\n".join(
        [
            f"# {STRAND_TITLES[strand]}: {scope_label(scope)}",
            "",
            "```{note}",
            "This page's notebook was not run for the results this book was built from, so it has no results.",
            "```",
            "",
            f"Run it with `python -m isafe_helpers run --scope {scope} --strand {strand}`; see the status page.",
            "",
        ]
    )


# --------------------------------------------------------------------------
# Staging and building
# --------------------------------------------------------------------------
def anchored(html: str, spec: str, scope: str, strand: str) -> str:
    """A table's HTML with its id (:func:`~isafe_helpers.publish.facts.table_id`), so views can link to it.

    >>> anchored('<div class="isafe-table"><table></table></div>', "table-4", "LA01", "impact")
    '<div class="isafe-table" id="LA01-impact-table-4"><table></table></div>'
    """
    kind, _, n = spec.rpartition("-")
    if kind != "table" or not n.isdigit() or ' id="' in html.split(">", 1)[0]:
        return html
    ident = F.table_id(scope, strand, kind, int(n))
    return html.replace('<div class="isafe-table">', f'<div class="isafe-table" id="{ident}">', 1)


def _stage_notebook(
    src: Path, dst: Path, scope: str, strand: str, outputs: dict[str, str], baseline: bool = False
) -> None:
    """Copy an executed notebook into the book as a reader's page.

    Code is hidden (``remove-input``); the parameter cells and the cells
    tagged ``analyst-only`` (the estimates receipt) are removed; every table,
    figure and prose output is replaced by its rendering under the book's
    disclosure plan (``outputs``, by spec id; an output not there is the
    same under that plan, and keeps its HTML); and a last cell says which
    notebook made the page and where to rerun it. In a baseline report
    (``baseline``: no follow-up yet) the cells tagged ``needs-followup`` are
    removed, else those tagged ``baseline-only`` (:mod:`isafe_helpers.publish.baseline`).
    """
    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("papermill", None)  # input and output paths of the run
    kept = []
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if {"parameters", "injected-parameters", "analyst-only"} & set(tags):
            continue  # parameters show local paths (the status page names the data); the receipt is for analysts
        if (B.NEEDS_FOLLOWUP if baseline else B.BASELINE_ONLY) in tags:
            continue  # a section of the other report (before follow-up, or once it has arrived)
        cell.metadata.pop("papermill", None)
        if cell.cell_type == "code":
            cell.metadata["tags"] = [*tags, "remove-input"]
            for out in cell.get("outputs", []):
                spec = out.get("metadata", {}).get("isafe", {}).get("spec")
                html = outputs[spec] if spec in outputs else out.get("data", {}).get("text/html")
                if spec is not None and html is not None:  # rendered again, or the page's own output as it is
                    out["data"] = {"text/html": anchored(html, spec, scope, strand)}
        kept.append(cell)
    nb.cells = kept
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            rest = cell.source.lstrip().split("\n", 1)
            cell.source = f"# {STRAND_TITLES[strand]}: {scope_label(scope)}" + ("\n" + rest[1] if len(rest) > 1 else "")
            break
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            "```{admonition} How this page was made\n:class: note\n"
            f"This page is the notebook `notebooks/{strand}.ipynb` of the handbook's repository, run for "
            f"{scope_label(scope).lower() if scope == C.TRIAL_SCOPE else 'LA ' + md(scope)} by the pipeline; its code is "
            "hidden here. Analysts can rerun it on their own data ({doc}`/book/rerun`), and reviewers can check it "
            "reproduces ({doc}`/book/reviewing`).\n```"
        )
    )
    nb.cells[-1].id = "how-this-page-was-made"  # a fixed id: nbformat's random one would rewrite the page every build
    nbformat.write(nb, dst)


#: The folder, inside the HTML book, the command line copies the PDFs into (``--pdf``): the pages link them there.
PDF_FOLDER = "pdf"
#: The whole report's PDF file stem; an LA's is ``<REPORT_PDF>_<LA>`` (:mod:`isafe_helpers.publish.pdf`).
REPORT_PDF = "isafe_report"


def pdf_files(run: dict) -> list[str]:
    """The PDFs' paths inside the HTML book (the whole report's, then each LA's), as the pages link them."""
    return [f"{PDF_FOLDER}/{REPORT_PDF}.pdf", *(f"{PDF_FOLDER}/{REPORT_PDF}_{la}.pdf" for la in sorted(run["las"]))]


def pdf_link(here: str, la: str | None, text: str) -> str:
    """A raw-HTML link from the staged page ``here`` (``book/index``) to a PDF beside the HTML.

    >>> pdf_link("book/las/LA01", "LA01", "PDF")
    '<a href="../../pdf/isafe_report_LA01.pdf">PDF</a>'
    """
    name = f"{REPORT_PDF}_{la}" if la else REPORT_PDF
    return f'<a href="{"../" * here.count("/")}{PDF_FOLDER}/{html_text(name)}.pdf">{html_text(text)}</a>'


def la_index_markdown(la: str, pages: list[str], headline: str, status: str = "") -> str:
    """The generated index page of one LA's section: caveat, headline tables, its pages and downloads."""
    out = [
        f"# {scope_label(la)}",
        "",
        "```{caution}",
        f"{md(la)} is one local authority of the trial, with a handful of teams: its estimates are far less "
        "precise than the pooled trial's and describe this LA only; they carry no verdict. The trial was powered "
        "for the pooled analysis: read the pooled pages for its findings.",
        "```",
        "",
    ]
    if status:
        out += [status, ""]
    if not pages:
        out += [f"No notebook was run for {md(la)} in this build; see the status page.", ""]
        return "\n".join(out)
    out += [
        "## Headline numbers",
        "",
        "The same quantities as the executive summary, for this LA alone, under the book's disclosure control.",
        "",
        headline,
        "## Pages",
        "",
        "```{tableofcontents}",
        "```",
        "",
        f"{{download}}`The numbers this LA's pages publish <../downloads/{la}-published-numbers.csv>` (after "
        "disclosure control).",
        "",
        f"{pdf_link(f'book/las/{la}', la, 'This LA’s report as one PDF')}, to read or print on its own (where "
        "the book's PDFs were printed: see the status page).",
        "",
    ]
    return "\n".join(out)


def local_authorities_markdown(las: list[str], book: BookDisclosure, baseline: frozenset[str] = frozenset()) -> str:
    """The Local authorities page: the caveat and every LA with a link and its headline numbers."""
    rows, links = [], []
    for la in las:
        name = f"{_NAMES[la]} ({la})" if la in _NAMES else la
        links.append(f"las/{la}.html")
        try:
            v = book.cells(f"{la}/headline")  # as the LA's index page prints it: a view of its results pages
        except KeyError:
            rows.append(
                (name, "not run", "", "") if la not in baseline else (name, "none yet", "none yet", "awaits follow-up")
            )
            continue
        prim = S.primary_rows(v)
        if not len(prim):
            rows.append((name, "", "", ""))
            continue
        r = prim.iloc[0]
        staff = f"{r['n_treatment']}; {r['n_control']}"
        # teams are not people: read from the table's own data (the published view holds its columns only)
        teams = book.extra[f"{la}/headline"][0].data.reset_index(drop=True).loc[prim.index[0], "teams"]
        rows.append((name, number(teams, "units"), staff, f"{r['measure']} {r['effect']}"))
    table = html_table(
        (
            "Local authority",
            "Teams analysed",
            "Staff analysed, primary outcome (intervention; control)",
            "Primary outcome: effect size (95% CI)",
        ),
        rows,
        caption="Table 1. Local authorities and their primary outcome",
        links=links,
    )
    return "\n".join(
        [
            "# Local authorities",
            "",
            "One section per local authority, each with its own impact, implementation and process, and cost pages, "
            "made by the same notebooks as the pooled trial.",
            "",
            "```{warning}",
            "**LA estimates are imprecise.** An LA holds only a handful of teams, so its estimates have wide intervals "
            "and rest on few clusters; the trial was randomised within LA and powered for the pooled analysis only. An "
            "LA's numbers describe that LA; they carry no verdict.",
            "```",
            "",
            table,
            "",
        ]
    )


def expand_toc(toc: dict, la_sections: dict[str, list[str]]) -> dict:
    """Replace the ``glob: book/las/*`` entry by one entry per LA.

    Each LA's entry is its generated index page with its strand pages as
    sections, in strand order. Other entries are kept as they are.
    """

    def walk(entries: list) -> list:
        out = []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("glob") == LA_GLOB:
                for la, pages in la_sections.items():
                    item: dict = {"file": f"book/las/{la}"}
                    if pages:
                        item["sections"] = [{"file": f"results/las/{la}/{p}"} for p in pages]
                    out.append(item)
                continue
            if isinstance(entry, dict):
                entry = dict(entry)
                for key in ("chapters", "sections", "parts"):
                    if key in entry:
                        entry[key] = walk(entry[key])
            out.append(entry)
        return out

    toc = dict(toc)
    for key in ("parts", "chapters", "sections"):
        if key in toc:
            toc[key] = walk(toc[key])
    return toc


def _usable(est: pd.DataFrame, failed: dict) -> Lookup:
    """A scope's rows, less those of strands whose notebook failed in the run (old rows are never shown)."""
    return Lookup(est[~est["strand"].isin(list(failed))])


def size_heading(teams: float, staff: float, plan_teams: float, plan_size: float) -> str:
    """The Limitations page's heading on the trial's size, as the numbers have it (never "smaller" when it is not).

    >>> size_heading(63, 633, 48, 10), size_heading(63, 400, 48, 10)
    ('A larger trial than planned', 'More teams than planned, but smaller ones')
    >>> size_heading(40, 400, 48, 10), size_heading(48, 480, 48, 10), size_heading(math.nan, 1, 48, 10)
    ('A smaller trial than planned', 'The trial as planned', "The trial's size against its plan")
    """
    if not (math.isfinite(teams) and math.isfinite(plan_teams)):
        return "The trial's size against its plan"
    smaller = math.isfinite(staff) and math.isfinite(plan_size) and staff / max(teams, 1) < plan_size
    if teams < plan_teams:
        return "A smaller trial than planned"
    if teams > plan_teams:
        return "More teams than planned, but smaller ones" if smaller else "A larger trial than planned"
    return "Smaller teams than planned" if smaller else "The trial as planned"


def mdes_sentence(mdes: float, plan: float) -> str:
    """The MDES achieved against the plan's, with the comparison the two numbers support.

    >>> mdes_sentence(0.2157, 0.2172)
    "The analysed sample could detect an effect of 0.22 SD on the primary outcome with 80% power; the protocol's plan (its teams, team size, ICC and variance explained) could detect 0.22 SD: about the power planned."
    >>> mdes_sentence(0.30, 0.22).endswith("less power than planned.")
    True
    """
    if not (math.isfinite(mdes) and math.isfinite(plan)):
        return "The minimum detectable effect size is not available in this build."
    a, b = number(mdes, "number", 2), number(plan, "number", 2)
    verdict = (
        "about the power planned"
        if a == b
        else ("less power than planned" if mdes > plan else "more power than planned")
    )
    return (
        f"The analysed sample could detect an effect of {a} SD on the primary outcome with 80% power; the "
        f"protocol's plan (its teams, team size, ICC and variance explained) could detect {b} SD: {verdict}."
    )


def _protocol(root: Path, instrument: C.Instrument):
    """The data root's protocol (``protocol.yml``, checked when the data were validated), or None if unreadable."""
    try:
        protocol, problems = read_protocol(root, instrument.scale_names)
    except (OSError, ValueError):
        return None
    return None if problems else protocol


def _design_glue(look: Lookup, run: dict, limit: int) -> dict[str, str]:
    """Sentences on the trial's size, power and attrition, from the pooled rows (numbers of teams are not people)."""
    primary = S.reference_outcome(look)
    named = S.primary_outcome(look) is not None
    what = "the primary outcome" if named else f"{label(primary).lower()} (no primary outcome was pre-specified)"
    las = len(run.get("las", []))
    teams = look.value("impact", "attrition", f"{primary}:teams", "overall_attrition_pct", "n")
    staff = look.value("impact", "attrition", f"{primary}:participants", "overall_attrition_pct", "n")
    plan_teams = look.value("impact", "protocol", "design", "planned_teams")
    plan_las = look.value("impact", "protocol", "design", "planned_las")
    size = f"{number(teams, 'int')} teams in {las} local authorities" if math.isfinite(teams) else f"{las} LAs"
    if math.isfinite(staff):
        size += f", with {number(staff, 'people') if staff >= limit else '[c]'} staff at baseline,"
    glue = {"s_size_sentence": md(f"{size} were randomised within LA to ISAFE or to business as usual.")}
    if math.isfinite(plan_teams) and math.isfinite(plan_las):
        glue["s_size_sentence"] += " " + md(f"The protocol planned {plan_teams:.0f} teams in {plan_las:.0f} LAs.")
    plan_size = look.value("impact", "protocol", "design", "planned_team_size")
    glue["s_size_heading"] = md(size_heading(teams, staff, plan_teams, plan_size))
    mdes = look.value("impact", "power", primary, "mdes_analysis")
    plan = look.value("impact", "power", primary, "mdes_protocol")
    if not math.isfinite(plan):
        plan = look.value("impact", "protocol", "design", "planned_mdes")
    glue["s_mdes_sentence"] = md(mdes_sentence(mdes, plan))
    o = look.value("impact", "attrition", f"{primary}:participants", "overall_attrition_pct")
    d = look.value("impact", "attrition", f"{primary}:participants", "differential_attrition_pct")
    glue["s_attrition_sentence"] = md(
        f"{number(o, 'pct', 0)}% of randomised staff are missing from the analysis of {what}, with a difference of "
        f"{number(d, 'number', 1)} percentage points between the arms."
        if math.isfinite(o)
        else "Attrition is not available in this build."
    )
    py = look.value("cost", "unit_cost", "total", "price_year")
    glue["s_price_year"] = f"{py:.0f}" if math.isfinite(py) else S.NOT_AVAILABLE
    glue["s_threshold"] = str(limit)
    glue["s_n_las"] = str(las)
    glue["s_n_teams"] = number(teams, "int") if math.isfinite(teams) else S.NOT_AVAILABLE
    glue["s_n_participants"] = (
        (number(staff, "people") if staff >= limit else "[c]") if math.isfinite(staff) else S.NOT_AVAILABLE
    )
    return glue


#: The tables of the summary and of each LA index page, in the order they are numbered there.
SUMMARY_TABLES = ("headline", "cost", "delivery", "security")


def extra_id(where: str) -> str:
    """The id of a summary or LA index table (``summary/cost`` -> ``trial-summary-table-2``; ``LA01/cost`` -> ``LA01-index-table-2``)."""
    scope, _, name = where.partition("/")
    n = SUMMARY_TABLES.index(name) + 1
    return f"{C.TRIAL_SCOPE}-summary-table-{n}" if scope == "summary" else f"{scope}-index-table-{n}"


def _summary_tables(book: BookDisclosure, results: Path, run: dict, failed: dict) -> dict:
    """Register the summary's and each LA index page's tables in the book's ledger (before it is solved).

    A scope with no follow-up yet (a baseline report) has no headline results or security table: they rest on
    outcomes, and are left out rather than shown empty.
    """
    baseline = B.baseline_scopes(run)
    las = sorted(run["las"])
    pooled_failed = {st: m for (sc, st), m in failed.items() if sc == C.TRIAL_SCOPE}
    look = _usable(E.read_scope(results, C.TRIAL_SCOPE), pooled_failed)

    def add(where: str, table) -> None:
        book.add(where, table, extra_id(where))

    if C.TRIAL_SCOPE not in baseline:
        add("summary/headline", S.headline_table(look, las, pooled=True))
    add("summary/cost", S.cost_table(look, las))
    add("summary/delivery", S.delivery_table(look, las))
    if C.TRIAL_SCOPE not in baseline:
        add("summary/security", S.security_table(look, run))
    looks = {C.TRIAL_SCOPE: look}
    for la in las:
        la_look = _usable(E.read_scope(results, la), {st: m for (sc, st), m in failed.items() if sc == la})
        looks[la] = la_look
        if la not in baseline:
            add(f"{la}/headline", S.headline_table(la_look, [la], pooled=False))
        add(f"{la}/cost", S.cost_table(la_look, [la]))
        add(f"{la}/delivery", S.delivery_table(la_look, [la]))
    return looks


def page_address(fact, here: str) -> str:
    """The address, relative to the generated page ``here`` (``book/index``), of the table a fact is read from."""
    scope, strand = fact.page
    folder = "results/trial" if scope == C.TRIAL_SCOPE else f"results/las/{scope}"
    up = "../" * here.count("/")
    return f"{up}{folder}/{STAGED_NAME[strand]}.html#{fact.table}"


def _fill_headlines(book: BookDisclosure, looks: dict, run: dict) -> None:
    """Fill the headline tables' views from the solved book's facts (after :meth:`BookDisclosure.solve`).

    A baseline report's scope has no headline table (:func:`_summary_tables`).
    """
    facts = book.facts()
    baseline = B.baseline_scopes(run)
    las = sorted(run["las"])
    if C.TRIAL_SCOPE not in baseline:
        book.refill(
            "summary/headline",
            S.headline_table(
                looks[C.TRIAL_SCOPE], las, True, facts, C.TRIAL_SCOPE, lambda f: page_address(f, "book/index")
            ),
        )
    for la in las:
        if la in baseline:
            continue
        book.refill(
            f"{la}/headline",
            S.headline_table(looks[la], [la], False, facts, la, lambda f, la=la: page_address(f, f"book/las/{la}")),
        )


def _headline_markdown(book: BookDisclosure, where: str, pooled: bool, baseline: bool = False) -> str:
    """The headline tables of the summary (``summary``) or an LA index page (``<LA>``), as HTML blocks.

    A baseline report (``baseline``) has no headline results or security table (:func:`_summary_tables`);
    its tables are numbered as they stand, their ids stay those of :func:`extra_id`.
    """
    names = [n for n in (SUMMARY_TABLES if pooled else SUMMARY_TABLES[:3]) if not baseline or n in ("cost", "delivery")]
    parts = [book.render_table(f"{where}/{name}", n) for n, name in enumerate(names, 1)]
    return "\n\n".join(parts) + "\n"


def _code_digest() -> str:
    """SHA-256 of the helper package's code and the libraries that render a page: a page is reused only by what staged it."""
    h = hashlib.sha256(code_hash().encode())
    for name in ("nbformat", "matplotlib", "markdown-it-py", "pandas", "numpy"):  # installed, pinned or not
        h.update(f"{name}={_version(name)}".encode())
    return h.hexdigest()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _read_stage_cache(path: Path | None, salt: str) -> dict:
    saved = load_saved(path) if path is not None else None
    return saved["pages"] if isinstance(saved, dict) and saved.get("salt") == salt else {}


def stage(results: Path, stage_dir: Path, cache: Path | None = None, jobs: int = 1) -> dict:
    """Lay out the book's sources in ``stage_dir``; return the run record.

    Every page's recorded tables, figures and prose, and the summary's and LA
    index pages' tables, go into one disclosure ledger, solved once
    (:mod:`isafe_helpers.publish.assemble`); everything the book shows is
    rendered under that plan.

    ``cache`` (a file in the build folder) keeps each staged results page and
    the numbers it publishes, keyed by the page's digest (its recorded specs
    and executed notebook), the counts the plan withholds on it, the
    threshold, the LA names and the package's code. A page whose key is
    unchanged is copied from it instead of rendered again: what a page shows
    depends on nothing else, so the book is the same as a clean build's (a
    test compares them), and a rerun after one LA's data change renders that
    LA's and the pooled pages only. The ledger is always solved for the
    whole book.

    The pages to render are shared among ``jobs`` processes
    (:meth:`~isafe_helpers.publish.assemble.BookDisclosure.render_pages`).
    """
    names = dict(tables.LA_NAMES)  # the build's LA names are its own: the caller's are put back after
    try:
        with tables.remembered():  # each table's cells worked out once under the book's plan
            return _stage(results, stage_dir, cache, jobs)
    finally:
        tables.LA_NAMES.clear()
        tables.LA_NAMES.update(names)


#: A summary number's place on a page of ``book/``: ``{{ s_name }}``.
_GLUED = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


def fill_pages(folder: Path, names: list[str], glue: dict[str, str]) -> None:
    """Write the summary's numbers into the staged pages ``names`` of ``folder``, in place of ``{{ s_name }}``.

    The numbers are written into the page sources at staging rather than
    passed to Sphinx as MyST substitutions: a page whose numbers change is
    then a page whose bytes change, which the incremental build rereads
    (:func:`isafe_helpers.publish.build.sync_tree`), and no private Sphinx
    API is needed to stop a changed number from rereading every page. The
    values are Markdown already escaped (``escape.md``). A name with no
    value stops the build, naming page and name.
    """
    for name in names:
        page = folder / name
        text = page.read_text(encoding="utf-8")
        unknown = sorted({m for m in _GLUED.findall(text) if m not in glue})
        if unknown:
            raise BookError(f"book/{name} uses summary values the staging does not make: {', '.join(unknown)}")
        filled = _GLUED.sub(lambda m: str(glue[m.group(1)]), text)
        if filled != text:
            page.write_text(filled, encoding="utf-8")


def _stage(results: Path, stage_dir: Path, cache: Path | None, jobs: int) -> dict:
    run = read_run(results)
    _NAMES.clear()
    _NAMES.update(run.get("la_names") or {})
    tables.LA_NAMES.clear()
    tables.LA_NAMES.update(_NAMES)
    # the threshold the notebooks were run with, so pages and summary agree
    limit = int(run.get("disclosure_threshold") or disclosure.threshold())
    if stage_dir.exists() and [p.name for p in stage_dir.iterdir()] != [MARKER]:
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)  # or made marked, and empty, by the build
    shutil.copytree(SOURCES / "book", stage_dir / "book")
    instrument = C.DEFAULT_INSTRUMENT
    inst_file = Path(run["data_root"]) / "instrument.yml"
    if inst_file.is_file():
        instrument = C.Instrument.from_yaml(inst_file)
    (stage_dir / "book" / "data_dictionary.md").write_text(data_dictionary_markdown(instrument), encoding="utf-8")
    (stage_dir / "book" / "status.md").write_text(status_markdown(run), encoding="utf-8")

    scopes = [C.TRIAL_SCOPE] + sorted(run["las"])
    failed = {(t["scope"], t["strand"]): t.get("message", "") for t in run.get("tasks", []) if t["status"] == "failed"}
    book = BookDisclosure(load_pages(results, scopes, list(C.STRANDS), set(failed)), limit)
    looks = _summary_tables(book, results, run, failed)
    book.solve()
    _fill_headlines(book, looks, run)
    # the evaluator's own pages (report/ at the data root), their numbers read from the book's facts
    # a baseline report's impact pages publish no outcome yet: a citation of one shows [x], as a page that did
    # not run does (the same authored pages serve the baseline report and, once follow-up arrives, the full one)
    awaiting = set(B.baseline_scopes(run))
    report_pages, missing = A.stage_report(
        Path(run["data_root"]),
        stage_dir / "book",
        book.facts(),
        {(p.scope, p.strand) for p in book.pages if not (p.strand == "impact" and p.scope in awaiting)},
    )
    if missing:
        raise BookError("an authored page cites a number the book does not show:\n" + "\n".join(missing))
    # the threshold in the environment too: the prose renderers read it (it should equal the run's)
    salt = json.dumps([_code_digest(), limit, disclosure.threshold(), sorted(_NAMES.items())])
    old_pages, new_pages = _read_stage_cache(cache, salt), {}

    # the executive summary: headline tables and sentences from their published views
    look = looks[C.TRIAL_SCOPE]
    baseline = frozenset(B.baseline_scopes(run))
    pooled_baseline = C.TRIAL_SCOPE in baseline
    (stage_dir / "book" / "headline.md").write_text(
        _headline_markdown(book, "summary", True, pooled_baseline), encoding="utf-8"
    )
    headline_view = (
        book.cells("summary/headline")
        if not pooled_baseline
        else pd.DataFrame(columns=["outcome", "effect", "p", "p_holm", "finding"])
    )
    glue = {
        **S.sentences(headline_view, book.view("summary/cost"), book.view("summary/delivery"), look, limit),
        **_design_glue(look, run, limit),
    }
    # a pooled strand whose notebook failed: the summary says so, and its sentences say why they are empty
    instead = {
        "impact": {
            "s_primary_sentence": "The primary outcome's estimate",
            "s_secondary_sentence": "The secondary outcomes' estimates",
        },
        "process": {"s_reach_sentence": "The reach figure", "s_satisfaction_sentence": "The satisfaction figure"},
        "cost": {"s_cost_sentence": "The cost per participant"},
    }
    notes = []
    for strand, message in S.failed_strands(run).items():
        notes.append(f"The pooled {strand} notebook failed in this run, so its results are not shown: {message}")
        for name, what in instead.get(strand, {}).items():
            verb = "are" if what.endswith("estimates") else "is"
            glue[name] = md(f"{what} {verb} not available: the pooled {strand} notebook failed in this run.")
    glue["s_failed_note"] = md(" ".join(notes))
    glue["s_security_sentence"] = md(
        "The summary page's security table sets out the design, the power achieved against the plan, attrition, "
        "baseline balance and the robustness checks"
        + (" of the primary outcome." if S.primary_outcome(look) is not None else " of each outcome.")
    )
    if pooled_baseline:  # no follow-up yet: nothing is read from an outcome analysis
        glue.update(B.baseline_glue(look, run, limit))
    glue.update(S.front_matter(_protocol(Path(run["data_root"]), instrument)))
    glue["s_pdf_link"] = pdf_link("book/index", None, "The whole report as one PDF")
    glue["s_report_status"] = B.front_page_status(run)
    glue["s_waves_sentence"] = B.waves_sentence(pooled_baseline)

    config = yaml.safe_load((SOURCES / "_config.yml").read_text(encoding="utf-8"))
    if run.get("synthetic"):
        config.setdefault("html", {})["announcement"] = synthetic_notice(run)
    (stage_dir / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    fill_pages(stage_dir / "book", sorted(p.name for p in (SOURCES / "book").glob("*.md")), glue)

    by_page = {(p.scope, p.strand): p for p in book.pages}
    # each page's cache key: its digest and what the plan withholds or exempts on it
    page_keys = {
        where: hashlib.sha256(json.dumps([*where, page.digest, book.withheld_on(page)]).encode()).hexdigest()
        for where, page in by_page.items()
    }
    # the pages not in the cache, rendered under the book's plan (in parallel)
    rendered = book.render_pages([p for w, p in by_page.items() if page_keys[w] not in old_pages], jobs)
    downloads = stage_dir / "book" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    la_sections: dict[str, list[str]] = {}
    every: list[pd.DataFrame] = []  # every scope's published numbers, for the book-wide check
    for scope in scopes:
        cells: dict[str, list[dict]] = {}
        sdir = results / scope
        dst_dir = stage_dir / "results" / ("trial" if scope == C.TRIAL_SCOPE else f"las/{scope}")
        dst_dir.mkdir(parents=True, exist_ok=True)
        pages = []
        for strand in C.STRANDS:
            nb = sdir / f"{strand}.ipynb"
            name = STAGED_NAME[strand]
            if (scope, strand) in failed:
                (dst_dir / f"{name}.md").write_text(
                    failure_markdown(scope, strand, failed[(scope, strand)]), encoding="utf-8"
                )
                pages.append(name)
            elif nb.is_file():
                dst = dst_dir / f"{name}.ipynb"
                key = page_keys.get((scope, strand))
                if key is not None and key in old_pages:
                    text, cells[strand] = old_pages[key]
                    dst.write_text(text, encoding="utf-8")
                else:
                    outputs, page_cells = rendered.get((scope, strand), ({}, None))
                    _stage_notebook(nb, dst, scope, strand, outputs, scope in baseline)
                    if page_cells is not None:
                        cells[strand] = page_cells
                if key is not None:
                    new_pages[key] = (dst.read_text(encoding="utf-8"), cells[strand])
                pages.append(name)
        published = book.published(scope, cells)
        every.append(published)
        neutralise_frame(published).to_csv(downloads / f"{scope}-published-numbers.csv", index=False)
        if scope == C.TRIAL_SCOPE or pages:  # the Trial part always has its three pages
            for strand in C.STRANDS:
                name = STAGED_NAME[strand]
                if name not in pages:
                    (dst_dir / f"{name}.md").write_text(not_run_markdown(scope, strand), encoding="utf-8")
                    pages.append(name)
            pages.sort()
        if scope != C.TRIAL_SCOPE:
            la_sections[scope] = pages
            la_dir = stage_dir / "book" / "las"
            la_dir.mkdir(exist_ok=True)
            headline = _headline_markdown(book, scope, False, scope in baseline) if pages else ""
            text = la_index_markdown(scope, pages, headline, B.la_status(scope, run) if pages else "")
            (la_dir / f"{scope}.md").write_text(text, encoding="utf-8")
    # One fact, one value and one symbol everywhere it appears. An LA's strand that failed, or was not run
    # (``--scope``), has no results of its own, so its index page shows its facts as [x] while the pooled page
    # (which ran) may still show that LA's breakdown: "not available from this LA's run" is not a second face.
    shown = pd.concat(every, ignore_index=True)
    ran = {(t["scope"], t["strand"]) for t in run.get("tasks", []) if t["status"] != "failed"}
    lost = [(sc, st) not in ran for sc, st in zip(shown["scope"], shown["strand"])]
    shown = shown[~(pd.Series(lost, index=shown.index, dtype=bool) & (shown["symbol"] == "[x]"))]
    try:
        F.check(shown)
    except F.FactConflict as e:
        raise BookError(f"the book would show one fact two ways: {e}") from None
    (stage_dir / "book" / "local_authorities.md").write_text(
        local_authorities_markdown(sorted(run["las"]), book, baseline), encoding="utf-8"
    )
    toc = yaml.safe_load((SOURCES / "_toc.yml").read_text(encoding="utf-8"))
    (stage_dir / "_toc.yml").write_text(
        yaml.safe_dump(A.with_report(expand_toc(toc, la_sections), report_pages), sort_keys=False), encoding="utf-8"
    )
    if cache is not None:
        write_saved(cache, {"salt": salt, "pages": new_pages})
    return run

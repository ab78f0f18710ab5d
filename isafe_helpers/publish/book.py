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

Generated at staging, never typed: the executive summary's numbers (MyST
substitutions named ``s_*`` in the staged ``_config.yml``, from
:mod:`isafe_helpers.publish.summary`), its findings tables (``book/findings.md``),
its headline chart (``book/figures/headline.png``), the disclosure threshold
stated on the methods page, each LA's index page, the data dictionary and
the status page.

The build is offline: MathJax is served from the book's own ``_static``
(``sphinx-mathjax-offline``), so opening a page fetches nothing from the
network.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import nbformat
import pandas as pd
import yaml

from isafe_helpers.data import contract as C
from isafe_helpers.publish import disclosure
from isafe_helpers.publish import summary as S
from isafe_helpers.resources import SOURCES
from isafe_helpers.results import estimates as E

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


def scope_label(scope: str) -> str:
    return "Pooled trial" if scope == C.TRIAL_SCOPE else f"Local authority {scope}"


def synthetic_notice(run: dict) -> str:
    seed = (run.get("synthetic") or {}).get("seed")
    return (
        "Synthetic data: every number in this book comes from a synthetic trial made by "
        f"isafe_helpers.data.synth (seed {seed}) with the ISAFE design. The numbers are illustrative, "
        "not the ISAFE trial's."
    )


def read_run(results: Path) -> dict:
    path = results / RUN_FILE
    if not path.is_file():
        raise BookError(f"{results} holds no run ({RUN_FILE} missing): run `python -m isafe_helpers run` first")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# Generated pages
# --------------------------------------------------------------------------
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
        out += ["| column | type | meaning | rule |", "|---|---|---|---|"]
        for f in spec.fields:
            out.append(f"| `{f.name}` | {f.dtype} | {f.description} | {f.rule()} |")
        out.append("")
    out += [
        "## Scales",
        "",
        "A scale score is the mean of the answered items after reverse coding (x -> min + max - x), "
        "computed only when at least ceil(2k/3) of its k items are answered; otherwise it is missing.",
        "",
        "| scale | items | reverse-coded | range | items needed |",
        "|---|---|---|---|---|",
    ]
    for s in instrument.scales:
        out.append(
            f"| `{s.name}` | {', '.join(s.items)} | {', '.join(s.reverse) or 'none'} | "
            f"{s.min} to {s.max} | {s.min_answered} of {len(s.items)} |"
        )
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
    """Package versions, the data root's fingerprint and the run date."""
    rows = []
    for pkg in PACKAGES:
        try:
            rows.append(f"| {pkg} | {metadata.version(pkg)} |")
        except metadata.PackageNotFoundError:
            rows.append(f"| {pkg} | not installed |")
    tasks = run.get("tasks", [])
    task_rows = [f"| {t['scope']} | {t['strand']} | {t['status']} | {t.get('message', '')} |" for t in tasks]
    return "\n".join(
        [
            "# Status of this build",
            "",
            f"- Data root: `{Path(run['data_root']).name}` ({'synthetic' if run.get('synthetic') else 'real'} data)",
            f"- Data root fingerprint (SHA-256 of every file's path and bytes): `{run['fingerprint']}`",
            f"- Local authorities: {', '.join(run['las'])}",
            f"- Run finished: {run['finished']}",
            f"- Book built: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- Python {run['python']}",
            f"- Disclosure threshold: {run.get('disclosure_threshold') or disclosure.threshold()} people "
            f"(set by `{disclosure.THRESHOLD_ENV}` when the notebooks ran)",
            "",
            "## Notebooks of the last run",
            "",
            "| scope | strand | status | message |",
            "|---|---|---|---|",
            *task_rows,
            "",
            "## Package versions",
            "",
            "| package | version |",
            "|---|---|",
            *rows,
            "",
        ]
    )


def failure_markdown(scope: str, strand: str, message: str) -> str:
    return "\n".join(
        [
            f"# {STRAND_TITLES[strand]}: {scope_label(scope)}",
            "",
            "```{warning}",
            f"This page's notebook failed in the last run, so it has no results. The error was: {message}",
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
def _stage_notebook(src: Path, dst: Path, scope: str, strand: str) -> None:
    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("papermill", None)  # input and output paths of the run
    for cell in nb.cells:  # the parameter cells show local paths: the status page names the data
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            cell.metadata.pop("papermill", None)
            # the page's source is downloadable: keep the scope, not the machine's paths
            cell.source = "\n".join(
                f'{ln.split("=", 1)[0].strip()} = "<{ln.split("=", 1)[0].strip()}>"'
                if "=" in ln and ln.split("=", 1)[0].strip() in PATH_PARAMETERS
                else ln
                for ln in cell.source.splitlines()
            )
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            rest = cell.source.lstrip().split("\n", 1)
            cell.source = f"# {STRAND_TITLES[strand]}: {scope_label(scope)}" + ("\n" + rest[1] if len(rest) > 1 else "")
            break
    nbformat.write(nb, dst)


def la_index_markdown(la: str, pages: list[str], est: pd.DataFrame, failed: dict[str, str]) -> str:
    """The generated index page of one LA's section: caveat, headline numbers, its pages."""
    out = [
        f"# Local authority {la}",
        "",
        "```{caution}",
        f"{la} is one local authority of the trial, with a handful of teams: its estimates are far less "
        "precise than the pooled trial's and are descriptive only. The trial was powered for the pooled "
        "analysis; read the pooled pages for the trial's findings.",
        "```",
        "",
    ]
    if not pages:
        out += [f"No notebook was run for {la} in this build; see the status page.", ""]
        return "\n".join(out)
    summ = S.pooled_summary(est, failed, scope=la)
    out += [
        f"## Headline numbers for {la}",
        "",
        "The same quantities as the executive summary, for this LA alone, under the same disclosure control.",
        "",
        S.findings_markdown(summ),
        "## Pages",
        "",
        "```{tableofcontents}",
        "```",
        "",
    ]
    return "\n".join(out)


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


def _design_glue(est: pd.DataFrame, run: dict, limit: int) -> dict[str, str]:
    """Numbers of the trial's design as run (for the summary and the protocol page)."""
    glue = {"s_n_las": str(len(run.get("las", [])))}
    for unit in ("teams", "participants"):
        hit = est[
            (est["analysis"] == "attrition") & (est["outcome"] == unit) & (est["quantity"] == "overall_attrition_pct")
        ]
        if hit.empty:
            glue[f"s_n_{unit}"] = glue[f"s_attrition_{unit}"] = S.NOT_AVAILABLE
            continue
        row = hit.iloc[0]
        glue[f"s_n_{unit}"] = disclosure.safe_count(row["n"], limit)
        glue[f"s_attrition_{unit}"] = (
            disclosure.SUPPRESSED if disclosure.is_small(row["n"], limit) else f"{float(row['estimate']):.0f}%"
        )
    return glue


def stage(results: Path, stage_dir: Path) -> dict:
    """Lay out the book's sources in ``stage_dir``; return the run record."""
    run = read_run(results)
    # the threshold the notebooks were run with, so pages and summary agree
    limit = int(run.get("disclosure_threshold") or disclosure.threshold())
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copytree(SOURCES / "book", stage_dir / "book")
    instrument = C.DEFAULT_INSTRUMENT
    inst_file = Path(run["data_root"]) / "instrument.yml"
    if inst_file.is_file():
        instrument = C.Instrument.from_yaml(inst_file)
    (stage_dir / "book" / "data_dictionary.md").write_text(data_dictionary_markdown(instrument), encoding="utf-8")
    (stage_dir / "book" / "status.md").write_text(status_markdown(run), encoding="utf-8")

    # the executive summary: glued numbers, findings tables, headline chart
    pooled = E.read_scope(results, C.TRIAL_SCOPE)
    summ = S.pooled_summary(pooled, S.failed_strands(run), limit)
    (stage_dir / "book" / "findings.md").write_text(S.findings_markdown(summ), encoding="utf-8")
    (stage_dir / "book" / "figures").mkdir(exist_ok=True)
    S.headline_figure(summ).savefig(stage_dir / "book" / "figures" / "headline.png", dpi=110)
    glue = {**summ.glue, **_design_glue(pooled, run, limit)}

    config = yaml.safe_load((SOURCES / "_config.yml").read_text(encoding="utf-8"))
    if run.get("synthetic"):
        config.setdefault("html", {})["announcement"] = synthetic_notice(run)
    parse = config.setdefault("parse", {})
    exts = parse.setdefault("myst_enable_extensions", [])
    if "substitution" not in exts:
        exts.append("substitution")
    parse["myst_substitutions"] = glue
    (stage_dir / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    scopes = [C.TRIAL_SCOPE] + sorted(run["las"])
    failed = {(t["scope"], t["strand"]): t.get("message", "") for t in run.get("tasks", []) if t["status"] == "failed"}
    la_sections: dict[str, list[str]] = {}
    for scope in scopes:
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
                _stage_notebook(nb, dst_dir / f"{name}.ipynb", scope, strand)
                pages.append(name)
        if scope == C.TRIAL_SCOPE or pages:  # the Trial part always has its three pages
            for strand in C.STRANDS:
                name = STAGED_NAME[strand]
                if name not in pages:
                    (dst_dir / f"{name}.md").write_text(not_run_markdown(scope, strand), encoding="utf-8")
                    pages.append(name)
            pages.sort()
        if scope != C.TRIAL_SCOPE:
            la_sections[scope] = pages
            est = E.read_scope(results, scope)
            la_failed = {st: m for (sc, st), m in failed.items() if sc == scope}
            la_dir = stage_dir / "book" / "las"
            la_dir.mkdir(exist_ok=True)
            (la_dir / f"{scope}.md").write_text(la_index_markdown(scope, pages, est, la_failed), encoding="utf-8")
    toc = yaml.safe_load((SOURCES / "_toc.yml").read_text(encoding="utf-8"))
    (stage_dir / "_toc.yml").write_text(yaml.safe_dump(expand_toc(toc, la_sections), sort_keys=False), encoding="utf-8")
    return run

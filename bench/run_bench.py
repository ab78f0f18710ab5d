"""Benchmark of the handbook (issue 8). Run from the repository root:

    .venv/bin/python bench/run_bench.py            # everything (about 15-25 minutes on 2 cores)
    .venv/bin/python bench/run_bench.py --quick    # skips the national-scale parts

It prints a Markdown table and writes it to ``bench/RESULTS.md``:

(a) a cold full run on the bundled data (all scopes, all strands, book):
    wall time and peak memory (the sum of the resident memory of the whole
    process tree, sampled every 0.1 s with psutil);
(b) the same run again with nothing changed;
(a) also with each speed-up switched off (:data:`VARIANTS`): fresh kernels
    (no preloader), and every portable fallback forced (what the run does
    on Windows: no fork, no Unix sockets, no fcntl, no prctl);
(c) ``--jobs 1`` against ``--jobs 2`` (notebooks only, every task executed);
(d) a national-scale synthetic trial (``synth --las 150 --teams-per-la 10
    --staff-per-team 10``): the pooled impact strand; the primary model fit
    alone next to lme4 on the same data when ``Rscript`` with lme4 is
    present (and the largest differences between the two); randomisation
    inference with 5,000 permutations;
(e) growth: the pooled impact strand and the model fit at three sizes;
(f) the whole handbook at national scale (150 LAs of 10 teams of 10 staff:
    453 notebooks and a book of over 600 pages) with ``--jobs 2``: a cold
    run (and the same cold run with each of :data:`VARIANTS`), the same run
    with nothing changed, and a rerun after one cost value of one LA changes
    (which notebooks rerun, and the incremental book).

    .venv/bin/python bench/run_bench.py --national   # (f) only

Nothing here asserts a time: the numbers are measured and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def measure(cmd: list[str], env: dict | None = None, log: Path | None = None) -> tuple[float, float, int]:
    """Run ``cmd``; return (wall seconds, peak tree RSS in MB, exit code). ``log`` keeps its standard output."""
    start = time.perf_counter()
    out = open(log, "w", encoding="utf-8") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
                rss = 0
                for q in procs:
                    try:
                        rss += q.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    if log is not None:
        out.close()  # type: ignore[union-attr]
    done.set()
    t.join()
    return wall, peak / 2**20, code


def hm(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def cli(*args: str) -> list[str]:
    return [PY, "-m", "isafe_helpers", *args]


def fit_timing(root: Path) -> dict:
    """Time the primary model fit alone (median of 5) on the pooled confidence frame."""
    sys.path.insert(0, str(REPO))
    from isafe_helpers.data.frames import analysis_frame
    from isafe_helpers.data.loading import load_root
    from isafe_helpers.stats.mixed import fit_formula_free

    data = load_root(root)
    df = analysis_frame(data, "confidence")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fit = fit_formula_free(df, "followup", ["treated", "baseline", "la"], "team_id")
        times.append(time.perf_counter() - t0)
    k = fit.names.index("treated")
    return {
        "df": df,
        "fit": fit,
        "k": k,
        "seconds": float(np.median(times)),
        "n": len(df),
        "teams": df["team_id"].nunique(),
        "las": df["la"].nunique(),
        "data": data,
    }


R_SCRIPT = r"""
suppressMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], colClasses = c(team_id = "character", la = "character"))
d$la <- factor(d$la)
t <- system.time(m <- lmer(followup ~ treated + baseline + la + (1 | team_id), data = d, REML = TRUE))
vc <- as.data.frame(VarCorr(m))
cat(sprintf("%.17g %.17g %.17g %.17g %.17g %s\n", t[["elapsed"]], fixef(m)[["treated"]],
    sqrt(diag(vcov(m)))[["treated"]], vc$vcov[vc$grp == "team_id"], vc$vcov[vc$grp == "Residual"],
    packageVersion("lme4")))
"""


def lme4_timing(df, workdir: Path) -> dict | None:
    if not shutil.which("Rscript"):
        return None
    csv = workdir / "frame.csv"
    df[["followup", "treated", "baseline", "la", "team_id"]].to_csv(csv, index=False)
    script = workdir / "fit.R"
    script.write_text(R_SCRIPT)
    res = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    el, b, se, tv, rv, ver = res.stdout.split()
    return {
        "seconds": float(el),
        "beta": float(b),
        "se": float(se),
        "team_variance": float(tv),
        "residual_variance": float(rv),
        "version": ver,
    }


def ri_timing(data) -> tuple[float, int]:
    from isafe_helpers.impact.sensitivity import randomisation_inference

    t0 = time.perf_counter()
    res = randomisation_inference(data, "confidence", n_perm=5000)
    return time.perf_counter() - t0, getattr(res, "n_perm", 5000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the national-scale parts (d), (e) and (f)")
    ap.add_argument("--national", action="store_true", help="only (f), the whole handbook at national scale")
    ap.add_argument(
        "--no-variants",
        action="store_true",
        help="with --national: skip the runs with fresh kernels and with every fallback (each a whole cold run)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="isafe-bench-"))
    rows: list[tuple[str, str, str, str]] = []
    growth: list = []
    try:
        if args.national:
            rows += national(tmp, variants_too=not args.no_variants)
            return write(rows, growth, "RESULTS-national.md")
        out, build = tmp / "out", tmp / "build"
        w, m, c = measure(cli("run", "--out", str(out), "--build", str(build)))
        rows.append(("(a) cold full run, bundled data (24 notebooks + book)", hm(w), f"{m:,.0f} MB", f"exit {c}"))
        cold = w
        rows += variants(["run"], tmp / "bundled", cold, "(a)")
        w, m, c = measure(cli("run", "--out", str(out), "--build", str(build)))
        rows.append(
            ("(b) same run again, nothing changed", hm(w), f"{m:,.0f} MB", f"exit {c}; {100 * w / cold:.1f}% of cold")
        )
        j = {}
        for jobs in (1, 2):
            w, m, c = measure(
                cli("run", "--out", str(tmp / f"jobs{jobs}"), "--no-book", "--force", "--jobs", str(jobs))
            )
            j[jobs] = w
            rows.append((f"(c) notebooks only, --jobs {jobs}", hm(w), f"{m:,.0f} MB", f"exit {c}"))
        rows.append(("(c) speed-up of --jobs 2 over --jobs 1", f"{j[1] / j[2]:.2f}x", "", ""))

        if not args.quick:
            for las in (15, 50, 150):
                root = tmp / f"nat{las}"
                subprocess.run(
                    cli(
                        "synth", "--out", str(root), "--las", str(las), "--teams-per-la", "10", "--staff-per-team", "10"
                    ),
                    cwd=REPO,
                    check=True,
                    capture_output=True,
                )
                w, m, c = measure(
                    cli(
                        "run",
                        "--data",
                        str(root),
                        "--out",
                        str(tmp / f"natout{las}"),
                        "--scope",
                        "trial",
                        "--strand",
                        "impact",
                        "--no-book",
                    )
                )
                ft = fit_timing(root)
                growth.append((las, ft["n"], ft["teams"], w, m, ft["seconds"], c))
                if las == 150:
                    rows.append(
                        (
                            f"(d) national scale: pooled impact strand ({ft['n']:,} analysed staff, "
                            f"{ft['teams']:,} teams, {las} LAs)",
                            hm(w),
                            f"{m:,.0f} MB",
                            f"exit {c}",
                        )
                    )
                    rows.append(
                        (
                            "(d) primary model fit alone (exact profiled REML, median of 5)",
                            f"{ft['seconds']:.3f} s",
                            "",
                            "",
                        )
                    )
                    r = lme4_timing(ft["df"], tmp)
                    if r:
                        fit, k = ft["fit"], ft["k"]
                        d_beta = abs(fit.beta[k] - r["beta"])
                        d_se = abs(fit.se[k] - r["se"]) / r["se"]
                        d_tv = abs(fit.team_variance - r["team_variance"])
                        d_rv = abs(fit.residual_variance - r["residual_variance"])
                        rows.append(
                            (
                                f"(d) lme4 {r['version']} lmer() on the same data",
                                f"{r['seconds']:.3f} s",
                                "",
                                f"ours is {r['seconds'] / ft['seconds']:.0f}x faster",
                            )
                        )
                        rows.append(
                            (
                                "(d) agreement with lme4: abs. difference of estimate, team variance, residual variance; relative difference of SE",
                                f"{d_beta:.1e}, {d_tv:.1e}, {d_rv:.1e}; {d_se:.1e}",
                                "",
                                "",
                            )
                        )
                    else:
                        rows.append(("(d) lme4 on the same data", "R/lme4 not found", "", ""))
                    ri_s, n_perm = ri_timing(ft["data"])
                    rows.append((f"(d) randomisation inference, {n_perm:,} permutations", f"{ri_s:.2f} s", "", ""))
            rows += national(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write(rows, growth, "RESULTS.md")


def _add(rows: list, row: tuple) -> None:
    """Keep a measurement and print it at once (a later step that fails does not lose it)."""
    rows.append(row)
    print("| " + " | ".join(row) + " |", flush=True)


#: The run's speed-ups switched off, each measured cold beside the fast path (issue 27): what each one buys.
VARIANTS = (
    ("fresh kernels, no preloader (ISAFE_FRESH_KERNELS=1)", {"ISAFE_FRESH_KERNELS": "1"}),
    ("every portable fallback forced (ISAFE_PORTABLE=1)", {"ISAFE_PORTABLE": "1"}),
)


def variants(args: list[str], where: Path, cold: float, label: str) -> list[tuple[str, str, str, str]]:
    """The cold run ``args`` again once per :data:`VARIANTS` (fresh folders each), beside the fast path's ``cold``."""
    rows = []
    for i, (name, env) in enumerate(VARIANTS):
        out, build = where / f"variant{i}-out", where / f"variant{i}-build"
        w, m, c = measure(cli(*args, "--out", str(out), "--build", str(build)), env=env)
        gain = 100 * (1 - cold / w) if w else float("nan")
        rows.append(
            (
                f"{label} the same cold run, {name}",
                hm(w),
                f"{m:,.0f} MB",
                f"exit {c}; {100 * w / cold:.0f}% of the fast path's (the mechanism buys {gain:.0f}% of this run)",
            )
        )
    return rows


def national(tmp: Path, las: int = 150, variants_too: bool = True) -> list[tuple[str, str, str, str]]:
    """(f): the whole handbook for ``las`` LAs, cold (also with fresh kernels and with every fallback unless not
    ``variants_too``), unchanged, and after one cost value changes."""
    root, out, build = tmp / "national", tmp / "national-out", tmp / "national-build"
    subprocess.run(
        cli("synth", "--out", str(root), "--las", str(las), "--teams-per-la", "10", "--staff-per-team", "10"),
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    run = cli("run", "--data", str(root), "--out", str(out), "--build", str(build), "--jobs", "2")
    rows = []

    log = tmp / "national.log"

    def statuses() -> str:
        """The notebooks' outcomes and the run's own split of its time (its last line ``time: ...``)."""
        tasks = json.loads((out / "run.json").read_text())["tasks"]
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        split = [ln[len("time: ") :] for ln in log.read_text(encoding="utf-8").splitlines() if ln.startswith("time: ")]
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + (f"; {split[-1]}" if split else "")

    w, m, c = measure(run, log=log)
    cold = w
    pages = len(list((build / "html").rglob("*.html")))
    _add(
        rows,
        (
            f"(f) whole handbook, {las} LAs ({3 * (las + 1)} notebooks + book of {pages} HTML pages), cold, --jobs 2",
            hm(w),
            f"{m:,.0f} MB",
            f"exit {c}; {statuses()}",
        ),
    )
    if variants_too:
        for row in variants(["run", "--data", str(root), "--jobs", "2"], tmp / "national-variant", cold, "(f)"):
            _add(rows, row)
    w, m, c = measure(run, log=log)
    _add(rows, ("(f) the same again, nothing changed", hm(w), f"{m:,.0f} MB", f"exit {c}; {statuses()}"))
    first = sorted(p.name for p in root.iterdir() if (p / "costs.csv").is_file())[0]  # LA001 at 150 LAs
    costs = root / first / "costs.csv"
    lines = costs.read_text(encoding="utf-8").splitlines()
    head, row = lines[0].split(","), lines[1].split(",")
    col = head.index("amount_gbp") if "amount_gbp" in head else next(i for i, h in enumerate(head) if "gbp" in h)
    row[col] = str(float(row[col]) + 100)
    costs.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n", encoding="utf-8")
    w, m, c = measure(run, log=log)
    _add(
        rows,
        (
            f"(f) after one cost value of {first} changes (notebooks rerun, book rebuilt incrementally)",
            hm(w),
            f"{m:,.0f} MB",
            f"exit {c}; {statuses()}",
        ),
    )
    return rows


def write(rows: list, growth: list, name: str) -> None:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {cpu}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| measurement | time | peak memory | note |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    ]
    if growth:
        lines += [
            "",
            "Growth of the pooled impact strand (teams of about 10 staff, 10 teams per LA):",
            "",
            "| LAs | analysed staff | teams | impact strand | peak memory | primary fit |",
            "|---|---|---|---|---|---|",
            *[f"| {las} | {n:,} | {t:,} | {hm(w)} | {m:,.0f} MB | {f:.3f} s |" for las, n, t, w, m, f, _ in growth],
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    (REPO / "bench" / name).write_text(text)
    stem = name.removesuffix(".md").lower()
    (REPO / "bench" / f"{stem}.json").write_text(json.dumps({"rows": rows, "growth": growth}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""A task's inputs are exactly what its notebook reads (issue 16, item 4).

The pipeline declares what each strand reads of its scope's validated data
(``READS``) and of the whole root (``ROOT_READS``). The first tests run each
notebook's code in this process on data that records every table and field
read, for the pooled trial and for an LA, and check the declaration covers
it. The last one changes one LA's costs and checks that exactly that LA's
cost notebook and the pooled one run again, and that every output then
equals a run from scratch on the changed data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from isafe_helpers.data.loading import TrialData, load_root
from isafe_helpers.data.synth import generate
from isafe_helpers.publish import report
from isafe_helpers.resources import NOTEBOOKS
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.run.pipeline import READS, ROOT_READS, data_digests

#: Fields recorded by name; ``tables`` is recorded by the tables taken from it.
FIELDS = ({f.name for f in dataclasses.fields(TrialData)} | {"is_synthetic"}) - {"tables"}
#: Fields every scope has, whatever it reads: they are in every task's inputs through its parameters.
GIVEN = {"root", "is_synthetic"}


class _Recorded(TrialData):
    """A TrialData that writes the name of every table and field read into ``log``."""

    def __init__(self, base: TrialData, log: set, scoped_log: set):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_scoped_log", scoped_log)
        for f in dataclasses.fields(TrialData):
            object.__setattr__(self, f.name, getattr(base, f.name))
        object.__setattr__(self, "tables", _RecordedTables(base.tables, log))

    def __getattribute__(self, name):
        if name in FIELDS:
            object.__getattribute__(self, "_log").add("synthetic" if name == "is_synthetic" else name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        tables = object.__getattribute__(self, "tables")
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def for_scope(self, scope):
        if scope == "trial":
            return self
        log = object.__getattribute__(self, "_scoped_log")
        return _Recorded(object.__getattribute__(self, "_base").for_scope(scope), log, log)


class _RecordedTables(dict):
    def __init__(self, tables, log):
        super().__init__(tables)
        self._log = log

    def __getitem__(self, key):
        self._log.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._log.add(key)
        return super().get(key, default)

    def __iter__(self):
        self._log.update(self.keys())
        return super().__iter__()

    def items(self):
        self._log.update(self.keys())
        return super().items()

    def values(self):
        self._log.update(self.keys())
        return super().values()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("reads") / "root", seed=5, las=2, teams_per_la=4, staff_per_team=5)


@pytest.fixture(scope="module")
def full(root) -> TrialData:
    return load_root(root)


def _reads(full: TrialData, strand: str, scope: str, out: Path, monkeypatch) -> tuple[set, set]:
    """Run ``strand``'s notebook code for ``scope``; return (what it read of the root, of its scope)."""
    import matplotlib

    matplotlib.use("agg")
    root_log: set = set()
    scope_log: set = set()

    def load_scope(data_root, sc):
        data = _Recorded(full, root_log, scope_log)
        return data if sc == "trial" else data.for_scope(sc)

    monkeypatch.setattr(report, "load_scope", load_scope)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".results_root").write_text(str(out.parent))  # as the pipeline lays out a task's folder
    monkeypatch.chdir(NOTEBOOKS)
    namespace: dict = {}
    for cell in nbformat.read(NOTEBOOKS / f"{strand}.ipynb", as_version=4).cells:
        if cell.cell_type != "code":
            continue
        src = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            src = f"data_root = {str(full.root)!r}\nscope = {scope!r}\noutput_dir = {str(out)!r}"
        src = src.replace("from IPython.display import Markdown, display", "from IPython.display import Markdown")
        namespace["display"] = lambda *a, **k: None
        exec(compile(src, f"{strand}.ipynb", "exec"), namespace)
    return root_log, scope_log


@pytest.mark.parametrize("strand", ["impact", "process", "cost"])
@pytest.mark.parametrize("scope", ["trial", "LA01"])
def test_every_table_and_field_a_notebook_reads_is_among_its_inputs(full, strand, scope, tmp_path, monkeypatch):
    if strand == "process":  # it reads the impact rows of its scope (DEPENDS_ON): give it some
        _reads(full, "impact", scope, tmp_path / scope, monkeypatch)
    root_log, scope_log = _reads(full, strand, scope, tmp_path / scope, monkeypatch)
    declared = set(READS[strand]) | GIVEN
    if scope == "trial":
        read = root_log | scope_log  # an LA looked at inside a pooled analysis is part of the trial's data
        assert read, "the recorder saw nothing: the test would pass whatever the notebook read"
        assert read <= declared, f"{strand} reads {sorted(read - declared)} but READS does not list them"
        return
    assert scope_log and scope_log <= declared, f"{strand} reads {sorted(scope_log - declared)} of {scope}"
    # what an LA's notebook reads of the whole root: only what ROOT_READS hashes
    allowed: set = set()
    for fn in ROOT_READS.get(strand, {}).values():
        fn(_Recorded(full, allowed, set()))
    assert root_log <= allowed, f"{strand} for {scope} reads {sorted(root_log - allowed)} of every LA"


def test_the_recorder_sees_what_is_read(full):
    log: set = set()
    data = _Recorded(full, log, log)
    _ = data.costs, data.instrument, data.tables["teams"]
    assert log == {"costs", "instrument", "teams"}


def _digests_after(root: Path, tmp_path: Path, edit) -> dict:
    copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    import shutil

    shutil.copytree(root, copy)
    edit(copy)
    return data_digests(load_root(copy))


def test_a_changed_cost_changes_the_costs_of_its_la_and_the_trial_only(root, full, tmp_path):
    def edit(r: Path):
        costs = pd.read_csv(r / "LA01" / "costs.csv", dtype=str, keep_default_na=False)
        costs.loc[0, "unit_cost_gbp"] = str(float(costs.loc[0, "unit_cost_gbp"]) + 1)
        costs.to_csv(r / "LA01" / "costs.csv", index=False, lineterminator="\n")

    before, after = data_digests(full), _digests_after(root, tmp_path, edit)
    changed = {(s, k) for s in before for k in before[s] if before[s][k] != after[s][k]}
    assert changed == {("LA01", "costs"), ("trial", "costs")}


def test_the_digests_ignore_how_a_file_is_written_but_not_what_it_says(root, full, tmp_path):
    def reorder_columns(r: Path):
        teams = pd.read_csv(r / "LA02" / "teams.csv", dtype=str, keep_default_na=False)
        teams[list(reversed(teams.columns))].to_csv(r / "LA02" / "teams.csv", index=False, lineterminator="\r\n")

    assert _digests_after(root, tmp_path, reorder_columns) == data_digests(full)

    def new_arm(r: Path):
        teams = pd.read_csv(r / "LA02" / "teams.csv", dtype=str, keep_default_na=False)
        teams.loc[0, "arm"] = "control" if teams.loc[0, "arm"] == "treatment" else "treatment"
        teams.to_csv(r / "LA02" / "teams.csv", index=False, lineterminator="\n")

    after = _digests_after(root, tmp_path, new_arm)
    assert after["LA02"]["teams"] != data_digests(full)["LA02"]["teams"]
    assert after["LA01"]["teams"] == data_digests(full)["LA01"]["teams"]


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ISAFE_VALIDATED_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=env
    )


def _statuses(stdout: str) -> dict[tuple[str, str], str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("impact", "process", "cost"):
            assert (parts[0], parts[1]) not in out, f"{parts[0]}/{parts[1]} was run or counted twice"
            out[(parts[0], parts[1])] = parts[2]
    return out


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes().replace(str(out).encode(), b"<out>")
        for p in sorted(out.glob("*/*"))
        if p.suffix in (".ipynb", ".csv")
    }


@pytest.mark.slow
def test_one_la_cost_change_reruns_its_cost_notebook_and_the_pooled_one_only(root, tmp_path):
    import shutil

    data = tmp_path / "root"
    shutil.copytree(root, data)
    out = tmp_path / "out"
    first = cli("run", "--data", data, "--out", out, "--no-book")
    assert first.returncode == 0, first.stdout + first.stderr
    costs = pd.read_csv(data / "LA01" / "costs.csv", dtype=str, keep_default_na=False)
    costs.loc[0, "unit_cost_gbp"] = str(float(costs.loc[0, "unit_cost_gbp"]) * 2)
    costs.to_csv(data / "LA01" / "costs.csv", index=False, lineterminator="\n")

    again = cli("run", "--data", data, "--out", out, "--no-book")
    assert again.returncode == 0, again.stdout + again.stderr
    status = _statuses(again.stdout)
    assert {t for t, s in status.items() if s == "done"} == {("LA01", "cost"), ("trial", "cost")}
    assert {s for t, s in status.items() if t not in {("LA01", "cost"), ("trial", "cost")}} == {"unchanged"}

    # the notebooks not run again hold what they would hold if they had been run
    fresh = tmp_path / "fresh"
    assert cli("run", "--data", data, "--out", fresh, "--no-book").returncode == 0
    assert _outputs(out) == _outputs(fresh)
    run = json.loads((out / "run.json").read_text())
    assert {(t["scope"], t["strand"]) for t in run["tasks"]} == set(status)


def test_a_task_waits_for_the_estimates_it_reads_and_no_more():
    from isafe_helpers.run.pipeline import _priority, _waits_for

    tasks = [(s, st) for s in ("trial", "LA01", "LA02") for st in ("impact", "process", "cost")]
    assert _waits_for(("LA01", "process"), tasks) == {("LA01", "impact")}
    assert _waits_for(("trial", "process"), tasks) == {("trial", "impact"), ("LA01", "impact"), ("LA02", "impact")}
    assert _waits_for(("LA02", "cost"), tasks) == set()
    assert _waits_for(("trial", "impact"), tasks) == set()
    # only tasks of this run are waited for (a run of LA01 alone does not wait for LA02)
    assert _waits_for(("trial", "process"), [("trial", "process"), ("LA01", "impact")]) == {("LA01", "impact")}
    # what others read first, then what waits, then the rest; the pooled notebook first within each
    order = sorted(tasks, key=_priority)
    assert order[:3] == [("trial", "impact"), ("LA01", "impact"), ("LA02", "impact")]
    assert order[3] == ("trial", "process") and order[-3] == ("trial", "cost")

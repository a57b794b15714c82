"""Run history: every run folder as a row, one run in full, two runs side by side, clean-up.

Rows are read from the files a run leaves (``run.json``, ``metrics.json``, ``compare.json``,
``evaluate-*.json``, ``tune.json``), so runs made by any command, old or new, are listed. A
file that cannot be read makes its row say so; the other rows are still listed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from digitlab.core.errors import DigitlabError
from digitlab.runs.folders import (
    LATEST,
    RUN_FILE,
    being_written,
    is_complete,
    is_latest,
    owned_run,
    remove_run,
    run_writer,
)
from digitlab.runs.lookup import find_run, latest_run, run_folders
from digitlab.runs.reader import Run


@dataclass(frozen=True)
class RunSummary:
    id: str  # the folder's name
    path: Path
    time: str  # when it started (ISO 8601)
    command: str  # run, train-svm, compare …
    dataset: str | None
    seed: int | None
    models: dict[str, float | None] = field(default_factory=dict)  # model -> test accuracy
    seconds: float | None = None  # how long it took (complete runs)
    complete: bool = False
    latest: bool = False
    size_bytes: int = 0
    problem: str | None = None  # "unreadable compare.json" …

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), path=str(self.path))


def _stamp_time(name: str) -> str:
    try:
        return datetime.strptime(name[:15], "%Y%m%d-%H%M%S").isoformat()
    except ValueError:
        return ""


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def summarise(path: Path) -> RunSummary:
    """One run folder as a row; an unreadable file is named in ``problem``."""
    stamp = _stamp_time(path.name)
    base: dict[str, Any] = {
        "id": path.name,
        "path": path,
        "time": stamp,
        "command": path.name[16:] if stamp else path.name,  # "20261130-161826-compare" -> "compare"
        "dataset": None,
        "seed": None,
        "complete": is_complete(path),
        "latest": is_latest(path),
        "size_bytes": _size(path),
    }
    run = Run(path)
    models: dict[str, float | None] = {}
    info = run.doc(RUN_FILE) or {}
    if info.get("started"):
        base["time"] = str(info["started"])
        if info.get("finished"):
            started, finished = datetime.fromisoformat(info["started"]), datetime.fromisoformat(info["finished"])
            base["seconds"] = (finished - started).total_seconds()
    base["command"] = str(info.get("command", base["command"]))
    summary, compare = run.summary, run.compare
    metrics = summary.to_json() if summary else {}
    for source in (info, compare.to_json() if compare else {}, metrics, dict(summary.settings) if summary else {}):
        base["dataset"] = base["dataset"] or source.get("dataset")
        if base["seed"] is None and isinstance(source.get("seed"), int):
            base["seed"] = source["seed"]
    for row in compare.models if compare else []:
        models[row.model] = row.accuracy
    if "model" in metrics and "accuracy" in metrics:
        models[str(metrics["model"])] = metrics["accuracy"]
    for name, ev in run.evaluations.items():
        models.setdefault(str(ev.get("model", name)), ev.accuracy)
        base["dataset"] = base["dataset"] or ev.get("dataset")
    tune = run.tune
    if tune is not None and tune.test:
        models[tune.saved_as or tune.model] = tune.test.get("accuracy")
    problem = "; ".join(f"unreadable {name}" for name in run.unreadable) or None
    return RunSummary(**base, models=models, problem=problem)


def run_history(out: Path) -> list[RunSummary]:
    """Every run folder under ``out`` (complete or not), newest first."""
    return [summarise(p) for p in run_folders(out)]


def run_facts(path: Path) -> dict[str, Any]:
    """Parameters and metrics of a run, flat: ``accuracy.svm``, ``seed``, ``dataset``, ``params.svm.clf__C`` …"""
    summary = summarise(path)
    facts: dict[str, Any] = {"command": summary.command, "dataset": summary.dataset, "seed": summary.seed}
    for model, accuracy in summary.models.items():
        facts[f"accuracy.{model}"] = accuracy
    run = Run(path)
    for name, ev in run.evaluations.items():
        data = ev.to_json()
        model = str(data.get("model", name))
        facts.update({f"{key}.{model}": data[key] for key in ("macro_f1", "n_errors", "n_test") if key in data})
    for row in compare.to_json()["models"] if (compare := run.compare) else []:
        facts.update({f"{key}.{row['model']}": row[key] for key in ("fit_s", "predict_s", "size_bytes") if key in row})
    return facts


def diff_runs(a: str, b: str, out: Path) -> list[dict[str, Any]]:
    """Every parameter and metric of two runs side by side, with the difference where both are numbers."""
    left, right = run_facts(find_run(a, out)), run_facts(find_run(b, out))
    rows = []
    for key in sorted(set(left) | set(right)):
        va, vb = left.get(key), right.get(key)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (va, vb))
        rows.append({"key": key, "a": va, "b": vb, "difference": (vb - va) if numbers else None, "same": va == vb})  # type: ignore[operator]
    return rows


def removable_runs(names: list[str], out: Path) -> list[Path]:
    """The run folders ``runs rm`` may delete: each a folder digitlab made, directly inside ``out``
    (never through a symlink, never ``out`` or above it); anything else is refused in one line."""
    paths: list[Path] = []
    for name in names:
        path = owned_run(name, out)
        if path not in paths:
            paths.append(path)
    return paths


def remove_runs(names: list[str], out: Path, force: bool = False) -> list[Path]:
    """Delete run folders digitlab made under ``out``; the one ``latest`` points at only with ``force``
    (then ``latest`` goes too); a run still being written is refused (its writer holds a lock)."""
    paths = removable_runs(names, out)
    link = Path(out) / LATEST
    current = link.resolve() if link.is_symlink() else None
    for path in paths:  # every refusal before the first removal: all of them go, or none
        if current is not None and path == current and not force:
            raise DigitlabError(f"{path.name} is the latest run; add --force to remove it too.")
        writer = run_writer(path)
        if writer is not None:
            raise being_written(path, writer)
    root = Path(out).expanduser().resolve()
    for path in paths:
        remove_run(path, root)
        if current is not None and path == current:
            (Path(out) / LATEST).unlink(missing_ok=True)
    return paths


def prune_candidates(out: Path, keep: int, force: bool = False) -> list[Path]:
    """The run folders ``prune --keep N`` would remove: all but the newest ``keep`` (never ``latest`` without
    force), and only folders digitlab made that nobody is writing now."""
    if keep < 0:
        raise DigitlabError(f"--keep {keep}: keep 0 or more runs.")
    current = latest_run(out)
    found = []
    for path in run_folders(out)[keep:]:
        if not force and current is not None and path.resolve() == current:
            continue
        try:
            path = owned_run(str(path), out)
        except DigitlabError:
            continue
        if run_writer(path) is None:
            found.append(path)
    return found

"""One self-contained HTML report of a run folder: every figure embedded, no links out.

``build(run_path)`` reads only what the run saved (JSON files and figures), so it takes
seconds whatever the dataset size and never retrains anything.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_open, library_versions
from digitlab.runs.reader import Run
from digitlab.runs.records import JsonDoc, Record

REPORT_NAME = "report.html"
# (id, heading) of every section, in order; the template renders each, present or not.
SECTIONS = (
    ("data", "Dataset"),
    ("examples", "Example images"),
    ("distribution", "Class distribution"),
    ("normalised", "Normalised data"),
    ("comparison", "Model comparison"),
    ("evaluation", "Evaluation per model"),
    ("look", "What the models look at"),
    ("tuning", "Tuning"),
    ("augmentation", "Augmentation"),
    ("mine", "Your digits"),
    ("aspects", "Aspects to consider"),
)


@dataclass(frozen=True)
class Figure:
    """A figure of the run, as a data URI (or the reason it is missing)."""

    path: str
    uri: str | None
    caption: str


class _Figures:
    def __init__(self, run: Path) -> None:
        self.run = run
        self.embedded: list[str] = []
        self.missing: list[str] = []

    def __call__(self, rel: str | None, caption: str = "") -> Figure | None:
        if not rel:
            return None
        path = self.run / rel
        if not path.is_file() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            self.missing.append(rel)
            return Figure(rel, None, caption)
        self.embedded.append(rel)
        return Figure(rel, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"), caption)


def aspects(names: list[str]) -> list[dict[str, str]]:
    from digitlab.models import registry

    rows = []
    for name in names:
        spec = registry.lookup(registry.base_name(name))
        if spec is None:
            continue
        rows.append(
            {"model": name, "family": spec.family, "what": spec.description, "pros": spec.pros, "cons": spec.cons}
        )
    return rows


def context(run_path: str | Path) -> dict[str, Any]:
    """Everything the template shows, read from the run folder (the template reads records as JSON docs)."""
    run = Run.open(run_path, strict=True)

    def doc(record: Record | None) -> JsonDoc | None:
        return None if record is None else record.to_json()

    data = run.data
    evaluations = [dict(ev.to_json(), name=name, per_class=ev.per_class) for name, ev in run.evaluations.items()]
    maps = [{k: v for k, v in m.to_json().items() if k != "points"} for m in run.maps.values()]
    return {
        "run": run.name,  # the folder's own name, also when opened through runs/latest
        "run_path": str(run.path.resolve()),
        "settings": run.settings,
        "data": doc(data),
        "explore": doc(run.explore),
        "preprocess": doc(run.preprocess),
        "compare": doc(run.compare),
        "evaluations": evaluations,
        "tune": doc(run.tune),
        "augments": [a.to_json() for a in run.augmentations.values()],
        "augment_compare": doc(run.augment_compare),
        "ensemble": doc(run.ensemble),
        "mine": doc(run.mine),
        "look": doc(run.look),
        "maps": maps,
        "personalise": doc(run.personalise),
        "aspects": aspects(run.model_names),
        "sections": SECTIONS,
        "versions": library_versions(),
        "created": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def _pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.{digits}f}"


def _shade(value: float) -> str:
    """Background for a [0, 1] pixel value in the normalised-data table (white ink on black)."""
    level = round(255 * min(max(float(value), 0.0), 1.0))
    text = "#000" if level > 140 else "#ddd"
    return f"background:rgb({level},{level},{level});color:{text}"


def render(run_path: str | Path) -> tuple[str, dict[str, Any]]:
    """The HTML text and a summary (sections, figures embedded and missing)."""
    run = Path(run_path)
    if not run.is_dir():
        raise DigitlabError(f"{run}: no such run folder; run `digitlab run` first or pass a folder under runs/.")
    ctx = context(run)
    if ctx["data"] is None and ctx["compare"] is None and not ctx["evaluations"] and ctx["personalise"] is None:
        raise DigitlabError(
            f"{run}: nothing to report (no data.json, compare.json or evaluate-*.json); "
            "pass the folder of a `digitlab run`."
        )
    env = Environment(
        loader=PackageLoader("digitlab.analysis.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    figures = _Figures(run)
    env.globals.update(figure=figures, pct=_pct, num=_num, shade=_shade)
    html = env.get_template("report.html.j2").render(**ctx)
    summary = {
        "sections": [s for s, _ in SECTIONS],
        "figures": len(figures.embedded),
        "missing_figures": figures.missing,
        "models": [e["name"] for e in ctx["evaluations"]],
        "has_tuning": ctx["tune"] is not None,
        "has_augmentation": bool(ctx["augments"]),
    }
    return html, summary


def build(run_path: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write the report (atomically) to ``out`` (default ``<run>/report.html``)."""
    start = time.perf_counter()
    run = Path(run_path)
    html, summary = render(run)
    target = Path(out) if out is not None else run / REPORT_NAME
    with atomic_open(target, "w") as fh:
        fh.write(html)
    return dict(
        summary, path=str(target), bytes=target.stat().st_size, seconds=time.perf_counter() - start, run=str(run)
    )


__all__ = ["REPORT_NAME", "SECTIONS", "build", "context", "render"]

"""The self-contained HTML report of a run folder (your digits measured and explanations made first when missing)."""

from __future__ import annotations

from pathlib import Path

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import check_new_file
from digitlab.runs.folders import Run
from digitlab.runs.lookup import find_run
from digitlab.runs.records import Report
from digitlab.service.base import StepResult, run_dataset
from digitlab.service.explaining import look_inside
from digitlab.service.personalising import measure_mine_in


def report_into(run: Run) -> Report:
    """The self-contained HTML report of everything the run folder holds (your digits measured first, if any)."""
    from digitlab.analysis import report as report_lib

    measure_mine_in(run)
    return Report.of(report_lib.build(run.path))


def report(
    run: str | None,
    out: Path,
    output: Path | None = None,
    on_progress: progress.Progress | None = None,
    force: bool = False,
) -> StepResult:
    """The self-contained HTML report of a run folder (default: the latest), your digits measured first if any.

    An ``output`` file that is already there is overwritten only with ``force``."""
    from digitlab.analysis import report as report_lib

    if output is not None:
        check_new_file(output, force)
    path = find_run(run, out)
    with progress.reporting(on_progress):
        measure_mine_in(Run(path))
        _look_inside_if_missing(path)
    return StepResult("report", None, Report.of(report_lib.build(path, output)))


def _look_inside_if_missing(path: Path) -> None:
    """Explanations for the report's "What the models look at" when the run has models but no look.json yet."""
    if (path / "look.json").is_file() or not (path / "models").is_dir():
        return
    progress.say("look inside", "what the models look at: loading the run's digits")
    try:
        look_inside(run_dataset(path), Run(path))
    except DigitlabError as exc:  # the data or a model is not at hand: the report says the section is empty
        progress.say("look inside", f"what the models look at is left out: {exc}")

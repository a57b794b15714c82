"""Run folders, for the faces: every run as a row, one in full, two side by side, what `runs rm` and `prune`
may remove (history); a run or a saved model by name (lookup); one run folder, read (``Run``)."""

from digitlab.runs.history import (
    RunSummary,
    diff_runs,
    prune_candidates,
    removable_runs,
    remove_runs,
    run_facts,
    run_history,
)
from digitlab.runs.lookup import (
    SavedModel,
    find_model,
    find_run,
    is_model_name,
    latest_run,
    list_runs,
    personal_models,
    run_models,
)
from digitlab.runs.reader import Run

__all__ = [
    "Run",
    "RunSummary",
    "SavedModel",
    "diff_runs",
    "find_model",
    "find_run",
    "is_model_name",
    "latest_run",
    "list_runs",
    "personal_models",
    "prune_candidates",
    "removable_runs",
    "remove_runs",
    "run_facts",
    "run_history",
    "run_models",
]

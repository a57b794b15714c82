"""The service layer: what a face (CLI, dashboard, server) or a Python user calls; nothing above it does work.

A face parses what the user typed into a typed request, calls one use case and renders what comes back; all
checking, run-folder handling, model lookup, reading pictures and progress live here or below (the floors of
docs/architecture.md). Each use case is one module: request → check → work (in a new run folder) → record.

The API (``__all__``, 33 names):

=============================  ============================================  ===========================
use case                       request                                       module
=============================  ============================================  ===========================
data_info, explore, preprocess DataRequest                                   service/data.py
train, compare, ensemble       TrainRequest, CompareRequest, EnsembleRequest service/training.py
evaluate                       EvaluateRequest                               service/evaluating.py
tune                           TuneRequest                                   service/tuning.py
augment                        AugmentRequest                                service/augmenting.py
run (every step in one folder) RunRequest                                    service/running.py
personalise                    PersonaliseRequest                            service/personalising.py
report                         (run, out, output)                            service/reporting.py
export_model                   ExportRequest                                 service/exporting.py
explain, digit_map             ExplainRequest, MapRequest                    service/explaining.py
=============================  ============================================  ===========================

Every use case takes its request and an optional progress callback (``Event`` → None) and returns a
``StepResult``: the run folder and the step's record (``to_json()`` is what ``--json`` prints).
Reading pictures: ``Predictor`` (the one reading path: intake, blank and uncertain, batching, the model call)
and its ``Prediction``. A run folder, read: ``Run``. Every error a user may see: ``DigitlabError``.

The faces' other needs are in the service's modules, used by name: ``service.settings`` (defaults and the
``DIGITLAB_*`` variables), ``service.progress`` (event levels), ``service.catalogue`` (models, back ends),
``service.runs`` (history, lookup), ``service.predictor``, ``service.batch``, ``service.batching``,
``service.serving``, ``service.exporting``, ``service.explaining``, ``service.mine`` (your digits),
``service.numbers`` (reading whole numbers),
``service.tracking`` (MLflow), ``service.dashboard``.

Everything loads when first used (PEP 562), so a face that only needs a default or two (``digitlab --help``,
``digitlab runs``) does not pay for scikit-learn, PyTorch or Dask. Names of earlier versions
(``service.run_history``, ``service.QUICK_TRAIN`` …) still resolve, outside the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_API: dict[str, tuple[str, str]] = {  # name -> (module, attribute)
    "AugmentRequest": ("digitlab.service.requests", "AugmentRequest"),
    "CompareRequest": ("digitlab.service.requests", "CompareRequest"),
    "DataRequest": ("digitlab.service.requests", "DataRequest"),
    "DigitlabError": ("digitlab.core.errors", "DigitlabError"),
    "EnsembleRequest": ("digitlab.service.requests", "EnsembleRequest"),
    "EvaluateRequest": ("digitlab.service.requests", "EvaluateRequest"),
    "Event": ("digitlab.core.progress", "Event"),
    "ExplainRequest": ("digitlab.service.explaining", "ExplainRequest"),
    "ExportRequest": ("digitlab.service.exporting", "ExportRequest"),
    "MapRequest": ("digitlab.service.explaining", "MapRequest"),
    "PersonaliseRequest": ("digitlab.service.requests", "PersonaliseRequest"),
    "Prediction": ("digitlab.service.predictor", "Prediction"),
    "Predictor": ("digitlab.service.predictor", "Predictor"),
    "Run": ("digitlab.runs.reader", "Run"),
    "RunRequest": ("digitlab.service.requests", "RunRequest"),
    "StepResult": ("digitlab.service.base", "StepResult"),
    "TrainRequest": ("digitlab.service.requests", "TrainRequest"),
    "TuneRequest": ("digitlab.service.requests", "TuneRequest"),
    "augment": ("digitlab.service.augmenting", "augment"),
    "compare": ("digitlab.service.training", "compare"),
    "data_info": ("digitlab.service.data", "data_info"),
    "digit_map": ("digitlab.service.explaining", "digit_map"),
    "ensemble": ("digitlab.service.training", "ensemble"),
    "evaluate": ("digitlab.service.evaluating", "evaluate"),
    "explain": ("digitlab.service.explaining", "explain"),
    "explore": ("digitlab.service.data", "explore"),
    "export_model": ("digitlab.service.exporting", "export"),
    "personalise": ("digitlab.service.personalising", "personalise"),
    "preprocess": ("digitlab.service.data", "preprocess"),
    "report": ("digitlab.service.reporting", "report"),
    "run": ("digitlab.service.running", "run"),
    "train": ("digitlab.service.training", "train"),
    "tune": ("digitlab.service.tuning", "tune"),
}
_NAMESPACES = {"settings": "digitlab.core.settings", "progress": "digitlab.core.progress"}
_MODULES = frozenset(
    {
        "batch",
        "batching",
        "catalogue",
        "dashboard",
        "explaining",
        "exporting",
        "mine",
        "numbers",
        "predictor",
        "runs",
        "serving",
        "tracking",
    }
)
_SETTINGS = (
    "DEFAULT_MODELS HEADER_TIMEOUT_S MAX_BATCH MAX_CONNECTIONS MAX_IN_FLIGHT MAX_PICTURE_BYTES QUICK_TEST "
    "QUICK_TRAIN READERS RUN_ENV RUNS_ENV SERVE_ENV SMOKE_MODELS SMOKE_TEST SMOKE_TRAIN TIMEOUT_S TOKEN_ENV"
)
_EARLIER: dict[str, tuple[str, str]] = {  # names of earlier versions, outside the API: name -> (module, attribute)
    **{name: ("digitlab.core.settings", name) for name in _SETTINGS.split()},
    **{name: ("digitlab.core.progress", name) for name in ("INNER", "JOB", "Progress")},
    **{name: ("digitlab.service.catalogue", name) for name in ("AUGMENTERS", "ModelInfo", "aspects")},
    **{name: ("digitlab.service.catalogue", name) for name in ("model_catalogue", "model_names", "library_version")},
    **{name: ("digitlab.service.batch", name) for name in ("BatchRequest", "batch_predict", "picture_files")},
    "Batcher": ("digitlab.service.batching", "Batcher"),
    **{
        name: ("digitlab.service.explaining", name)
        for name in [
            "DigitMap",
            "MAP_FEATURES",
            "MAP_METHODS",
            "MAP_SPLITS",
            "evaluation_answers",
            "explain_image",
            "explanation_kind",
            "place_on_map",
            "read_map",
            "run_cnn",
            "run_dataset",
            "run_maps",
            "training_curves",
            "training_digits",
        ]
    },
    **{name: ("digitlab.service.exporting", name) for name in ("ONNX_OPSET", "load_predictor")},
    **{name: ("digitlab.service.dashboard", name) for name in ("DashboardRequest", "Launch", "dashboard_launch")},
    **{
        name: ("digitlab.service.predictor", name)
        for name in [
            "PICTURE_SHAPE",
            "UNCERTAIN",
            "inked_rows",
            "is_blank",
            "load_predictors",
            "predict_each",
            "read_picture",
            "run_predictors",
        ]
    },
    **{
        name: ("digitlab.service.serving", name)
        for name in ("RUNTIMES", "ServeRequest", "ServedModel", "check_batch", "check_images", "load_served")
    },
    **{
        name: ("digitlab.service.runs", name)
        for name in [
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
    },
    "mlflow_log": ("digitlab.service.tracking", "mlflow_log"),
}


def __getattr__(name: str) -> Any:
    if name in _NAMESPACES or name in _MODULES:
        value = importlib.import_module(_NAMESPACES.get(name, f"digitlab.service.{name}"))
    else:
        try:
            module, attribute = _API.get(name) or _EARLIER[name]
        except KeyError:
            raise AttributeError(f"module 'digitlab.service' has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, *_NAMESPACES, *_MODULES])


if TYPE_CHECKING:
    from digitlab.core import progress as progress
    from digitlab.core import settings as settings
    from digitlab.core.errors import DigitlabError
    from digitlab.core.progress import Event
    from digitlab.runs.reader import Run
    from digitlab.service import batch as batch
    from digitlab.service import batching as batching
    from digitlab.service import catalogue as catalogue
    from digitlab.service import dashboard as dashboard
    from digitlab.service import explaining as explaining
    from digitlab.service import exporting as exporting
    from digitlab.service import mine as mine
    from digitlab.service import numbers as numbers
    from digitlab.service import predictor as predictor
    from digitlab.service import runs as runs
    from digitlab.service import serving as serving
    from digitlab.service import tracking as tracking
    from digitlab.service.augmenting import augment
    from digitlab.service.base import StepResult
    from digitlab.service.data import data_info, explore, preprocess
    from digitlab.service.evaluating import evaluate
    from digitlab.service.explaining import ExplainRequest, MapRequest, digit_map, explain
    from digitlab.service.exporting import ExportRequest
    from digitlab.service.exporting import export as export_model
    from digitlab.service.personalising import personalise
    from digitlab.service.predictor import Prediction, Predictor
    from digitlab.service.reporting import report
    from digitlab.service.requests import (
        AugmentRequest,
        CompareRequest,
        DataRequest,
        EnsembleRequest,
        EvaluateRequest,
        PersonaliseRequest,
        RunRequest,
        TrainRequest,
        TuneRequest,
    )
    from digitlab.service.running import run
    from digitlab.service.training import compare, ensemble, train
    from digitlab.service.tuning import tune

__all__ = [
    "AugmentRequest",
    "CompareRequest",
    "DataRequest",
    "DigitlabError",
    "EnsembleRequest",
    "EvaluateRequest",
    "Event",
    "ExplainRequest",
    "ExportRequest",
    "MapRequest",
    "PersonaliseRequest",
    "Prediction",
    "Predictor",
    "Run",
    "RunRequest",
    "StepResult",
    "TrainRequest",
    "TuneRequest",
    "augment",
    "compare",
    "data_info",
    "digit_map",
    "ensemble",
    "evaluate",
    "explain",
    "explore",
    "export_model",
    "personalise",
    "preprocess",
    "report",
    "run",
    "train",
    "tune",
]

"""The service layer: the one part of digitlab that a face (CLI, dashboard, server) imports.

Faces parse what the user typed into a typed request, call one function here and render
what comes back; all checking, run-folder handling, model lookup, prediction and progress
live here or below. See docs/architecture.md for the floors.
"""

from digitlab.errors import DigitlabError
from digitlab.images import MAX_BYTES as MAX_PICTURE_BYTES
from digitlab.progress import INNER, JOB, Event, Progress
from digitlab.service import mine
from digitlab.service.batch import BatchRequest, batch_predict, picture_files
from digitlab.service.exporting import ONNX_OPSET, ExportRequest, load_predictor
from digitlab.service.exporting import export as export_model
from digitlab.service.history import (
    RunSummary,
    diff_runs,
    prune_candidates,
    remove_runs,
    run_facts,
    run_history,
)
from digitlab.service.jobs import (
    AUGMENTERS,
    DEFAULT_MODELS,
    QUICK_TEST,
    QUICK_TRAIN,
    RUN_ENV,
    RUNS_ENV,
    Launch,
    ModelInfo,
    StepResult,
    aspects,
    augment,
    compare,
    dashboard_launch,
    data_info,
    ensemble,
    evaluate,
    explore,
    mlflow_log,
    model_catalogue,
    model_names,
    personalise,
    preprocess,
    report,
    run,
    train,
    tune,
)
from digitlab.service.lookup import (
    SavedModel,
    find_model,
    find_run,
    latest_run,
    list_runs,
    personal_models,
    run_models,
)
from digitlab.service.predictor import (
    PICTURE_SHAPE,
    UNCERTAIN,
    Prediction,
    Predictor,
    predict_each,
    read_picture,
    run_predictors,
)
from digitlab.service.requests import (
    AugmentRequest,
    CompareRequest,
    DashboardRequest,
    DataRequest,
    EnsembleRequest,
    EvaluateRequest,
    PersonaliseRequest,
    RunRequest,
    TrainRequest,
    TuneRequest,
)
from digitlab.service.serving import (
    MAX_BATCH,
    RUNTIMES,
    SERVE_ENV,
    ServedModel,
    ServeRequest,
    check_batch,
    check_images,
    inked_rows,
    load_served,
)


def library_version() -> str:
    """digitlab's installed version."""
    from digitlab.artifacts import library_versions

    return library_versions().get("digitlab", "unknown")


__all__ = [
    "AUGMENTERS",
    "DEFAULT_MODELS",
    "INNER",
    "JOB",
    "MAX_BATCH",
    "MAX_PICTURE_BYTES",
    "ONNX_OPSET",
    "PICTURE_SHAPE",
    "QUICK_TEST",
    "QUICK_TRAIN",
    "RUNS_ENV",
    "RUNTIMES",
    "RUN_ENV",
    "SERVE_ENV",
    "UNCERTAIN",
    "AugmentRequest",
    "BatchRequest",
    "CompareRequest",
    "DashboardRequest",
    "DataRequest",
    "DigitlabError",
    "EnsembleRequest",
    "EvaluateRequest",
    "Event",
    "ExportRequest",
    "Launch",
    "ModelInfo",
    "PersonaliseRequest",
    "Prediction",
    "Predictor",
    "Progress",
    "RunRequest",
    "RunSummary",
    "SavedModel",
    "ServeRequest",
    "ServedModel",
    "StepResult",
    "TrainRequest",
    "TuneRequest",
    "aspects",
    "augment",
    "batch_predict",
    "check_batch",
    "check_images",
    "compare",
    "dashboard_launch",
    "data_info",
    "diff_runs",
    "ensemble",
    "evaluate",
    "explore",
    "export_model",
    "find_model",
    "find_run",
    "inked_rows",
    "latest_run",
    "library_version",
    "list_runs",
    "load_predictor",
    "load_served",
    "mine",
    "mlflow_log",
    "model_catalogue",
    "model_names",
    "personal_models",
    "personalise",
    "picture_files",
    "predict_each",
    "preprocess",
    "prune_candidates",
    "read_picture",
    "remove_runs",
    "report",
    "run",
    "run_facts",
    "run_history",
    "run_models",
    "run_predictors",
    "train",
    "tune",
]

"""Cross-validated hyper-parameter search over a registry model, locally or on Dask.

Only the data handed to ``tune`` is searched over (the caller passes the training split);
the test set is never seen here. The search itself is scikit-learn's (grid, randomised,
successive halving); scaling out is joblib's Dask backend.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, ParameterGrid, RandomizedSearchCV, StratifiedKFold

from digitlab.core.errors import DigitlabError
from digitlab.models import registry

SEARCHES = ("grid", "random", "halving")


@dataclass
class TuneResult:
    model: Any  # best candidate refitted on all the searched data
    best_params: dict[str, Any]
    best_cv_accuracy: float
    candidates: list[dict[str, Any]]  # ranked, best first
    seconds: float
    n_samples: int
    n_candidates: int
    n_fits: int
    backend: str


def parse_value(text: str) -> Any:
    """'10' -> 10, '0.5' -> 0.5, 'none' -> None, '(128,64)' -> (128, 64), anything else stays text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.startswith("(") and text.endswith(")"):
        return tuple(parse_value(part) for part in text[1:-1].split(";") if part.strip())
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_overrides(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["clf__C=1,10", "pca__n_components=40,50"]`` -> a search space."""
    space: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise DigitlabError(f"--param {item!r}: expected NAME=V1,V2,… (e.g. clf__C=1,10,100).")
        space[name.strip()] = [parse_value(v) for v in values.split(",") if v.strip()]
    return space


def check_space(model_name: str, estimator: Any, space: Mapping[str, Sequence[Any]]) -> None:
    """Refuse unknown parameter names and empty value lists with one line each."""
    valid = estimator.get_params(deep=True)
    for name, values in space.items():
        if name not in valid:
            steps = list(getattr(estimator, "named_steps", {}))
            options = ", ".join(steps + sorted(k for k in valid if k.count("__") == 1))
            raise DigitlabError(f"unknown parameter {name!r} for model {model_name}; tunable names include {options}.")
        if not isinstance(values, list | tuple) or len(values) == 0:
            raise DigitlabError(f"parameter {name!r} for model {model_name} needs at least one value.")


def space_for(model_name: str, overrides: Mapping[str, Sequence[Any]] | None = None) -> dict[str, list[Any]]:
    """The registry's default space for ``model_name``, with ``overrides`` replacing entries."""
    spec = registry.get(model_name)
    space = {k: list(v) for k, v in spec.search_space.items()}
    space.update({k: list(v) for k, v in (overrides or {}).items()})
    check_space(model_name, spec.build(0), space)
    return space


def check_values(model_name: str, space: Mapping[str, Sequence[Any]]) -> None:
    """Refuse values a parameter cannot take (``clf__C=abc``) before any search starts.

    scikit-learn's own parameter constraints decide where an estimator declares them; elsewhere
    a text value is refused where the registry's space for that parameter holds numbers.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    spec = registry.get(model_name)
    for name, values in space.items():
        known = list(spec.search_space.get(name, []))
        numeric = bool(known) and all(isinstance(k, int | float) and not isinstance(k, bool) for k in known)
        for value in values:
            if numeric and isinstance(value, str):
                raise DigitlabError(
                    f"--param {name}={value}: {value!r} is not a number; {name} takes numbers such as "
                    f"{', '.join(map(str, known[:3]))}."
                )
            estimator = spec.build(0)
            try:
                estimator.set_params(**{name: value})
                for part in [estimator, *(step for _, step in getattr(estimator, "steps", []))]:
                    if hasattr(part, "_parameter_constraints") and hasattr(part, "_validate_params"):
                        part._validate_params()
            except (InvalidParameterError, ValueError, TypeError) as exc:
                reason = " ".join(str(exc).split())
                raise DigitlabError(f"--param {name}={value!r} is not valid for {model_name}: {reason}") from None


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, dask_local: int | None = None) -> Iterator[tuple[Any, str]]:
    """A Dask client on a running scheduler or on a fresh LocalCluster (closed afterwards), and its label."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DigitlabError("Dask is not installed; install it with `pip install 'digitlab[dask]'`.") from None
    cluster = None
    try:
        if dask_local:
            cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            label = f"dask LocalCluster ({dask_local} workers)"
        else:
            client = Client(scheduler, timeout="10s")
            label = f"dask {scheduler} ({len(client.scheduler_info()['workers'])} workers)"
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise DigitlabError(
            f"cannot reach Dask scheduler {scheduler}: {exc}; start one with `dask scheduler` "
            "and workers with `dask worker tcp://HOST:8786`."
        ) from None
    try:
        yield client, label
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def joblib_backend(scheduler: str | None = None, dask_local: int | None = None) -> Iterator[str]:
    """Run joblib work locally, on a running Dask scheduler, or on a fresh LocalCluster."""
    if scheduler is None and not dask_local:
        yield "local (joblib)"
        return
    import joblib

    with dask_client(scheduler, dask_local) as (_, label), joblib.parallel_backend("dask"):
        yield label


def _searcher(
    estimator: Any,
    space: dict[str, list[Any]],
    search: str,
    cv: int,
    n_iter: int,
    random_state: int,
    n_jobs: int | None,
) -> Any:
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    common = {"cv": folds, "scoring": "accuracy", "n_jobs": n_jobs, "refit": True, "error_score": "raise"}
    if search == "grid":
        return GridSearchCV(estimator, space, **common)
    if search == "random":
        return RandomizedSearchCV(estimator, space, n_iter=n_iter, random_state=random_state, **common)
    if search == "halving":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        return HalvingGridSearchCV(estimator, space, factor=3, random_state=random_state, **common)
    raise _unknown_search(search)


def _unknown_search(search: str) -> DigitlabError:
    return DigitlabError(f"unknown search {search!r}; choose one of {', '.join(SEARCHES)}.")


def check_search(search: str) -> None:
    if search not in SEARCHES:
        raise _unknown_search(search)


def _ranked(cv_results: Mapping[str, Any]) -> list[dict[str, Any]]:
    n = len(cv_results["params"])
    last_iter = np.asarray(cv_results.get("iter", np.zeros(n)))
    rows = [
        {
            "params": cv_results["params"][i],
            "mean_cv_accuracy": float(cv_results["mean_test_score"][i]),
            "std_cv_accuracy": float(cv_results["std_test_score"][i]),
            "mean_fit_s": float(cv_results["mean_fit_time"][i]),
            "iteration": int(last_iter[i]),
            "n_samples": int(cv_results["n_resources"][i]) if "n_resources" in cv_results else None,
        }
        for i in range(n)
    ]
    # halving: a candidate's latest (largest) round is its real score
    rows = [
        r
        for i, r in enumerate(rows)
        if r["iteration"] == max(last_iter[j] for j in range(n) if cv_results["params"][j] == r["params"])
    ]
    rows.sort(key=lambda r: (-r["iteration"], -r["mean_cv_accuracy"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def tune(
    model_name: str,
    x: np.ndarray,
    y: np.ndarray,
    search: str = "grid",
    cv: int = 3,
    n_iter: int = 10,
    space: Mapping[str, Sequence[Any]] | None = None,
    random_state: int = 0,
    n_jobs: int | None = -1,
    scheduler: str | None = None,
    dask_local: int | None = None,
    dataset: str | None = None,
) -> TuneResult:
    """Search ``model_name``'s space by ``cv``-fold cross-validation on ``x, y`` (training data only).

    The search starts from the model's defaults for ``dataset`` (``registry.build``).
    """
    check_search(search)
    if cv < 2:
        raise DigitlabError(f"--cv {cv}: cross-validation needs at least 2 folds.")
    smallest = int(np.unique(y, return_counts=True)[1].min()) if len(y) else 0
    if smallest < cv:
        raise DigitlabError(f"--cv {cv}: a class has only {smallest} training examples; use fewer folds or more data.")
    full_space = space_for(model_name, space)
    estimator = clone(registry.build(model_name, random_state, dataset))
    searcher = _searcher(
        estimator, {k: list(v) for k, v in full_space.items()}, search, cv, n_iter, random_state, n_jobs
    )
    with (
        joblib_backend(scheduler, dask_local) as backend,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(sys.stderr),
    ):  # nothing a search prints may mix with --json on stdout
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*does not support callbacks.*")
        start = time.perf_counter()
        searcher.fit(x, y)
        seconds = time.perf_counter() - start
    candidates = _ranked(searcher.cv_results_)
    n_fits = len(searcher.cv_results_["params"]) * cv + 1
    return TuneResult(
        model=searcher.best_estimator_,
        best_params=dict(searcher.best_params_),
        best_cv_accuracy=float(searcher.best_score_),
        candidates=candidates,
        seconds=seconds,
        n_samples=len(y),
        n_candidates=len(ParameterGrid(full_space)) if search != "random" else n_iter,
        n_fits=n_fits,
        backend=backend,
    )


def describe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameter values as short text (estimators as their class name)."""
    return {
        k: (type(v).__name__ if hasattr(v, "get_params") else json.dumps(v) if isinstance(v, str) else repr(v))
        for k, v in params.items()
    }

"""Typed requests for every step, each checked in full before any work starts.

A face (CLI, dashboard, server) builds a request from what the user typed and hands it to
the service; ``check()`` raises ``DigitlabError`` naming the value and the fix, so a typo
in the last option never costs the minutes of work before it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError, shielded
from digitlab.data.datasets import check_name, is_mine
from digitlab.data.sources import check_data_dir

MAX_SEED = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit unsigned
DATASET_SHAPES = {"mnist": (28, 28), "fashion-mnist": (28, 28), "digits": (8, 8), "mine": (28, 28)}
OPENCV_MODELS = ("cnn-aug", "cnn-hands", "ensemble")  # train on OpenCV-augmented batches


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MAX_SEED:
        raise DigitlabError(f"--seed {seed}: use a whole number from 0 to {MAX_SEED:,}.")
    return int(seed)


def image_shape_of(dataset: str) -> tuple[int, int] | None:
    """The image size a dataset name implies (None for ``idx:DIR``: known only once read)."""
    return DATASET_SHAPES.get("mine" if is_mine(dataset) else dataset)


def check_trainable(data: DataRequest) -> None:
    """Your digits are for testing and fine-tuning (``digitlab personalise``), not for training from scratch."""
    if is_mine(data.dataset):
        raise DigitlabError(
            f"--dataset {data.dataset}: your digits are a test set; use it with evaluate or ensemble, "
            "and `digitlab personalise` to fine-tune a model to them."
        )


def check_torch(models: Sequence[str]) -> None:
    """PyTorch (and OpenCV for the augmented CNN) present for the models asked for, before any training."""
    from digitlab.models import registry

    bases = {registry.base_name(m) for m in models}
    torch_needed = sorted(bases & {*registry.CNNS, "ensemble"})  # the ensemble's members include the cnn
    if torch_needed:
        try:
            with shielded():  # a stop in the middle of torch's import would abort the process
                importlib.import_module("torch")
        except ImportError:
            raise DigitlabError(
                f"model {', '.join(torch_needed)} needs PyTorch, which is not installed; install it with "
                "`pip install 'digitlab[torch]'` (pins the CPU-friendly torch==2.13.0) or leave it out of --models."
            ) from None
    if bases & set(OPENCV_MODELS):
        check_augmenter("opencv")


def check_augmenter(library: str) -> None:
    """Unknown back end, or its library missing: fail before loading or training anything."""
    from digitlab.features.augment import get_augmenter

    get_augmenter(library).augment(np.zeros((1, 28, 28), np.uint8), np.random.default_rng(0))


def check_models(text: str | Sequence[str]) -> list[str]:
    from digitlab.models import registry

    names = registry.parse_names(text if isinstance(text, str) else ",".join(text))
    check_torch(names)
    return names


def check_model(name: str) -> str:
    from digitlab.models import registry

    registry.get(name)
    check_torch([name])
    return name


def parse_weights(text: str | None, n_models: int) -> list[float] | None:
    """``"2,1,1"`` -> [2.0, 1.0, 1.0]: finite, non-negative, not all zero, one per model."""
    if text is None or not text.strip():
        return None
    try:
        weights = [float(v) for v in text.split(",")]
    except ValueError:
        raise DigitlabError(f"--weights {text!r}: expected numbers such as 2,1,1.") from None
    if len(weights) != n_models:
        raise DigitlabError(f"--weights {text!r}: {len(weights)} weights for {n_models} models; give one per model.")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise DigitlabError(f"--weights {text!r}: weights must be finite and non-negative, not all zero (e.g. 2,1,1).")
    return weights


@dataclass(frozen=True)
class Settings:
    dataset: str = "mnist"  # mnist, fashion-mnist, digits or idx:DIR
    data_dir: Path | None = None  # folder with the four IDX files, tried after the cache
    seed: int = 0  # every random choice (subsets, model init, example picks)
    quick: bool = False  # stratified 6,000 / 1,000 subset
    smoke: bool = False  # stratified 500 / 200 subset (every step in seconds; wins over quick)
    allow_network: bool = True  # npm and HTTP sources


@dataclass(frozen=True)
class DataRequest(Settings):
    """Which data, and how much of it (the fields of ``Settings``); every step that reads data takes one."""

    def check(self) -> None:
        check_seed(self.seed)
        check_name(self.dataset)
        check_data_dir(self.data_dir)


@dataclass(frozen=True)
class TrainRequest:
    model: str
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    mlflow: bool = False  # also log the run to MLflow (as does DIGITLAB_MLFLOW=1)

    def check(self) -> None:
        self.data.check()
        check_trainable(self.data)
        check_model(self.model)


@dataclass(frozen=True)
class CompareRequest:
    models: tuple[str, ...]
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    mlflow: bool = False  # also log the run to MLflow (as does DIGITLAB_MLFLOW=1)

    def check(self) -> None:
        self.data.check()
        check_trainable(self.data)
        check_models(self.models)


@dataclass(frozen=True)
class EvaluateRequest:
    model: str  # a model file, or a registry name for the newest fitting saved one
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    robustness: bool = False  # also score transformed copies of the test images

    def check(self) -> None:
        self.data.check()


@dataclass(frozen=True)
class EnsembleRequest:
    models: tuple[str, ...]  # model files or registry names of saved models
    weights: str | None = None  # "2,1,1"
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")

    def check(self) -> list[float] | None:
        self.data.check()
        if len(self.models) < 2:
            raise DigitlabError(f"--models {','.join(self.models)!r}: an ensemble needs at least two models.")
        repeated = sorted({m for m in self.models if self.models.count(m) > 1})
        if repeated:
            raise DigitlabError(f"--models: {', '.join(repeated)} is listed twice; name each model once.")
        return parse_weights(self.weights, len(self.models))


@dataclass(frozen=True)
class TuneRequest:
    model: str = "svm"
    search: str = "grid"  # grid, random or halving
    cv: int = 3  # folds
    n_iter: int = 10  # candidates for random search
    train_size: int | None = None  # search on a stratified subset of N training images
    params: tuple[str, ...] = ()  # NAME=V1,V2 overrides of the registry's space
    n_jobs: int = -1  # parallel fits, -1: all cores
    scheduler: str | None = None  # a running Dask scheduler
    dask_local: int | None = None  # workers of a fresh Dask LocalCluster
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    mlflow: bool = False  # also log the run to MLflow (as does DIGITLAB_MLFLOW=1)
    save_as: str | None = None  # saved name of the refitted model (default: the model's)

    def check(self) -> dict[str, list[Any]]:
        """Every option checked; returns the parsed parameter overrides."""
        from digitlab.training.tune import check_search, check_values, parse_overrides, space_for

        self.data.check()
        check_trainable(self.data)
        check_model(self.model)
        check_search(self.search)
        if self.cv < 2:
            raise DigitlabError(f"--cv {self.cv}: cross-validation needs at least 2 folds.")
        if self.n_iter < 1:
            raise DigitlabError(f"--n-iter {self.n_iter}: random search needs at least 1 candidate.")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise DigitlabError(
                f"--n-jobs {self.n_jobs}: use a number of parallel fits of 1 or more, or -1 for all cores."
            )
        if self.dask_local is not None and self.dask_local < 1:
            raise DigitlabError(f"--dask-local {self.dask_local}: a LocalCluster needs 1 or more workers.")
        if self.dask_local is not None and self.scheduler is not None:
            raise DigitlabError("--dask-local and --scheduler: choose one Dask cluster, not both.")
        if self.train_size is not None and self.train_size < 10 * self.cv:
            raise DigitlabError(
                f"--train-size {self.train_size}: too small for {self.cv}-fold search; use at least {10 * self.cv}."
            )
        space = parse_overrides(list(self.params))
        full = space_for(self.model, space)  # unknown parameter names refused here
        check_values(self.model, {k: full[k] for k in space})
        return space


@dataclass(frozen=True)
class AugmentRequest:
    libraries: tuple[str, ...] = ("elastic",)
    model: str = "mlp"
    factor: int = 1  # augmented copies per image for expanded-set models
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    mlflow: bool = False  # also log the run to MLflow (as does DIGITLAB_MLFLOW=1)

    def check(self) -> None:
        self.data.check()
        check_trainable(self.data)
        check_model(self.model)
        if self.factor < 1:
            raise DigitlabError(f"--factor {self.factor}: use 1 or more augmented copies per image.")
        for library in self.libraries:
            check_augmenter(library)


@dataclass(frozen=True)
class RunRequest:
    models: tuple[str, ...] = ("lr", "knn", "svm", "mlp", "cnn")
    data: DataRequest = field(default_factory=DataRequest)
    out: Path = Path("runs")
    mlflow: bool = False  # also log the run to MLflow (as does DIGITLAB_MLFLOW=1)
    tune: str | None = None  # also tune this model (saved as <name>-tuned)
    search: str = "halving"
    augment: str | None = None  # also measure this augmentation back end
    augment_model: str = "mlp"

    def check(self) -> None:
        from digitlab.training.tune import check_search

        self.data.check()
        check_trainable(self.data)
        check_models(self.models)
        if self.tune is not None:
            check_model(self.tune)
            check_search(self.search)
        if self.augment is not None:
            check_augmenter(self.augment)
            check_model(self.augment_model)


@dataclass(frozen=True)
class DashboardRequest:
    run: str | None = None  # run folder or its name under out (default: latest)
    out: Path = Path("runs")
    port: int = 8501
    address: str = "localhost"
    browser: bool = False

    def check(self) -> None:
        if not 0 < self.port < 65536:
            raise DigitlabError(f"--port {self.port}: choose a port between 1 and 65535.")
        out = Path(self.out).expanduser()
        if self.run is None and out.exists() and not out.is_dir():
            raise DigitlabError(f"--out {out}: is a file, not a folder of runs; pass the folder that holds the runs.")
        if self.run is None and not out.is_dir():
            raise DigitlabError(
                f"--out {out}: no such folder, so there is no run to show; pass the folder that holds the runs "
                "or run `digitlab run --quick` first."
            )


@dataclass(frozen=True)
class PersonaliseRequest:
    model: str = "cnn"  # a model file, or the newest saved model of that name (cnn, knn, svm …)
    writer: str = "me"
    epochs: int | None = None  # passes over your digits (cnn); None: scaled to how many there are
    seed: int = 0
    out: Path = Path("runs")
    data_dir: Path | None = None  # where the model's training data is, if not in the cache
    mlflow: bool = False

    def check(self) -> None:
        from digitlab.data.your_digits import check_writer

        check_seed(self.seed)
        check_writer(self.writer)
        check_data_dir(self.data_dir)
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or not 1 <= self.epochs <= 1000
        ):
            raise DigitlabError(f"--epochs {self.epochs}: use a whole number from 1 to 1000.")

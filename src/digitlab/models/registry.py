"""Model name -> ModelSpec: how to build it, what to tune, when to use it.

Every builder returns a scikit-learn estimator that takes images ``(n, H, W)`` uint8, so
train, compare, evaluate, tune and the dashboard treat all models alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digitlab.core.errors import DigitlabError
from digitlab.core.settings import READERS


class _Module:
    """A model family's module, imported the first time something of it is used.

    The registry names every model; listing, ranking or checking a name must not import
    scikit-learn, PyTorch and every family (seconds at each CLI start): a spec's ``build`` and
    search space reach their module only when a model is built or tuned.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)


class _Later(Sequence[Any]):
    """A search space's list of values, made on first use (it may hold estimators such as Deskew())."""

    def __init__(self, make: Callable[[], list[Any]]) -> None:
        self._make = make
        self._values: list[Any] | None = None

    def _all(self) -> list[Any]:
        if self._values is None:
            self._values = self._make()
        return self._values

    def __getitem__(self, k: Any) -> Any:
        return self._all()[k]

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


classic = _Module("digitlab.models.classic")
scratch = _Module("digitlab.models.scratch.estimators")
cnn = _Module("digitlab.models.cnn")
ensemble = _Module("digitlab.models.ensemble")
features = _Module("digitlab.features.transforms")
DESKEW_CHOICES = _Later(lambda: ["passthrough", features.Deskew()])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int | None], Any]  # random_state -> unfitted estimator
    description: str  # one line
    family: str  # "scikit-learn", "numpy (from scratch)", "pytorch"
    search_space: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # pipeline param -> values
    pros: str = ""  # why choose it
    cons: str = ""  # when to avoid it
    # dataset name -> parameters set on top of the build, where the MNIST-chosen defaults cost accuracy
    # (each measured in benchmarks/datasets.py)
    dataset_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    _SPECS[spec.name] = spec
    return spec


register(
    ModelSpec(
        name="lr",
        build=lambda rs: classic.build_lr(rs),
        description="Multinomial logistic regression on deskewed pixels.",
        family="scikit-learn",
        search_space={"clf__C": [0.01, 0.1, 1.0, 10.0], "deskew": DESKEW_CHOICES},
        pros="Fast, convex (same answer every run), weights are readable as per-class templates.",
        cons="Linear: about 4 points below the non-linear models; strokes that shift or bend confuse it.",
    )
)
register(
    ModelSpec(
        name="knn",
        build=lambda rs: classic.build_knn(rs),
        description="k-nearest neighbours (k=4, distance-weighted) in 50 PCA dimensions of deskewed pixels.",
        family="scikit-learn",
        search_space={
            "clf__n_neighbors": [1, 3, 4, 5, 7],
            "clf__weights": ["uniform", "distance"],
            "pca__n_components": [30, 50, 80],
        },
        pros="No training, few knobs, strong on MNIST; new examples are used at once.",
        cons="Keeps the whole training set: large model file, prediction cost grows with the data.",
    )
)
register(
    ModelSpec(
        name="svm",
        build=lambda rs: classic.build_svm(rs),
        description="RBF support-vector machine (C=10) in 50 PCA dimensions of deskewed pixels.",
        family="scikit-learn",
        search_space={
            "clf__C": [1.0, 5.0, 10.0, 30.0],
            "clf__gamma": ["scale", 0.01, 0.02, 0.04],
            "pca__n_components": [40, 50, 80, 100],
            "deskew": DESKEW_CHOICES,
        },
        pros="The most accurate classical model here; few parameters; a well-understood margin.",
        cons="Fit time grows about quadratically with the data; probabilities are a softmax of scores.",
        dataset_params={"fashion-mnist": {"pca__n_components": 100}},  # clothes need more: 89.0% at 50, 90.0% at 100
    )
)
register(
    ModelSpec(
        name="mlp",
        build=lambda rs: classic.build_mlp(rs),
        description="Multi-layer perceptron, one hidden layer of 256 ReLUs, Adam, 20 epochs, deskewed pixels.",
        family="scikit-learn",
        search_space={
            "clf__hidden_layer_sizes": [(128,), (256,), (512,), (256, 128)],
            "clf__alpha": [1e-5, 1e-4, 1e-3],
            "clf__learning_rate_init": [3e-4, 1e-3, 3e-3],
        },
        pros="Learns its own features; fast to predict; improves with more data and augmentation.",
        cons="Many knobs; results vary with the seed; ignores the 2-D layout that a CNN exploits.",
    )
)


register(
    ModelSpec(
        name="cnn",
        build=lambda rs: cnn.CNNClassifier.with_seed(rs),
        description=(
            "Convolutional network shaped for CPUs (3 conv-pool-BN-ReLU blocks, 16/32/128 channels), batches "
            "shifted by up to 1 pixel, one-cycle AdamW, 8 epochs; reads each digit at its 9 one-pixel shifts."
        ),
        family="pytorch",
        search_space={
            "max_lr": [3e-3, 5e-3, 1e-2],
            "epochs": [8, 12, 16],
            "channels": [(16, 32, 128), (16, 48, 96), (32, 64, 128)],
            "views": [0, 1],
        },
        pros="99.5% on MNIST in about 90 s of CPU training; robust to small shifts; fast to predict.",
        cons="Needs PyTorch; results vary with the seed by about ±0.05%; many knobs.",
    )
)
register(
    ModelSpec(
        name="cnn-aug",
        build=lambda rs: cnn.CNNClassifier.augmented(rs),
        description="cnn-classic trained 20 epochs on freshly augmented batches (rotate, shift, scale, stroke width).",
        family="pytorch",
        search_space={"max_lr": [1e-3, 3e-3, 6e-3], "epochs": [15, 20, 30]},
        pros="Most robust to how people really write (slant, size, position, pen width); best for drawn digits.",
        cons="Twice the cnn's training time; needs PyTorch and OpenCV.",
    )
)
register(
    ModelSpec(
        name="cnn-hands",
        build=lambda rs: cnn.CNNClassifier.hands(rs),
        description=(
            "The cnn trained 12 epochs on MNIST plus 10,000 digits pen-drawn in random hands (five glyph families, "
            "strokes left out or added, slants, fine pens to markers), on OpenCV-augmented batches but the last "
            "two epochs; reads 9 shifts of each digit."
        ),
        family="pytorch",
        search_space={"epochs": [8, 12, 16], "synthetic": [500, 1000, 2000], "max_lr": [3e-3, 5e-3, 1e-2]},
        pros="The best reader of real pictures, also of hands it never saw (benchmarks/heldout.py).",
        cons="About twice the cnn's training time (drawing the digits takes 45 s of it); needs PyTorch and OpenCV.",
    )
)
register(
    ModelSpec(
        name="ensemble",
        build=lambda rs: ensemble.SoftVote(
            members=(
                ("cnn", cnn.CNNClassifier.with_seed(rs)),
                ("cnn-aug", cnn.CNNClassifier.augmented(rs)),
                ("svm", classic.build_svm(rs)),
            )
        ),
        description="Soft voting (mean probability) of cnn, cnn-aug and svm, each fitted with the same seed.",
        family="ensemble",
        search_space={"weights": [None, (2.0, 1.0, 1.0), (3.0, 1.0, 1.0)]},
        pros="Members make different mistakes, so the average beats each of them.",
        cons="Costs the sum of its members' training and prediction time and file size.",
    )
)
register(
    ModelSpec(
        name="cnn-fast",
        build=lambda rs: cnn.CNNClassifier.fast(rs),
        description=(
            "Convolutional network shaped for CPUs (3 conv-pool-BN-ReLU blocks, 16/32/128 channels), "
            "batches shifted by up to 1 pixel, one-cycle AdamW, 8 epochs."
        ),
        family="pytorch",
        search_space={
            "max_lr": [3e-3, 5e-3, 1e-2],
            "epochs": [8, 12, 16],
            "channels": [(16, 32, 64), (16, 32, 128), (16, 48, 96)],
            "shift": [0, 1, 2],
        },
        pros="The cnn without its test-time shifts: a ninth of the work per prediction.",
        cons="About 0.07% less accurate than the cnn on average (99.4–99.6%), with more spread; needs PyTorch.",
    )
)
register(
    ModelSpec(
        name="cnn-classic",
        build=lambda rs: cnn.CNNClassifier.classic(rs),
        description="The cnn until #18: 2×2 conv-BN-ReLU blocks (16/32 channels), dense 128, AdamW, 10 epochs.",
        family="pytorch",
        search_space={
            "max_lr": [1e-3, 3e-3, 6e-3],
            "epochs": [8, 12],
            "channels": [(16, 32), (32, 64)],
            "dropout": [0.1, 0.25],
        },
        pros="The net cnn-aug trains; as accurate as the cnn without test-time shifts.",
        cons="Three times the cnn's training time on a CPU; needs PyTorch.",
    )
)


register(
    ModelSpec(
        name="scratch-lr",
        build=lambda rs: scratch.ScratchSoftmax(random_state=rs),
        description="From scratch (NumPy): softmax regression, L2, mini-batch Adam, deskewed pixels.",
        family="numpy (from scratch)",
        search_space={"l2": [0.0, 1e-4, 1e-3], "learning_rate": [3e-4, 1e-3, 3e-3]},
        pros="Every line readable; the same model as lr, so the two can be checked against each other.",
        cons="Linear; slower to converge than scikit-learn's LBFGS solver.",
    )
)
register(
    ModelSpec(
        name="scratch-knn",
        build=lambda rs: scratch.ScratchKNN(),
        description="From scratch (NumPy): k-NN (k=4, distance-weighted), chunked distances, own PCA(50), deskewed.",
        family="numpy (from scratch)",
        search_space={"n_neighbors": [1, 3, 4, 5, 7], "weights": ["uniform", "distance"], "n_components": [30, 50, 80]},
        pros="Shows that a matrix product and argpartition are all k-NN needs; memory bounded by chunking.",
        cons="Keeps the whole training set; prediction cost grows with it.",
    )
)
register(
    ModelSpec(
        name="scratch-svm",
        build=lambda rs: scratch.ScratchLinearSVM(random_state=rs),
        description="From scratch (NumPy): linear SVM, multiclass hinge loss, mini-batch Adam, deskewed pixels.",
        family="numpy (from scratch)",
        search_space={"l2": [0.0, 1e-4, 1e-3], "learning_rate": [3e-4, 1e-3, 3e-3]},
        pros="The hinge loss in ten lines; fast.",
        cons="Linear (no kernel): well below the RBF svm; probabilities are a softmax of scores.",
    )
)
register(
    ModelSpec(
        name="scratch-mlp",
        build=lambda rs: scratch.ScratchMLP(random_state=rs),
        description="From scratch (NumPy): MLP 256 ReLUs, softmax cross-entropy, backprop, Adam, L2, dropout option.",
        family="numpy (from scratch)",
        search_space={"hidden": [(256,), (512,), (512, 256)], "dropout": [0.0, 0.2], "learning_rate": [3e-4, 1e-3]},
        pros="Backpropagation you can read; float32 throughout, so it trains fast.",
        cons="No 2-D structure; many knobs.",
    )
)
register(
    ModelSpec(
        name="scratch-cnn",
        build=lambda rs: scratch.ScratchCNN(random_state=rs),
        description="From scratch (NumPy): CNN, im2col convolutions, max-pooling, ReLU, dropout, Adam, shifted digits.",
        family="numpy (from scratch)",
        search_space={"channels": [(8, 16), (16, 32)], "epochs": [4, 8], "learning_rate": [1e-3, 3e-3]},
        pros="A whole convolutional network, forward and backward, in plain NumPy.",
        cons="Slower than PyTorch's cnn and less accurate (no optimised kernels): about 25 s per epoch on 2 CPUs.",
    )
)


# Deskew straightens slanted handwriting: it lifts every model on handwritten digits
# (benchmarks/deskew.json) and is no help on other pictures (benchmarks/datasets.json). An idx
# folder may hold anything, so it starts plain; the tuner can still choose deskew for it.
HANDWRITING = ("mnist", "digits", "mine")
# cnn-hands adds pen-drawn digits (28×28, 0–9) to the training set of these only: on clothes they
# would be wrong labels, on the 8×8 digits the wrong size, and an idx folder may hold anything.
PEN_DIGITS = ("mnist", "mine")


def deskews(dataset: str | None) -> bool:
    """Whether models deskew images of ``dataset`` by default (``None``: yes, the MNIST defaults)."""
    return dataset is None or dataset.split(":", 1)[0] in HANDWRITING


def build(name: str, random_state: int | None = 0, dataset: str | None = None) -> Any:
    """``name``'s unfitted estimator with the defaults for ``dataset`` (``None``: the MNIST defaults)."""
    spec = get(name)
    estimator = spec.build(random_state)
    if dataset is None:
        return estimator
    kind = dataset.split(":", 1)[0]  # "idx:DIR" -> "idx", "mine:anna" -> "mine"
    if not deskews(dataset):
        estimator = without_deskew(estimator)
    if kind not in PEN_DIGITS and "synthetic" in estimator.get_params():
        estimator.set_params(synthetic=0)
    params = spec.dataset_params.get(kind, {})
    return estimator.set_params(**params) if params else estimator


def without_deskew(estimator: Any) -> Any:
    """``estimator`` with its deskew step off: a pipeline's ``deskew`` step, a scratch model's flag, each member."""
    if isinstance(estimator, ensemble.SoftVote):
        members = tuple((name, without_deskew(member)) for name, member in estimator.members)
        return estimator.set_params(members=members)
    steps = getattr(estimator, "named_steps", {})
    if "deskew" in steps and steps["deskew"] != "passthrough":
        estimator.set_params(deskew="passthrough")
    if isinstance(getattr(estimator, "deskew", None), bool) and estimator.deskew:
        estimator.set_params(deskew=False)
    return estimator


# The best readers of real pictures first, measured on the real-world check set (benchmarks/realworld.py:
# 4,400 pictures, four writing styles drawn on canvases and photographed under eleven conditions), every
# model trained on full MNIST: cnn-aug 97.0%, ensemble 96.1%, cnn-fast 95.6%, cnn 94.9%, cnn-classic 94.6%,
# svm 94.0%.
# `predict`, Try it and the server read with the first of these a run has (the best reader by default);
# models not measured there follow, most accurate on MNIST first.
CNNS = tuple(name for name, spec in _SPECS.items() if spec.family == "pytorch")  # export to ONNX; need PyTorch


def reader_rank(name: str) -> int:
    """Where a saved model's name (``cnn-aug``, ``svm-tuned``) stands among the readers: 0 is the best."""
    from digitlab.models.shipped import NAME as SHIPPED

    base = base_name(name)
    if name == SHIPPED:  # the reader digitlab ships comes before every saved one
        return -1
    return READERS.index(base) if base in READERS else len(READERS)


def names() -> list[str]:
    return list(_SPECS)


def lookup(name: str) -> ModelSpec | None:
    return _SPECS.get(name)


def get(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise DigitlabError(
            f"unknown model {name!r}; choose one of {', '.join(_SPECS)} (see `digitlab models`)."
        ) from None


def base_name(name: str) -> str:
    """The registry model a saved name was made from: ``scratch-mlp-tuned`` -> ``scratch-mlp``.

    Saved names add suffixes (``-tuned``, ``-opencv``) to a registry name; the longest registry
    name that the saved name starts with wins, so ``cnn-aug-tuned`` is ``cnn-aug``, not ``cnn``.
    """
    if name in _SPECS:
        return name
    matches = [n for n in _SPECS if name.startswith(f"{n}-")]
    return max(matches, key=len) if matches else name


def parse_names(text: str) -> list[str]:
    """Comma-separated model names, each checked."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen:
        raise DigitlabError("no model named; pass e.g. --models lr,knn,svm,mlp.")
    for name in chosen:
        get(name)
    repeated = sorted({n for n in chosen if chosen.count(n) > 1})
    if repeated:
        raise DigitlabError(f"model {', '.join(repeated)} is listed twice in {text!r}; name each model once.")
    return chosen

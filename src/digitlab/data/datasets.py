"""Named datasets as one frozen type: ``load_dataset(name) -> Dataset``.

Names: ``mnist`` (default), ``fashion-mnist``, ``digits`` (scikit-learn's 8×8 set),
``idx:DIR`` (any folder with the four standard IDX file names, raw or .gz) and ``mine`` /
``mine:WRITER`` (your own digits from the local store, ``data/mine.py``: a test set only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.data import sources
from digitlab.data.idx import read_idx

DATASETS = ("mnist", "fashion-mnist", "digits", "idx:DIR", "mine", "mine:WRITER")
DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class Dataset:
    """Images as ``(n, H, W)`` uint8 and labels as ``(n,)`` int64, split into train and test."""

    name: str
    x_train: np.ndarray  # (n_train, H, W) uint8
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, H, W) uint8
    y_test: np.ndarray  # (n_test,) int64
    class_names: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)  # files, sources, hashes, subset

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.x_train.shape[1]), int(self.x_train.shape[2]))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, n_train: int | None, n_test: int | None, random_state: int = 0) -> Dataset:
        """A stratified subset (for ``--quick``); the same seed gives the same images."""
        x_tr, y_tr = _stratified(self.x_train, self.y_train, n_train, random_state)
        x_te, y_te = _stratified(self.x_test, self.y_test, n_test, random_state)
        prov = dict(self.provenance, subset={"train": len(y_tr), "test": len(y_te), "seed": random_state})
        return replace(self, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, provenance=prov)


def _stratified(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split

    _, x_sub, _, y_sub = train_test_split(x, y, test_size=n, stratify=y, random_state=seed)
    return x_sub, y_sub


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DigitlabError(f"{where}: expected uint8 images of shape (n, H, W), got {images.dtype} {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DigitlabError(
            f"{where}: {len(images)} images but labels of shape {labels.shape}; the files do not match."
        )


def _from_files(name: str, paths: dict[str, Path], class_names: tuple[str, ...], provenance: dict[str, Any]) -> Dataset:
    arrays = {key: read_idx(path) for key, path in paths.items()}
    tr_x, tr_y, te_x, te_y = (arrays[n] for n in sources.STANDARD_NAMES)
    _check_pair(tr_x, tr_y, str(paths[sources.STANDARD_NAMES[0]].parent))
    _check_pair(te_x, te_y, str(paths[sources.STANDARD_NAMES[2]].parent))
    return Dataset(name, tr_x, tr_y.astype(np.int64), te_x, te_y.astype(np.int64), class_names, provenance)


def _remote(remote: sources.RemoteFiles, class_names: tuple[str, ...]) -> Callable[..., Dataset]:
    def load(
        data_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        allow_network: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> Dataset:
        got = sources.fetch_files(remote, data_dir=data_dir, cache_dir=cache_dir, allow_network=allow_network, log=log)
        files = {
            spec.name: {
                "path": str(got.paths[spec.name]),
                "sha256": spec.sha256,
                "verified": True,
                "bytes": spec.size,
                "source": got.origins[spec.name],
            }
            for spec in remote.files
        }
        return _from_files(remote.dataset, got.paths, class_names, {"files": files, "attempts": got.attempts})

    return load


def _load_digits(**_: Any) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, bunch.target.astype(np.int64), test_size=0.25, stratify=bunch.target, random_state=0
    )
    prov = {
        "files": {"sklearn.datasets.load_digits": {"source": "bundled with scikit-learn", "verified": False}},
        "note": "values 0..16 rescaled to 0..255; fixed stratified 75/25 split (random_state=0)",
    }
    return Dataset("digits", x_tr, y_tr, x_te, y_te, DIGIT_NAMES, prov)


def _load_idx_dir(folder: str, **_: Any) -> Dataset:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DigitlabError(
            f"dataset idx:{folder}: no such folder; pass idx:DIR with a folder holding the four IDX files."
        )
    paths: dict[str, Path] = {}
    for name in sources.STANDARD_NAMES:
        found = sources.find_in_dir(path, name)
        if found is None:
            raise DigitlabError(
                f"dataset idx:{folder}: {name} (or {name}.gz) is missing; "
                f"the folder needs {', '.join(sources.STANDARD_NAMES)}."
            )
        paths[name] = found
    files = {
        n: {
            "path": str(p),
            "sha256": sources.sha256_file(p),
            "verified": False,
            "source": "local folder (no pinned hash)",
        }
        for n, p in paths.items()
    }
    ds = _from_files(f"idx:{path}", paths, (), {"files": files})
    _check_idx_dataset(ds, f"dataset idx:{folder}")
    n_classes = int(ds.y_train.max()) + 1
    return replace(ds, class_names=tuple(str(c) for c in range(n_classes)))


def _check_idx_dataset(ds: Dataset, where: str) -> None:
    """An IDX folder must hold a trainable problem: images of one size, labels 0..K-1 all present."""
    if len(ds.y_train) == 0 or len(ds.y_test) == 0:
        empty = "train" if len(ds.y_train) == 0 else "t10k"
        raise DigitlabError(f"{where}: the {empty} files hold 0 images; supply at least one image per class.")
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise DigitlabError(
            f"{where}: training images are {ds.x_train.shape[1]}×{ds.x_train.shape[2]} but test images are "
            f"{ds.x_test.shape[1]}×{ds.x_test.shape[2]}; both splits need images of one size."
        )
    if ds.y_train.min() < 0 or ds.y_test.min() < 0:
        raise DigitlabError(f"{where}: negative labels; labels must be the class numbers 0, 1, 2, ….")
    present = np.unique(ds.y_train)
    if len(present) < 2:
        raise DigitlabError(
            f"{where}: every training label is {int(present[0])}; a classifier needs at least two classes."
        )
    k = int(ds.y_train.max()) + 1
    missing = sorted(set(range(k)) - {int(c) for c in present})
    if missing:
        counts = {int(c): int((ds.y_train == c).sum()) for c in present if c > missing[0]}
        raise DigitlabError(
            f"{where}: training labels skip {_few(missing)} but reach {k - 1} ({_counts(counts)}); labels must be "
            "0..K-1 with every class present. Fix or remove the stray labels."
        )
    unknown = sorted({int(c) for c in np.unique(ds.y_test)} - {int(c) for c in present})
    if unknown:
        counts = {c: int((ds.y_test == c).sum()) for c in unknown}
        raise DigitlabError(
            f"{where}: test labels {_few(unknown)} ({_counts(counts)}) never occur in training; "
            f"labels must be 0..{k - 1}. Fix or remove them."
        )


def _few(values: list[int]) -> str:
    shown = ", ".join(map(str, values[:5]))
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _counts(counts: dict[int, int]) -> str:
    return ", ".join(f"label {c}: {n} image{'s' if n != 1 else ''}" for c, n in list(counts.items())[:5])


LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": _remote(sources.MNIST, DIGIT_NAMES),
    "fashion-mnist": _remote(sources.FASHION_MNIST, FASHION_NAMES),
    "digits": _load_digits,
}


def is_mine(name: str) -> bool:
    """``mine`` or ``mine:WRITER``: your digits, to test on (never to train on)."""
    return name == "mine" or name.startswith("mine:")


def _load_mine(name: str) -> Dataset:
    from digitlab.data.your_digits import DigitStore, check_writer

    writer = check_writer(name[5:]) if name.startswith("mine:") else None
    store = DigitStore()
    images, labels, ids = store.arrays(writer)
    if len(labels) == 0:
        whose = f"writer {writer!r}" if writer else "any writer"
        raise DigitlabError(
            f"dataset {name}: no digits saved for {whose} in {store.path}; add some with "
            "`digitlab mine add FILE --label D` or on the dashboard's Your digits page."
        )
    prov = {
        "files": {str(store.path): {"source": "your digit store", "verified": False, "digits": len(labels)}},
        "writer": writer,
        "ids": ids.tolist(),
        "note": "your own digits: the same digits are the test split and (unused) train split",
    }
    return Dataset(name, images, labels, images, labels, DIGIT_NAMES, prov)


def check_name(name: str) -> None:
    """A dataset name a user may pass: mnist, fashion-mnist, digits, idx:DIR (with a folder), mine[:WRITER]."""
    if name in LOADERS or (name.startswith("idx:") and len(name) > 4) or name == "mine":
        return
    if name.startswith("mine:"):
        from digitlab.data.your_digits import check_writer

        check_writer(name[5:])
        return
    raise DigitlabError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")


def load_dataset(
    name: str = "mnist",
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_network: bool = True,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Load a named dataset, fetching and verifying its files as needed."""
    if name.startswith("idx:"):
        return _load_idx_dir(name[4:])
    if is_mine(name):
        check_name(name)
        return _load_mine(name)
    check_name(name)
    loader = LOADERS[name]
    return loader(data_dir=data_dir, cache_dir=cache_dir, allow_network=allow_network, log=log)

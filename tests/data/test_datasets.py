from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import load_dataset
from tests.conftest import MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS


def test_digits_is_8x8_uint8_with_ten_classes() -> None:
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (8, 8) and ds.x_train.dtype == np.uint8
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert ds.x_train.max() == 255
    assert ds.class_names == tuple("0123456789")


def test_idx_folder_dataset(tiny_idx_dir: Path) -> None:
    ds = load_dataset(f"idx:{tiny_idx_dir}")
    assert ds.x_train.shape == (300, 28, 28) and ds.x_test.shape == (100, 28, 28)
    assert ds.y_train.dtype == np.int64
    assert ds.n_classes == 10
    assert not any(f["verified"] for f in ds.provenance["files"].values())


def test_idx_folder_missing_file(tiny_idx_dir: Path) -> None:
    (tiny_idx_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DigitlabError, match=r"t10k-labels-idx1-ubyte .* is missing"):
        load_dataset(f"idx:{tiny_idx_dir}")


def test_idx_folder_with_mismatched_counts(tiny_idx_dir: Path) -> None:
    from digitlab.data.idx import write_idx

    write_idx(tiny_idx_dir / "t10k-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DigitlabError, match="100 images but labels of shape"):
        load_dataset(f"idx:{tiny_idx_dir}")


def test_unknown_dataset() -> None:
    with pytest.raises(DigitlabError, match="unknown dataset 'mnst'; choose one of mnist"):
        load_dataset("mnst")


def test_subset_is_stratified_and_repeatable(tiny_idx_dir: Path) -> None:
    ds = load_dataset(f"idx:{tiny_idx_dir}")
    a, b = ds.subset(100, 50, random_state=3), ds.subset(100, 50, random_state=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert np.bincount(a.y_train).tolist() == [10] * 10
    assert a.provenance["subset"] == {"train": 100, "test": 50, "seed": 3}


@pytest.mark.slow
def test_real_mnist_from_the_cache(real_mnist: Path) -> None:
    ds = load_dataset("mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(ds.y_test).tolist() == MNIST_TEST_COUNTS
    assert all(f["verified"] for f in ds.provenance["files"].values())


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian package dataset-fashion-mnist not installed (make test installs it as root)",
)
def test_fashion_mnist_from_the_debian_package() -> None:
    ds = load_dataset("fashion-mnist", allow_network=False)
    assert ds.x_train.shape == (60000, 28, 28)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.class_names[9] == "Ankle boot"

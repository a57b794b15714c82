from __future__ import annotations

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import load_dataset
from digitlab.features.augment import get_augmenter, names


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from tests.conftest import mnist_like

    return mnist_like(5, seed=0)[0]  # (50, 28, 28) uint8


@pytest.mark.parametrize("name", names())
def test_backend_is_seeded_keeps_shape_and_changes_images(name: str, images: np.ndarray) -> None:
    aug = get_augmenter(name)
    a = aug.augment(images, np.random.default_rng(3))
    b = aug.augment(images, np.random.default_rng(3))
    c = aug.augment(images, np.random.default_rng(4))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    changed = np.mean([not np.array_equal(x, y) for x, y in zip(a, images, strict=True)])
    assert changed > 0.9
    assert abs(float(a.mean()) - float(images.mean())) < 0.35 * float(images.mean())  # ink neither lost nor doubled


def test_input_is_not_modified(images: np.ndarray) -> None:
    before = images.copy()
    get_augmenter("opencv").augment(images, np.random.default_rng(0))
    np.testing.assert_array_equal(images, before)


def test_unknown_backend_and_bad_input() -> None:
    with pytest.raises(DigitlabError, match="unknown augmentation library 'pil'"):
        get_augmenter("pil")
    with pytest.raises(DigitlabError, match="augmenters take uint8 images"):
        get_augmenter("opencv").augment(np.zeros((2, 784)), np.random.default_rng(0))


def test_augmented_cnn_trains_on_fresh_batches_without_touching_the_test_set() -> None:
    from digitlab.models.cnn import CNNClassifier
    from tests.conftest import mnist_like

    x_train, y_train = mnist_like(60, seed=1)  # 600 images, 28×28
    x_test, y_test = mnist_like(20, seed=2)
    test_before = x_test.copy()
    model = CNNClassifier(epochs=8, channels=(8, 16), hidden=32, augment=get_augmenter("opencv"), verbose=False)
    model.fit(x_train, y_train)
    assert (model.predict(x_test) == y_test).mean() > 0.7
    np.testing.assert_array_equal(x_test, test_before)


def test_robustness_suite_is_deterministic_and_scores_every_transform() -> None:
    from digitlab.features.augment.robustness import TRANSFORMS, robustness
    from digitlab.models import registry

    ds = load_dataset("digits")
    model = registry.get("lr").build(0).fit(ds.x_train, ds.y_train)
    a, b = robustness(model, ds.x_test, ds.y_test), robustness(model, ds.x_test, ds.y_test)
    assert a == b
    assert set(a["accuracy"]) == {"clean", *TRANSFORMS}
    assert a["accuracy"]["clean"] > a["mean_transformed"]


def test_augment_step_leaves_the_test_split_untouched(tmp_path) -> None:
    import hashlib

    from digitlab.runs.folders import new_run
    from digitlab.service import augmenting

    ds = load_dataset("digits")
    before = hashlib.sha256(ds.x_test.tobytes()).hexdigest()
    result = augmenting.augment_into(ds, "elastic", "lr", new_run(tmp_path, "augment"), seed=0)
    assert result["test_sha256"] == before == hashlib.sha256(ds.x_test.tobytes()).hexdigest()
    assert result["with"]["accuracy"] > 0.9 and "gain_pp" in result
    assert result["mode"].startswith("expanded set")

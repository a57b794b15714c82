from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.models.cnn import CNNClassifier
from digitlab.models.ensemble import SoftVote
from digitlab.models.store import load_model, save_model


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def fitted(digits: Dataset) -> CNNClassifier:
    return CNNClassifier(epochs=6, channels=(8, 16), hidden=32, verbose=False).fit(digits.x_train, digits.y_train)


def test_history_and_early_stopping_state(fitted: CNNClassifier) -> None:
    assert 1 <= fitted.n_epochs_ <= 6
    assert all("val_accuracy" in h for h in fitted.history_)
    assert max(h["val_accuracy"] for h in fitted.history_) > 0.8


def test_early_stopping_ends_before_the_epoch_budget(digits: Dataset) -> None:
    model = CNNClassifier(epochs=30, patience=1, max_lr=0.05, channels=(4, 8), hidden=16, verbose=False)
    model.fit(digits.x_train[:300], digits.y_train[:300])
    assert model.n_epochs_ < 30


def test_weights_round_trip_and_config(fitted: CNNClassifier, digits: Dataset, tmp_path: Path) -> None:
    path = save_model(tmp_path / "cnn.pt", fitted, {"model": "cnn"})
    config = json.loads((tmp_path / "cnn.pt.json").read_text())
    assert config["params"]["channels"] == [8, 16] and config["metadata"]["model"] == "cnn"
    model, meta = load_model(path)
    np.testing.assert_array_equal(model.predict_proba(digits.x_test), fitted.predict_proba(digits.x_test))
    assert meta["format"] == "digitlab-model/1"


def test_tampered_weights_are_refused(fitted: CNNClassifier, tmp_path: Path) -> None:
    path = save_model(tmp_path / "cnn.pt", fitted, {"model": "cnn"})
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(DigitlabError, match=r"cnn.pt: refused: not a matching cnn weights file"):
        load_model(path)


class Payload:
    """Anything that is not plain tensors must not be unpickled."""


def test_pickled_objects_in_a_weights_file_are_refused(fitted: CNNClassifier, tmp_path: Path) -> None:
    path = save_model(tmp_path / "cnn.pt", fitted, {"model": "cnn"})
    torch.save({"payload": Payload()}, path)
    config_path = tmp_path / "cnn.pt.json"  # a consistent forgery: only weights_only=True stands in the way
    config = json.loads(config_path.read_text())
    config["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    config_path.write_text(json.dumps(config))
    with pytest.raises(DigitlabError, match=r"refused: not a matching cnn weights file \(UnpicklingError\)"):
        load_model(path)


def test_mismatched_config_is_refused(fitted: CNNClassifier, tmp_path: Path) -> None:
    path = save_model(tmp_path / "cnn.pt", fitted, {"model": "cnn"})
    config_path = tmp_path / "cnn.pt.json"
    config = json.loads(config_path.read_text())
    config["params"]["channels"] = [16, 32]
    config_path.write_text(json.dumps(config))
    with pytest.raises(DigitlabError, match="not a matching cnn weights file"):
        load_model(path)


def test_wrong_image_size_is_a_clear_error(fitted: CNNClassifier) -> None:
    with pytest.raises(DigitlabError, match=r"trained on \(8, 8\) images"):
        fitted.predict(np.zeros((2, 28, 28), np.uint8))


def test_soft_vote_of_fitted_models_averages_probabilities(
    fitted: CNNClassifier, digits: Dataset, tmp_path: Path
) -> None:
    from digitlab.models import registry

    lr = registry.get("lr").build(0).fit(digits.x_train, digits.y_train)
    vote = SoftVote.from_fitted([fitted, lr], ["cnn", "lr"], weights=[3, 1])
    expected = 0.75 * fitted.predict_proba(digits.x_test) + 0.25 * lr.predict_proba(digits.x_test)
    np.testing.assert_allclose(vote.predict_proba(digits.x_test), expected, rtol=1e-6)
    path = save_model(tmp_path / "vote.ensemble.json", vote, {"model": "ensemble"})
    loaded, _ = load_model(path)
    np.testing.assert_allclose(loaded.predict_proba(digits.x_test), expected, rtol=1e-6)
    with pytest.raises(DigitlabError, match="weights"):
        SoftVote.from_fitted([fitted, lr], ["cnn", "lr"], weights=[1, -1])


def test_a_model_saved_before_the_fast_design_loads_as_the_classic_net(digits: Dataset, tmp_path: Path) -> None:
    """Saved configs without ``arch`` (cnn files from before #18) are the classic net, trained without shifts."""
    classic = CNNClassifier(arch="classic", channels=(4, 8), hidden=16, shift=0, epochs=2, verbose=False)
    classic.fit(digits.x_train, digits.y_train)
    path = save_model(tmp_path / "cnn.pt", classic, {"model": "cnn"})
    config_path = tmp_path / "cnn.pt.json"
    config = json.loads(config_path.read_text())
    del config["params"]["arch"], config["params"]["shift"], config["params"]["views"]
    config_path.write_text(json.dumps(config))
    model, _ = load_model(path)
    assert (model.arch, model.shift, model.views) == ("classic", 0, 0)  # and it reads each digit once, as it did
    np.testing.assert_array_equal(model.predict_proba(digits.x_test), classic.predict_proba(digits.x_test))


def test_the_fast_net_pools_before_normalising_and_checks_its_shape() -> None:
    from digitlab.models.cnn import build_network

    net = build_network(10, (16, 32, 64), hidden=0, image_shape=(28, 28), arch="fast")
    kinds = [type(m).__name__ for m in net][:4]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    with torch.no_grad():
        features = net[:-1].eval()(torch.zeros(2, 1, 28, 28))
    assert features.shape == (2, 64 * 3 * 3)  # 28 -> 14 -> 7 -> 3
    with pytest.raises(DigitlabError, match="too many blocks for \\(8, 8\\) images"):
        build_network(10, (4, 4, 4, 4), image_shape=(8, 8), arch="fast")
    with pytest.raises(DigitlabError, match="the classic arch takes two"):
        build_network(10, (16, 32, 64), arch="classic")
    with pytest.raises(DigitlabError, match="cnn arch 'wide': unknown"):
        build_network(10, arch="wide")


def test_batches_are_shifted_whole_pixels_with_zeros_filled_in() -> None:
    batch = torch.zeros(3, 1, 6, 6)
    batch[:, 0, 2, 3] = 1.0  # one lit pixel per image
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        moved = CNNClassifier._shifted(batch, 2, rng)
        assert moved.shape == batch.shape and float(moved.sum()) == 3.0  # moved, never cut or smeared
        ((y, x),) = moved[0, 0].nonzero().tolist()
        assert torch.equal(moved[0], moved[1]) and abs(y - 2) <= 2 and abs(x - 3) <= 2  # one offset per batch
        seen.add((y - 2, x - 3))
    assert len(seen) == 25  # every offset in -2..2 × -2..2 turns up


def test_batchnorm_folds_across_the_max_pool_only_when_that_is_exact() -> None:
    from digitlab.models.cnn import build_network
    from digitlab.models.exported import fold_batchnorm

    torch.manual_seed(0)
    net = build_network(10, (8, 16, 32), arch="fast").eval()
    for bn in (m for m in net if isinstance(m, torch.nn.BatchNorm2d)):  # trained-looking statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.rand(16, 1, 28, 28)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded)
    torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-5)
    net[2].weight.data[0] = -0.7  # a negative scale: max-pooling no longer commutes with the BN
    folded = fold_batchnorm(net)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded) == 1
    torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-5)


def test_the_cnn_reads_each_digit_at_its_nine_one_pixel_shifts(digits: Dataset, tmp_path: Path) -> None:
    """``views=1``: the mean probability of the 9 shifted copies, in predict_proba, the saved file and the module."""
    from digitlab.models import registry

    cnn = registry.build("cnn", 0).set_params(epochs=3, verbose=False)
    assert (cnn.arch, cnn.views) == ("fast", 1)
    cnn.fit(digits.x_train, digits.y_train)
    x = digits.x_test[:40]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))  # shifted copies: windows of the padded digits
    copies = [padded[:, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
    cnn.set_params(views=0)
    once = cnn.predict_proba(x)
    by_hand = np.mean([cnn.predict_proba(c) for c in copies], axis=0)
    cnn.set_params(views=1)
    np.testing.assert_allclose(cnn.predict_proba(x), by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(cnn.predict_proba(x), once, atol=1e-4)
    loaded, _ = load_model(save_model(tmp_path / "cnn.pt", cnn, {"model": "cnn"}))
    assert loaded.views == 1
    np.testing.assert_allclose(loaded.predict_proba(x), by_hand, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        module = cnn.torch_module()(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(module, by_hand, rtol=1e-4, atol=1e-5)
    assert cnn.history_[-1]["val_accuracy"] > 0.8  # validation reads one view, each epoch


def test_a_pose_is_the_digit_turned_and_scaled_as_opencv_does_it(digits: Dataset) -> None:
    """``pose_matrices``: one matrix product gives what cv2.warpAffine gives (the training augmenter's warp)."""
    import cv2

    from digitlab.models.exported import pose_matrices

    x = digits.x_test[:30].astype(np.float32) / 16.0  # (30, 8, 8)
    poses = [(6.0, 1.0), (-6.0, 1.0), (0.0, 0.92), (10.0, 1.1)]
    maps = pose_matrices(poses, 8, 8)  # (4, 64, 64)
    for (angle, scale), matrix in zip(poses, maps, strict=True):
        m = cv2.getRotationMatrix2D((3.5, 3.5), angle, scale)  # counter-clockwise, about the centre
        expected = np.stack([cv2.warpAffine(i, m, (8, 8), flags=cv2.INTER_LINEAR, borderValue=0) for i in x])
        got = (torch.from_numpy(x.reshape(30, 64)) @ matrix).reshape(30, 8, 8).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    wide = np.random.default_rng(0).random((6, 10), dtype=np.float32)  # not square: pixels stay square
    expected = cv2.warpAffine(wide, cv2.getRotationMatrix2D((4.5, 2.5), 10.0, 1.0), (10, 6), flags=cv2.INTER_LINEAR)
    got = (torch.from_numpy(wide.reshape(1, 60)) @ pose_matrices([(10.0, 1.0)], 6, 10)[0]).reshape(6, 10).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_test_time_poses_average_the_turned_and_scaled_digit_at_every_shift(
    fitted: CNNClassifier, digits: Dataset, tmp_path: Path
) -> None:
    """``poses``: the mean probability over the digit and its posed copies, each at the shifts of ``views``;
    kept in the saved file and the torch module; a bad pose is refused in one line before any training."""
    import cv2

    cnn = fitted.set_params(views=1, poses=((8, 1), (0, 0.9)))
    x = digits.x_test[:40]
    floats = x.astype(np.float32)
    posed = [floats] + [
        np.stack([cv2.warpAffine(i, cv2.getRotationMatrix2D((3.5, 3.5), a, s), (8, 8)) for i in floats])
        for a, s in cnn.poses
    ]
    try:
        with torch.no_grad():
            module = cnn.torch_module()
            shifts_only = cnn.set_params(poses=()).torch_module()  # the same network, 9 shifts, no poses
            by_hand = np.mean([shifts_only(torch.from_numpy(p)).numpy() for p in posed], axis=0)
            plain = shifts_only(torch.from_numpy(floats)).numpy()
            cnn.set_params(poses=((8, 1), (0, 0.9)))
            np.testing.assert_allclose(module(torch.from_numpy(floats)).numpy(), by_hand, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(cnn.predict_proba(x), by_hand, rtol=1e-4, atol=1e-5)
        assert not np.allclose(by_hand, plain, atol=1e-3)
        loaded, _ = load_model(save_model(tmp_path / "cnn.pt", cnn, {"model": "cnn"}))
        assert loaded.poses == ((8.0, 1.0), (0.0, 0.9))
        np.testing.assert_allclose(loaded.predict_proba(x), by_hand, rtol=1e-4, atol=1e-5)
        with pytest.raises(DigitlabError, match=r"cnn poses .*positive scale") as bad:
            CNNClassifier(epochs=1, poses=((5, 0),), verbose=False).fit(digits.x_train[:50], digits.y_train[:50])
        assert "\n" not in str(bad.value)
        with pytest.raises(DigitlabError, match="cnn poses"):
            CNNClassifier(poses=(5,), verbose=False).fit(digits.x_train[:50], digits.y_train[:50])
    finally:
        cnn.set_params(views=0, poses=())


def test_pen_drawn_digits_join_the_training_set_and_only_for_28_by_28_digits(digits: Dataset) -> None:
    from tests.conftest import mnist_like

    x, y = mnist_like(10, seed=0)  # (100, 28, 28), digits 0-9
    model = CNNClassifier(epochs=1, channels=(4, 8), hidden=16, synthetic=5, validation_fraction=0, verbose=False)
    assert model.fit(x, y).n_synthetic_ == 20  # at most a fifth of the 100 given: 2 writers × 10 digits
    plain = CNNClassifier(epochs=1, channels=(4, 8), hidden=16, validation_fraction=0, verbose=False)
    assert plain.fit(x, y).n_synthetic_ == 0
    eight_by_eight = CNNClassifier(epochs=1, channels=(4, 8), hidden=16, synthetic=2, verbose=False)
    with pytest.raises(DigitlabError, match=r"28×28 digits 0–9.*set synthetic=0"):
        eight_by_eight.fit(digits.x_train[:100], digits.y_train[:100])


def test_the_last_plain_epochs_see_the_digits_as_they_are(digits: Dataset) -> None:
    """cnn-hands' last two epochs train without its augmenter (sharper on digits as they are: MNIST 99.4% ->
    99.6% for the shipped reader); the epochs before see every batch augmented."""
    from dataclasses import dataclass, field

    @dataclass
    class Counting:
        batches: list[int] = field(default_factory=list)

        def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            self.batches.append(len(images))
            return images

    x, y = digits.x_train[:256], digits.y_train[:256]
    seen = Counting()
    model = CNNClassifier(
        epochs=3,
        plain_epochs=2,
        batch_size=64,
        channels=(4, 8),
        hidden=16,
        validation_fraction=0,
        augment=seen,
        verbose=False,
    )
    model.fit(x, y)
    assert sum(seen.batches) == 256  # one epoch of 3 augmented: every digit once
    every = Counting()
    CNNClassifier(
        epochs=3, batch_size=64, channels=(4, 8), hidden=16, validation_fraction=0, augment=every, verbose=False
    ).fit(x, y)
    assert sum(every.batches) == 3 * 256


@pytest.mark.parametrize(
    ("views", "poses"), [(0, ()), (1, ()), (1, ((8, 1), (0, 0.9)))], ids=["once", "9-shifts", "shifts-and-poses"]
)
def test_the_reader_reads_as_the_classifier_without_scikit_learn(
    fitted: CNNClassifier, digits: Dataset, tmp_path: Path, views: int, poses: tuple
) -> None:
    """`digitlab predict` loads a cnn as nets.CNNReader (PyTorch alone): the same probabilities, the same refusals."""
    import subprocess
    import sys

    from digitlab.models.nets import CNNReader

    cnn = fitted.set_params(views=views, poses=poses)
    try:
        path = save_model(tmp_path / "cnn.pt", cnn, {"model": "cnn"})
        reader, meta = load_model(path, reading=True)
        assert isinstance(reader, CNNReader) and meta["model"] == "cnn"
        np.testing.assert_allclose(reader.predict_proba(digits.x_test), cnn.predict_proba(digits.x_test), atol=1e-5)
        assert list(reader.classes_) == list(cnn.classes_)
        np.testing.assert_array_equal(reader.predict(digits.x_test[:50]), cnn.predict(digits.x_test[:50]))
    finally:
        cnn.set_params(views=0, poses=())
    with pytest.raises(DigitlabError, match=r"trained on \(8, 8\) images"):
        reader.predict_proba(np.zeros((1, 28, 28), np.uint8))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(DigitlabError, match=r"cnn.pt: refused: not a matching cnn weights file"):
        load_model(path, reading=True)
    probe = "import sys; from digitlab.models.store import load_model; load_model(sys.argv[1], reading=True); "
    probe += "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))"
    good = save_model(tmp_path / "again.pt", cnn, {"model": "cnn"})
    found = subprocess.run([sys.executable, "-c", probe, str(good)], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False", found.stderr  # reading a cnn imports no scikit-learn

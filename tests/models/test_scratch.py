"""The from-scratch models: gradients by finite differences, layers against PyTorch, models
against scikit-learn, and the estimator contract.

Estimator checks: ``parametrize_with_checks`` runs every scikit-learn check on softmax
regression, the linear SVM, the MLP and k-NN, with no expected failures (scikit-learn itself
skips a few that need pandas or sparse-input tags). ScratchCNN is not in the list: it needs
images (n, H, W) and the checks pass feature rows (n, d); its contract is tested below.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.models.scratch import layers as L
from digitlab.models.scratch.estimators import ScratchCNN, ScratchKNN, ScratchLinearSVM, ScratchMLP, ScratchSoftmax
from digitlab.models.scratch.features import to_features
from digitlab.models.scratch.losses import multiclass_hinge, softmax_cross_entropy
from digitlab.models.scratch.network import kept_memory
from digitlab.models.store import load_model, model_path, save_model

TOL = 1e-6  # finite differences in float64
EPS = 1e-6


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar f() with respect to every entry of x (changed in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + EPS
        up = f()
        x[i] = old - EPS
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * EPS)
    return grad


def check_layer(layer: L.Layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """Gradients of sum(forward(x) * r) for a fixed random r, analytic vs numeric, input and params."""
    r = rng.standard_normal(layer.forward(x).shape)

    def f() -> float:
        return float((layer.forward(x) * r).sum())

    layer.forward(x, train=True)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, numeric_grad(f, x), atol=TOL, rtol=1e-5)
    for name, w in layer.params.items():
        layer.forward(x, train=True)
        layer.backward(r)
        analytic = layer.grads[name].copy()
        np.testing.assert_allclose(analytic, numeric_grad(f, w), atol=TOL, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: (L.Dense(5, 3, rng, dtype=np.float64), rng.standard_normal((4, 5))),
        lambda rng: (L.ReLU(), rng.standard_normal((4, 6)) + 0.05),
        lambda rng: (L.Flatten(), rng.standard_normal((2, 3, 2, 2))),
        lambda rng: (L.Conv2D(2, 3, 3, rng, dtype=np.float64), rng.standard_normal((2, 5, 4, 2))),
        lambda rng: (L.MaxPool2D(), rng.standard_normal((2, 4, 6, 3))),
        lambda rng: (L.FlattenChannels(), rng.standard_normal((2, 3, 2, 4))),
    ],
    ids=["dense", "relu", "flatten", "conv2d", "maxpool", "flatten-channels"],
)
def test_layer_gradients_match_finite_differences(make) -> None:
    rng = np.random.default_rng(0)
    layer, x = make(rng)
    check_layer(layer, x, rng)


def test_dropout_gradient_uses_the_same_mask() -> None:
    rng = np.random.default_rng(0)
    layer = L.Dropout(0.5, np.random.default_rng(1))
    x = rng.standard_normal((6, 5))
    out = layer.forward(x, train=True)
    r = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(r), r * out / np.where(x == 0, 1, x) * (out != 0), atol=1e-12)
    np.testing.assert_array_equal(layer.forward(x, train=False), x)


@pytest.mark.parametrize("loss", [softmax_cross_entropy, multiclass_hinge], ids=["cross-entropy", "hinge"])
def test_loss_gradients_match_finite_differences(loss) -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    _, grad = loss(z, y)
    np.testing.assert_allclose(grad, numeric_grad(lambda: loss(z, y)[0], z), atol=TOL)


def test_cross_entropy_matches_torch() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 10))
    y = rng.integers(0, 10, 6)
    loss, grad = softmax_cross_entropy(z, y)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(y))
    lt.backward()
    assert abs(loss - lt.item()) < 1e-10
    np.testing.assert_allclose(grad, zt.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("c_in", [1, 3], ids=["one-channel", "three-channels"])  # im2col has a path for each
def test_conv_forward_and_backward_match_torch(c_in: int) -> None:
    rng = np.random.default_rng(0)
    conv = L.Conv2D(c_in, 4, 3, rng, dtype=np.float64)
    conv.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 6, 5, c_in))  # channels last
    r = rng.standard_normal((2, 6, 5, 4))
    y = conv.forward(x)
    dx = conv.backward(r)
    x, r, y, dx = (a.transpose(0, 3, 1, 2) for a in (x, r, y, dx))  # torch's channels first
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    (yt * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), atol=1e-5)


def test_maxpool_forward_and_backward_match_torch() -> None:
    rng = np.random.default_rng(0)
    pool = L.MaxPool2D()
    x = rng.standard_normal((2, 6, 8, 3))  # channels last
    x[0, :2, :2, 0] = 1.5  # a tie: the gradient goes to one position only, as in torch
    x[1, 2:4, 4:6, 2] = -0.5  # another, elsewhere in the window order
    r = rng.standard_normal((2, 3, 4, 3))
    y = pool.forward(x, train=True)
    dx = pool.backward(r)
    x, r, y, dx = (a.transpose(0, 3, 1, 2) for a in (x, r, y, dx))  # torch's channels first
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, 2)
    (yt * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-5)


def test_knn_gives_the_same_predictions_as_scikit_learn(digits: Dataset) -> None:
    for k in (1, 3, 5):
        mine = ScratchKNN(n_neighbors=k, weights="uniform", n_components=None, deskew=False, chunk_size=100)
        mine.fit(digits.x_train, digits.y_train)
        theirs = KNeighborsClassifier(n_neighbors=k).fit(to_features(digits.x_train, False), digits.y_train)
        np.testing.assert_array_equal(mine.predict(digits.x_test), theirs.predict(to_features(digits.x_test, False)))


def test_softmax_regression_within_half_a_point_of_scikit_learn(digits: Dataset) -> None:
    # LogisticRegression(C=1) minimises sum(loss) + ||W||²/2, i.e. mean(loss) + ||W||²/(2n): l2 = 1/n
    n = len(digits.y_train)
    mine = ScratchSoftmax(deskew=False, validation_fraction=0, epochs=200, batch_size=64, learning_rate=1e-2, l2=1 / n)
    mine.fit(digits.x_train, digits.y_train)
    theirs = LogisticRegression(max_iter=2000).fit(to_features(digits.x_train, False), digits.y_train)
    acc_mine = (mine.predict(digits.x_test) == digits.y_test).mean()
    acc_theirs = (theirs.predict(to_features(digits.x_test, False)) == digits.y_test).mean()
    assert abs(acc_mine - acc_theirs) <= 0.005 + 1e-12, (acc_mine, acc_theirs)


@pytest.mark.parametrize("cls", [ScratchSoftmax, ScratchLinearSVM, ScratchMLP, ScratchKNN, ScratchCNN])
def test_fit_save_load_repeatable(cls, digits: Dataset, tmp_path: Path) -> None:
    kwargs = {"channels": (8, 16), "hidden": 32, "epochs": 6, "learning_rate": 3e-3} if cls is ScratchCNN else {}
    a = cls(**kwargs).fit(digits.x_train, digits.y_train)
    b = cls(**kwargs).fit(digits.x_train, digits.y_train)
    np.testing.assert_array_equal(a.predict_proba(digits.x_test), b.predict_proba(digits.x_test))  # same seed
    assert (a.predict(digits.x_test) == digits.y_test).mean() > 0.8
    path = save_model(model_path(tmp_path, cls.__name__, a), a, {"model": cls.__name__})
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert "__config__" in data.files
    loaded, meta = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(digits.x_test), a.predict_proba(digits.x_test))
    assert meta["model"] == cls.__name__


def test_cnn_file_saved_channels_first_still_loads(digits: Dataset, tmp_path: Path) -> None:
    # scratch-cnn files from before the channels-last layers record input_shape [1, H, W] and no shift:
    # the same weights make the same network, so they load and predict as before
    model = ScratchCNN(channels=(4, 8), hidden=16, epochs=2).fit(digits.x_train, digits.y_train)
    path = save_model(tmp_path / "old.npz", model, {})
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("__config__")))
    h, w, _ = config["extra"]["input_shape"]
    config["extra"]["input_shape"] = [1, h, w]
    del config["params"]["shift"]
    np.savez(path, __config__=np.array(json.dumps(config)), **arrays)
    loaded, _ = load_model(path)
    np.testing.assert_allclose(loaded.predict_proba(digits.x_test), model.predict_proba(digits.x_test), atol=1e-6)


@pytest.mark.parametrize("shift", [-1, 1.5, "2"])
def test_cnn_refuses_a_bad_shift_in_one_line(shift, digits: Dataset) -> None:
    with pytest.raises(DigitlabError, match="shift"):
        ScratchCNN(shift=shift, epochs=1).fit(digits.x_train, digits.y_train)


def test_shifted_moves_each_digit_by_its_own_offset_within_the_range() -> None:
    x = np.zeros((300, 12, 12, 1), np.float32)
    x[:, 5, 6, 0] = 1.0  # one dot in each image
    out = L.shifted(x, 2, np.random.default_rng(0))
    n, ys, xs, _ = np.nonzero(out)
    np.testing.assert_array_equal(n, np.arange(300))  # every image keeps its one dot
    assert set(zip((ys - 5).tolist(), (xs - 6).tolist(), strict=True)) == {
        (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
    }  # all 25 offsets occur, none beyond 2 pixels


def test_cnn_trained_with_shifts_reads_moved_digits_better(real_mnist: Path) -> None:
    ds = load_dataset("mnist")
    x, y = ds.x_train[:3000], ds.y_train[:3000]
    moved = np.roll(ds.x_test[:1000], (2, -2), axis=(1, 2))  # test digits 2 pixels down and left
    small = {"channels": (8, 16), "hidden": 32, "epochs": 4, "learning_rate": 3e-3, "verbose": False}
    plain = ScratchCNN(shift=0, **small).fit(x, y)
    shifted = ScratchCNN(**small).fit(x, y)  # the default: each training digit moved by up to 2 pixels
    plain_acc, shifted_acc = (float((m.predict(moved) == ds.y_test[:1000]).mean()) for m in (plain, shifted))
    assert shifted_acc > plain_acc + 0.2, (plain_acc, shifted_acc)  # 0.47 and 0.78 when written


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_keeps_freed_arrays_while_training_and_gives_them_back_after() -> None:
    with kept_memory():
        blocks = [np.ones(3 << 20, np.uint8) for _ in range(8)]  # 24 MB in 3 MB arrays, as activations are
        del blocks
        kept = _rss_mb()  # freed, still held for the next batch
        blocks = [np.ones(3 << 20, np.uint8) for _ in range(8)]  # the next batch reuses it
        assert _rss_mb() < kept + 8
        del blocks
    assert _rss_mb() < kept - 16  # and afterwards it goes back to the system


def test_training_history_and_early_stopping(digits: Dataset) -> None:
    model = ScratchMLP(epochs=40, patience=2, learning_rate=0.05).fit(digits.x_train, digits.y_train)
    assert model.n_epochs_ < 40
    assert all("val_accuracy" in h for h in model.history_)


def test_damaged_npz_is_refused(digits: Dataset, tmp_path: Path) -> None:
    model = ScratchSoftmax(epochs=2).fit(digits.x_train, digits.y_train)
    path = save_model(tmp_path / "m.npz", model, {})
    np.savez(path, **{"0.W": np.zeros((3, 3))})
    with pytest.raises(DigitlabError, match=r"m\.npz: not a readable scratch model file"):
        load_model(path)


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks(
    [
        ScratchSoftmax(epochs=100, batch_size=32),
        ScratchLinearSVM(epochs=100, batch_size=32),
        ScratchMLP(epochs=100, batch_size=32, hidden=(16,)),
        ScratchKNN(n_components=None, deskew=False),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)

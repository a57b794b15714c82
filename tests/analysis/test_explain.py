"""Look inside: explanations of single answers (digitlab explain) and the map of all digits (digitlab map)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab import service
from digitlab.analysis import explain
from digitlab.core.errors import DigitlabError
from digitlab.models import registry
from digitlab.models.cnn import CNNClassifier
from digitlab.models.ensemble import SoftVote
from tests.conftest import Cli, digitlab, mnist_like


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = mnist_like(50, seed=0)
    x_test, y_test = mnist_like(3, seed=1)
    return x, y, x_test, y_test


@pytest.fixture(scope="module")
def cnn(digits: tuple[np.ndarray, ...]) -> CNNClassifier:
    x, y = digits[0], digits[1]
    return CNNClassifier(epochs=8, batch_size=50, validation_fraction=0.0, verbose=False, random_state=0).fit(x, y)


def fitted(name: str, digits: tuple[np.ndarray, ...]) -> object:
    return registry.get(name).build(0).fit(digits[0], digits[1])


def corner_free(image: np.ndarray) -> np.ndarray:
    """The digit with an empty 6×6 top-left corner (MNIST digits sit in the middle 20×20)."""
    out = image.copy()
    out[:6, :6] = 0
    return out


def test_integrated_gradients_add_up_to_the_change_in_the_logit(
    cnn: CNNClassifier, digits: tuple[np.ndarray, ...]
) -> None:
    import torch

    clear = 0  # maps whose logit moves by at least 1: there the sum is within 5% of the change
    for image in digits[2][:8]:
        found = explain.explain(cnn, image, "cnn")
        net = cnn.network_.eval()
        with torch.no_grad():
            x = torch.from_numpy(image.astype(np.float32) / 255)[None, None]
            change = (net(x) - net(torch.zeros_like(x)))[0].numpy()
        maps = {p.title: p.values for p in found.panels}
        for c in (found.predicted, found.runner_up):
            name = found.classes[c]
            total = maps[f"IG for {name}"].sum()
            check = found.numbers["integrated_gradients"][name]
            assert check["logit_change"] == pytest.approx(change[c], abs=1e-4)
            assert check["sum_of_attributions"] == pytest.approx(total, abs=1e-6)
            if abs(change[c]) >= explain.MEANINGFUL:
                assert total == pytest.approx(change[c], rel=explain.COMPLETENESS)
                clear += 1
            else:  # a runner-up that barely moves: the gap is small in logits, and reported
                assert abs(total - change[c]) < 0.1 and check["absolute_error"] == pytest.approx(
                    abs(total - change[c]), abs=1e-3
                )
        difference = maps[f"{found.label} rather than {found.classes[found.runner_up]}"]
        assert np.allclose(difference, maps[f"IG for {found.label}"] - maps[f"IG for {found.classes[found.runner_up]}"])
    assert clear >= 6


def test_occluding_an_empty_corner_changes_nothing(cnn: CNNClassifier, digits: tuple[np.ndarray, ...]) -> None:
    lr = fitted("lr", digits)
    vote = SoftVote.from_fitted([lr, cnn], ["lr", "cnn"])  # an ensemble: explained by occlusion alone
    for model in (cnn, vote):
        for image in digits[2][:3]:
            found = explain.explain(model, corner_free(image), "m")
            occluded = [p for p in found.panels if p.title.startswith("occlusion")]
            assert len(occluded) == 2
            for panel in occluded:
                # each 4×4 patch at stride 2 that lies inside the empty corner covers nothing
                assert np.abs(panel.values[:4, :4]).max() < 1e-6, panel.title  # (batch-order rounding aside)
                assert np.abs(panel.values).max() > 0  # the ink itself matters
    assert explain.kind(vote) == "occlusion"


def test_knn_neighbours_are_kneighbors_with_their_training_digits(digits: tuple[np.ndarray, ...]) -> None:
    x, y, x_test, _ = digits
    knn = fitted("knn", digits)
    for image in x_test[:5]:
        found = explain.explain(knn, image, "knn", training=(x, y))
        distances, indices = knn[-1].kneighbors(knn[:-1].transform(image[None]))
        assert [n.index for n in found.neighbours] == indices[0].tolist()
        assert np.allclose([n.distance for n in found.neighbours], distances[0])
        assert [n.label for n in found.neighbours] == [str(y[i]) for i in indices[0]]
        for n in found.neighbours:
            assert n.image is not None and np.array_equal(n.image, x[n.index])
        assert not found.notes
    # without the training digits, or with other ones, it still names them but shows no picture and says why
    alone = explain.explain(knn, x_test[0], "knn")
    assert all(n.image is None for n in alone.neighbours) and "not at hand" in alone.notes[0]
    other = explain.explain(knn, x_test[0], "knn", training=(x[::-1].copy(), y[::-1].copy()))
    assert any(n.image is None for n in other.neighbours) and "not in the training set" in other.notes[0]


def test_lr_weight_images_are_coef_reshaped_and_input_times_weights_adds_up_to_the_logit(
    digits: tuple[np.ndarray, ...],
) -> None:
    lr = fitted("lr", digits)
    image = digits[2][0]
    found = explain.explain(lr, image, "lr")
    coef = lr[-1].coef_
    weights = [p for p in found.panels if p.title.startswith("weights of")]
    assert len(weights) == 10
    for k, panel in enumerate(weights):
        assert np.array_equal(panel.values, coef[k].reshape(28, 28))
    logits = lr[-1].decision_function(lr[:-1].transform(image[None]))[0]
    contribution = next(p for p in found.panels if p.title == f"input × weights, {found.label}")
    assert contribution.values.sum() + lr[-1].intercept_[found.predicted] == pytest.approx(logits[found.predicted])


def test_mlp_shows_its_most_active_units_and_svm_its_nearest_support_vectors(digits: tuple[np.ndarray, ...]) -> None:
    x, y, x_test, _ = digits
    mlp = fitted("mlp", digits)
    found = explain.explain(mlp, x_test[0], "mlp")
    hidden = np.maximum(mlp[:-1].transform(x_test[:1])[0] @ mlp[-1].coefs_[0] + mlp[-1].intercepts_[0], 0)
    shown = [u["unit"] for u in found.numbers["units"]]
    assert shown == np.argsort(-hidden)[: explain.TOP_UNITS].tolist()
    unit = found.panels[1]
    assert np.array_equal(unit.values, mlp[-1].coefs_[0][:, shown[0]].reshape(28, 28))

    svm = fitted("svm", digits)
    found = explain.explain(svm, x_test[0], "svm", training=(x, y))
    z = svm[:-1].transform(x_test[:1])[0]
    svc = svm[-1].svc_
    distances = np.linalg.norm(svc.support_vectors_ - z, axis=1)
    nearest = svc.support_[np.argsort(distances)[:8]]
    assert [n.index for n in found.neighbours] == nearest.tolist()
    assert [n.label for n in found.neighbours] == [str(y[i]) for i in nearest]
    assert all(n.image is not None and np.array_equal(n.image, x[n.index]) for n in found.neighbours)
    assert all(0 < (n.kernel or 0) <= 1 for n in found.neighbours)


def test_a_blank_picture_is_refused_in_one_line(cnn: CNNClassifier) -> None:
    with pytest.raises(DigitlabError, match="blank"):
        explain.explain(cnn, np.zeros((28, 28), np.uint8), "cnn")


# --- the commands, on the real quick MNIST run --------------------------------------------------------------


def picture(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(255 - image).resize((140, 140)).save(path)  # dark ink on white paper, 5× larger
    return path


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "lr", "knn", "svm", "mlp"])
def test_explain_command_writes_a_figure_and_json_per_picture(
    model: str, mnist_run: Path, real_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from digitlab.data.datasets import load_dataset

    ds = load_dataset("mnist")
    files = [picture(tmp_path / f"digit{i}.png", ds.x_test[i]) for i in (0, 1)]
    args = ("explain", *map(str, files), "--model", model, "--out", str(mnist_run.parent), "--json")
    proc = digitlab(*args, cwd=tmp_path) if model == "cnn" else Cli(capsys)(*args)  # one as a user runs it
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"] == model and len(result["explanations"]) == 2
    for row, i in zip(result["explanations"], (0, 1), strict=True):
        assert Path(row["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        saved = json.loads(Path(row["json"]).read_text())
        assert saved["label"] == row["label"] == str(ds.y_test[i])  # two easy test digits
        assert np.asarray(saved["image"]).shape == (28, 28)
        assert Path(row["figure"]).parent == mnist_run.resolve() / "explanations"
        if model == "cnn":
            checks = saved["numbers"]["integrated_gradients"]
            assert checks[row["label"]]["relative_error"] < 0.05  # the answer's map adds up to its logit's change
            for c in checks.values():
                assert c["relative_error"] < 0.05 if abs(c["logit_change"]) >= 1 else c["absolute_error"] < 0.1
        if model in ("knn", "svm"):  # the training digits of the quick run were found and shown
            assert row["neighbours"] and not row["notes"]


@pytest.mark.slow
def test_explain_command_faults_are_one_line(
    private_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    text = tmp_path / "note.png"
    text.write_text("not a picture")
    runs = private_runs  # a copy: another worker may be writing explanations into the shared run
    run = (runs / "latest").resolve()
    out = str(runs)
    for args, expected in [
        ([str(blank)], "no ink found"),
        ([str(text)], "note.png"),
        ([str(tmp_path / "missing.png")], "missing.png"),
        ([str(blank), "--model", "nosuch"], "nosuch"),
    ]:
        before = set((run / "explanations").glob("*")) if (run / "explanations").is_dir() else set()
        proc = Cli(capsys)("explain", *args, "--out", out)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        after = set((run / "explanations").glob("*")) if (run / "explanations").is_dir() else set()
        assert after == before  # nothing written


@pytest.mark.slow
def test_map_command_maps_every_test_digit_and_rings_the_misread(mapped_run: Path) -> None:
    facts = json.loads((mapped_run / "map-cnn-umap.json").read_text())
    points = facts["points"]
    assert facts["n"] == len(points["x"]) == 1000 and facts["reader"] == "cnn"
    evaluation = json.loads((mapped_run / "evaluate-cnn.json").read_text())
    assert facts["n_misread"] == evaluation["n_errors"]  # the same cnn, the same test digits
    assert sum(p != t for p, t in zip(points["predicted"], points["label"], strict=True)) == facts["n_misread"]
    assert (mapped_run / facts["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    found = service.read_map(mapped_run, "cnn-umap")
    assert found.xy.shape == (1000, 2) and found.images.shape == (1000, 28, 28)
    # the map separates the digits: a digit's nearest neighbours on the map mostly share its label
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    assert cross_val_score(KNeighborsClassifier(5), found.xy, found.labels, cv=5).mean() > 0.9
    # digits not on the map (training digits) placed anew land among their own kind
    cnn = service.run_cnn(mapped_run)
    ds = service.run_dataset(mapped_run)
    among_own = []
    for image, label in zip(ds.x_train[:50], ds.y_train[:50], strict=True):
        xy = service.place_on_map(found, image, cnn)
        nearest = np.argsort(np.linalg.norm(found.xy - xy, axis=1))[:10]
        among_own.append(np.mean(found.labels[nearest] == label) >= 0.5)
    assert np.mean(among_own) >= 0.9


@pytest.mark.slow
def test_map_with_pca_and_tsne_and_its_faults(mapped_run: Path, real_mnist: Path) -> None:
    result = service.digit_map(service.MapRequest(str(mapped_run), mapped_run.parent, "pca", "tsne", seed=1))
    assert result.to_json()["n"] == 1000 and "pca-tsne" in service.run_maps(mapped_run)
    found = service.read_map(mapped_run, "pca-tsne")
    assert service.place_on_map(found, found.images[0]).shape == (2,)  # pca maps need no model
    for request, expected in [
        (service.MapRequest(str(mapped_run), mapped_run.parent, "vgg"), "--model 'vgg'"),
        (service.MapRequest(str(mapped_run), mapped_run.parent, method="pca"), "--method 'pca'"),
        (service.MapRequest(str(mapped_run), mapped_run.parent, split="train"), "--split 'train'"),
        (service.MapRequest("nosuch", mapped_run.parent), "run folder not found"),
    ]:
        with pytest.raises(DigitlabError, match=expected):
            service.digit_map(request)


@pytest.mark.slow
def test_report_shows_what_the_models_look_at(mapped_run: Path, tmp_path: Path) -> None:
    look = json.loads((mapped_run / "look.json").read_text())
    assert set(look["figures"]) == {"lr_weights", "mlp_units", "cnn_saliency"}
    mistakes = [d for d in look["cnn_saliency"] if d["mistake"]]
    assert len(mistakes) == 4 and all(d["predicted"] != d["true"] for d in mistakes)
    confidences = [d["confidence"] for d in mistakes]
    assert confidences == sorted(confidences, reverse=True)  # the most confident mistakes first
    output = tmp_path / "report.html"
    service.report(str(mapped_run), mapped_run.parent, output)
    html = output.read_text()
    section = html[html.index('<section id="look">') : html.index('<section id="tuning">')]
    assert "What the models look at" in section
    assert section.count("data:image/png;base64,") >= 4  # lr weights, mlp units, cnn saliency, the map
    assert "Map of 1,000 digits" in section

"""Why a model answered: an explanation of one 28×28 digit, by model kind.

- cnn (any ``CNNClassifier``): Integrated Gradients of the logits (Captum, black baseline; completeness
  checked and reported) and occlusion of the probabilities (Captum, 4×4 grey-to-black patches, stride 2),
  for the predicted class and the runner-up, plus their difference ("7 rather than 1").
- lr: each class's weight image (``coef_`` reshaped) and input × weights for the predicted class and
  the runner-up (with the intercept, their sums are the logits).
- mlp: the first-layer units most active for this input, drawn as their weight images, each with its
  activation and what it adds to the predicted class's logit.
- knn: the k training digits it compared with (``kneighbors``), their labels and distances.
- svm: the support vectors nearest the input in the model's own feature space (PCA of deskewed pixels),
  with their labels, distances and RBF kernel values.
- anything else (scratch models, ensembles, an augmented wrapper we cannot see into): occlusion through
  ``predict_proba``, which needs nothing but the model's answers.

Training digits (for k-NN and SVM pictures) are optional: the caller passes the training set the model
was fitted on and each neighbour is checked against the model's stored features before it is shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.data.pictures import is_blank

IG_STEPS = 48  # Gauss-Legendre steps: completeness within about 1% on the cnn (tests ask for 5%)
COMPLETENESS = 0.05  # an IG map must add up to its logit's change within this share when the logit moves by
MEANINGFUL = 1.0  # at least this much; below it (a runner-up that barely moves) the gap is reported, not refined
OCCLUSION_WINDOW = 4  # pixels a side of each occluding patch
OCCLUSION_STRIDE = 2
TOP_UNITS = 8  # MLP units shown


@dataclass
class Panel:
    """One 2-D map to draw: ``style`` "image" (ink 0..255), "signed" (red for, blue against) or "weights"."""

    title: str
    values: np.ndarray  # (H, W) float
    style: str = "signed"
    caption: str = ""

    def to_json(self, decimals: int = 5) -> dict[str, Any]:
        return {
            "title": self.title,
            "style": self.style,
            "caption": self.caption,
            "values": np.round(self.values.astype(np.float64), decimals).tolist(),
        }


@dataclass
class Neighbour:
    """A training digit the model compared with (k-NN) or a support vector (SVM)."""

    index: int  # row in the training set the model was fitted on
    label: str
    distance: float  # in the model's feature space
    image: np.ndarray | None = None  # (H, W) uint8 when the training digits were given and match
    kernel: float | None = None  # SVM: exp(-gamma · distance²)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"index": self.index, "label": self.label, "distance": self.distance}
        if self.kernel is not None:
            row["kernel"] = self.kernel
        return row


@dataclass
class Explanation:
    model: str
    kind: str  # "cnn", "lr", "mlp", "knn", "svm" or "occlusion"
    method: str  # one sentence: what the panels are
    image: np.ndarray  # (H, W) uint8: what the model read
    classes: list[str]
    probabilities: np.ndarray  # (k,)
    panels: list[Panel] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)  # checks and extra figures, JSON-ready
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # time to explain (the model already loaded)
    status: str = "ok"  # the reading path's verdict on the answer: ok or uncertain (Predictor.answers)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def runner_up(self) -> int:
        return int(np.argsort(-self.probabilities)[1])

    @property
    def label(self) -> str:
        return self.classes[self.predicted]

    @property
    def headline(self) -> str:
        p = self.probabilities
        return (
            f"{self.model}: {self.label} ({p[self.predicted]:.1%}), "
            f"runner-up {self.classes[self.runner_up]} ({p[self.runner_up]:.1%})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "kind": self.kind,
            "method": self.method,
            "label": self.label,
            "status": self.status,
            "confidence": float(self.probabilities[self.predicted]),
            "runner_up": self.classes[self.runner_up],
            "runner_up_probability": float(self.probabilities[self.runner_up]),
            "probabilities": {c: float(v) for c, v in zip(self.classes, self.probabilities, strict=True)},
            "numbers": self.numbers,
            "notes": self.notes,
            "seconds": self.seconds,
            "neighbours": [n.to_json() for n in self.neighbours],
            "panels": [p.to_json() for p in self.panels],
            "image": self.image.astype(int).tolist(),
        }


def inner(model: Any) -> Any:
    """The estimator inside an ``Augmented`` wrapper (its ``model_``), else the model itself."""
    return getattr(model, "model_", model)


def kind(model: Any) -> str:
    """Which explanation a model gets."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    from digitlab.models.classic import SoftmaxSVC
    from digitlab.models.cnn import CNNClassifier

    est = inner(model)
    if isinstance(est, CNNClassifier):
        return "cnn"
    if isinstance(est, Pipeline):
        last = est[-1]
        for cls, name in (
            (LogisticRegression, "lr"),
            (MLPClassifier, "mlp"),
            (KNeighborsClassifier, "knn"),
            (SoftmaxSVC, "svm"),
        ):
            if isinstance(last, cls):
                return name
    return "occlusion"


def explain(
    model: Any,
    image: np.ndarray,
    name: str,
    classes: list[str] | None = None,
    training: tuple[np.ndarray, np.ndarray] | None = None,
    proba: np.ndarray | None = None,
) -> Explanation:
    """Explain the model's answer for one (H, W) uint8 image; ``training`` = (x_train, y_train) it was fitted on;
    ``proba``: the answer's class probabilities when the reading path already asked the model for them."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise DigitlabError(f"explain takes one (H, W) uint8 image, got {image.dtype} {image.shape}.")
    if is_blank(image):
        raise DigitlabError("the picture is blank (no ink): there is nothing to explain; draw or pick a digit.")
    start = time.perf_counter()
    if proba is None:
        proba = np.asarray(model.predict_proba(image[None]), dtype=np.float64)[0]
    names = classes or [str(c) for c in model.classes_]
    how = kind(model)
    est = inner(model)
    base = Explanation(name, how, "", image, names, proba)
    if how == "cnn":
        _cnn(est, base)
    elif how == "lr":
        _lr(est, base)
    elif how == "mlp":
        _mlp(est, base)
    elif how == "knn":
        _knn(est, base, training)
    elif how == "svm":
        _svm(est, base, training)
    else:
        _occlusion_any(model, base)
    base.seconds = time.perf_counter() - start
    return base


# --- cnn: Captum ----------------------------------------------------------------------------


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise DigitlabError(
            "explaining this model needs Captum; install it with `pip install 'digitlab[explain]'`."
        ) from None
    return captum.attr


def _ig_maps(model: Any, image: np.ndarray, targets: list[int]) -> tuple[dict[int, np.ndarray], dict[int, Any]]:
    """Integrated Gradients of the cnn's logits from a black image, one (H, W) map per target class.

    All targets go in one batched call; a map whose logit moves by ``MEANINGFUL`` or more and misses
    completeness by over ``COMPLETENESS`` is computed again with 2×, then 4× the steps. Returns the
    maps and, per target, its completeness check (sum, logit change, gaps, steps).
    """
    import torch

    attr = _captum()
    net = inner(model).network_.eval()
    x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None].to(next(net.parameters()).device)
    baseline = torch.zeros_like(x)  # black: no ink
    ig = attr.IntegratedGradients(net)
    rows = x.repeat(len(targets), 1, 1, 1)  # one row per target
    a, delta = ig.attribute(
        rows,
        baselines=torch.zeros_like(rows),
        target=targets,
        n_steps=IG_STEPS,
        internal_batch_size=2 * IG_STEPS,
        return_convergence_delta=True,
    )
    with torch.no_grad():
        changes = (net(x) - net(baseline))[0].cpu().numpy().astype(np.float64)  # f(x) − f(black) per class
    maps = {c: a[k, 0].detach().cpu().numpy().astype(np.float64) for k, c in enumerate(targets)}
    gaps = {c: abs(float(delta[k])) for k, c in enumerate(targets)}
    steps = dict.fromkeys(targets, IG_STEPS)
    for c in targets:  # rare: a sharp logit that 48 steps do not integrate within 5%
        change = float(changes[c])
        for finer in (2 * IG_STEPS, 4 * IG_STEPS):
            if abs(change) < MEANINGFUL or gaps[c] <= COMPLETENESS * abs(change):
                break
            fine, fine_delta = ig.attribute(
                x,
                baselines=baseline,
                target=c,
                n_steps=finer,
                internal_batch_size=2 * IG_STEPS,
                return_convergence_delta=True,
            )
            maps[c], gaps[c], steps[c] = (
                fine[0, 0].detach().cpu().numpy().astype(np.float64),
                abs(float(fine_delta[0])),
                finer,
            )
    checks = {
        c: {
            "sum_of_attributions": float(maps[c].sum()),
            "logit_change": float(changes[c]),
            "absolute_error": gaps[c],
            "relative_error": gaps[c] / max(abs(float(changes[c])), 1e-12),
            "steps": steps[c],
        }
        for c in targets
    }
    return maps, checks


def integrated_gradients(model: Any, image: np.ndarray, targets: list[int]) -> list[np.ndarray]:
    """Integrated Gradients of the cnn's logits for each target class: one (H, W) map each."""
    maps, _ = _ig_maps(model, image, targets)
    return [maps[c] for c in targets]


def _cnn(model: Any, out: Explanation) -> None:
    import torch

    attr = _captum()
    net = model.network_.eval()
    pred, runner = out.predicted, out.runner_up
    targets = [pred, runner]
    maps, checks = _ig_maps(model, out.image, targets)

    def probabilities(t: Any) -> Any:
        return torch.softmax(net(t), dim=1)

    x = torch.from_numpy(out.image.astype(np.float32) / 255.0)[None, None].to(next(net.parameters()).device)
    with torch.no_grad():
        o = attr.Occlusion(probabilities).attribute(
            x.repeat(2, 1, 1, 1),  # one row per target: both in one pass
            target=targets,
            sliding_window_shapes=(1, OCCLUSION_WINDOW, OCCLUSION_WINDOW),
            strides=(1, OCCLUSION_STRIDE, OCCLUSION_STRIDE),
            baselines=0.0,
            perturbations_per_eval=64,
        )
    occluded = {c: o[k, 0].cpu().numpy().astype(np.float64) for k, c in enumerate(targets)}
    p, r = out.classes[pred], out.classes[runner]
    out.method = (
        "Integrated Gradients of the logits from a black image (Captum, "
        f"{IG_STEPS} steps) and occlusion of the probability with {OCCLUSION_WINDOW}×{OCCLUSION_WINDOW} black patches"
    )
    out.panels = [
        Panel("input", out.image.astype(np.float64), "image", "what the cnn read"),
        Panel(f"IG for {p}", maps[pred], "signed", "red: ink that raises the score"),
        Panel(f"IG for {r}", maps[runner], "signed", "the runner-up"),
        Panel(f"{p} rather than {r}", maps[pred] - maps[runner], "signed", "IG of the logit difference"),
        Panel(f"occlusion, {p}", occluded[pred], "signed", "probability lost when covered"),
        Panel(f"occlusion, {r}", occluded[runner], "signed", "probability lost when covered"),
    ]
    out.numbers = {
        "integrated_gradients": {out.classes[c]: checks[c] for c in targets},
        "baseline": "black (all zeros)",
    }


# --- scikit-learn pipelines -------------------------------------------------------------------


def _front(pipe: Any, image: np.ndarray) -> np.ndarray:
    """What the pipeline's last step sees for one image: (d,)."""
    return np.asarray(pipe[:-1].transform(image[None]), dtype=np.float64)[0]


def _pixels_seen(pipe: Any, out: Explanation, what: str) -> np.ndarray | None:
    """What the last step reads, when that is pixels: (H·W,); else occlusion is explained instead (None)."""
    seen = _front(pipe, out.image)
    if seen.size == out.image.size:
        return seen
    out.notes.append(f"this {what} reads reduced features, not pixels, so its weights are no image: occlusion instead")
    out.kind = "occlusion"
    _occlusion_any(pipe, out)
    return None


def _lr(pipe: Any, out: Explanation) -> None:
    clf = pipe[-1]
    shape = out.image.shape
    seen = _pixels_seen(pipe, out, "logistic regression")
    if seen is None:
        return
    coef = np.asarray(clf.coef_, dtype=np.float64)  # (k, H·W)
    pred, runner = out.predicted, out.runner_up
    p, r = out.classes[pred], out.classes[runner]
    contrib = {c: (seen * coef[c]).reshape(shape) for c in (pred, runner)}
    logits = coef @ seen + clf.intercept_
    out.method = "weights of each class (coef_) and input × weights: with the intercept, a map's sum is the logit"
    out.panels = [
        Panel(
            "input as read",
            seen.reshape(shape) * 255.0,
            "image",
            "deskewed and scaled" if "deskew" in pipe.named_steps else "scaled",
        ),
        Panel(f"input × weights, {p}", contrib[pred], "signed", f"sum + intercept = {logits[pred]:.2f}"),
        Panel(f"input × weights, {r}", contrib[runner], "signed", f"sum + intercept = {logits[runner]:.2f}"),
        *(Panel(f"weights of {c}", coef[k].reshape(shape), "weights") for k, c in enumerate(out.classes)),
    ]
    out.numbers = {
        "logits": {c: float(v) for c, v in zip(out.classes, logits, strict=True)},
        "intercepts": {c: float(v) for c, v in zip(out.classes, clf.intercept_, strict=True)},
    }


def _mlp(pipe: Any, out: Explanation) -> None:
    clf = pipe[-1]
    shape = out.image.shape
    seen = _pixels_seen(pipe, out, "MLP")
    if seen is None:
        return
    w1, b1 = np.asarray(clf.coefs_[0], dtype=np.float64), np.asarray(clf.intercepts_[0], dtype=np.float64)
    hidden = np.maximum(seen @ w1 + b1, 0.0)  # (units,)
    top = np.argsort(-hidden)[:TOP_UNITS]
    pred = out.predicted
    one_layer = len(clf.coefs_) == 2
    pushes = hidden * np.asarray(clf.coefs_[1], dtype=np.float64)[:, pred] if one_layer else None
    panels = [Panel("input as read", seen.reshape(shape) * 255.0, "image", "deskewed and scaled")]
    units = []
    for j in top:
        caption = f"activation {hidden[j]:.2f}"
        if pushes is not None:
            caption += f", adds {pushes[j]:+.2f} to {out.classes[pred]}"
        panels.append(Panel(f"unit {j}", w1[:, j].reshape(shape), "weights", caption))
        units.append(
            {
                "unit": int(j),
                "activation": float(hidden[j]),
                "adds_to_predicted": None if pushes is None else float(pushes[j]),
            }
        )
    out.method = (
        f"the {TOP_UNITS} first-layer units most active for this input, each drawn as its weights on the pixels "
        f"({int((hidden > 0).sum())} of {len(hidden)} units are active)"
    )
    out.panels = panels
    out.numbers = {"units": units, "active_units": int((hidden > 0).sum()), "n_units": len(hidden)}


def _training_image(
    pipe: Any, training: tuple[np.ndarray, np.ndarray] | None, index: int, stored: np.ndarray
) -> np.ndarray | None:
    """Training digit ``index`` when it is the one the model stored (same features), else None."""
    if training is None or index >= len(training[0]):
        return None
    candidate = training[0][index]
    features = np.asarray(pipe[:-1].transform(candidate[None]), dtype=np.float64)[0]
    return candidate if np.allclose(features, stored, atol=1e-3) else None


def _knn(pipe: Any, out: Explanation, training: tuple[np.ndarray, np.ndarray] | None) -> None:
    clf = pipe[-1]
    seen = np.asarray(pipe[:-1].transform(out.image[None]))
    distances, indices = clf.kneighbors(seen, n_neighbors=clf.n_neighbors)
    stored = np.asarray(clf._fit_X)
    label_of = np.asarray(clf._y)  # index into classes_ per stored digit
    for d, i in zip(distances[0], indices[0], strict=True):
        label = out.classes[int(label_of[i])]
        out.neighbours.append(Neighbour(int(i), label, float(d), _training_image(pipe, training, int(i), stored[i])))
    _say_missing_pictures(out, training)
    weighting = "weighted by 1 / distance" if clf.weights == "distance" else "one vote each"
    out.method = f"the {clf.n_neighbors} nearest training digits in the model's feature space, {weighting}"
    out.panels = [Panel("input", out.image.astype(np.float64), "image", "what the model read")]
    out.numbers = {"k": int(clf.n_neighbors), "weights": str(clf.weights), "n_training": len(stored)}


def _svm(pipe: Any, out: Explanation, training: tuple[np.ndarray, np.ndarray] | None, show: int = 8) -> None:
    svc = pipe[-1].svc_
    z = np.asarray(pipe[:-1].transform(out.image[None]), dtype=np.float64)[0]
    vectors = np.asarray(svc.support_vectors_, dtype=np.float64)
    distances = np.sqrt(np.maximum(((vectors - z) ** 2).sum(axis=1), 0.0))
    gamma = float(svc._gamma)
    sv_class = np.repeat(np.arange(len(svc.classes_)), svc.n_support_)  # support vectors are grouped by class
    for i in np.argsort(distances)[:show]:
        out.neighbours.append(
            Neighbour(
                int(svc.support_[i]),
                out.classes[int(sv_class[i])],
                float(distances[i]),
                _training_image(pipe, training, int(svc.support_[i]), vectors[i]),
                float(np.exp(-gamma * distances[i] ** 2)),
            )
        )
    _say_missing_pictures(out, training)
    out.method = (
        f"the {show} support vectors nearest the input in the model's feature space "
        f"(of {len(vectors):,}; kernel = exp(−γ·d²), γ = {gamma:.4g})"
    )
    out.panels = [Panel("input", out.image.astype(np.float64), "image", "what the model read")]
    out.numbers = {"n_support_vectors": len(vectors), "gamma": gamma}


def _say_missing_pictures(out: Explanation, training: tuple[np.ndarray, np.ndarray] | None) -> None:
    missing = sum(n.image is None for n in out.neighbours)
    if not missing:
        return
    if training is None:
        out.notes.append("the training digits were not at hand: neighbours are shown by label and distance only")
    else:
        out.notes.append(
            f"{missing} of {len(out.neighbours)} neighbours are not in the training set the model's metadata names "
            "(a model refitted on other digits): shown by label and distance only"
        )


# --- any model: occlusion through predict_proba ----------------------------------------------------


def _occlusion_any(model: Any, out: Explanation) -> None:
    import torch

    attr = _captum()

    def probabilities(t: Any) -> Any:
        images = np.clip(np.rint(t.numpy()), 0, 255).astype(np.uint8)
        return torch.from_numpy(np.asarray(model.predict_proba(images), dtype=np.float64))

    x = torch.from_numpy(out.image.astype(np.float64))[None]  # (1, H, W) in 0..255
    occlusion = attr.Occlusion(probabilities)
    maps = {}
    for c in (out.predicted, out.runner_up):
        maps[c] = (
            occlusion.attribute(
                x,
                target=c,
                sliding_window_shapes=(OCCLUSION_WINDOW, OCCLUSION_WINDOW),
                strides=(OCCLUSION_STRIDE, OCCLUSION_STRIDE),
                baselines=0.0,
                perturbations_per_eval=256,
            )[0]
            .numpy()
            .astype(np.float64)
        )
    p, r = out.classes[out.predicted], out.classes[out.runner_up]
    if out.kind == "occlusion":
        out.method = (
            f"occlusion: the probability lost when {OCCLUSION_WINDOW}×{OCCLUSION_WINDOW} patches are blacked out "
            "(works for any model: it only asks for answers)"
        )
    out.panels = [
        *(out.panels or [Panel("input", out.image.astype(np.float64), "image", "what the model read")]),
        Panel(f"occlusion, {p}", maps[out.predicted], "signed", "probability lost when covered"),
        Panel(f"occlusion, {r}", maps[out.runner_up], "signed", "probability lost when covered"),
    ]

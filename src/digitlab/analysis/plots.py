"""Matplotlib figures as pure functions: data in, Figure out (nothing is shown or saved)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def class_histogram(train_counts: Sequence[int], test_counts: Sequence[int], class_names: Sequence[str]) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    pos = np.arange(len(class_names))
    ax.bar(pos - 0.2, train_counts, width=0.4, label="train")
    ax.bar(pos + 0.2, test_counts, width=0.4, label="test")
    ax.set_xticks(pos, class_names, rotation=30 if max(map(len, class_names)) > 2 else 0)
    ax.set_ylabel("examples")
    ax.set_title("Examples per class")
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid(
    images: np.ndarray,
    row_labels: Sequence[str],
    title: str = "",
    captions: Sequence[str] | None = None,
    cmap: str = "gray_r",
    caption_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of images ``(rows, cols, H, W)``, one row label each; captions read row by row.

    Drawn as one mosaic in one Axes (each tile scaled to its own range, as ``imshow`` would):
    a subplot per tile made a 10×10 grid cost 1.5 s, most of a run's figure time.
    """
    rows, cols, h, w = images.shape[:4]
    gap, top = max(2, w // 10), (max(4, h // 4) if captions is not None else max(2, h // 10))
    tiles = images.astype(np.float64)
    low = tiles.min(axis=(2, 3), keepdims=True)
    span = tiles.max(axis=(2, 3), keepdims=True) - low
    tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1.0), 0.0)
    mosaic = np.full((rows * (h + top), cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + top) + top, c * (w + gap)
            mosaic[y : y + h, x : x + w] = tiles[r, c]
    fig, ax = plt.subplots(figsize=(cols * 0.9, rows * 0.95 + 0.4))
    palette = plt.get_cmap(cmap).copy()
    palette.set_bad("white")
    ax.imshow(mosaic, cmap=palette, vmin=0.0, vmax=1.0, interpolation="nearest")
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + top) + top, c * (w + gap)
            ax.add_patch(
                plt.Rectangle((x - 0.5, y - 0.5), w, h, fill=False, linewidth=0.6, edgecolor="0.6", clip_on=False)
            )
            if captions is not None and captions[r * cols + c]:
                color = caption_colors[r * cols + c] if caption_colors is not None else "black"
                ax.text(x + w / 2, y - 1, captions[r * cols + c], fontsize=7, color=color, ha="center", va="bottom")
        if row_labels[r]:
            ax.text(-gap, r * (h + top) + top + h / 2, row_labels[r], fontsize=9, ha="right", va="center")
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9 if title else 0.98)
    return fig


def mean_images(means: np.ndarray, class_names: Sequence[str]) -> Figure:
    """One mean image per class, ``means`` of shape (k, H, W)."""
    fig, axes = plt.subplots(1, len(means), figsize=(len(means) * 1.0, 1.5), squeeze=False)
    for ax, img, name in zip(axes[0], means, class_names, strict=True):
        ax.imshow(img, cmap="gray_r")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle("Mean image per class")
    fig.tight_layout()
    return fig


def _hist(ax: Any, values: np.ndarray, bins: int = 64, counts: np.ndarray | None = None, **style: Any) -> None:
    """``ax.hist`` of ``values`` (each taken ``counts`` times when given); 8-bit pixels are counted once per value
    first (the same bars, ~20× faster on MNIST)."""
    flat = np.ravel(values)
    if counts is not None:
        seen = np.ravel(counts) > 0
        ax.hist(flat[seen], bins=bins, weights=np.ravel(counts)[seen], **style)
    elif flat.dtype == np.uint8 and flat.size:
        counts = np.bincount(flat, minlength=256)
        levels = np.flatnonzero(counts)
        ax.hist(levels, bins=bins, range=(levels.min(), levels.max()), weights=counts[levels], **style)
    else:
        ax.hist(flat, bins=bins, **style)


def pixel_histogram(values: np.ndarray, title: str = "Pixel intensities", log: bool = True) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    _hist(ax, values, bins=64, log=log, color="tab:blue")
    ax.set_xlabel("value")
    ax.set_ylabel("pixels (log)" if log else "pixels")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def before_after(raw: np.ndarray, processed: np.ndarray, labels: Sequence[str]) -> Figure:
    """Raw images (top row) above the same images after preprocessing (bottom row)."""
    n = len(raw)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.3 + 1, 3.0), squeeze=False, layout="constrained")
    images = {}
    for k in range(n):
        for row, (img, name) in enumerate(((raw[k], "raw"), (processed[k], "processed"))):
            ax = axes[row][k]
            images[row] = ax.imshow(img, cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(name)
            if row == 0:
                ax.set_title(labels[k], fontsize=8)
    for row in (0, 1):
        fig.colorbar(images[row], ax=axes[row, :].tolist(), shrink=0.9)
    return fig


def value_histograms(raw: np.ndarray, processed: np.ndarray, processed_counts: np.ndarray | None = None) -> Figure:
    """Histograms of raw and processed values; ``processed_counts``: how often each processed value occurs."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, vals, counts, name in (
        (axes[0], raw, None, "raw (uint8)"),
        (axes[1], processed, processed_counts, "normalised"),
    ):
        _hist(ax, vals, bins=64, counts=counts, log=True)
        ax.set_title(name)
        ax.set_xlabel("value")
    fig.tight_layout()
    return fig


def confusion_matrix(cm: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix") -> Figure:
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2, 0.55 * k + 1.5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.log1p(cm[i, j]) > threshold else "black",
            )
    ax.set_xticks(range(k), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def comparison(
    names: Sequence[str], accuracy: Sequence[float], fit_s: Sequence[float], predict_s: Sequence[float]
) -> Figure:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    pos = np.arange(len(names))
    bars = ax1.bar(pos, np.asarray(accuracy) * 100, color="tab:green")
    ax1.bar_label(bars, fmt="%.2f", fontsize=8)
    ax1.set_xticks(pos, names)
    low = max(0.0, min(accuracy) * 100 - 5)
    ax1.set_ylim(low, 100)
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("Accuracy")
    ax2.bar(pos - 0.2, fit_s, width=0.4, label="fit")
    ax2.bar(pos + 0.2, predict_s, width=0.4, label="predict")
    ax2.set_xticks(pos, names)
    ax2.set_ylabel("seconds")
    ax2.set_title("Time")
    ax2.legend()
    fig.tight_layout()
    return fig


def heatmap(
    values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], row_name: str, col_name: str, title: str
) -> Figure:
    """Mean CV accuracy over a two-parameter grid, ``values`` of shape (rows, cols), in percent."""
    fig, ax = plt.subplots(figsize=(1.1 * len(col_labels) + 2.5, 0.6 * len(row_labels) + 1.8))
    im = ax.imshow(values * 100, cmap="viridis", aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j] * 100:.2f}", ha="center", va="center", fontsize=8, color="white")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="mean CV accuracy (%)")
    fig.tight_layout()
    return fig


def accuracy_before_after(groups: Sequence[str], before: Sequence[float], after: Sequence[float], title: str) -> Figure:
    """Accuracy before and after, side by side for each group of test digits."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    pos = np.arange(len(groups))
    for offset, values, label, colour in ((-0.2, before, "before", "tab:gray"), (0.2, after, "after", "tab:green")):
        bars = ax.bar(pos + offset, np.asarray(values) * 100, width=0.4, label=label, color=colour)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(pos, groups)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(max(0.0, min(*before, *after) * 100 - 10), 100.5)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def learning_curve(per_class: Sequence[int], before: Sequence[float], after: Sequence[float], title: str) -> Figure:
    """Error on a writer's held-out digits against how many of each digit were given."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(per_class, np.asarray(before) * 100, "o--", color="tab:gray", label="before")
    ax.plot(per_class, np.asarray(after) * 100, "o-", color="tab:green", label="after")
    ax.set_xticks(list(per_class))
    ax.set_xlabel("digits of each class given")
    ax.set_ylabel("error on held-out digits (%)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def explanation(
    image: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, str, str]],
    title: str,
    neighbours: Sequence[tuple[np.ndarray | None, str]] = (),
    cols: int = 5,
) -> Figure:
    """Maps of one explanation: each panel (title, values (H, W), style, caption), then a row of neighbours.

    Styles: "image" (ink, 0..255), "signed" (red raises the score, blue lowers it; drawn over the input in
    grey), "weights" (red positive, blue negative weights; no overlay).
    """
    n_rows = (len(panels) + cols - 1) // cols
    extra = (len(neighbours) + cols - 1) // cols if neighbours else 0
    rows = n_rows + extra
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.1, rows * 2.6 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (name, values, style, caption) in enumerate(panels):
        ax = axes[k // cols, k % cols]
        if style == "image":
            ax.imshow(values, cmap="gray_r", vmin=0, vmax=255)
        else:
            m = float(np.abs(values).max()) or 1.0
            if style == "signed":
                ax.imshow(image, cmap="gray_r", vmin=0, vmax=255, alpha=0.45)
            ax.imshow(values, cmap="RdBu_r", vmin=-m, vmax=m, alpha=0.75 if style == "signed" else 1.0)
        ax.set_title(name, fontsize=9)
        if caption:
            ax.text(0.5, -0.08, caption, transform=ax.transAxes, ha="center", va="top", fontsize=7, wrap=True)
    for k, (picture, caption) in enumerate(neighbours):
        ax = axes[n_rows + k // cols, k % cols]
        if picture is not None:
            ax.imshow(picture, cmap="gray_r", vmin=0, vmax=255)
        else:
            ax.text(0.5, 0.5, "(no picture)", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def digit_map(xy: np.ndarray, labels: np.ndarray, wrong: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """A 2-D map of digits ``xy`` (n, 2): coloured by true label, misread ones ringed in black."""
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    cmap = plt.get_cmap("tab10")
    size = max(1.0, min(12.0, 40000.0 / max(len(xy), 1) ** 1.1))
    for c, name in enumerate(class_names):
        at = labels == c
        ax.scatter(xy[at, 0], xy[at, 1], s=size, color=cmap(c % 10), label=name, alpha=0.7, linewidths=0)
    if wrong.any():
        ax.scatter(
            xy[wrong, 0],
            xy[wrong, 1],
            s=size * 6 + 10,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label=f"misread ({int(wrong.sum())})",
        )
    ax.legend(markerscale=2, fontsize=8, loc="best", ncol=2)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def weight_grid(weights: np.ndarray, captions: Sequence[str], title: str) -> Figure:
    """Weight images ``(rows, cols, H, W)``, each on its own symmetric red (+) / blue (−) scale."""
    rows, cols = weights.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.15, rows * 1.3 + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        w = weights[k // cols, k % cols]
        m = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set_title(captions[k] if k < len(captions) else "", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def saliency_rows(
    rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], captions: Sequence[tuple[str, str, str]], title: str
) -> Figure:
    """One row per digit: the image, attributions for the answer, attributions for another class (over the image)."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.3, len(rows) * 2.0 + 0.5), squeeze=False)
    for r, ((image, first, second), (caption, a, b)) in enumerate(zip(rows, captions, strict=True)):
        axes[r, 0].imshow(image, cmap="gray_r", vmin=0, vmax=255)
        axes[r, 0].set_title(caption, fontsize=7, loc="left")
        for ax, values, name in ((axes[r, 1], first, f"for {a}"), (axes[r, 2], second, f"for {b}")):
            m = float(np.abs(values).max()) or 1.0
            ax.imshow(image, cmap="gray_r", vmin=0, vmax=255, alpha=0.45)
            ax.imshow(values, cmap="RdBu_r", vmin=-m, vmax=m, alpha=0.75)
            ax.set_title(name, fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

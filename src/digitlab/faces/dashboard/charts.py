"""Charts and explanations the pages draw: Vega-Lite charts you hover and click (Altair), and why a model
read a digit as it did (the explanation heat maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError

ZOOM = 6  # a 28×28 map drawn 168×168


LAST_DRAWING = "last_drawing"  # session key: the 28×28 image last read on Try it


@st.cache_resource(show_spinner="Loading the training digits the model compared with…", max_entries=2)
def _training(model_path: str, _metadata: dict[str, Any]) -> Any:
    """The training digits of a loaded model (cached by its file; the metadata is not hashed)."""
    return service.explaining.training_digits(_metadata)


def _rgb(values: np.ndarray, style: str, under: np.ndarray) -> np.ndarray:
    """A panel as an RGB image: ink in grey, or red (for) / blue (against) over the input in grey."""
    if style == "image":
        grey = 255 - np.clip(values, 0, 255).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        m = float(np.abs(values).max()) or 1.0
        colours = matplotlib.colormaps["RdBu_r"]((values / m + 1) / 2)[..., :3]  # (H, W, 3) in [0, 1]
        if style == "signed":
            ink = (under.astype(np.float64) / 255.0)[..., None]
            colours = 0.8 * colours + 0.2 * (1 - ink)  # the digit shows through
        rgb = (colours * 255).astype(np.uint8)
    return np.kron(rgb, np.ones((ZOOM, ZOOM, 1), dtype=np.uint8))


def explanation(image: np.ndarray, predictors: list[service.Predictor], key: str) -> None:
    """Why a model answered, for one 28×28 image: pick the model, see its maps or its neighbours."""
    if not predictors:
        return
    names = [p.name for p in predictors]
    with st.container(key=f"{key}_explanation"):
        st.markdown("#### Why? What the model looked at")
        picked = st.selectbox("Explain the answer of", names, key=f"{key}_explain_model")
        predictor = predictors[names.index(picked)]
        training = None
        if service.explaining.explanation_kind(predictor) in ("knn", "svm"):
            training = _training(str(predictor.path), predictor.metadata)
        try:
            found = service.explaining.explain_image(predictor, image, training)
        except DigitlabError as exc:
            st.warning(str(exc))
            return
        st.markdown(
            f"**{found.model}** reads **{found.label}** ({found.probabilities[found.predicted]:.1%}); runner-up "
            f"**{found.classes[found.runner_up]}** ({found.probabilities[found.runner_up]:.1%}). "
            f"Shown: {found.method}."
        )
        panels = found.panels[:12]
        for start in range(0, len(panels), 6):
            for col, panel in zip(st.columns(6), panels[start : start + 6], strict=False):
                col.image(_rgb(panel.values, panel.style, found.image), caption=f"{panel.title}: {panel.caption}")
        if found.neighbours:
            st.markdown("**The training digits it compared with** (label, distance in its feature space)")
            for col, n in zip(st.columns(len(found.neighbours)), found.neighbours, strict=True):
                caption = f"{n.label} · d={n.distance:.2f}" + (f" · K={n.kernel:.2f}" if n.kernel is not None else "")
                if n.image is not None:
                    col.image(np.kron(255 - n.image, np.ones((4, 4), np.uint8)), caption=caption)
                else:
                    col.caption(f"#{n.index}: {caption}")
        checks = found.numbers.get("integrated_gradients")
        if checks:
            gap = checks[found.label]["relative_error"]
            st.caption(
                f"Completeness of Integrated Gradients: the map for {found.label} adds up to its logit's change from a "
                f"black image to within {gap:.2%}. Red: ink that raises the score; blue: ink that lowers it."
            )
        for note in found.notes:
            st.caption(note)
        st.caption(f"Explained in {found.seconds * 1000:.0f} ms.")


def stamp_of(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else 0.0

"""Try it: draw or upload a digit; every model of the run reads it, the best answers first, then why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard.charts import LAST_DRAWING, explanation
from digitlab.faces.dashboard.common import current_writer, loaded_models, reading_frame, training_panel
from digitlab.faces.dashboard.drawing import drawing


def _show_headline(top: service.Prediction) -> None:
    with st.container(key="prediction"):
        st.markdown(f"## Prediction: {top.label}")
        sure = f"**{top.confidence or 0.0:.1%}** sure"
        st.markdown(f"{sure}, by **{top.model}** (the best reader of real pictures saved)")
        if top.status == "uncertain":
            st.warning("Uncertain: no digit gets half the probability. Try a larger, centred digit.")


def _show_details(image: np.ndarray, rows: list[service.Prediction], below: Any = None) -> None:
    """The image the models see, the leading model's probabilities and every model's row."""
    left, right = st.columns([1, 3])
    with left:
        st.image(np.kron(image, np.ones((5, 5), dtype=np.uint8)), caption="What the models see (28 × 28)")
    with right:
        st.bar_chart({"probability": dict(rows[0].probabilities)}, height=180)
    table = [{"model": r.model, "prediction": r.label, "confidence": r.confidence, **r.probabilities} for r in rows]
    config: dict[str, Any] = {  # numbers for the ten digits, so that they all fit beside the model's name
        c: st.column_config.NumberColumn(c, format="percent", width=58) for c in rows[0].probabilities
    }
    config["confidence"] = st.column_config.ProgressColumn(
        "confidence", format="percent", min_value=0.0, max_value=1.0, width="small"
    )
    with below if below is not None else st.container(), st.container(key="all_models"):
        st.dataframe(table, hide_index=True, column_config=config)


def _recognise(run: Path | None, source: Any, name: str, below: Any = None) -> None:
    """``source`` through to_mnist and every model; the table of all models goes in ``below`` when given."""
    try:
        image = service.predictor.read_picture(source, name)
    except DigitlabError as exc:
        st.error(str(exc))
        return
    predictors, _ = loaded_models(run)
    if not predictors:
        return
    rows = service.predictor.predict_each(predictors[:1], image, name)
    if rows[0].status == "blank":  # the reading path's one blank decision
        st.info("No ink found: the picture is blank. Draw or upload a digit.")
        return
    _show_headline(rows[0])  # on screen while the other models read the digit
    rows += service.predictor.predict_each(predictors[1:], image, name)
    _show_details(image, rows, below)
    st.session_state[LAST_DRAWING] = image  # placed on the Map page
    explanation(image, predictors, "try")


def try_it_page() -> None:
    run, reads = reading_frame("Try it", "Draw a digit or upload a picture; every saved model reads it.")
    if not reads:
        return
    notes = st.container()  # filled once the models are loaded, after the page is on screen
    draw, upload = st.tabs(["Draw", "Upload"])
    with draw:
        _draw(str(run or ""))
    with upload:
        _upload(run)
    predictors, problems = loaded_models(run)  # after the page is drawn: warm before the first stroke
    with notes:
        for problem in problems:
            st.warning(problem)
        if not predictors:
            st.error("None of the saved models reads 28 × 28 digits; train one on mnist (`digitlab run`).")
    if run is None:  # the shipped reader answers; training models of your own is one step away
        training_panel(None)


@st.fragment
def _draw(run: str) -> None:
    """A fragment: a stroke reruns only this, not the whole page."""
    left, right = st.columns([1, 2])
    below = st.container()  # full width, for the table of every model
    with left:
        width = st.slider("Pen width", 8, 40, 20, key="pen")
        with st.container(key="canvas"):
            result = drawing("digit_canvas", width)
        st.caption("Draw one digit, large and centred; the bin icon clears the canvas.")
    if result is None:
        return
    with right:
        if result.empty or result.png is None:
            st.info("The canvas is empty: draw a digit on it with the mouse, a pen or a finger.")
            return
        _recognise(Path(run) if run else None, result.png, "drawing", below)
        _correction(result.png)


def _correction(image: Any) -> None:
    """ "Wrong? It was: [0–9]": saves the drawing with the right label as a correction."""
    st.markdown("**Wrong? It was:**")
    with st.container(key="correction", horizontal=True):
        pressed = [d for d in range(10) if st.button(str(d), key=f"fix_{d}")]
    if pressed:
        try:
            added = service.mine.add_pictures([image], pressed[0], current_writer(), "correction", ["drawing"])[0]
        except DigitlabError as exc:
            st.error(str(exc))
            return
        what = "Saved" if added.new else "Already saved"
        st.success(f"{what} as a {added.label} in {added.writer}'s digits (id {added.id}); see the Your digits page.")


def _upload(run: Path | None) -> None:
    uploaded = st.file_uploader(
        "A picture of one digit (PNG, JPEG, BMP, GIF, TIFF or WebP; "
        f"at most {service.settings.MAX_PICTURE_BYTES // 2**20} MiB)",
        key="upload",
    )
    if uploaded is None:
        st.info("Upload a photo, scan or screenshot of a digit: dark ink on light paper or light on dark.")
        return
    _recognise(run, uploaded.getvalue(), uploaded.name)


try_it_page()

"""Map of all digits: the test digits on a 2-D map; draw one and see where it lands."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard.charts import LAST_DRAWING, explanation, stamp_of
from digitlab.faces.dashboard.common import frame, loaded_models


def map_page() -> None:
    run = frame(
        "Map of all digits",
        "Every test digit placed by what a model sees in it (UMAP or t-SNE): hover a point for the digit, click to "
        "explain it.",
    )
    if run is None:
        return
    predictors, _ = loaded_models(run)
    map_section(run, predictors)


MAX_MAP_POINTS = 10_000  # thumbnails in the interactive map (a sample when the map is larger)


@st.cache_resource(show_spinner="Loading the run's cnn…", max_entries=2)
def _run_cnn(run: str, stamp: float) -> service.Predictor | None:
    return service.explaining.run_cnn(Path(run))


@st.cache_resource(show_spinner=False, max_entries=4)  # shared and read-only: not copied at every rerun
def _map(run: str, name: str, stamp: float) -> service.explaining.DigitMap:
    return service.explaining.read_map(Path(run), name)


@st.cache_data(show_spinner="Drawing the thumbnails…", max_entries=4)
def _thumbnails(run: str, name: str, stamp: float, _images: np.ndarray, rows: tuple[int, ...]) -> list[str]:
    """Thumbnails of the map's digits ``rows`` (cached by map file; the images are not hashed)."""
    return [data_url(_images[i]) for i in rows]


def data_url(image: np.ndarray, scale: int = 2) -> str:
    """A 28×28 uint8 digit as a PNG data URL (dark ink on white), ``scale`` times larger."""
    picture = Image.fromarray(255 - image).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def map_section(run: Path, predictors: list[service.Predictor]) -> None:
    maps = service.explaining.run_maps(run)
    if not maps:
        st.info("This run has no map yet. Make one here (about a minute for 10,000 digits) or with `digitlab map`.")
        _make_map(run)
        return
    name = st.selectbox("Map", maps, key="map_name")
    found = _map(str(run), name, stamp_of(run / f"map-{name}.json"))
    facts = found.facts
    n = len(found.labels)
    rows = np.arange(n)
    if n > MAX_MAP_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(n, MAX_MAP_POINTS, replace=False))
    class_names = facts["class_names"]
    predicted, confidence = found.predicted, found.confidence
    frame = pd.DataFrame(
        {
            "x": found.xy[rows, 0],
            "y": found.xy[rows, 1],
            "digit": rows,
            "true": [class_names[k] for k in found.labels[rows]],
            "predicted": [class_names[k] for k in predicted[rows]] if predicted is not None else "",
            "confidence": confidence[rows] if confidence is not None else np.nan,
            "misread": (predicted[rows] != found.labels[rows]) if predicted is not None else False,
            "image": _thumbnails(str(run), name, stamp_of(run / f"map-{name}.npz"), found.images, tuple(rows.tolist())),
        }
    )
    st.caption(
        f"{n:,} digits ({facts['split']}), {facts['features']} features, {facts['method']}; coloured by true label, "
        f"{facts['n_misread']} misread by {facts['reader']} drawn as crosses. Hover for the digit, click to explain it."
        + (f" Showing {len(rows):,} of them." if len(rows) < n else "")
    )
    point = alt.selection_point(name="point", fields=["digit"], on="click")
    dots = (
        alt.Chart(frame)
        .mark_point(filled=True, size=22)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("true:N", sort=class_names, scale=alt.Scale(scheme="category10")),
            shape=alt.Shape("misread:N", scale=alt.Scale(domain=[False, True], range=["circle", "cross"]), legend=None),
            size=alt.when(point, empty=False).then(alt.value(200)).otherwise(alt.value(22)),
            tooltip=[
                alt.Tooltip("image:N"),
                "digit:Q",
                "true:N",
                "predicted:N",
                alt.Tooltip("confidence:Q", format=".1%"),
            ],
        )
        .add_params(point)
    )
    layers: Any = dots
    drawing = st.session_state.get(LAST_DRAWING)
    if drawing is not None:
        try:
            models = service.runs.run_models(run)
            cnn = (
                _run_cnn(str(run), max((m.path.stat().st_mtime for m in models), default=0.0))
                if facts["features"] == "cnn"
                else None
            )
            xy = service.explaining.place_on_map(found, np.asarray(drawing, dtype=np.uint8), cnn)
            yours = pd.DataFrame({"x": [float(xy[0])], "y": [float(xy[1])], "what": ["your drawing (Try it)"]})
            layers = dots + alt.Chart(yours).mark_point(shape="diamond", size=400, color="black", filled=True).encode(
                x="x:Q", y="y:Q", tooltip=["what:N"]
            )
        except DigitlabError as exc:
            st.caption(f"Your drawing is not placed: {exc}")
    with st.container(key="map_chart"):
        event = st.altair_chart(
            layers.properties(height=620).interactive(), on_select="rerun", selection_mode="point", key=f"map_{name}"
        )
    picked = (event.selection.get("point") if event and event.selection else None) or []
    if drawing is not None:
        st.caption(
            "The black diamond is your last drawing on Try it, placed among its nearest digits in feature space."
        )
    if picked:
        index = int(picked[0]["digit"])
        image = found.images[index]
        left, right = st.columns([1, 5])
        with left:
            st.image(
                np.kron(255 - image, np.ones((5, 5), np.uint8)),
                caption=f"digit #{index}: true {class_names[found.labels[index]]}",
            )
        with right:
            explanation(image, predictors, "map")
    figure_path = run / facts.get("figure", "")
    if figure_path.is_file():
        with st.expander("The static figure (as in the report)"):
            st.image(str(figure_path))


def _make_map(run: Path) -> None:
    cols = st.columns(3)
    features = cols[0].selectbox("Features", service.explaining.MAP_FEATURES, key="map_features")
    method = cols[1].selectbox("Method", service.explaining.MAP_METHODS, key="map_method")
    if cols[2].button("Make the map", type="primary", key="make_map"):
        bar = st.progress(0.0, text="starting")

        def show(event: service.Event) -> None:
            bar.progress(min(1.0, event.done / event.total) if event.total else 0.5, text=event.message[:120])

        try:
            service.digit_map(service.MapRequest(str(run), run.parent, features, method), show)
        except DigitlabError as exc:
            st.error(str(exc))
            return
        st.rerun()


map_page()

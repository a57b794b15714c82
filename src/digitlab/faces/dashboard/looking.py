"""The dashboard's interactive parts: explanations, Vega-Lite charts you can hover and click, the map of all digits.

Charts are Altair (Vega-Lite) through ``st.altair_chart``; a click on a confusion-matrix cell or on a
point of the map reruns the page with the selection, which then shows those digits.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import altair as alt
import matplotlib
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from digitlab import service
from digitlab.core.errors import DigitlabError

ZOOM = 6  # a 28×28 map drawn 168×168
MAX_MAP_POINTS = 10_000  # thumbnails in the interactive map (a sample when the map is larger)
MAX_CELL_IMAGES = 40
LAST_DRAWING = "last_drawing"  # session key: the 28×28 image last read on Try it


# --- loaded once per run ------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the run's digits…", max_entries=2)
def _test_set(run: str) -> Any:
    return service.explaining.run_dataset(Path(run))


@st.cache_resource(show_spinner="Loading the training digits the model compared with…", max_entries=2)
def _training(model_path: str, _metadata: dict[str, Any]) -> Any:
    """The training digits of a loaded model (cached by its file; the metadata is not hashed)."""
    return service.explaining.training_digits(_metadata)


@st.cache_resource(show_spinner="Loading the run's cnn…", max_entries=2)
def _run_cnn(run: str, stamp: float) -> service.Predictor | None:
    return service.explaining.run_cnn(Path(run))


@st.cache_data(show_spinner="Reading every test digit's answer…", max_entries=16)
def _answers(run: str, name: str, stamp: float) -> tuple[np.ndarray, np.ndarray]:
    return service.explaining.evaluation_answers(Path(run), name)


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


# --- explanations -------------------------------------------------------------------------------------


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


# --- charts ---------------------------------------------------------------------------------------------


def comparison_chart(models: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(
        [
            {
                "model": m["model"],
                "accuracy (%)": round(m["accuracy"] * 100, 2),
                "macro F1": round(m["macro_f1"], 4),
                "fit (s)": round(m["fit_s"], 1),
                "predict (s)": round(m["predict_s"], 2),
            }
            for m in models
        ]
    )
    low = max(0.0, float(frame["accuracy (%)"].min()) - 2.0)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("accuracy (%):Q", scale=alt.Scale(domain=[low, 100.0]), title="test accuracy (%)"),
            y=alt.Y("model:N", sort="-x", title=None),
            color=alt.Color("fit (s):Q", scale=alt.Scale(scheme="oranges"), title="fit (s)"),
            tooltip=list(frame.columns),
        )
        .properties(height=max(120, 28 * len(frame)))
    )
    st.altair_chart(chart, key="comparison_chart")


def per_class_chart(report: dict[str, Any]) -> None:
    rows = [
        {
            "class": k,
            "F1": round(v["f1-score"], 4),
            "precision": round(v["precision"], 4),
            "recall": round(v["recall"], 4),
        }
        | {"support": int(v["support"])}
        for k, v in report.items()
        if isinstance(v, dict) and k not in ("macro avg", "weighted avg")
    ]
    frame = pd.DataFrame(rows)
    low = max(0.0, float(frame["F1"].min()) - 0.05)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=None),
            y=alt.Y("F1:Q", scale=alt.Scale(domain=[low, 1.0])),
            color=alt.Color("F1:Q", scale=alt.Scale(scheme="redyellowgreen", domain=[low, 1.0]), legend=None),
            tooltip=list(frame.columns),
        )
        .properties(height=220)
    )
    st.markdown("**F1 per class**")
    st.altair_chart(chart, key="per_class_chart")


def training_curves(predictors: list[service.Predictor]) -> None:
    rows = service.explaining.training_curves(predictors)
    if not rows:
        st.caption("None of this run's models kept per-epoch figures.")
        return
    frame = pd.DataFrame(rows)
    pick = alt.selection_point(fields=["model"], bind="legend")
    chart = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title=None),
            color="model:N",
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
            tooltip=["model", "metric", "epoch", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=200, width=320)
        .facet(column=alt.Column("metric:N", title=None))
        .resolve_scale(y="independent")
        .add_params(pick)
    )
    st.altair_chart(chart, key="training_curves")


def confusion(ev: dict[str, Any], name: str, class_names: list[str]) -> tuple[int, int] | None:
    """The confusion matrix as a chart; returns the (true, predicted) cell clicked, if any."""
    cm = np.asarray(ev["confusion_matrix"])
    totals = cm.sum(axis=1, keepdims=True).clip(min=1)
    frame = pd.DataFrame(
        [
            {
                "true": class_names[i],
                "predicted": class_names[j],
                "count": int(cm[i, j]),
                "share of true": round(float(cm[i, j] / totals[i, 0]), 4),
                "kind": "right" if i == j else "mistake",
            }
            for i in range(len(cm))
            for j in range(len(cm))
        ]
    )
    cell = alt.selection_point(name="cell", fields=["true", "predicted"], on="click")
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=class_names, title="predicted"),
        y=alt.Y("true:N", sort=class_names, title="true"),
    )
    rects = (
        base.mark_rect(stroke="black")
        .encode(
            color=alt.Color("count:Q", scale=alt.Scale(type="symlog", scheme="blues"), legend=None),
            strokeWidth=alt.when(cell, empty=False).then(alt.value(3.0)).otherwise(alt.value(0.0)),
            tooltip=["true", "predicted", "count", alt.Tooltip("share of true:Q", format=".1%")],
        )
        .add_params(cell)
    )
    text = base.mark_text(fontSize=11).encode(
        text="count:Q",
        color=alt.condition(alt.datum.count > cm.max() / 4, alt.value("white"), alt.value("black")),
    )
    chart = (rects + text).properties(height=360)
    st.markdown("**Confusion matrix** (rows: true digit; click a cell to see its digits)")
    with st.container(key="confusion_chart"):
        event = st.altair_chart(chart, on_select="rerun", selection_mode="cell", key=f"confusion_{name}")
    picked = (event.selection.get("cell") if event and event.selection else None) or []
    if not picked:
        st.caption("Click a cell (for example a large number off the diagonal) to see those test digits.")
        return None
    return class_names.index(str(picked[0]["true"])), class_names.index(str(picked[0]["predicted"]))


def cell_digits(run: Path, name: str, true: int, predicted: int, class_names: list[str]) -> None:
    try:
        answers = _answers(str(run), name, _stamp(run / f"evaluate-{name}.npz"))
        ds = _test_set(str(run))
    except DigitlabError as exc:
        st.warning(str(exc))
        return
    labels, confidence = answers
    rows = np.flatnonzero((ds.y_test == true) & (labels == predicted))
    rows = rows[np.argsort(-confidence[rows])]
    with st.container(key="cell_digits"):
        t, p = class_names[true], class_names[predicted]
        what = f"{t}s read as {t}" if true == predicted else f"{t}s read as {p}"
        st.markdown(
            f"**{len(rows):,} test digits: {what}**"
            + (f" (the {MAX_CELL_IMAGES} most confident)" if len(rows) > MAX_CELL_IMAGES else "")
        )
        shown = rows[:MAX_CELL_IMAGES]
        for start in range(0, len(shown), 12):
            for col, i in zip(st.columns(12), shown[start : start + 12], strict=False):
                col.image(np.kron(255 - ds.x_test[i], np.ones((3, 3), np.uint8)), caption=f"#{i} · {confidence[i]:.0%}")


def _stamp(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else 0.0


# --- the map ---------------------------------------------------------------------------------------------


def map_section(run: Path, predictors: list[service.Predictor]) -> None:
    maps = service.explaining.run_maps(run)
    if not maps:
        st.info("This run has no map yet. Make one here (about a minute for 10,000 digits) or with `digitlab map`.")
        _make_map(run)
        return
    name = st.selectbox("Map", maps, key="map_name")
    found = _map(str(run), name, _stamp(run / f"map-{name}.json"))
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
            "image": _thumbnails(str(run), name, _stamp(run / f"map-{name}.npz"), found.images, tuple(rows.tolist())),
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

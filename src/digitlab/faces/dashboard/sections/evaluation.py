"""Evaluation: confusion matrix (click a cell for its digits), per-class report, confused pairs, mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard.charts import stamp_of
from digitlab.faces.dashboard.common import absent, figure, frame, opened


def _evaluated(run: Path) -> list[str]:
    evaluations = opened(run).evaluations
    return sorted(evaluations, key=lambda n: (-evaluations[n].accuracy, n))


def evaluation_page() -> None:
    run = frame("Evaluation", "Confusion matrix, per-class report, confused pairs and mistakes of one model.")
    if run is None:
        return
    names = _evaluated(run)
    if not names:
        absent("model evaluations", "digitlab compare")
        return
    name = st.selectbox("Model", names, key="eval_model")
    record = opened(run).evaluation(name)
    if record is None:
        st.error(f"evaluate-{name}.json is unreadable; run `digitlab evaluate --model {name}` again.")
        return
    ev = record.to_json()
    cols = st.columns(3)
    cols[0].metric("Test accuracy", f"{ev['accuracy']:.2%}")
    cols[1].metric("Macro F1", f"{ev['macro_f1']:.4f}")
    cols[2].metric("Errors", f"{ev['n_errors']:,} of {ev['n_test']:,}")
    class_names = [k for k, v in ev["report"].items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")]
    left, right = st.columns(2)
    with left:
        cell = confusion(ev, name, class_names)
    with right:
        per_class_chart(ev["report"])
        st.markdown("**Classification report**")
        st.dataframe(
            [dict(label=k, **v) for k, v in ev["report"].items() if isinstance(v, dict)],
            hide_index=True,
        )
        st.markdown("**Most confused pairs** (true → predicted)")
        st.dataframe(ev["confused_pairs"], hide_index=True)
    if cell is not None:
        cell_digits(run, name, *cell, class_names)
    figure(run, ev["figures"].get("predictions"), "True / predicted on test images (mistakes in red).")
    figure(run, ev["figures"].get("misclassified"), "The most confident mistakes.")


MAX_CELL_IMAGES = 40


@st.cache_resource(show_spinner="Loading the run's digits…", max_entries=2)
def _test_set(run: str) -> Any:
    return service.explaining.run_dataset(Path(run))


@st.cache_data(show_spinner="Reading every test digit's answer…", max_entries=16)
def _answers(run: str, name: str, stamp: float) -> tuple[np.ndarray, np.ndarray]:
    return service.explaining.evaluation_answers(Path(run), name)


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
        .mark_bar(clip=True)  # bars start below the axis's low end: clipped, they no longer cover the x title
        .encode(
            x=alt.X("class:N", sort=None, axis=alt.Axis(labelAngle=0, title="class")),
            y=alt.Y(
                "F1:Q",
                scale=alt.Scale(domain=[low, 1.0]),
                axis=alt.Axis(format=".1%", labelPadding=4, labelLimit=80, tickCount=5, title="F1"),
            ),
            color=alt.Color("F1:Q", scale=alt.Scale(scheme="redyellowgreen", domain=[low, 1.0]), legend=None),
            tooltip=list(frame.columns),
        )
        .properties(height=220, padding={"left": 12, "right": 8, "top": 8, "bottom": 8})
    )
    st.markdown("**F1 per class**")
    st.altair_chart(chart, key="per_class_chart")


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
        answers = _answers(str(run), name, stamp_of(run / f"evaluate-{name}.npz"))
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


evaluation_page()

"""Models and comparison: every model trained on the same data with the same seed."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from digitlab import service
from digitlab.faces.dashboard.common import frame_with, loaded_models


def models_page() -> None:
    found = frame_with(
        "Models and comparison",
        "Every model trained on the same data with the same seed.",
        "compare",
        "model comparison",
        "digitlab compare",
    )
    if found is None:
        return
    run, record = found
    compare = record.to_json()
    st.caption(
        f"{compare['n_train']:,} training and {compare['n_test']:,} test images of {compare['dataset']}; "
        f"seed {compare['seed']}. Best: **{compare['best']}**."
    )
    rows = sorted(compare["models"], key=lambda m: -m["accuracy"])
    st.dataframe(
        [
            {
                "model": m["model"],
                "test accuracy": m["accuracy"] * 100,
                "macro F1": m["macro_f1"],
                "fit (s)": m["fit_s"],
                "predict (s)": m["predict_s"],
                "size (MB)": m["size_bytes"] / 1e6,
            }
            for m in rows
        ],
        hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="%.2f%%")},
    )
    comparison_chart(compare["models"])
    st.subheader("Training curves")
    predictors, _ = loaded_models(run)
    training_curves(predictors)
    st.subheader("Aspects to consider")
    st.dataframe(service.catalogue.aspects([m["model"] for m in compare["models"]]), hide_index=True)


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


models_page()

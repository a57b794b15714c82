"""History: every run folder, its accuracy over time, two runs side by side."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from digitlab import service
from digitlab.faces.dashboard.common import current_run, runs_root, sidebar


def history_page() -> None:
    sidebar(current_run())
    st.title("History")
    st.caption("Every run under the runs folder: test accuracy per model across runs, and two runs side by side.")
    rows = service.runs.run_history(runs_root())
    if not rows:
        st.info(f"No runs under {runs_root()} yet. `digitlab run --quick` makes one.")
        return
    datasets = sorted({r.dataset for r in rows if r.dataset})
    picked = st.selectbox("Dataset", ["all", *datasets], key="history_dataset")
    shown = [r for r in rows if picked == "all" or r.dataset == picked]
    points = [
        {"run": r.id, "time": r.time, "model": model, "test accuracy": accuracy * 100}
        for r in shown
        for model, accuracy in r.models.items()
        if isinstance(accuracy, int | float)
    ]
    with st.container(key="history_chart"):
        if points:
            st.altair_chart(_accuracy_chart(points), width="stretch")
        else:
            st.info("No run here recorded a test accuracy yet.")
    st.dataframe(
        [
            {
                "run": r.id,
                "command": r.command,
                "dataset": r.dataset,
                "seed": r.seed,
                "models": ", ".join(f"{m} {a:.2%}" for m, a in r.models.items() if isinstance(a, int | float)),
                "seconds": r.seconds,
                "MiB": round(r.size_bytes / 2**20, 2),
                "state": r.problem or ("complete" if r.complete else "incomplete"),
            }
            for r in shown
        ],
        hide_index=True,
        key="history_table",
    )
    if len(shown) < 2:
        return
    st.subheader("Two runs side by side")
    ids = [r.id for r in shown]
    left, right = st.columns(2)
    a = left.selectbox("Run a", ids, index=1, key="diff_a")
    b = right.selectbox("Run b", ids, index=0, key="diff_b")
    diff = service.runs.diff_runs(str(runs_root() / a), str(runs_root() / b), runs_root())
    st.dataframe(
        [{"": r["key"], "a": _shown(r["a"]), "b": _shown(r["b"]), "b - a": r["difference"]} for r in diff],
        hide_index=True,
        key="diff_table",
    )


def _accuracy_chart(points: list[dict[str, Any]]) -> Any:
    """Test accuracy per model over time: a line per model, a point per run, a tooltip on each."""

    return (
        alt.Chart(alt.Data(values=points))
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title="run started", axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y("test accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
            color=alt.Color("model:N"),
            tooltip=["run:N", "model:N", alt.Tooltip("test accuracy:Q", format=".2f")],
        )
        .properties(height=320)
        .interactive()
    )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return "—" if value is None else str(value)


history_page()

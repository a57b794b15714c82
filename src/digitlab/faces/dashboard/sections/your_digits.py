"""Your digits: collect digits in your own hand, see how the models read them, personalise one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard.common import current_run, current_writer, loaded_models, runs_root, sidebar
from digitlab.faces.dashboard.drawing import drawing


def your_digits_page() -> None:
    sidebar(current_run())
    st.title("Your digits")
    st.caption(
        "Teach digitlab your handwriting: draw digits and say which they are. Every saved model is then measured "
        "on them, and `Personalise` fine-tunes a copy of the cnn to your hand."
    )
    try:
        writers = service.mine.writers()
    except DigitlabError as exc:
        st.error(str(exc))
        return
    _pick_writer(writers)
    writer = current_writer()
    left, right = st.columns([1, 1])
    with left:
        _collect(writer)
    with right:
        _your_counts(writer)
    st.divider()
    _your_grid(writer)
    st.divider()
    _your_scores(writer)
    st.divider()
    _personalise_panel(writer)


def _pick_writer(writers: dict[str, int]) -> None:
    names = list(writers) or [service.mine.DEFAULT_WRITER]
    current = current_writer()
    if current not in names:
        names.insert(0, current)
    a, b = st.columns([1, 1])
    with a:
        picked = st.selectbox("Writer", names, index=names.index(current), key="writer_pick")
    with b:
        new = st.text_input("…or a new writer's name", key="writer_new", placeholder="e.g. ana")
    chosen = new.strip() or picked
    try:
        st.session_state["writer"] = service.mine.check_writer(chosen)
    except DigitlabError as exc:
        st.error(str(exc))


@st.fragment
def _collect(writer: str) -> None:
    """Draw (or upload), press the digit it is: saved, and the canvas clears."""
    n = int(st.session_state.get("mine_canvas", 0))
    with st.container(key="mine_canvas_box"):
        result = drawing(f"mine_canvas_{n}", int(st.session_state.get("pen", 20)))
    if result is None:
        return
    uploaded = st.file_uploader("…or upload a picture of one digit", key=f"mine_upload_{n}")
    drawn = not result.empty
    if drawn or uploaded is not None:
        try:
            seen = service.predictor.read_picture(uploaded.getvalue() if uploaded is not None else result.png)
        except DigitlabError as exc:
            st.error(str(exc))
            return
        with st.container(key="mine_preview"):
            st.image(np.kron(seen, np.ones((3, 3), np.uint8)), caption="What the models will see")
    st.markdown("**Which digit is it?**")
    with st.container(key="labels", horizontal=True):
        pressed = [d for d in range(10) if st.button(str(d), key=f"label_{d}")]
    if not pressed:
        return
    if uploaded is not None:
        source, name, kind = uploaded.getvalue(), uploaded.name, "upload"
    elif result.png is not None and drawn:
        source, name, kind = result.png, "drawing", "canvas"
    else:
        st.warning("Draw a digit on the canvas (or upload one) first, then press its label.")
        return
    try:
        added = service.mine.add_pictures([source], pressed[0], writer, kind, [name])[0]
    except DigitlabError as exc:
        st.error(str(exc))
        return
    st.session_state["mine_canvas"] = n + 1  # a new canvas key: the canvas clears
    st.session_state["mine_saved"] = (
        f"Saved a {added.label} (id {added.id})." if added.new else f"Already saved as a {added.label} (id {added.id})."
    )
    st.rerun()


def _your_counts(writer: str) -> None:
    counts = service.mine.counts(writer)
    total = sum(counts.values())
    if "mine_saved" in st.session_state:
        st.success(st.session_state.pop("mine_saved"))
    with st.container(key="mine_total"):
        st.markdown(f"**{writer}** has **{total}** digit{'s' if total != 1 else ''} saved.")
    st.bar_chart({"digits": {str(d): n for d, n in counts.items()}}, height=200)
    fewest = min(counts.values())
    wanted = [str(d) for d, n in counts.items() if n == fewest]
    with st.container(key="mine_ask"):
        st.info(
            f"Draw {' or '.join(wanted[:3])} next: you have fewest of {'them' if len(wanted) > 1 else 'it'} ({fewest})."
        )


def _your_grid(writer: str) -> None:
    st.subheader("Your digits")
    digits = service.mine.digits(writer)
    if not digits:
        st.caption("None yet.")
        return
    shown = digits[::-1][:60]
    st.caption(f"The newest {len(shown)} of {len(digits)}, as the models see them.")
    cols = st.columns(10)
    for k, digit in enumerate(shown):
        with cols[k % 10]:
            st.image(np.kron(digit.image, np.ones((3, 3), np.uint8)), caption=f"{digit.label} · #{digit.id}")
            if st.button("Delete", key=f"rm_{digit.id}", type="tertiary"):
                service.mine.remove([digit.id])
                st.rerun()


def _your_models(run: Path | None) -> list[service.Predictor]:
    if run is not None:
        return loaded_models(run)[0]
    return service.predictor.run_predictors(None, [m.path for m in service.runs.personal_models(runs_root())])[0]


def _your_scores(writer: str) -> None:
    st.subheader("How the models read your digits")
    predictors = _your_models(current_run())
    if not predictors:
        st.caption("No saved models yet: `digitlab run` trains them.")
        return
    readings = service.mine.measure(predictors, writer)
    if not readings:
        st.caption("Save some digits first.")
        return
    with st.container(key="mine_scores"):
        st.dataframe(
            [{"model": r.model, "accuracy": r.accuracy, "misread": r.n_errors} for r in readings],
            hide_index=True,
            column_config={
                "accuracy": st.column_config.ProgressColumn("accuracy", format="percent", min_value=0.0, max_value=1.0)
            },
        )
    picked = st.selectbox("Model", [r.model for r in readings], key="mine_model")
    reading = next(r for r in readings if r.model == picked)
    a, b = st.columns([1, 1])
    with a:
        st.caption("Confusion matrix (rows: what you wrote, columns: what it read)")
        st.dataframe(
            [{"wrote": str(d), **{str(c): reading.confusion[d][c] for c in range(10)}} for d in range(10)],
            hide_index=True,
        )
    with b:
        st.caption(f"Your digits {picked} misreads, most confident first")
        wrong = reading.misread[:20]
        if not wrong:
            st.success("None: it reads every one of your digits.")
        images = {d.id: d.image for d in service.mine.digits(writer)}
        cols = st.columns(5)
        for k, item in enumerate(wrong):
            with cols[k % 5]:
                st.image(
                    np.kron(images[item["id"]], np.ones((3, 3), np.uint8)),
                    caption=f"{item['true']} read as {item['predicted']} ({item['confidence']:.0%})",
                )


def _personalise_panel(writer: str) -> None:
    st.subheader("Personalise")
    st.caption(
        "Fine-tunes a copy of the saved cnn on your digits (with MNIST digits replayed so that it keeps what it knew) "
        "and scores it before and after on digits of yours it did not train on. Saved as cnn-personal."
    )
    if not st.button("Personalise the cnn to my digits", key="personalise", type="primary"):
        return
    bar = st.progress(0.0, text="starting")

    def on_progress(event: service.Event) -> None:
        fraction = event.done / event.total if event.total else 0.0
        bar.progress(min(fraction, 1.0), text=event.message or event.step)

    request = service.PersonaliseRequest(model="cnn", writer=writer, out=runs_root())
    try:
        result = service.personalise(request, on_progress).to_json()
    except DigitlabError as exc:
        st.error(str(exc))
        return
    bar.progress(1.0, text="done")
    with st.container(key="personalised"):
        st.success(f"Saved {result['model']} ({result['adapt_s']:.0f} s); use it with --model {result['model']}.")
        st.dataframe(
            [
                {
                    "scored on": f"your {result['held_out']} held-out digits",
                    "before": result["held_out_before"],
                    "after": result["held_out_after"],
                },
                {
                    "scored on": f"{result['test_dataset']} test",
                    "before": result["test_before"],
                    "after": result["test_after"],
                },
            ],
            hide_index=True,
            column_config={c: st.column_config.NumberColumn(c, format="percent") for c in ("before", "after")},
        )


your_digits_page()

"""Read a number: write a whole number on a wide canvas (or upload a photo of one); the number in large type,
each character's box and confidence over the picture, and a correction per digit saved to Your digits."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard.common import current_writer, loaded_models, reading_frame
from digitlab.faces.dashboard.drawing import drawing

WIDE = (720, 220)  # the canvas: room for a line of digits


def read_number_page() -> None:
    run, reads = reading_frame(
        "Read a number", "Write a whole number (digits, a decimal point, a leading minus) or upload a photo of one."
    )
    if not reads:
        return
    draw, upload = st.tabs(["Draw", "Upload"])
    with draw:
        _draw(str(run or ""))
    with upload:
        uploaded = st.file_uploader("A picture of one handwritten number (one line)", key="number_upload")
        if uploaded is None:
            st.info("Upload a photo or scan of a number: a meter reading, an amount, a field of a form.")
        else:
            _read(Path(run) if run else None, uploaded.getvalue(), uploaded.name)


@st.fragment
def _draw(run: str) -> None:
    pen = st.slider("Pen width", 6, 30, 14, key="number_pen")
    with st.container(key="number_canvas"):
        result = drawing("number_canvas_draw", pen, *WIDE)
    st.caption("Write the number on one line, digits side by side; the bin icon clears the canvas.")
    if result is None:
        return
    if result.empty or result.png is None:
        st.info("The canvas is empty: write a number on it.")
        return
    _read(Path(run) if run else None, result.png, "drawing")


def _read(run: Path | None, picture: bytes, name: str) -> None:
    predictors, _ = loaded_models(run)
    if not predictors:
        st.error("No model reads 28 × 28 digits here; train one (`digitlab run`).")
        return
    reader = predictors[0]
    found = service.numbers.read_number(reader, picture, name)
    if found.status == "error":
        st.error(found.error or "This picture cannot be read.")
        return
    if found.status == "blank":
        st.info("No ink found: the picture is blank.")
        return
    with st.container(key="number"):
        st.markdown(f"# {found.text}")
        st.markdown(f"**{found.confidence:.1%}** sure, each digit read by **{found.model}**")
        if found.uncertain:
            st.warning("Uncertain: " + "; ".join(found.reasons) + ". Correct the digits below, or write it again.")
    st.image(_boxes(picture, found), caption="Each character's box and how sure the reader is")
    _corrections(picture, found, name)


def _boxes(picture: bytes, found: Any) -> np.ndarray:
    """The picture with each character's box and label (green when sure, orange otherwise)."""
    img = Image.open(io.BytesIO(picture)).convert("RGB")
    pen = ImageDraw.Draw(img)
    for c in found.characters:
        colour = (30, 150, 60) if c.confidence >= service.numbers.SURE else (230, 120, 0)
        pen.rectangle(c.box, outline=colour, width=3)
        pen.text((c.box[0] + 2, max(0, c.box[1] - 14)), f"{c.label} {c.confidence:.0%}", fill=colour)
    return np.asarray(img)


def _corrections(picture: bytes, found: Any, name: str) -> None:
    """One selector a digit; the changed ones are saved to Your digits as corrections (each box a digit)."""
    digits = [(k, c) for k, c in enumerate(found.characters) if c.label.isdigit()]
    if not digits:
        return
    st.markdown("**Wrong digit? Pick the right one, then save:**")
    columns = st.columns(len(digits))
    right: dict[int, int] = {}
    for (k, c), column in zip(digits, columns, strict=True):
        with column:
            right[k] = int(st.selectbox(f"#{k + 1}", list(range(10)), index=int(c.label), key=f"number_fix_{k}"))
    changed = [(k, d) for k, d in right.items() if str(d) != found.characters[k].label]
    if st.button("Save corrections to Your digits", key="number_save", disabled=not changed):
        try:
            saved = [
                service.mine.add_pictures(
                    [service.numbers.character_picture(picture, found.characters[k].box)],
                    d,
                    current_writer(),
                    "correction",
                    [f"{name}#{k + 1}"],
                )[0]
                for k, d in changed
            ]
        except DigitlabError as exc:
            st.error(str(exc))
            return
        st.success(f"Saved {len(saved)} digit{'s' if len(saved) != 1 else ''} to {current_writer()}'s digits.")


read_number_page()

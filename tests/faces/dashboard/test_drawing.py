"""The drawing canvas's answer as the dashboard reads it (the component itself is driven in test_browser.py)."""

from __future__ import annotations

import base64

import numpy as np

from digitlab.data.pictures import to_mnist
from digitlab.faces.dashboard.drawing import Drawing, _decode
from tests.conftest import png


def test_a_drawing_arrives_as_its_png_and_reads_as_the_digit_drawn() -> None:
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[40:240, 130:150] = 0  # a 1
    data = "data:image/png;base64," + base64.b64encode(png(canvas)).decode()
    got = _decode({"png": data, "strokes": 1})
    assert got.strokes == 1 and not got.empty and got.png is not None
    assert to_mnist(got.png).any()  # the reading path takes the PNG as it is


def test_an_empty_canvas_or_a_damaged_message_is_an_empty_drawing() -> None:
    for value in (
        None,
        {},
        {"png": None, "strokes": 0},
        {"png": "data:image/png;base64,@@@", "strokes": 2},
        {"png": "data:text/html;base64,PGI+", "strokes": 1},
        "nonsense",
    ):
        assert _decode(value) == Drawing(None, 0)
    assert Drawing(b"x", 0).empty

"""The drawing canvas: black pen on white, 280 × 280, sent the moment the pen is lifted.

A Streamlit custom component (components v2, inline JavaScript, no build step and nothing downloaded): a
plain HTML canvas drawn with pointer events (mouse, pen, finger), round pen ends, and a bin button that
clears it. On pen-up it sends the drawing as a PNG at once; the canvas it replaced (streamlit-drawable-canvas)
waited 200 ms after each stroke before sending, more than the whole answer may take (issue 32: pen-up →
answer ≤ 150 ms in the browser; benchmarks/dashboard.py measures it). ``drawing(key, pen)`` -> ``Drawing``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import streamlit as st

SIZE = 280  # canvas pixels: 10× MNIST's 28

_JS = """
const STATE = new WeakMap();

function mount(root, width, height) {
  const canvas = root.querySelector("canvas.dl-canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const pen = canvas.getContext("2d");
  const s = {canvas, pen, strokes: 0, last: null, width: 20, send: () => {}};
  const blank = () => {
    pen.fillStyle = "#ffffff";
    pen.fillRect(0, 0, width, height);
  };
  blank();
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * width / r.width, (e.clientY - r.top) * height / r.height];
  };
  const dot = ([x, y]) => {
    pen.beginPath();
    pen.arc(x, y, s.width / 2, 0, 2 * Math.PI);
    pen.fillStyle = "#000000";
    pen.fill();
  };
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    s.last = at(e);
    dot(s.last);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (s.last === null) return;
    const p = at(e);
    pen.beginPath();
    pen.lineWidth = s.width;
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.strokeStyle = "#000000";
    pen.moveTo(...s.last);
    pen.lineTo(...p);
    pen.stroke();
    s.last = p;
  });
  const lift = (e) => {
    if (s.last === null) return;
    s.last = null;
    s.strokes += 1;
    s.send("drawing", {png: canvas.toDataURL("image/png"), strokes: s.strokes});
  };
  canvas.addEventListener("pointerup", lift);
  canvas.addEventListener("pointercancel", lift);
  root.querySelector("button.dl-clear").addEventListener("click", () => {
    blank();
    s.strokes = 0;
    s.send("drawing", {png: null, strokes: 0});
  });
  return s;
}

export default function ({data, parentElement, setStateValue}) {
  let s = STATE.get(parentElement);
  if (!s) {
    s = mount(parentElement, data.width, data.height);
    STATE.set(parentElement, s);
  }
  s.send = setStateValue;
  s.width = data.pen;
  return () => STATE.delete(parentElement);
}
"""

_HTML = """
<div class="dl-box">
  <canvas class="dl-canvas" aria-label="drawing canvas"></canvas>
  <button class="dl-clear" type="button" title="Clear the canvas" aria-label="clear the canvas">🗑</button>
</div>
"""

_CSS = """
.dl-box { display: flex; align-items: flex-start; gap: 6px; }
.dl-canvas { border: 1px solid #d0d0d0; border-radius: 4px; touch-action: none;
             cursor: crosshair; background: #ffffff; }
.dl-clear { border: 1px solid #d0d0d0; border-radius: 4px; background: #ffffff; cursor: pointer; font-size: 18px;
            padding: 2px 6px; }
"""

_component: Any = None


@dataclass(frozen=True)
class Drawing:
    """What is on the canvas: ``png`` (the 280 × 280 drawing, None when it is empty) and how many strokes."""

    png: bytes | None
    strokes: int

    @property
    def empty(self) -> bool:
        return self.png is None or self.strokes == 0


def _decode(value: Any) -> Drawing:
    if not isinstance(value, dict) or not isinstance(value.get("png"), str):
        return Drawing(None, 0)
    head, _, body = value["png"].partition(",")
    if head != "data:image/png;base64":
        return Drawing(None, 0)
    try:
        png = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return Drawing(None, 0)
    return Drawing(png, int(value.get("strokes") or 0))


def drawing(key: str, pen: int, width: int = SIZE, height: int = SIZE) -> Drawing | None:
    """The canvas (``width`` × ``height``) with a pen ``pen`` canvas pixels wide; what is drawn on it (None, with
    the reason shown, outside a Streamlit runtime)."""
    global _component
    try:
        if _component is None:
            _component = st.components.v2.component("digitlab_drawing", html=_HTML, css=_CSS, js=_JS)
        data = {"pen": int(pen), "width": int(width), "height": int(height)}
        result = _component(key=key, data=data, on_drawing_change=lambda: None)
    except Exception as exc:  # the component registers itself only inside a Streamlit runtime
        st.error(f"The drawing canvas is unavailable here ({type(exc).__name__}); start with `digitlab dashboard`.")
        return None
    return _decode(getattr(result, "drawing", None))

"""End to end in a real browser: `digitlab dashboard` on a free port, Debian's chromium driven by Playwright.

The digits are drawn with mouse strokes on the canvas, as a person would; nothing is mocked. This test never
skips: without /usr/bin/chromium it fails and says how to install it (`make test` does, as root).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from digitlab.data.datasets import load_dataset

CHROMIUM = Path(os.environ.get("DIGITLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 90_000  # first model load on a busy CI machine

Stroke = list[tuple[float, float]]  # points in [0, 1]² of the canvas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"digitlab dashboard exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"digitlab dashboard did not answer on {url} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def dashboard_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard's own digit store folder ($DIGITLAB_HOME)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def dashboard(mnist_run: Path, mnist_cache: Path, dashboard_home: Path) -> Iterator[str]:
    """`digitlab dashboard RUN --port P` as a user starts it; yields its address."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "dashboard", str(mnist_run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DIGITLAB_DATA": str(mnist_cache), "DIGITLAB_HOME": str(dashboard_home)},
    )
    url = f"http://localhost:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.is_file(), (
        f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`, which `make test` does as root)"
    )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()


def open_try_it(page: Page, url: str) -> None:
    page.goto(f"{url}/try_it")
    expect(page.get_by_role("heading", name="Try it")).to_be_visible(timeout=WAIT_MS)


def draw(page: Page, strokes: list[Stroke], release_last: bool = True, box: str = "canvas") -> None:
    """Mouse strokes on the drawing canvas (faces/dashboard/drawing.py); the caller may lift the pen."""
    canvas = page.locator(f".st-key-{box} canvas.dl-canvas")
    expect(canvas).to_be_visible(timeout=WAIT_MS)
    box = canvas.bounding_box()
    assert box is not None
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=3)
        if release_last or stroke is not strokes[-1]:
            page.mouse.up()


def line(a: tuple[float, float], b: tuple[float, float], n: int = 12) -> Stroke:
    return [(a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n) for t in range(n + 1)]


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> Stroke:
    return [(cx + rx * math.sin(2 * math.pi * t / n), cy - ry * math.cos(2 * math.pi * t / n)) for t in range(n + 1)]


DIGITS: dict[str, list[Stroke]] = {
    "1": [line((0.5, 0.15), (0.5, 0.85))],
    "0": [ellipse(0.5, 0.5, 0.22, 0.33)],
    "7": [line((0.28, 0.2), (0.72, 0.2)) + line((0.72, 0.2), (0.42, 0.85))[1:]],
}


def prediction(page: Page) -> tuple[str, float]:
    box = page.locator(".st-key-prediction")
    expect(box).to_contain_text("Prediction:", timeout=WAIT_MS)
    text = box.inner_text()
    digit = re.search(r"Prediction: (\d)", text)
    sure = re.search(r"([\d.]+)% sure", text)
    assert digit and sure, text
    return digit.group(1), float(sure.group(1))


@pytest.mark.parametrize("digit", list(DIGITS))
def test_a_digit_drawn_with_the_mouse_is_recognised(dashboard: str, page: Page, digit: str) -> None:
    open_try_it(page, dashboard)
    expect(page.get_by_text("The canvas is empty")).to_be_visible()
    draw(page, DIGITS[digit])
    predicted, sure = prediction(page)
    assert predicted == digit and 50.0 <= sure <= 100.0, (predicted, sure)
    expect(page.get_by_text("What the models see (28 × 28)")).to_be_visible()
    expect(page.locator(".st-key-all_models")).to_be_visible()  # every model's probabilities


def upload(page: Page, url: str, name: str, data: bytes, mime: str) -> None:
    open_try_it(page, url)
    page.get_by_role("tab", name="Upload").click()
    page.locator(".st-key-upload input[type=file]").set_input_files({"name": name, "mimeType": mime, "buffer": data})


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_mnist_test_digit_is_recognised(dashboard: str, page: Page, real_mnist: Path) -> None:
    ds = load_dataset("mnist")
    image, label = ds.x_test[0], int(ds.y_test[0])  # a 7
    photo = 255 - np.kron(image, np.ones((6, 6), dtype=np.uint8))  # dark ink on white paper, 168 × 168
    upload(page, dashboard, "digit.png", png(photo), "image/png")
    predicted, sure = prediction(page)
    assert predicted == str(label) and sure >= 50.0


def test_a_text_file_upload_gets_a_clear_message(dashboard: str, page: Page) -> None:
    upload(page, dashboard, "notes.txt", b"not a picture\n", "text/plain")
    expect(page.get_by_text("notes.txt: not a readable image")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".st-key-prediction")).to_have_count(0)


def test_a_blank_picture_upload_says_there_is_no_ink(dashboard: str, page: Page) -> None:
    """Blank is decided once, by the reading path (Predictor.answers), not by the page."""
    upload(page, dashboard, "blank.png", png(np.full((120, 90), 255, np.uint8)), "image/png")
    expect(page.get_by_text("No ink found: the picture is blank")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".st-key-prediction")).to_have_count(0)


def test_a_huge_image_upload_gets_a_clear_message(dashboard: str, page: Page) -> None:
    huge = Image.new("1", (8000, 8000), 1)  # 64 million pixels, a few kB as PNG
    buffer = io.BytesIO()
    huge.save(buffer, format="PNG")
    upload(page, dashboard, "huge.png", buffer.getvalue(), "image/png")
    expect(page.get_by_text("huge.png: image has too many pixels")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".st-key-prediction")).to_have_count(0)


def test_history_page_opens_with_its_chart(dashboard: str, page: Page) -> None:
    page.goto(dashboard)
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible(timeout=WAIT_MS)
    chart = page.locator(".st-key-history_chart")
    expect(chart).to_be_visible()
    expect(chart.locator("canvas, svg").first).to_be_visible(timeout=WAIT_MS)  # the vega-lite chart is drawn
    expect(page.locator(".st-key-history_dataset")).to_be_visible()  # the dataset filter


def test_your_digits_draw_a_digit_press_its_label_and_the_count_goes_up(
    dashboard: str, page: Page, dashboard_home: Path
) -> None:
    page.goto(f"{dashboard}/your_digits")
    expect(page.get_by_role("heading", name="Your digits").first).to_be_visible(timeout=WAIT_MS)
    name = page.get_by_label("…or a new writer's name")
    name.fill("ana")
    name.press("Enter")
    total = page.locator(".st-key-mine_total")
    expect(total).to_contain_text("ana has 0 digits saved", timeout=WAIT_MS)
    draw(page, DIGITS["7"], box="mine_canvas_box")
    expect(page.locator(".st-key-mine_preview img")).to_be_visible(timeout=WAIT_MS)  # the drawing has arrived
    page.locator(".st-key-label_7 button").click()
    expect(total).to_contain_text("ana has 1 digit saved", timeout=WAIT_MS)
    expect(page.get_by_text("Saved a 7")).to_be_visible()
    expect(page.get_by_text("7 · #")).to_be_visible()  # in the grid of your digits
    expect(page.locator(".st-key-mine_preview")).to_have_count(0)  # the canvas was cleared
    page.locator(".st-key-label_3 button").click()  # so there is nothing to save
    expect(page.get_by_text("Draw a digit on the canvas (or upload one) first")).to_be_visible(timeout=WAIT_MS)
    expect(total).to_contain_text("ana has 1 digit saved")
    from digitlab.data.your_digits import DigitStore

    saved = DigitStore(dashboard_home / "mine.sqlite3").digits("ana")
    assert [(d.label, d.source) for d in saved] == [(7, "canvas")] and saved[0].image.any()


def test_try_it_saves_a_correction(dashboard: str, page: Page, dashboard_home: Path) -> None:
    open_try_it(page, dashboard)
    draw(page, DIGITS["0"])
    prediction(page)
    page.locator(".st-key-fix_6 button").click()  # "Wrong? It was: 6" (whatever the models said)
    expect(page.get_by_text("as a 6 in me's digits")).to_be_visible(timeout=WAIT_MS)
    from digitlab.data.your_digits import DigitStore

    saved = DigitStore(dashboard_home / "mine.sqlite3").digits("me")
    assert [(d.label, d.source) for d in saved] == [(6, "correction")]


def test_try_it_explains_the_answer(dashboard: str, page: Page) -> None:
    open_try_it(page, dashboard)
    draw(page, DIGITS["7"])
    digit, _ = prediction(page)
    why = page.locator(".st-key-try_explanation")
    expect(why).to_contain_text("Why? What the model looked at", timeout=WAIT_MS)
    expect(why).to_contain_text(f"reads {digit}")
    expect(why).to_contain_text("Integrated Gradients")
    expect(why).to_contain_text("Completeness of Integrated Gradients")
    expect(why.locator("img")).to_have_count(
        6
    )  # the input, IG for the answer and runner-up, their difference, occlusion ×2


def test_clicking_a_confusion_matrix_cell_shows_its_digits(dashboard: str, page: Page, mnist_run: Path) -> None:
    page.goto(f"{dashboard}/evaluation")
    expect(page.get_by_role("heading", name="Evaluation")).to_be_visible(timeout=WAIT_MS)
    evaluations = [json.loads(p.read_text()) for p in mnist_run.glob("evaluate-*.json")]
    cm = max(evaluations, key=lambda e: e["accuracy"])["confusion_matrix"]  # the page opens on the best model
    true, predicted = max(((i, j) for i in range(10) for j in range(10) if i != j), key=lambda c: cm[c[0]][c[1]])
    count = cm[true][predicted]
    cell = page.locator(f'.st-key-confusion_chart path[aria-label^="predicted: {predicted}; true: {true};"]')
    expect(cell).to_be_visible(timeout=WAIT_MS)
    cell.hover()
    expect(page.locator("#vg-tooltip-element")).to_contain_text("count", timeout=WAIT_MS)
    cell.click()
    digits = page.locator(".st-key-cell_digits")
    expect(digits).to_contain_text(f"{count} test digits: {true}s read as {predicted}", timeout=WAIT_MS)
    expect(digits.locator("img")).to_have_count(min(count, 40))


def test_hovering_the_map_shows_a_thumbnail_and_clicking_explains(dashboard: str, page: Page, mapped_run: Path) -> None:
    page.goto(f"{dashboard}/map")
    expect(page.get_by_role("heading", name="Map of all digits")).to_be_visible(timeout=WAIT_MS)
    dots = page.locator('.st-key-map_chart path[aria-roledescription="point"]')
    expect(dots.first).to_be_attached(timeout=WAIT_MS)
    assert dots.count() == 1000
    dot = dots.nth(123)
    dot.hover(force=True)
    tip = page.locator("#vg-tooltip-element")
    expect(tip).to_contain_text("true", timeout=WAIT_MS)
    expect(tip.locator("img")).to_have_count(1)
    assert (tip.locator("img").get_attribute("src") or "").startswith("data:image/png;base64,")
    dot.click(force=True)
    why = page.locator(".st-key-map_explanation")
    expect(why).to_contain_text("Why? What the model looked at", timeout=WAIT_MS)


def test_read_a_number_written_on_the_wide_canvas(dashboard: str, page: Page) -> None:
    """Issue 33: three digits written side by side with the mouse on the wide canvas are read as one number,
    each with its box; a wrong digit can be corrected into Your digits."""
    page.goto(f"{dashboard}/read_number")
    expect(page.get_by_role("heading", name="Read a number")).to_be_visible(timeout=WAIT_MS)
    strokes: list[Stroke] = []
    for k, digit in enumerate("107"):  # each digit in its third of the canvas, a little narrower than tall
        for stroke in DIGITS[digit]:
            strokes.append([(0.1 + 0.28 * k + 0.22 * x, 0.12 + 0.76 * y) for x, y in stroke])
    draw(page, strokes, box="number_canvas")
    number = page.locator(".st-key-number")
    expect(number).to_contain_text("107", timeout=WAIT_MS)
    expect(page.get_by_text("Save corrections to Your digits")).to_be_visible()

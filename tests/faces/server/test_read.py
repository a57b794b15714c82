"""`POST /read` (issue 33): the number in each picture, as multipart or base64 JSON, with its characters' boxes;
a blank picture, a broken one and a wrong body each a clear answer (in process: real routes and models)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlab import service
from digitlab.faces.server.app import create_app
from tests.service.test_numbers import digits as digits  # the MNIST test digits fixture
from tests.service.test_numbers import number


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """`digitlab serve` as installed: no run folder, the shipped reader."""
    out = tmp_path_factory.mktemp("no-runs") / "runs"
    request = service.serving.ServeRequest(out=out)
    with TestClient(create_app(service.serving.load_served(request), request), raise_server_exceptions=False) as c:
        yield c


def jpeg(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def test_read_answers_each_number_multipart_and_json(client: TestClient, digits: dict[int, np.ndarray]) -> None:
    pictures = {text: jpeg(number(digits, text, seed=20 + k, how="photo")) for k, text in enumerate(("507", "-8.25"))}
    files = [("file", (f"{text}.jpg", blob, "image/jpeg")) for text, blob in pictures.items()]
    got = client.post("/read", files=files)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model"] == "line-reader" and body["method"] == "lines" and len(body["model_version"]) == 12
    assert [n["text"] for n in body["numbers"]] == ["507", "-8.25"]
    first = body["numbers"][0]
    assert first["status"] in ("ok", "uncertain") and first["file"] == "507.jpg"
    assert [c["label"] for c in first["characters"]] == ["5", "0", "7"]
    assert all(len(c["box"]) == 4 and c["top3"][0]["label"] == c["label"] for c in first["characters"])
    as_json = client.post("/read", json={"images": [base64.b64encode(b).decode() for b in pictures.values()]})
    assert [n["text"] for n in as_json.json()["numbers"]] == ["507", "-8.25"]


def test_read_says_blank_broken_and_wrong_bodies_plainly(client: TestClient) -> None:
    blank = io.BytesIO()
    Image.new("L", (300, 120), 235).save(blank, "PNG")
    got = client.post(
        "/read",
        files=[("file", ("blank.png", blank.getvalue(), "image/png")), ("file", ("x.png", b"nope", "image/png"))],
    )
    assert got.status_code == 200
    blank_row, broken_row = got.json()["numbers"]
    assert blank_row["status"] == "blank" and broken_row["status"] == "error"
    assert "not a readable image" in broken_row["error"]
    for body, status in (({"arrays": [[[0] * 28] * 28]}, 422), ({"images": ["@@not base64@@"]}, 400), ({}, 422)):
        wrong = client.post("/read", json=body)
        assert wrong.status_code == status and "error" in wrong.json(), wrong.text
    assert client.post("/read", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert client.post("/read?model=nope", json={"images": []}).status_code == 404
    assert client.post("/read?method=fast", json={"images": []}).status_code == 422

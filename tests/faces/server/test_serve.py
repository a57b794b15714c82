"""`digitlab serve` as a user starts it (a real uvicorn on a free port, real HTTP), ONNX export, batch scoring.

The models are the real quick MNIST run's (``mnist_run``): the cnn and the logistic regression.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlab import service
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.faces.server.app import create_app
from tests.conftest import Server, free_port, png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist(mnist_cache: Path) -> Dataset:
    return load_dataset("mnist", cache_dir=mnist_cache)


@pytest.fixture(scope="module")
def server(mnist_run: Path) -> Iterator[dict[str, Any]]:
    """The app serving the quick run's cnn and lr, in this process (FastAPI's TestClient: real routes, real
    middleware, real models, no socket); the tests of signals, workers and draining start a real process."""
    models = mnist_run / "models"
    request = service.serving.ServeRequest(models=(str(models / "cnn.pt"), str(models / "lr.skops")), max_batch=64)
    app = create_app(service.serving.load_served(request), request)
    with TestClient(app, raise_server_exceptions=False) as client:
        cnn = service.Predictor(models / "cnn.pt")
        lr = service.Predictor(models / "lr.skops")
        yield {"client": client, "pid": os.getpid(), "cnn": cnn, "lr": lr}


def labels(response: httpx.Response, k: int = 0) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["label"] for p in response.json()["results"][k]["predictions"]]


def test_predict_by_multipart_base64_and_arrays(server: dict[str, Any], mnist: Dataset) -> None:
    client, cnn = server["client"], server["cnn"]
    x = mnist.x_test[:12]
    expected = [p.label for p in cnn.predict(list(x), [f"d{k}" for k in range(len(x))])]
    files = [("file", (f"d{k}.png", png(a), "image/png")) for k, a in enumerate(x)]
    by_file = client.post("/predict", files=files)
    assert labels(by_file) == expected
    first = by_file.json()["results"][0]["predictions"][0]
    assert first["file"] == "d0.png" and first["model"] == "cnn" and len(first["model_version"]) == 12
    assert first["blank"] is False and first["uncertain"] is False and len(first["top3"]) == 3
    encoded = [base64.b64encode(png(a)).decode() for a in x]
    assert labels(client.post("/predict", json={"images": encoded})) == expected
    assert labels(client.post("/predict", json={"arrays": x.tolist()})) == expected
    assert labels(client.post("/predict", json={"images": [f"data:image/png;base64,{encoded[0]}"]})) == expected[:1]
    blank = client.post("/predict", json={"arrays": [np.zeros((28, 28), int).tolist()]}).json()
    assert blank["results"][0]["predictions"][0]["status"] == "blank"


def test_predict_picks_a_model_or_asks_every_model(server: dict[str, Any], mnist: Dataset) -> None:
    client, lr = server["client"], server["lr"]
    x = mnist.x_test[:5]
    by_lr = client.post("/predict?model=lr", json={"arrays": x.tolist()})
    assert labels(by_lr) == [p.label for p in lr.predict(list(x), list("abcde"))]
    both = client.post("/predict?all=true", json={"arrays": x.tolist()}).json()["results"]
    assert [r["model"] for r in both] == ["cnn", "lr"]
    models = client.get("/models").json()
    assert models["default"] == "cnn" and [m["name"] for m in models["models"]] == ["cnn", "lr"]
    cnn = models["models"][0]
    assert cnn["kind"] == "pytorch" and cnn["test_accuracy"] > 0.95 and cnn["dataset"] == "mnist"
    assert len(cnn["dataset_checksums"]) == 4


def test_open_inference_protocol_metadata_and_infer(server: dict[str, Any], mnist: Dataset) -> None:
    client, cnn = server["client"], server["cnn"]
    assert client.get("/v2").json() == {"name": "digitlab", "version": service.library_version(), "extensions": []}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/models/cnn/ready").json() == {"name": "cnn", "ready": True}
    meta = client.get("/v2/models/cnn").json()
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]} in meta["outputs"]
    version = meta["versions"][0]
    x = mnist.x_test[:3]
    tensor = {"name": "images", "shape": [3, 28, 28], "datatype": "UINT8", "data": x.ravel().tolist()}
    body = {"id": "r-1", "inputs": [tensor]}
    reply = client.post("/v2/models/cnn/infer", json=body).json()
    assert reply["model_name"] == "cnn" and reply["model_version"] == version and reply["id"] == "r-1"
    outputs = {o["name"]: o for o in reply["outputs"]}
    assert outputs["probabilities"]["shape"] == [3, 10] and outputs["probabilities"]["datatype"] == "FP32"
    proba = np.asarray(outputs["probabilities"]["data"]).reshape(3, 10)
    np.testing.assert_allclose(proba, cnn.probabilities(x), atol=1e-5)
    assert outputs["labels"]["data"] == [str(int(i)) for i in proba.argmax(axis=1)]
    nested = dict(body, inputs=[dict(body["inputs"][0], data=x.tolist(), datatype="FP32")])
    nested["outputs"] = [{"name": "probabilities"}]
    again = client.post(f"/v2/models/cnn/versions/{version}/infer", json=nested).json()
    assert [o["name"] for o in again["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(np.asarray(again["outputs"][0]["data"]).reshape(3, 10), proba, atol=1e-6)
    # the binary tensor extension (Triton's and KServe's clients): raw uint8 in, raw float32 out
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": [3, 28, 28],
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "labels"}],
        }
    ).encode()
    raw = client.post(
        "/v2/models/cnn/infer",
        content=head + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head)), "content-type": "application/octet-stream"},
    )
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    size = int(raw.headers["inference-header-content-length"])
    meta_out = json.loads(raw.content[:size])
    assert meta_out["outputs"][0]["parameters"] == {"binary_data_size": 3 * 10 * 4}
    np.testing.assert_allclose(np.frombuffer(raw.content[size:], "<f4").reshape(3, 10), proba, atol=1e-6)
    assert meta_out["outputs"][1]["data"] == outputs["labels"]["data"]


def test_openapi_describes_every_endpoint(server: dict[str, Any]) -> None:
    spec = server["client"].get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/predict",
        "/models",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
    } <= paths
    predict = spec["paths"]["/predict"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(predict["requestBody"]["content"])
    assert "200" in predict["responses"] and "413" in predict["responses"]
    assert server["client"].get("/docs").status_code == 200


def _bad_requests(x: np.ndarray) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(status, method, path, httpx arguments) for at least 15 kinds of bad request."""
    one = x[:1].ravel().tolist()
    infer = "/v2/models/cnn/infer"

    def tensor(**kw: Any) -> dict[str, Any]:
        return {"inputs": [dict({"name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "data": one}, **kw)]}

    binary_head = json.dumps(tensor(data=None, parameters={"binary_data_size": 784})).encode()
    binary_length = {"Inference-Header-Content-Length": str(len(binary_head))}
    binary_string_head = json.dumps(tensor(data=None, parameters={"binary_data_size": "784"})).encode()
    binary_string_length = {"Inference-Header-Content-Length": str(len(binary_string_head))}
    binary_float_head = json.dumps(tensor(data=None, parameters={"binary_data_size": 784.0})).encode()
    binary_float_length = {"Inference-Header-Content-Length": str(len(binary_float_head))}
    octets = {"content-type": "application/octet-stream"}

    return [
        (400, "post", "/predict", {"content": b"{oops", "headers": {"content-type": "application/json"}}),
        (400, "post", "/predict", {"json": {"images": ["***not base64***"]}}),
        (400, "post", "/predict", {"json": [1, 2]}),
        (404, "post", "/predict?model=nope", {"json": {"arrays": x[:1].tolist()}}),
        (404, "get", "/v2/models/nope", {}),
        (404, "post", "/v2/models/cnn/versions/0000/infer", {"json": tensor()}),
        (404, "get", "/no/such/endpoint", {}),
        (413, "post", "/predict", {"content": b"0" * (21 << 20), "headers": {"content-type": "application/json"}}),
        (413, "post", "/predict", {"json": {"arrays": np.zeros((65, 28, 28), int).tolist()}}),
        (415, "post", "/predict", {"json": {"images": [base64.b64encode(b"GIF89a not really").decode()]}}),
        (415, "post", "/predict", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
        (415, "post", "/predict", {"files": [("file", ("notes.txt", b"just text", "text/plain"))]}),
        (422, "post", "/predict", {"json": {"arrays": [[1, 2, 3]]}}),
        (422, "post", "/predict", {"json": {"arrays": [np.full((28, 28), 300).tolist()]}}),
        (422, "post", "/predict", {"json": {"pictures": []}}),
        (422, "post", "/predict", {"files": [("upload", ("a.png", png(x[0]), "image/png"))]}),
        (422, "post", infer, {"json": tensor(data=one[:100])}),
        (422, "post", infer, {"json": tensor(datatype="INT64")}),
        (422, "post", infer, {"json": tensor(shape=[1, 14, 56])}),
        (422, "post", infer, {"json": tensor(name="pixels")}),
        (422, "post", infer, {"json": tensor(data=["a"] * 784)}),
        (422, "post", infer, {"json": tensor(data=[0.5] * 784)}),
        (422, "post", infer, {"json": {"inputs": "images"}}),
        (400, "post", infer, {"content": b"[", "headers": {"content-type": "application/json"}}),
        (400, "post", infer, {"json": dict(tensor(), outputs=[{"name": "logits"}])}),
        (400, "post", infer, {"content": b"{}", "headers": {**octets, "Inference-Header-Content-Length": "many"}}),
        (422, "post", infer, {"content": binary_head + bytes(100), "headers": {**octets, **binary_length}}),
        # strict v2 (#30 finding 9): content types, value types, binary sizes
        (415, "post", infer, {"content": json.dumps(tensor()).encode(), "headers": {"content-type": "text/plain"}}),
        (415, "post", infer, {"content": json.dumps(tensor()).encode()}),  # no content type at all
        (
            415,
            "post",
            infer,
            {"content": binary_head + bytes(784), "headers": {"content-type": "text/plain", **binary_length}},
        ),
        (422, "post", infer, {"json": tensor(data=[str(v) for v in one])}),  # numbers sent as strings
        (422, "post", infer, {"json": tensor(data=[None] * 784)}),
        (422, "post", infer, {"json": tensor(data=None)}),
        (422, "post", infer, {"json": tensor(data=[True] * 784)}),
        (
            422,
            "post",
            infer,
            {"content": binary_string_head + bytes(784), "headers": {**octets, **binary_string_length}},
        ),
        (422, "post", infer, {"content": binary_float_head + bytes(784), "headers": {**octets, **binary_float_length}}),
    ]


def test_every_bad_request_gets_its_4xx_and_the_server_stays_ready(server: dict[str, Any], mnist: Dataset) -> None:
    client = server["client"]
    cases = _bad_requests(mnist.x_test)
    assert len({(status, path, repr(sorted(kw))) for status, _, path, kw in cases}) >= 15
    for status, method, path, kwargs in cases:
        reply = getattr(client, method)(path, **kwargs)
        assert reply.status_code == status, (path, kwargs.keys(), reply.status_code, reply.text[:200])
        body = reply.json()
        assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
        assert "Traceback" not in reply.text
    assert client.get("/v2/health/ready").status_code == 200
    assert labels(client.post("/predict", json={"arrays": mnist.x_test[:2].tolist()}))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_does_not_grow_with_bad_requests(server: dict[str, Any], mnist: Dataset) -> None:
    client, pid = server["client"], server["pid"]
    cases = [c for c in _bad_requests(mnist.x_test) if c[0] != 413]  # the 21 MB bodies test the cap, not leaks
    for _, method, path, kwargs in cases:  # warm up every path once
        getattr(client, method)(path, **kwargs)
    before = _rss_mb(pid)
    for k in range(1500):  # 10,000 in benchmarks/serve.py
        status, method, path, kwargs = cases[k % len(cases)]
        assert getattr(client, method)(path, **kwargs).status_code == status
    assert _rss_mb(pid) - before < 50


def test_sigterm_drains_the_request_in_flight_then_exits_cleanly(
    mnist_run: Path, mnist: Dataset, tmp_path: Path
) -> None:
    server = Server(["--model", str(mnist_run / "models" / "cnn.pt")], tmp_path)
    proc, client = server.proc, server.client
    x = np.repeat(mnist.x_test[:64], 16, axis=0)  # 1,024 images: a request that takes a while
    body = json.dumps({"arrays": x.tolist()}).encode()  # encoded first: on a slow machine this alone took > 0.3 s
    answer: dict[str, Any] = {}
    sending = threading.Event()

    def send() -> None:
        sending.set()
        try:
            answer["r"] = client.post("/predict", content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:  # kept for the assertion's message
            answer["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    sending.wait(10)
    time.sleep(0.3)  # the request is on its way: the server reads and answers it while the signal arrives
    proc.send_signal(signal.SIGTERM)
    sender.join(60)
    assert proc.wait(60) == 0, server.stderr()
    assert "r" in answer, f"the request in flight got no answer: {answer.get('error')!r}"
    assert answer["r"].status_code == 200 and len(answer["r"].json()["results"][0]["predictions"]) == 1024


@pytest.mark.parametrize(
    ("model", "message"),
    [("no-such-model.pt", "no such model file"), ("tampered", "model file")],
)
def test_a_missing_or_tampered_model_fails_before_the_port_is_bound(
    model: str, message: str, mnist_run: Path, tmp_path: Path
) -> None:
    if model == "tampered":
        bad = tmp_path / "lr.skops"
        data = bytearray((mnist_run / "models" / "lr.skops").read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
        bad.write_bytes(bytes(data))
        model = str(bad)
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "serve", "--model", model, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_onnx_export_matches_pytorch_on_all_10000_test_images(mnist_run: Path, mnist: Dataset, tmp_path: Path) -> None:
    import shutil

    for name in ("cnn.pt", "cnn.pt.json"):  # a copy, so the export lands beside it as a user's would
        shutil.copy(mnist_run / "models" / name, tmp_path / name)
    result = service.export_model(service.ExportRequest(str(tmp_path / "cnn.pt")))
    output = tmp_path / "cnn.onnx"
    assert result["path"] == str(output) and output.is_file()
    assert result["opset"] == service.ONNX_OPSET and result["batchnorm_folded"]
    import onnx

    graph = onnx.load(str(output)).graph
    assert not any(node.op_type == "BatchNormalization" for node in graph.node)  # folded into the convolutions
    torch_model = service.Predictor(tmp_path / "cnn.pt")
    onnx_model = service.load_predictor(str(tmp_path / "cnn.pt"), tmp_path, "onnx")  # --runtime onnx: the file
    assert onnx_model.runtime == "onnx" and type(onnx_model.model).__name__ == "OnnxClassifier"
    p_torch = torch_model.probabilities(mnist.x_test)
    p_onnx = onnx_model.probabilities(mnist.x_test)
    assert p_onnx.shape == (10_000, 10)
    assert np.array_equal(p_onnx.argmax(axis=1), p_torch.argmax(axis=1))
    assert np.abs(p_onnx - p_torch).max() <= 1e-4
    with pytest.raises(service.DigitlabError, match="only the cnn exports to ONNX"):
        service.export_model(service.ExportRequest(str(mnist_run / "models" / "lr.skops"), output=tmp_path / "x.onnx"))


@pytest.fixture(scope="module")
def picture_folder(mnist: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 real test digits as PNG files in nested folders, one corrupt file and one text file."""
    root = tmp_path_factory.mktemp("pictures")
    for k in range(120):
        folder = root / f"batch{k % 3}" / ("deep" if k % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mnist.x_test[k]).save(folder / f"{k:04d}.png")
    (root / "batch0" / "broken.png").write_bytes(b"\x89PNG but not really")
    (root / "README.txt").write_text("not a picture")
    return root


def test_batch_scoring_streams_rows_and_a_bad_file_is_a_row(
    mnist_run: Path, mnist: Dataset, picture_folder: Path, tmp_path: Path
) -> None:
    model = str(mnist_run / "models" / "cnn.pt")
    for name in ("results.jsonl", "results.parquet"):
        request = service.BatchRequest((picture_folder,), tmp_path / name, model, chunk=32)
        summary = service.batch_predict(request)
        assert summary["files"] == 121 and summary["error"] == 1 and summary["ok"] + summary["uncertain"] == 120
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "results.parquet").to_pylist() == rows
    broken = [r for r in rows if r["status"] == "error"]
    assert len(broken) == 1 and broken[0]["file"].endswith("broken.png")
    assert "not a readable image" in broken[0]["error"]
    right = sum(r["label"] == mnist.class_names[mnist.y_test[int(Path(r["file"]).stem)]] for r in rows if r["label"])
    assert right >= 115


def test_batch_scoring_on_a_dask_local_cluster(mnist_run: Path, picture_folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "results.csv"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "digitlab", "predict", str(picture_folder), "--model"),
            *(str(mnist_run / "models" / "cnn.pt"), "--output", str(output), "--dask-local", "2", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["backend"] == "dask LocalCluster (2 workers)" and summary["files"] == 121 and summary["error"] == 1
    import csv

    with open(output, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 121 and len({r["file"] for r in rows}) == 121
    assert sum(r["status"] == "error" for r in rows) == 1


def test_two_workers_and_a_request_over_the_time_limit(mnist_run: Path, mnist: Dataset, tmp_path: Path) -> None:
    import psutil

    server = Server(["--model", str(mnist_run / "models" / "cnn.pt"), "--workers", "2", "--timeout", "0.3"], tmp_path)
    proc, client = server.proc, server.client
    try:
        workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) >= 2, [p.cmdline() for p in psutil.Process(proc.pid).children()]
        for _ in range(10):  # both workers answer
            assert labels(client.post("/predict", json={"arrays": mnist.x_test[:2].tolist()})) == ["7", "2"]
        slow = client.post("/predict?all=true", json={"arrays": np.repeat(mnist.x_test[:64], 16, axis=0).tolist()})
        assert slow.status_code == 503 and "longer than 0.3 s" in slow.json()["error"]
        assert client.get("/v2/health/ready").status_code == 200
    finally:
        server.stop()

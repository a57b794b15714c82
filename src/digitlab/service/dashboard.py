"""How to start the Streamlit dashboard (the command, its environment, the run it opens)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from digitlab.core.errors import DigitlabError
from digitlab.core.settings import RUN_ENV, RUNS_ENV
from digitlab.runs.lookup import find_run, latest_run
from digitlab.service.requests import (
    DashboardRequest,
)


@dataclass(frozen=True)
class Launch:
    """How to start the dashboard: the command, its environment and the run it shows."""

    command: list[str]
    env: dict[str, str]
    run: Path | None


def dashboard_launch(request: DashboardRequest) -> Launch:
    request.check()
    path = find_run(request.run, request.out) if request.run else latest_run(request.out)
    env = dict(os.environ, **{RUNS_ENV: str(path.parent if path is not None else Path(request.out).resolve())})
    if path is not None:
        env[RUN_ENV] = str(path)
    cmd = [sys.executable, "-m", "streamlit", "run", str(dashboard_app()), "--server.port", str(request.port)]
    cmd += ["--server.address", request.address, "--server.headless", str(not request.browser).lower()]
    cmd += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    cmd += ["--client.toolbarMode", "minimal"]
    return Launch(cmd, env, path)


def dashboard_app() -> Path:
    """The dashboard's Streamlit script, found without importing the dashboard (a face)."""
    from importlib.util import find_spec

    spec = find_spec("digitlab.faces.dashboard")
    if spec is None or spec.origin is None:
        raise DigitlabError("the digitlab dashboard is not installed with this copy of digitlab; reinstall it.")
    return Path(spec.origin).with_name("app.py")

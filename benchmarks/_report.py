"""Shared helpers for the benchmark scripts: machine facts and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARKDOWN = HERE / "BENCHMARKS.md"


def machine() -> dict[str, Any]:
    from digitlab.core.files import library_versions

    return {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": library_versions(),
    }


def update_section(name: str, body: str) -> None:
    """Replace the section ``name`` of BENCHMARKS.md (between its markers), or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = MARKDOWN.read_text() if MARKDOWN.exists() else "# Benchmarks\n\nMeasured by `make bench`.\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    from digitlab.core.files import atomic_write_bytes

    atomic_write_bytes(MARKDOWN, text.encode())


def table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fit_score(model: Any, ds: Any) -> tuple[float, float]:
    """Fit ``model`` on ``ds``'s training split, score it on the test split: accuracy and fit seconds."""
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(ds.x_train, ds.y_train)
    fit_s = time.perf_counter() - start
    return float((model.predict(ds.x_test) == ds.y_test).mean()), fit_s

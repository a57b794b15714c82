"""Batch scoring: ``digitlab predict FOLDER… --output results.csv|.jsonl|.parquet``, and ``digitlab read`` the same
way (whole numbers: ``BatchRequest.task = "read"``, a row per picture with its number and its characters).

Files are listed lazily (folders recursively, picture suffixes only), read in chunks and
scored; each chunk's rows go straight to the output file, so memory does not grow with the
number of files. With ``--dask-local N`` or ``--scheduler`` the chunks are scored on Dask
workers (each loads the model once), with a bounded number of chunks in flight. A file that
cannot be read is a row with its error; it never stops the batch. The output is written to a
temporary name and renamed when the batch is complete.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import IO, Any

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_path, check_new_file
from digitlab.runs.records import Scored
from digitlab.service.exporting import load_predictor
from digitlab.service.predictor import Predictor

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")
CHUNK = 256  # files a task reads and scores at once
COLUMNS = ("file", "status", "label", "confidence", "top3", "error", "model")
# a row of `digitlab read --output`: characters and reasons as JSON text
NUMBER_COLUMNS = ("file", "status", "text", "confidence", "uncertain", "characters", "reasons", "error", "model")
TASKS = ("predict", "read")


@dataclass(frozen=True)
class BatchRequest:
    paths: tuple[Path, ...]
    output: Path
    model: str = "best"  # a model file, a registry name, or best: the best reader of real pictures saved
    out: Path = Path("runs")
    runtime: str = "auto"  # exporting.RUNTIMES
    dask_local: int | None = None
    scheduler: str | None = None
    chunk: int = CHUNK
    force: bool = False  # write over an existing --output file
    task: str = "predict"  # or "read": whole numbers (``numbers.read_numbers``)
    method: str = "auto"  # for read: numbers.METHODS

    @property
    def columns(self) -> tuple[str, ...]:
        return NUMBER_COLUMNS if self.task == "read" else COLUMNS

    def check(self) -> None:
        if not self.paths:
            raise DigitlabError("name at least one picture or folder to read.")
        for path in self.paths:
            if not Path(path).exists():
                raise DigitlabError(f"{path}: no such file or folder.")
        if Path(self.output).suffix.lower() not in OUTPUT_FORMATS:
            raise DigitlabError(f"--output {self.output}: end the name in {', '.join(OUTPUT_FORMATS)}.")
        if Path(self.output).is_dir():
            raise DigitlabError(f"--output {self.output}: is a folder; pass a file name.")
        check_new_file(self.output, self.force)
        if self.dask_local is not None and self.dask_local < 1:
            raise DigitlabError(f"--dask-local {self.dask_local}: a LocalCluster needs 1 or more workers.")
        if self.dask_local is not None and self.scheduler is not None:
            raise DigitlabError("--dask-local and --scheduler: choose one Dask cluster, not both.")
        if self.chunk < 1:
            raise DigitlabError(f"--chunk {self.chunk}: use 1 or more files a task.")
        if self.task not in TASKS:
            raise DigitlabError(f"batch task {self.task!r}: choose one of {', '.join(TASKS)}.")


def picture_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files as given, and the pictures in each folder (recursively, sorted), one at a time."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            empty = True
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix.lower() in PICTURE_SUFFIXES:
                    empty = False
                    yield found
            if empty:
                yield path  # a row of its own: "a folder with no pictures in it"
        else:
            yield path


def _chunks(files: Iterator[Path], size: int) -> Iterator[list[str]]:
    while chunk := [str(p) for p in islice(files, size)]:
        yield chunk


def _rows(predictor: Predictor, files: list[str], task: str = "predict", method: str = "auto") -> list[dict[str, Any]]:
    if task == "read":
        return _number_rows(predictor, files, method)
    rows = []
    for p in predictor.predict(files):
        doc = p.to_json()
        top3 = " ".join(f"{t['label']}:{t['probability']:.4f}" for t in doc.get("top3", []))
        rows.append(
            {
                "file": doc["file"],
                "status": doc["status"],
                "label": doc.get("label"),
                "confidence": doc.get("confidence"),
                "top3": top3 or None,
                "error": doc.get("error"),
                "model": predictor.name,
            }
        )
    return rows


def _number_rows(predictor: Predictor, files: list[str], method: str) -> list[dict[str, Any]]:
    from digitlab.service.numbers import read_numbers

    rows = []
    for r in read_numbers(predictor, files, method=method):
        doc = r.to_json()
        rows.append(
            {
                "file": doc["file"],
                "status": doc["status"],
                "text": doc.get("text"),
                "confidence": doc.get("confidence"),
                "uncertain": doc.get("uncertain"),
                "characters": json.dumps(doc["characters"]) if "characters" in doc else None,
                "reasons": json.dumps(doc["reasons"]) if doc.get("reasons") else None,
                "error": doc.get("error"),
                "model": r.model,
            }
        )
    return rows


_WORKER_MODELS: dict[tuple[str, str], Predictor] = {}  # one load per worker process


def score_chunk(
    model_path: str, runtime: str, files: list[str], task: str = "predict", method: str = "auto"
) -> list[dict[str, Any]]:
    """Score one chunk on a Dask worker: the model is loaded the first time, then kept."""
    key = (model_path, runtime)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = load_predictor(model_path, Path("."), runtime)
    return _rows(_WORKER_MODELS[key], files, task, method)


class _Writer:
    """Rows to CSV, JSON Lines or Parquet, a chunk at a time."""

    def __init__(self, path: Path, kind: str, fh: IO[str] | None, columns: tuple[str, ...] = COLUMNS) -> None:
        self.kind = kind  # .csv, .jsonl or .parquet (path is the temporary file)
        self.path, self.fh, self.columns = path, fh, columns
        self.parquet: Any = None
        self.csv: Any = None
        if self.kind == ".csv":
            assert fh is not None
            self.csv = csv.DictWriter(fh, fieldnames=columns)
            self.csv.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.kind == ".csv":
            self.csv.writerows(rows)
        elif self.kind == ".jsonl":
            assert self.fh is not None
            self.fh.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows, schema=_schema(self.columns))
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(str(self.path), _schema(self.columns))
            self.parquet.write_table(table)

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.kind == ".parquet":  # no rows: still a valid, empty file
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist([], schema=_schema(self.columns)), str(self.path))


def _schema(columns: tuple[str, ...] = COLUMNS) -> Any:
    """Parquet's columns: text, but the confidence (a float) and whether a number is uncertain (a bool)."""
    import pyarrow as pa

    kinds = {"confidence": pa.float64(), "uncertain": pa.bool_()}
    return pa.schema([(name, kinds.get(name, pa.string())) for name in columns])


def batch_predict(request: BatchRequest, on_progress: progress.Progress | None = None) -> Scored:
    """Score every picture under ``request.paths`` into ``request.output``; counts and speed back."""
    request.check()
    if request.output.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DigitlabError("--output .parquet needs pyarrow; `pip install pyarrow`, or use .csv/.jsonl.") from None
    predictor = load_predictor(request.model, request.out, request.runtime)  # fails before any file is read
    if request.task == "read":
        from digitlab.service.numbers import method_for

        request = replace(request, method=method_for(request.method))  # one line now, not in every chunk
    counts = {"ok": 0, "uncertain": 0, "blank": 0, "error": 0}
    start = time.perf_counter()
    chunks = _chunks(picture_files(request.paths), request.chunk)
    with progress.reporting(on_progress), atomic_path(request.output) as tmp:
        text = request.output.suffix.lower() != ".parquet"
        with open(tmp, "w", newline="") if text else nullcontext() as fh:
            writer = _Writer(tmp, request.output.suffix.lower(), fh, request.columns)
            done = 0
            for rows in _scored(chunks, predictor, request):
                writer.write(rows)
                for row in rows:
                    counts[row["status"]] += 1
                done += len(rows)
                progress.say(request.task, f"{request.task}: {done:,} pictures scored", done=done)
            writer.close()
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    lines = request.task == "read" and request.method == "lines"
    return Scored.of(
        {
            "model": "line-reader" if lines else predictor.name,
            "model_path": str(predictor.path),
            "runtime": predictor.runtime,
            "output": str(request.output),
            "files": total,
            **counts,
            "seconds": seconds,
            "images_per_s": total / seconds if seconds > 0 else 0.0,
            "backend": _backend(request),
        }
    )


def _backend(request: BatchRequest) -> str:
    if request.dask_local:
        return f"dask LocalCluster ({request.dask_local} workers)"
    return f"dask {request.scheduler}" if request.scheduler else "local"


def _scored(chunks: Iterator[list[str]], predictor: Predictor, request: BatchRequest) -> Iterator[list[dict[str, Any]]]:
    if request.dask_local is None and request.scheduler is None:
        for chunk in chunks:
            yield _rows(predictor, chunk, request.task, request.method)
        return
    from dask.distributed import as_completed

    from digitlab.training.tune import dask_client

    with dask_client(request.scheduler, request.dask_local) as (client, _):
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        submit: Callable[[list[str]], Any] = lambda chunk: client.submit(  # noqa: E731
            score_chunk, str(predictor.path), request.runtime, chunk, request.task, request.method, pure=False
        )
        pending = as_completed([submit(c) for c in islice(chunks, 2 * workers)])  # at most 2 chunks a worker
        for future in pending:
            yield future.result()
            future.release()
            following = next(chunks, None)
            if following is not None:
                pending.add(submit(following))

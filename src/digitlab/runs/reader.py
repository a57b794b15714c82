"""One reader for a run folder: ``Run.open(path)`` and every record the run holds.

The report, the dashboard, ``runs`` (history) and MLflow logging read a run through this class, never by
globbing or parsing its files themselves. A file is parsed once for each version of it (path, size and
modification time), so the dashboard's reruns cost nothing; a file that is not readable JSON, or not the
record its name says, is left out and named in ``problems`` (``strict=True``: a one-line error instead).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from digitlab.core.errors import DigitlabError
from digitlab.runs.folders import RUN_FILE, is_complete
from digitlab.runs.records import (
    Augmentation,
    AugmentCompare,
    Compare,
    DataInfo,
    Ensemble,
    Evaluation,
    Explore,
    JsonDoc,
    Look,
    MapPoints,
    Mine,
    Personalise,
    Preprocess,
    Record,
    Summary,
    Tune,
    record_for,
)

R = TypeVar("R", bound=Record)


@lru_cache(maxsize=1024)
def _parse(path: str, version: tuple[int, int]) -> JsonDoc | str:
    """The JSON object in ``path`` at this (size, mtime_ns), or why it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return f"{path}: not readable JSON ({exc}); re-run the step that writes it."
    return data if isinstance(data, dict) else f"{path}: not a JSON object; re-run the step that writes it."


@lru_cache(maxsize=1024)
def _validated(kind: type[Record], path: str, version: tuple[int, int]) -> Record | str:
    """The record of ``kind`` in ``path`` at this version (records are frozen: one is shared by every reader),
    or why there is none: a page or a listing that asks for the same record again does not validate it again."""
    found = _parse(path, version)
    if isinstance(found, str):
        return found
    try:
        return kind.of(found, path)
    except DigitlabError as exc:
        return str(exc)


class Run:
    """A run folder, read. Properties are ``None`` (or empty) where the run has no such step."""

    def __init__(self, path: Path, strict: bool = False) -> None:
        self.path = path
        self.strict = strict
        self.problems: list[str] = []
        self.unreadable: list[str] = []  # the names of the files in problems

    @classmethod
    def open(cls, path: str | Path, strict: bool = False) -> Run:
        folder = Path(path)
        if not folder.is_dir():
            raise DigitlabError(f"{folder}: no such run folder; `digitlab runs` lists the runs there are.")
        return cls(folder, strict)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The folder's own name, also when opened through ``runs/latest``."""
        return self.path.resolve().name

    @property
    def complete(self) -> bool:
        return is_complete(self.path)

    # --- one file -------------------------------------------------------------------------------------

    def _version(self, file_name: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of a file of the run, or None when it is not a file there."""
        path = self.path / file_name
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns) if path.is_file() else None

    def doc(self, file_name: str) -> JsonDoc | None:
        """A file's JSON object, or None when it is not there (or not readable: see ``problems``)."""
        version = self._version(file_name)
        if version is None:
            return None
        found = _parse(str(self.path / file_name), version)
        if isinstance(found, str):
            self._problem(found, file_name)
            return None
        return found

    def read(self, kind: type[R], name: str = "") -> R | None:
        file_name = kind.FILE.format(name=name)
        version = self._version(file_name)
        if version is None:
            return None
        found = _validated(kind, str(self.path / file_name), version)
        if isinstance(found, str):
            self._problem(found, file_name)
            return None
        return found  # type: ignore[return-value]  # _validated(kind, ...) is a kind

    def _problem(self, text: str, file_name: str) -> None:
        if self.strict:
            raise DigitlabError(text)
        if text not in self.problems:
            self.problems.append(text)
            self.unreadable.append(file_name)

    def _named(self, kind: type[R]) -> dict[str, R]:
        """Every file of a named kind (``evaluate-*.json``), by name, sorted."""
        head, _, tail = kind.FILE.partition("{name}")
        found: dict[str, R] = {}
        for path in sorted(self.path.glob(f"{head}*{tail}")):
            name = path.name[len(head) : len(path.name) - len(tail)]
            if record_for(path.name) is kind and (record := self.read(kind, name)) is not None:
                found[name] = record
        return found

    # --- the steps --------------------------------------------------------------------------------------

    @property
    def summary(self) -> Summary | None:
        return self.read(Summary)

    @property
    def data(self) -> DataInfo | None:
        """The data the run used (``data.json``, or what ``metrics.json`` of an older run holds)."""
        found = self.read(DataInfo)
        if found is None and (summary := self.summary) is not None and summary.data:
            return DataInfo.of(summary.data, str(self.path / Summary.FILE))
        return found

    @property
    def settings(self) -> dict[str, Any]:
        summary = self.summary
        return dict(summary.settings) if summary else {}

    @property
    def explore(self) -> Explore | None:
        return self.read(Explore)

    @property
    def preprocess(self) -> Preprocess | None:
        return self.read(Preprocess)

    @property
    def compare(self) -> Compare | None:
        return self.read(Compare)

    @property
    def evaluations(self) -> dict[str, Evaluation]:
        """Every model evaluation: compare's models in its order, then any other evaluated model by name."""
        found = self._named(Evaluation)
        compare = self.compare
        order = [n for n in (compare.names if compare else []) if n in found]
        return {n: found[n] for n in order + sorted(set(found) - set(order))}

    def evaluation(self, name: str) -> Evaluation | None:
        return self.read(Evaluation, name)

    @property
    def tune(self) -> Tune | None:
        return self.read(Tune)

    @property
    def augmentations(self) -> dict[str, Augmentation]:
        return self._named(Augmentation)

    @property
    def augment_compare(self) -> AugmentCompare | None:
        return self.read(AugmentCompare)

    @property
    def ensemble(self) -> Ensemble | None:
        return self.read(Ensemble)

    @property
    def mine(self) -> Mine | None:
        return self.read(Mine)

    @property
    def personalise(self) -> Personalise | None:
        return self.read(Personalise)

    @property
    def look(self) -> Look | None:
        return self.read(Look)

    @property
    def maps(self) -> dict[str, MapPoints]:
        return self._named(MapPoints)

    @property
    def model_names(self) -> list[str]:
        """The run's models: compare's table, else the evaluated ones."""
        compare = self.compare
        return compare.names if compare else list(self.evaluations)

    def records(self) -> dict[str, Record]:
        """Every record in the folder, by file name (what MLflow logging sends)."""
        found: dict[str, Record] = {}
        for path in sorted(self.path.glob("*.json")):
            kind = record_for(path.name)
            if path.name == RUN_FILE or kind is None:
                continue
            head, _, tail = kind.FILE.partition("{name}")
            name = path.name[len(head) : len(path.name) - len(tail)] if tail else ""
            if (record := self.read(kind, name)) is not None:
                found[path.name] = record
        return found

    def figure(self, rel: str | None) -> Path | None:
        """A figure the run's records name, if it is a file in the run folder."""
        if not rel:
            return None
        path = self.path / rel
        return path if path.is_file() else None

"""What each step leaves in a run folder, as frozen, typed records that write and read their own JSON.

One record a file: ``compare.json`` is a :class:`Compare`, ``evaluate-cnn.json`` an :class:`Evaluation`, and so
on (``FILE`` names it; ``{name}`` is the model, library or map). A record names the fields its readers use
and keeps every other key it was given (``extra="allow"``), so a file written by an older or newer digitlab
reads back and writes out unchanged: ``Record.from_json(doc).to_json() == doc`` for every file a run holds
(tests/runs/test_records.py). The step builds its record from its work, saves it (whole or not at all) and
returns it; readers (:mod:`digitlab.runs.reader`) get records back, never dicts picked apart by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digitlab.core.errors import DigitlabError
from digitlab.core.files import to_jsonable, write_json

JsonDoc = dict[str, Any]  # the JSON edge: what a file holds and `--json` prints


class Record(BaseModel):
    """A frozen record with its own JSON; unknown keys ride along untouched."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)
    FILE: ClassVar[str] = ""

    @classmethod
    def of(cls, doc: JsonDoc, where: str = "") -> Self:
        """The record of a step's result (NumPy values and paths become plain JSON first)."""
        try:
            return cls.model_validate(to_jsonable(doc))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise DigitlabError(
                f"{where or cls.FILE or cls.__name__}: field {field!r} {first['msg'].lower()}; "
                "re-run the step that writes it."
            ) from None

    from_json = of

    def to_json(self) -> JsonDoc:
        """The JSON doc, with exactly the keys it was made or read with."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def get(self, key: str, default: Any = None) -> Any:
        """One key of the JSON doc (templates and `--json` edges read records as docs)."""
        return self.to_json().get(key, default)

    def __getitem__(self, key: str) -> Any:
        """One key of the JSON doc, for the edges that render it (tables, templates)."""
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def save(self, folder: str | Path, name: str = "") -> Path:
        """Write the record to its file in ``folder``, whole or not at all."""
        return write_json(Path(folder) / self.FILE.format(name=name), self.to_json())

    def adding(self, **more: Any) -> Self:
        """The same record with more keys (or new values), as a new record."""
        return self.of(dict(self.to_json(), **more))

    def saved(self, folder: str | Path, name: str = "") -> Self:
        self.save(folder, name)
        return self


class ModelRow(Record):
    """One trained model in compare's table."""

    model: str
    accuracy: float
    macro_f1: float | None = None
    fit_s: float | None = None
    predict_s: float | None = None
    size_bytes: int | None = None
    path: str | None = None


class DataInfo(Record):
    FILE: ClassVar[str] = "data.json"
    dataset: str | None = None
    classes: list[str] = []
    image_shape: list[int] = []
    splits: dict[str, dict[str, Any]] = {}


class Explore(DataInfo):
    FILE: ClassVar[str] = "explore.json"
    figures: dict[str, str] = {}


class Preprocess(Record):
    FILE: ClassVar[str] = "preprocess.json"
    figures: dict[str, str] = {}


class Compare(Record):
    FILE: ClassVar[str] = "compare.json"
    dataset: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    seed: int | None = None
    models: list[ModelRow] = []
    best: str | None = None
    figure: str | None = None

    @property
    def names(self) -> list[str]:
        return [row.model for row in self.models]


class Evaluation(Record):
    FILE: ClassVar[str] = "evaluate-{name}.json"
    accuracy: float
    macro_f1: float | None = None
    n_test: int | None = None
    n_errors: int | None = None
    confusion_matrix: list[list[int]] = []
    report: dict[str, Any] = {}
    confused_pairs: list[dict[str, Any]] = []
    misclassified: list[dict[str, Any]] = []
    figures: dict[str, str] = {}

    @property
    def per_class(self) -> list[dict[str, Any]]:
        """The classification report's rows (each class, then the averages), each with its label."""
        return [dict(v, label=k) for k, v in self.report.items() if isinstance(v, dict)]


class Tune(Record):
    FILE: ClassVar[str] = "tune.json"
    model: str
    saved_as: str | None = None
    best_params: dict[str, Any] = {}
    best_cv_accuracy: float | None = None
    candidates: list[dict[str, Any]] = []
    test: dict[str, Any] = {}
    figures: dict[str, str] = {}


class Augmentation(Record):
    FILE: ClassVar[str] = "augment-{name}.json"
    model: str
    library: str
    without: dict[str, Any] = {}
    with_: dict[str, Any] = Field(default={}, alias="with")
    gain_pp: float | None = None
    figures: dict[str, str] = {}


class AugmentCompare(Record):
    FILE: ClassVar[str] = "augment-compare.json"
    model: str
    results: list[dict[str, Any]] = []
    figure: str | None = None


class Ensemble(Record):
    FILE: ClassVar[str] = "ensemble.json"


class Mine(Record):
    """How each model reads the user's own digits (``mine.json``)."""

    FILE: ClassVar[str] = "mine.json"


class Personalise(Record):
    FILE: ClassVar[str] = "personalise.json"


class Look(Record):
    FILE: ClassVar[str] = "look.json"


class MapPoints(Record):
    """A map of all digits (``map-<name>.json``): its facts and every point."""

    FILE: ClassVar[str] = "map-{name}.json"


class Summary(Record):
    """``metrics.json``: what ``run`` (or ``train``) did, its settings and its headline figures."""

    FILE: ClassVar[str] = "metrics.json"
    settings: dict[str, Any] = {}
    data: dict[str, Any] | None = None


class Report(Record):
    """What building a run's HTML report did (``report.html``)."""

    path: str
    bytes: int
    sections: list[str] = []
    models: list[str] = []
    figures: int = 0
    missing_figures: list[str] = []


class Exported(Record):
    """A model exported for serving (ONNX, TorchScript)."""


class Scored(Record):
    """A batch of pictures scored into a results file (``predict --output``)."""


class Explained(Record):
    """Why a model answered each picture (``digitlab explain``): one explanation a picture, files beside."""


class MlflowLogged(Record):
    """Runs logged to MLflow."""


class Outcome(Record):
    """What a change to your digits (import, relabel, export, remove, clear) or a listing of them did."""


RECORDS: tuple[type[Record], ...] = (
    Summary,
    DataInfo,
    Explore,
    Preprocess,
    Compare,
    Evaluation,
    Tune,
    AugmentCompare,
    Augmentation,
    Ensemble,
    Mine,
    Personalise,
    Look,
    MapPoints,
)


def record_for(file_name: str) -> type[Record] | None:
    """The record a run file holds, by its name (``evaluate-svm.json`` -> Evaluation)."""
    for kind in RECORDS:
        head, _, tail = kind.FILE.partition("{name}")
        if (file_name == kind.FILE) if not tail else (file_name.startswith(head) and file_name.endswith(tail)):
            return kind
    return None


@dataclass(frozen=True)
class StepResult:
    """What a use case returns: the step, the run folder it wrote (None for steps that write none) and its record."""

    step: str  # "train", "compare", "run" …
    run: Path | None
    record: Record  # the step's record

    @property
    def data(self) -> JsonDoc:
        return self.record.to_json()

    def to_json(self) -> JsonDoc:
        """What ``--json`` prints: the record's doc, with ``run`` (the folder) when the step wrote one."""
        doc = self.data
        if self.run is not None:
            doc["run"] = str(self.run)
        return doc

    def __getitem__(self, key: str) -> Any:
        return str(self.run) if key == "run" and self.run is not None else self.data[key]

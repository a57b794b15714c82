"""The fault campaign: bad input, faults and misuse, each ending in one clear line.

Every case runs the real `digitlab` entry point (signal handlers, CLI, service) against real
files and asserts: the exit code, exactly one `error:` line on stderr naming the culprit, no
traceback, nothing on stdout, no file left behind and nothing already saved changed (every
file under the working folder and the data cache is hashed before and after).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from digitlab import service
from digitlab.data import sources
from digitlab.data.idx import write_idx
from tests.conftest import digitlab, mnist_like, write_tiny_idx


@dataclass
class World:
    """A working folder with one complete run (lr and knn on 28×28 digits, lr on 8×8 digits) and a data cache."""

    root: Path
    idx: Path  # a good 28×28 IDX folder
    runs: Path
    cache: Path
    env: dict[str, str] = field(default_factory=dict)

    def bad(self, name: str) -> Path:
        path = self.root / "bad" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def idx_copy(self, name: str) -> Path:
        folder = self.bad(name)
        shutil.copytree(self.idx, folder)
        return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    idx = write_tiny_idx(root / "idx")
    runs = root / "runs"
    data = service.DataRequest(dataset=f"idx:{idx}")
    service.compare(service.CompareRequest(("lr", "knn"), data, runs))
    (root / "cache").mkdir()
    return root


@pytest.fixture
def world(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    root = tmp_path / "w"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DIGITLAB_DATA", str(root / "cache"))
    return World(root, root / "idx", root / "runs", root / "cache")


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: path -> SHA-256 (folders: 'dir', links: their target)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + str(path.readlink())
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run_digitlab(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The real entry point, in this process (signal handlers restored afterwards)."""
    from digitlab.__main__ import entry

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv = sys.argv
    sys.argv = ["digitlab", *args]
    try:
        with pytest.raises(SystemExit) as stopped:
            entry()
    finally:
        sys.argv = argv
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capfd.readouterr()
    code = stopped.value.code
    return int(code) if isinstance(code, int) else (0 if code is None else 1), out, err


# --- how each bad thing is made -------------------------------------------------------------------------

Make = Callable[[World], list[str]]


def idx_with(change: Callable[[Path], None]) -> Make:
    def make(w: World) -> list[str]:
        folder = w.idx_copy("idx")
        change(folder)
        return ["train", "--model", "lr", "--dataset", f"idx:{folder}"]

    return make


def _labels(folder: Path, split: str, fix: Callable[[np.ndarray], np.ndarray]) -> None:
    from digitlab.data.idx import read_idx

    name = f"{split}-labels-idx1-ubyte"
    write_idx(folder / name, fix(read_idx(folder / name).copy()).astype(np.uint8))


def _images(folder: Path, split: str, array: np.ndarray) -> None:
    write_idx(folder / f"{split}-images-idx3-ubyte", array)


def _set_first(values: np.ndarray, value: int) -> np.ndarray:
    values[0] = value
    return values


def skops_file(model: object, meta: dict[str, object] | None = None) -> Make:
    def make(w: World) -> list[str]:
        import skops.io as sio

        from digitlab.models.store import MODEL_FORMAT

        path = w.bad("model.skops")
        content = {"format": MODEL_FORMAT, "metadata": json.dumps({"format": MODEL_FORMAT, **(meta or {})})}
        sio.dump(dict(content, model=model() if callable(model) else model), path)
        return ["evaluate", "--model", str(path), "--dataset", f"idx:{w.idx}"]

    return make


def _unfitted() -> object:
    from digitlab.models import registry

    return registry.get("lr").build(0)


def _short_names(w: World) -> list[str]:
    import skops.io as sio

    from digitlab.models.store import MODEL_FORMAT

    src = next(w.runs.glob("*/models/lr.skops"))
    content = sio.load(src, trusted=sio.get_untrusted_types(file=src))
    meta = json.loads(content["metadata"])
    meta["class_names"] = ["0", "1"]
    path = w.bad("short.skops")
    sio.dump({"format": MODEL_FORMAT, "metadata": json.dumps(meta), "model": content["model"]}, path)
    return ["predict", str(w.idx / "x.png"), "--model", str(path)]


def _evil_skops(w: World) -> list[str]:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = w.bad("evil.skops")
    sio.dump({"format": "digitlab-model/1", "metadata": "{}", "model": FunctionTransformer(os.system)}, path)
    return ["evaluate", "--model", str(path), "--dataset", f"idx:{w.idx}"]


def _file(name: str, data: bytes) -> Callable[[World], Path]:
    def make(w: World) -> Path:
        path = w.bad(name)
        path.write_bytes(data)
        return path

    return make


def _cache_dir_entry(w: World) -> list[str]:
    (w.cache / "mnist" / sources.STANDARD_NAMES[0]).mkdir(parents=True)
    return ["data", "fetch"]


def _cache_flipped(w: World) -> list[str]:
    folder = w.cache / "mnist"
    folder.mkdir()
    (folder / sources.STANDARD_NAMES[3]).write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 8)
    return ["data", "info"]


def _data_env_file(w: World) -> list[str]:
    target = w.bad("not-a-folder")
    target.write_text("x")
    w.env["DIGITLAB_DATA"] = str(target)
    return ["data", "info"]


def _out_file(w: World) -> list[str]:
    target = w.bad("out-file")
    target.write_text("x")
    return ["explore", "--dataset", "digits", "--out", str(target)]


def _tampered_cnn(field_: str, value: object) -> Make:
    def make(w: World) -> list[str]:
        folder = w.bad("cnn")
        folder.mkdir()
        config = {"params": {"channels": [4, 8]}, "classes": list(range(10)), "image_shape": [28, 28]}
        config[field_] = value
        (folder / "cnn.pt").write_bytes(b"not torch weights")
        (folder / "cnn.pt.json").write_text(json.dumps(config))
        return ["evaluate", "--model", str(folder / "cnn.pt"), "--dataset", f"idx:{w.idx}"]

    return make


def _ensemble_manifest(text: str) -> Make:
    def make(w: World) -> list[str]:
        path = w.bad("vote.ensemble.json")
        path.write_text(text)
        return ["evaluate", "--model", str(path), "--dataset", f"idx:{w.idx}"]

    return make


def _predict(*names: str, model: str = "lr") -> Make:
    def make(w: World) -> list[str]:
        return ["predict", *names, "--model", model]

    return make


def _png_bomb(w: World) -> list[str]:
    from PIL import Image

    path = w.bad("huge.png")
    Image.new("L", (8000, 6000), 255).save(path)
    return ["predict", str(path), "--model", "lr"]


def _too_big(w: World) -> list[str]:
    path = w.bad("big.png")
    with open(path, "wb") as fh:
        fh.truncate(21 * 2**20)
    return ["predict", str(path), "--model", "lr"]


def _a_digits_model_only(w: World) -> list[str]:
    shutil.rmtree(w.runs)
    service.train(service.TrainRequest("lr", service.DataRequest(dataset="digits"), w.runs))
    return ["predict", str(w.idx), "--model", "lr"]


def _no_run_at_all(w: World) -> list[str]:
    shutil.rmtree(w.runs)
    return ["predict", str(w.idx), "--out", str(w.runs)]  # --model best, the default


def _only_8x8_models_for_the_default(w: World) -> list[str]:
    _a_digits_model_only(w)
    return ["predict", str(w.idx), "--out", str(w.runs)]


# --- deleting and overwriting only what is ours (#30 findings 1, 3, 13) ------------------------------------------


def _victim(w: World) -> Path:
    """A folder outside --out that nothing may delete (its files are in the snapshot)."""
    victim = w.root / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "precious.txt").write_text("keep me")
    return victim


def _rm(*names: str, force: bool = True) -> Make:
    def make(w: World) -> list[str]:
        return ["runs", "rm", *names, "--out", str(w.runs), "--yes", *(["--force"] if force else [])]

    return make


def _rm_symlink_outside(w: World) -> list[str]:
    (w.runs / "l").symlink_to(_victim(w))
    return _rm("l")(w)


def _rm_symlink_named_as_run(w: World) -> list[str]:
    (w.runs / "20990101-000000-run").symlink_to(_victim(w))
    return _rm("20990101-000000-run")(w)


def _rm_symlink_to_a_run(w: World) -> list[str]:
    real = next(p for p in w.runs.iterdir() if p.is_dir() and not p.is_symlink())
    (w.runs / "alias").symlink_to(real.name)
    return _rm("alias")(w)


def _rm_folder_in_cwd(w: World) -> list[str]:
    (w.root / "src").mkdir()
    (w.root / "src" / "code.py").write_text("x = 1\n")
    return _rm("src")(w)


def _rm_through_symlinked_folder(w: World) -> list[str]:
    elsewhere = w.root / "elsewhere"
    shutil.copytree(next(p for p in w.runs.iterdir() if p.is_dir() and not p.is_symlink()), elsewhere / "r")
    (w.runs / "door").symlink_to(elsewhere)
    return _rm(str(w.runs / "door" / "r"))(w)


def _rm_foreign_folder(w: World) -> list[str]:
    foreign = w.runs / "20260101-000000-photos"  # named like a run, made by someone else
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    return _rm(foreign.name)(w)


def _rm_latest_outside(w: World) -> list[str]:
    (w.runs / "latest").unlink()
    (w.runs / "latest").symlink_to(_victim(w))
    return _rm("latest")(w)


def _rm_run_with_marker_replaced(w: World) -> list[str]:
    from digitlab.runs.folders import MARKER

    run = next(p for p in w.runs.iterdir() if p.is_dir() and not p.is_symlink())
    (run / MARKER).unlink()
    (run / MARKER).symlink_to(_victim(w) / "precious.txt")  # a marker that is a link is no marker
    (run / "run.json").unlink()
    return _rm(run.name)(w)


def _show_outside(w: World) -> list[str]:
    return ["runs", "show", str(_victim(w)), "--out", str(w.runs)]


def _mine_with_digits(w: World) -> None:
    from digitlab.data.your_digits import DigitStore

    w.env["DIGITLAB_HOME"] = str(w.root / "home")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    DigitStore(w.root / "home" / "mine.sqlite3").add(digit, _png_bytes(), 1, "ana", "canvas")


def _mine_export_over(w: World) -> list[str]:
    _mine_with_digits(w)
    folder = w.bad("export")
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"somebody else's file")
    return ["mine", "export", str(folder)]


def _mine_export_png_over(w: World) -> list[str]:
    _mine_with_digits(w)
    _mine_export_to(w, "png")
    return ["mine", "export", str(w.bad("png")), "--format", "png"]


def _mine_export_to(w: World, fmt: str) -> None:
    import os

    old = os.environ.get("DIGITLAB_HOME")
    os.environ["DIGITLAB_HOME"] = w.env["DIGITLAB_HOME"]
    try:
        service.mine.export(w.bad(fmt), fmt)
    finally:
        if old is None:
            del os.environ["DIGITLAB_HOME"]
        else:
            os.environ["DIGITLAB_HOME"] = old


def _mine_export_nowhere(w: World) -> list[str]:
    _mine_with_digits(w)
    return ["mine", "export", "/dev/null/x"]


CASES: list[tuple[str, Make, int, str]] = [
    # --- command-line values -------------------------------------------------------------
    ("seed-negative", lambda w: ["train", "--dataset", "digits", "--seed", "-1"], 1, "--seed -1"),
    ("seed-too-big", lambda w: ["train", "--dataset", "digits", "--seed", "4294967296"], 1, "--seed 4294967296"),
    ("seed-float", lambda w: ["train", "--dataset", "digits", "--seed", "1e20"], 2, "'--seed'"),
    ("seed-text", lambda w: ["explore", "--dataset", "digits", "--seed", "abc"], 2, "'--seed'"),
    ("tune-n-iter-0", lambda w: ["tune", "--dataset", "digits", "--n-iter", "0"], 1, "--n-iter 0"),
    ("tune-n-jobs-0", lambda w: ["tune", "--dataset", "digits", "--n-jobs", "0"], 1, "--n-jobs 0"),
    ("tune-param-text", lambda w: ["tune", "--dataset", "digits", "--param", "clf__C=abc"], 1, "clf__C=abc"),
    ("tune-param-no-equals", lambda w: ["tune", "--dataset", "digits", "--param", "clf__C"], 1, "--param 'clf__C'"),
    ("tune-param-unknown", lambda w: ["tune", "--dataset", "digits", "--param", "clf__X=1"], 1, "'clf__X'"),
    ("tune-search-typo", lambda w: ["tune", "--dataset", "digits", "--search", "gird"], 1, "'gird'"),
    ("tune-cv-1", lambda w: ["tune", "--dataset", "digits", "--cv", "1"], 1, "--cv 1"),
    ("tune-dask-local-0", lambda w: ["tune", "--dataset", "digits", "--dask-local", "0"], 1, "--dask-local 0"),
    ("tune-two-clusters", lambda w: ["tune", "--dask-local", "1", "--scheduler", "tcp://h:1"], 1, "--dask-local"),
    ("tune-train-size", lambda w: ["tune", "--dataset", "digits", "--train-size", "5"], 1, "--train-size 5"),
    ("compare-twice", lambda w: ["compare", "--dataset", "digits", "--models", "lr,lr"], 1, "lr is listed twice"),
    ("compare-typo", lambda w: ["compare", "--dataset", "digits", "--models", "lr,svn"], 1, "'svn'"),
    ("compare-empty", lambda w: ["compare", "--dataset", "digits", "--models", ","], 1, "no model named"),
    ("train-typo", lambda w: ["train", "--dataset", "digits", "--model", "svn"], 1, "'svn'"),
    ("augment-typo", lambda w: ["augment", "--dataset", "digits", "--library", "elastc"], 1, "'elastc'"),
    ("augment-factor-0", lambda w: ["augment", "--dataset", "digits", "--factor", "0"], 1, "--factor 0"),
    ("ensemble-nan", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "nan,1"], 1, "'nan,1'"),
    ("ensemble-inf", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "inf,1"], 1, "'inf,1'"),
    ("ensemble-negative", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "-1,2"], 1, "'-1,2'"),
    ("ensemble-zero", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "0,0"], 1, "'0,0'"),
    ("ensemble-count", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "1,2,3"], 1, "'1,2,3'"),
    ("ensemble-text", lambda w: ["ensemble", "--models", "lr,knn", "--weights", "a,b"], 1, "'a,b'"),
    ("ensemble-one", lambda w: ["ensemble", "--models", "lr"], 1, "at least two models"),
    ("ensemble-twice", lambda w: ["ensemble", "--models", "lr,lr"], 1, "lr is listed twice"),
    ("run-tune-typo", lambda w: ["run", "--dataset", "digits", "--tune", "svn"], 1, "'svn'"),
    ("run-augment-typo", lambda w: ["run", "--dataset", "digits", "--augment", "elastc"], 1, "'elastc'"),
    ("run-search-typo", lambda w: ["run", "--dataset", "digits", "--tune", "lr", "--search", "x"], 1, "'x'"),
    ("dashboard-port-0", lambda w: ["dashboard", "--port", "0"], 1, "--port 0"),
    ("dashboard-port-big", lambda w: ["dashboard", "--port", "70000"], 1, "--port 70000"),
    ("dashboard-out-nowhere", lambda w: ["dashboard", "--out", "/nowhere"], 1, "/nowhere"),
    ("dashboard-run-missing", lambda w: ["dashboard", "no-such-run"], 1, "'no-such-run'"),
    ("report-run-missing", lambda w: ["report", "no-such-run"], 1, "'no-such-run'"),
    ("unknown-option", lambda w: ["train", "--bogus"], 2, "--bogus"),
    ("unknown-command", lambda w: ["trian"], 2, "trian"),
    ("dataset-typo", lambda w: ["data", "info", "--dataset", "mnst"], 1, "'mnst'"),
    # --- data ---------------------------------------------------------------------------
    ("data-dir-missing", lambda w: ["data", "fetch", "--data-dir", "/no/such"], 1, "/no/such"),
    ("idx-dir-missing", lambda w: ["explore", "--dataset", "idx:/no/such"], 1, "idx:/no/such"),
    ("idx-file-missing", idx_with(lambda f: (f / sources.STANDARD_NAMES[1]).unlink()), 1, sources.STANDARD_NAMES[1]),
    (
        "idx-file-is-folder",
        idx_with(lambda f: ((f / "t10k-images-idx3-ubyte").unlink(), (f / "t10k-images-idx3-ubyte").mkdir())),
        1,
        "t10k-images-idx3-ubyte",
    ),
    ("idx-sizes-differ", idx_with(lambda f: _images(f, "t10k", np.zeros((100, 20, 20), np.uint8))), 1, "20×20"),
    (
        "idx-no-images",
        idx_with(lambda f: (_images(f, "t10k", np.zeros((0, 28, 28), np.uint8)), _labels(f, "t10k", lambda y: y[:0]))),
        1,
        "0 images",
    ),
    ("idx-one-class", idx_with(lambda f: _labels(f, "train", lambda y: y * 0)), 1, "at least two classes"),
    ("idx-stray-label", idx_with(lambda f: _labels(f, "train", lambda y: _set_first(y, 200))), 1, "label 200: 1 image"),
    ("idx-test-label-unseen", idx_with(lambda f: _labels(f, "t10k", lambda y: _set_first(y, 12))), 1, "test labels 12"),
    ("idx-count-mismatch", idx_with(lambda f: _labels(f, "train", lambda y: y[:-1])), 1, "do not match"),
    (
        "idx-not-idx",
        idx_with(lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(b"hello world, not idx")),
        1,
        "t10k-labels-idx1-ubyte",
    ),
    (
        "idx-truncated",
        idx_with(
            lambda f: (f / "train-images-idx3-ubyte").write_bytes((f / "train-images-idx3-ubyte").read_bytes()[:5000])
        ),
        1,
        "train-images-idx3-ubyte",
    ),
    (
        "idx-bad-gzip",
        idx_with(
            lambda f: (
                (f / "t10k-labels-idx1-ubyte").unlink(),
                (f / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"x" * 100)[:30]),
            )
        ),
        1,
        "t10k-labels-idx1-ubyte.gz",
    ),
    ("data-env-is-file", _data_env_file, 1, "DIGITLAB_DATA="),
    ("cache-entry-is-folder", _cache_dir_entry, 1, "is a folder, not a data file"),
    ("cache-file-corrupt", _cache_flipped, 1, "SHA-256 mismatch for t10k-labels-idx1-ubyte"),
    ("out-is-file", _out_file, 1, "is a file, not a folder"),
    # --- deleting and overwriting only what is ours -------------------------------------------------------
    ("runs-rm-symlink-outside", _rm_symlink_outside, 1, "is a symbolic link"),
    ("runs-rm-symlink-named-as-a-run", _rm_symlink_named_as_run, 1, "is a symbolic link"),
    ("runs-rm-symlink-to-a-run", _rm_symlink_to_a_run, 1, "is a symbolic link"),
    ("runs-rm-dot", _rm("."), 1, "'.': not a run folder"),
    ("runs-rm-dotdot", _rm(".."), 1, "'..': not a run folder"),
    ("runs-rm-out-itself", lambda w: _rm(str(w.runs))(w), 1, "itself or a folder above it"),
    ("runs-rm-out-slash-dot", lambda w: _rm(str(w.runs) + "/.")(w), 1, "itself or a folder above it"),
    ("runs-rm-above-out", lambda w: _rm(str(w.runs) + "/..")(w), 1, "itself or a folder above it"),
    ("runs-rm-root", _rm("/"), 1, "itself or a folder above it"),
    ("runs-rm-folder-in-cwd", _rm_folder_in_cwd, 1, "run folder not found: 'src'"),
    ("runs-rm-path-outside", lambda w: _rm(str(_victim(w)))(w), 1, "not inside --out"),
    ("runs-rm-through-symlinked-folder", _rm_through_symlinked_folder, 1, "not inside --out"),
    ("runs-rm-foreign-folder", _rm_foreign_folder, 1, "not a run folder digitlab made"),
    ("runs-rm-latest-outside", _rm_latest_outside, 1, "outside --out"),
    ("runs-rm-marker-is-a-link", _rm_run_with_marker_replaced, 1, "not a run folder digitlab made"),
    ("runs-rm-missing", _rm("20990101-000000-run"), 1, "run folder not found: '20990101-000000-run'"),
    ("runs-rm-a-file", lambda w: _rm(str(_file("f.txt", b"x")(w)))(w), 1, "not inside --out"),
    ("runs-show-outside", _show_outside, 1, "not a digitlab run folder"),
    ("mine-export-over-a-file", _mine_export_over, 1, "already there; add --force"),
    ("mine-export-png-over-pictures", _mine_export_png_over, 1, "already there; add --force"),
    ("mine-export-nowhere", _mine_export_nowhere, 1, "/dev/null"),
    (
        "predict-output-over-a-file",
        lambda w: ["predict", str(w.idx), "--model", "lr", "--output", str(_file("r.csv", b"mine")(w))],
        1,
        "r.csv: already there; add --force",
    ),
    (
        "report-output-over-a-file",
        lambda w: ["report", "--out", str(w.runs), "--output", str(_file("r.html", b"mine")(w))],
        1,
        "r.html: already there; add --force",
    ),
    (
        "export-output-over-a-file",
        lambda w: ["export", "lr", "--out", str(w.runs), "--output", str(_file("m.onnx", b"mine")(w))],
        1,
        "m.onnx: already there; add --force",
    ),
    # --- serve's options (each refused before anything is loaded or bound) ---------------------------------
    ("serve-timeout-inf", lambda w: ["serve", "--model", "lr", "--timeout", "inf"], 1, "--timeout inf"),
    ("serve-timeout-nan", lambda w: ["serve", "--model", "lr", "--timeout", "nan"], 1, "--timeout nan"),
    ("serve-timeout-0", lambda w: ["serve", "--model", "lr", "--timeout", "0"], 1, "--timeout 0"),
    ("serve-timeout-huge", lambda w: ["serve", "--model", "lr", "--timeout", "1e12"], 1, "--timeout 1e+12"),
    ("serve-workers-0", lambda w: ["serve", "--model", "lr", "--workers", "0"], 1, "--workers 0"),
    ("serve-workers-100000", lambda w: ["serve", "--model", "lr", "--workers", "100000"], 1, "--workers 100000"),
    ("serve-port-0", lambda w: ["serve", "--model", "lr", "--port", "0"], 1, "--port 0"),
    ("serve-port-big", lambda w: ["serve", "--model", "lr", "--port", "70000"], 1, "--port 70000"),
    ("serve-runtime-typo", lambda w: ["serve", "--model", "lr", "--runtime", "onxx"], 1, "'onxx'"),
    ("serve-max-batch-0", lambda w: ["serve", "--model", "lr", "--max-batch", "0"], 1, "--max-batch 0"),
    ("serve-max-bytes-small", lambda w: ["serve", "--model", "lr", "--max-bytes", "10"], 1, "--max-bytes 10"),
    ("serve-model-typo", lambda w: ["serve", "--model", "svn"], 1, "'svn'"),
    ("serve-model-missing", lambda w: ["serve", "--model", "svm"], 1, "no saved 'svm' model"),
    # --- model files --------------------------------------------------------------------
    ("skops-number", skops_file(3), 1, "holds a int, not a classifier"),
    ("skops-unfitted", skops_file(_unfitted), 1, "unfitted Pipeline"),
    ("skops-short-class-names", _short_names, 1, "names 2 classes but the model has 10"),
    ("skops-evil-type", _evil_skops, 1, "refused to load types not on the allow-list"),
    ("skops-garbage", lambda w: ["evaluate", "--model", str(_file("g.skops", b"PK\x03\x04garbage")(w))], 1, "g.skops"),
    (
        "model-path-folder",
        lambda w: ["evaluate", "--model", str(w.bad("dir.skops").mkdir() or w.bad("dir.skops"))],
        1,
        "is a folder",
    ),
    ("model-path-missing", lambda w: ["evaluate", "--model", "nothing.skops"], 1, "nothing.skops: no such model file"),
    ("model-wrong-suffix", lambda w: ["evaluate", "--model", str(_file("m.pkl", b"x")(w))], 1, "not a model file"),
    ("cnn-weights-tampered", _tampered_cnn("weights_sha256", "0" * 64), 1, "not a matching cnn weights file"),
    ("cnn-config-unreadable", _tampered_cnn("params", "x"), 1, "unreadable cnn config"),
    ("ensemble-manifest-unreadable", _ensemble_manifest("{"), 1, "unreadable ensemble manifest"),
    (
        "ensemble-manifest-mismatch",
        _ensemble_manifest(json.dumps({"files": ["a.skops"], "members": []})),
        1,
        "damaged ensemble manifest",
    ),
    (
        "evaluate-wrong-size",
        lambda w: ["evaluate", "--model", str(next(w.runs.glob("*/models/lr.skops"))), "--dataset", "digits"],
        1,
        "(8, 8)",
    ),
    ("predict-no-model", lambda w: ["predict", str(w.idx), "--model", "svm"], 1, "no saved 'svm' model"),
    ("predict-model-typo", lambda w: ["predict", str(w.idx), "--model", "svn"], 1, "'svn'"),
    ("predict-8x8-model-only", _a_digits_model_only, 1, "reads 8×8 images"),
    # with no run, or only 8×8 models, the shipped reader reads by default: what is left is the folder's problem
    ("predict-default-no-run", _no_run_at_all, 1, "is a folder with no pictures"),
    ("predict-default-8x8-only", _only_8x8_models_for_the_default, 1, "is a folder with no pictures"),
    # --- pictures (one bad file: an error row, exit code 1) -----------------------------------
    ("picture-folder", lambda w: ["predict", str(w.idx), "--model", "lr"], 1, "is a folder with no pictures"),
    ("picture-missing", _predict("no-such.png"), 1, "no-such.png: no such file"),
    ("pictures-two-bad", _predict("a.png", "b.png"), 1, "2 of 2 pictures could not be read"),
    (
        "picture-text",
        lambda w: ["predict", str(_file("notes.txt", b"hello")(w)), "--model", "lr"],
        1,
        "not a readable image",
    ),
    ("picture-empty", lambda w: ["predict", str(_file("e.png", b"")(w)), "--model", "lr"], 1, "not a readable image"),
    (
        "picture-truncated-png",
        lambda w: ["predict", str(_file("cut.png", _png_bytes()[:60])(w)), "--model", "lr"],
        1,
        "not a readable image",
    ),
    ("picture-too-big", _too_big, 1, "21.0 MiB is too large (limit 20.0 MiB)"),
    ("picture-too-many-pixels", _png_bomb, 1, "too many pixels"),
]


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("make", "code", "culprit"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_ends_in_one_clear_line(
    make: Make,
    code: int,
    culprit: str,
    world: World,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = make(world)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(world.root)
    rc, out, err = run_digitlab(args, capfd)
    errors = [line for line in err.splitlines() if line.startswith("error:") or "error" in line.lower()]
    assert rc == code, err
    assert "Traceback" not in err
    assert len(errors) == 1, err
    assert culprit in errors[0], errors[0]
    noise = [line for line in err.splitlines() if line not in errors and not line.startswith("[")]
    assert noise == [], err  # no warnings or library chatter, only progress lines and the error
    if args[0] != "predict":  # predict prints its table (with the error row) on stdout
        assert out == ""
        assert errors[0].startswith("error: ")
    assert snapshot(world.root) == before


def test_at_least_150_kinds() -> None:
    """The fault suite: these command-line cases and the bad requests the server gets (faces/server/test_serve.py)."""
    from tests.faces.server.test_serve import _bad_requests

    assert len(CASES) >= 115 and len(CASES) + len(_bad_requests(np.zeros((2, 28, 28), np.uint8))) >= 150


def test_a_bad_picture_does_not_stop_the_others(world: World, capfd: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from digitlab.data.idx import read_idx

    digit = read_idx(world.idx / "t10k-images-idx3-ubyte")[0]
    good = world.bad("good.png")
    Image.fromarray(digit).save(good)
    rc, out, err = run_digitlab(["predict", str(world.idx), str(good), "no-such.png", "--model", "lr", "--json"], capfd)
    assert rc == 1 and "Traceback" not in err
    rows = json.loads(out)["predictions"]
    assert rows[0]["status"] == "error" and rows[2]["status"] == "error"
    assert rows[1]["status"] in ("ok", "uncertain") and rows[1]["label"]


@pytest.mark.parametrize("device", ["cuda", "tpu9"])
def test_a_cnn_saved_for_another_device_loads_on_this_one(device: str, tmp_path: Path) -> None:
    from digitlab.models.cnn import CNNClassifier
    from digitlab.models.store import load_model

    x, y = mnist_like(6, seed=3)
    model = CNNClassifier(epochs=1, channels=(4, 8), validation_fraction=0.0, verbose=False).fit(x, y)
    model.save(tmp_path / "cnn.pt", {"model": "cnn"})
    config_path = tmp_path / "cnn.pt.json"
    config = json.loads(config_path.read_text())
    config["params"]["device"] = device
    config_path.write_text(json.dumps(config))
    loaded, _ = load_model(tmp_path / "cnn.pt")
    assert np.array_equal(loaded.predict(x), model.predict(x))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (tmpfs), so that a full or read-only disk is a real one."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(
    small_disk: Path, world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run_digitlab(["explore", "--dataset", "digits", "--out", str(small_disk / "runs")], capfd)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: ") and "No space left on device" in err, err
    assert "nothing was saved" in err
    assert list((small_disk / "runs").iterdir()) == []


def test_a_read_only_out_folder_is_one_line(small_disk: Path, world: World, capfd: pytest.CaptureFixture[str]) -> None:
    import subprocess

    (small_disk / "runs").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    rc, out, err = run_digitlab(["explore", "--dataset", "digits", "--out", str(small_disk / "runs")], capfd)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("error: --out"), err
    assert "Read-only file system" in err


# --- races: a run being written is the writer's alone (#30 finding 2) -------------------------------------------


def _own_run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def test_rm_and_prune_refuse_a_run_being_written_then_remove_it_once_finished(world: World) -> None:
    from digitlab.runs.folders import run_folder

    out = world.root / "fresh"
    with run_folder(out, "compare") as run:
        (run.models).mkdir()
        (run.models / "svm.skops").write_bytes(b"half")
        proc = digitlab("runs", "rm", run.path.name, "--out", str(out), "--yes", "--force", cwd=world.root)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith(f"error: {run.path.name}: is being written (process ")
        assert proc.stderr.count("\n") == 1
        assert "`digitlab compare`" in proc.stderr
        proc = digitlab("runs", "prune", "--keep", "0", "--out", str(out), "--yes", "--force", cwd=world.root)
        assert proc.returncode == 0 and "removed 0 run folder(s)" in proc.stderr
        assert (run.models / "svm.skops").read_bytes() == b"half"
    proc = digitlab("runs", "rm", run.path.name, "--out", str(out), "--yes", "--force", cwd=world.root)
    assert proc.returncode == 0, proc.stderr
    assert not run.path.exists() and not (out / "latest").is_symlink() and list(out.iterdir()) == []


def test_a_real_compare_keeps_its_run_while_rm_is_tried_and_reports_only_files_that_exist(world: World) -> None:
    """The race of finding 2 with real processes: compare is frozen (SIGSTOP) once its run folder exists,
    `runs rm` is tried on it, compare goes on; it finishes with every model file it reports."""
    import os
    import subprocess
    import time

    from digitlab.runs.folders import MARKER

    out = world.root / "race"
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "compare", "--models", "lr,knn,svm", "--dataset", f"idx:{world.idx}",
         "--out", str(out), "--json"],
        cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # frozen once the folder has its marker (between mkdir and the marker, rm refuses a folder with none)
        while not (out.is_dir() and any((d / MARKER).exists() for d in _own_run_dirs(out))):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            (run,) = _own_run_dirs(out)
            rm = digitlab("runs", "rm", run.name, "--out", str(out), "--yes", "--force", cwd=world.root)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert rm.returncode == 1 and "is being written" in rm.stderr, rm.stderr
    assert proc.returncode == 0, stderr[-2000:]
    result = json.loads(stdout)
    assert Path(result["run"]).resolve() == run.resolve()
    for name in ("lr", "knn", "svm"):
        assert (run / "models" / f"{name}.skops").is_file()
    # finished: now it may go
    rm = digitlab("runs", "rm", run.name, "--out", str(out), "--yes", "--force", cwd=world.root)
    assert rm.returncode == 0 and not run.exists()


def test_two_rm_at_once_remove_the_run_once_and_nothing_else(world: World) -> None:
    import subprocess

    before = {p.name for p in world.runs.iterdir()}
    (run,) = _own_run_dirs(world.runs)
    args = [sys.executable, "-m", "digitlab", "runs", "rm", run.name, "--out", str(world.runs), "--yes", "--force"]
    procs = [
        subprocess.Popen(args, cwd=world.root, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results].count(0) >= 1, results
    for rc, err in results:
        assert rc in (0, 1) and "Traceback" not in err and err.count("\n") == 1, err
    assert not run.exists()
    assert {p.name for p in world.runs.iterdir()} == before - {run.name, "latest"}


def test_a_run_folder_removed_under_a_writer_is_not_recreated_or_reported_complete(tmp_path: Path) -> None:
    from digitlab.core.errors import DigitlabError
    from digitlab.runs.folders import record_model, run_folder

    with run_folder(tmp_path, "good") as good:
        pass
    removed = pytest.raises(DigitlabError, match="removed or replaced while this run was writing it")
    with removed, run_folder(tmp_path, "train-svm") as run:
        shutil.rmtree(run.path)  # someone else's rm -rf, mid-run
        (run.path / "models").mkdir(parents=True)  # a later save recreates the folder
        (run.path / "models" / "svm.skops").write_bytes(b"x")
    assert (tmp_path / "latest").resolve() == good.path
    assert run.path.exists() and not (run.path / "run.json").exists()  # not ours any more: left, never marked complete
    vanished = pytest.raises(DigitlabError, match=r"model file\(s\) knn.skops vanished")
    with vanished, run_folder(tmp_path, "compare") as run:
        run.models.mkdir()
        (run.models / "knn.skops").write_bytes(b"x")
        record_model(run, "knn", run.models / "knn.skops", {})
        (run.models / "knn.skops").unlink()
    assert not run.path.exists() and (tmp_path / "latest").resolve() == good.path


def test_a_run_without_run_json_is_neither_complete_nor_latest(world: World) -> None:
    latest = (world.runs / "latest").resolve()
    (latest / "run.json").unlink()
    rows = service.run_history(world.runs)
    assert [r.complete for r in rows] == [False]
    assert service.list_runs(world.runs) == []
    with pytest.raises(service.DigitlabError, match="no saved 'lr' model"):
        service.find_model("lr", world.runs)


def test_force_writes_over_what_was_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitlab.data.idx import read_idx

    _mine_with_digits(world)
    monkeypatch.setenv("DIGITLAB_HOME", world.env["DIGITLAB_HOME"])
    folder = world.bad("export")
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"old")
    proc = digitlab("mine", "export", str(folder), cwd=world.root)
    assert proc.returncode == 1 and (folder / "t10k-images-idx3-ubyte").read_bytes() == b"old"
    proc = digitlab("mine", "export", str(folder), "--force", cwd=world.root)
    assert proc.returncode == 0, proc.stderr
    assert read_idx(folder / "t10k-images-idx3-ubyte").shape == (1, 28, 28)
    table = world.bad("rows.csv")
    table.write_text("old")
    proc = digitlab("predict", str(world.idx), "--model", "lr", "--out", str(world.runs), "--output", str(table),
                    "--force", cwd=world.root)  # fmt: skip
    assert proc.returncode in (0, 1) and table.read_text().startswith("file"), proc.stderr

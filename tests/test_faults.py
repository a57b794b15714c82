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
from tests.conftest import mnist_like


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
    idx = root / "idx"
    x_tr, y_tr = mnist_like(30, seed=1)
    x_te, y_te = mnist_like(10, seed=2)
    for name, array in zip(sources.STANDARD_NAMES, (x_tr, y_tr, x_te, y_te), strict=True):
        write_idx(idx / name, array)
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
    ("predict-default-no-run", _no_run_at_all, 1, "reads 28×28 pictures; run `digitlab run` first"),
    ("predict-default-8x8-only", _only_8x8_models_for_the_default, 1, "runs reads 28×28 pictures; run `digitlab run`"),
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


def test_at_least_sixty_kinds() -> None:
    assert len(CASES) >= 60


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

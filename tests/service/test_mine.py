"""Your digits: the store (real SQLite files, real processes), the `digitlab mine` commands, dataset mine,
and `digitlab personalise` measured on a stand-in writer whose style MNIST lacks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data.idx import read_idx
from digitlab.data.strokes import writer_digits
from digitlab.data.your_digits import DigitStore
from tests.conftest import Cli, digitlab


@pytest.fixture(scope="module")
def hand() -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Three of each digit from the continental stand-in writer, as canvas PNGs."""
    return writer_digits("continental", 3, seed=11)


def fill(store: DigitStore, hand: tuple[np.ndarray, np.ndarray, list[bytes]], writer: str = "me") -> list[int]:
    x, y, png = hand
    return [a.id for a in store.add_many([(x[k], png[k], int(y[k])) for k in range(len(y))], writer, "canvas")]


def test_store_adds_deduplicates_counts_and_deletes(tmp_path: Path, hand: tuple) -> None:
    store = DigitStore(tmp_path / "mine.sqlite3")
    ids = fill(store, hand)
    assert len(set(ids)) == 30 and store.counts("me") == {d: 3 for d in range(10)}
    x, y, png = hand
    other = store.add(x[0], png[0], 5, "other")  # another writer may keep the same picture (#30 finding 12)
    assert other.new and other.writer == "other" and other.id != ids[0]
    wrong = (int(y[0]) + 1) % 10
    again = store.add(x[0], png[0], wrong, "me")  # the same writer: stored once, its label kept, the clash said
    assert (again.new, again.id, again.label, again.asked, again.conflict) == (False, ids[0], int(y[0]), wrong, True)
    assert store.add(x[0], png[0], int(y[0]), "me").conflict is False
    assert store.writers() == {"me": 30, "other": 1}
    store.remove([other.id])
    images, labels, got_ids = store.arrays("me")
    assert np.array_equal(images, x) and np.array_equal(labels, y) and got_ids.tolist() == ids
    assert store.picture(ids[3]) == png[3]
    assert store.remove([ids[0], 10_000]) == [ids[0]]
    assert sum(store.counts().values()) == 29
    fill(store, (x[:10], y[:10], [p + b"!" for p in png[:10]]), "ana")  # other pictures, another writer
    assert store.clear("ana") == 10 and store.writers() == {"me": 29}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_bad_labels_and_writers_are_one_line(tmp_path: Path, hand: tuple) -> None:
    store = DigitStore(tmp_path / "mine.sqlite3")
    x, _, png = hand
    for label in (10, -1, "seven"):
        with pytest.raises(DigitlabError, match="one of 0 to 9"):
            store.add(x[0], png[0], label)  # type: ignore[arg-type]
    with pytest.raises(DigitlabError, match="writer"):
        store.add(x[0], png[0], 1, writer="../etc")
    assert not store.digits()


def test_corrupt_and_foreign_databases_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mine.sqlite3").write_bytes(b"this is not a database" * 100)
    proc = digitlab("mine", "list", cwd=tmp_path, env={"DIGITLAB_HOME": str(home)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "damaged digit store" in proc.stderr and "mine.sqlite3" in proc.stderr
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    before = foreign.read_bytes()
    with pytest.raises(DigitlabError, match="not a digitlab digit store"):
        DigitStore(foreign).digits()
    with pytest.raises(DigitlabError, match="not a digitlab digit store"):
        DigitStore(foreign).add(np.zeros((28, 28), np.uint8), b"x", 1)
    assert foreign.read_bytes() == before and not Path(f"{foreign}-wal").exists()  # not even switched to WAL
    lookalike = tmp_path / "lookalike.sqlite3"  # someone else's table that happens to be called digits
    with sqlite3.connect(lookalike) as conn:
        conn.execute("CREATE TABLE digits (n INTEGER)")
    before = lookalike.read_bytes()
    with pytest.raises(DigitlabError, match="not a digitlab digit store"):
        DigitStore(lookalike).add(np.zeros((28, 28), np.uint8), b"x", 1)
    assert lookalike.read_bytes() == before
    assert (home / "mine.sqlite3").read_bytes() == b"this is not a database" * 100  # left as it was


def test_a_locked_store_is_one_line(tmp_path: Path, hand: tuple) -> None:
    store = DigitStore(tmp_path / "mine.sqlite3", timeout=0.3)
    fill(store, hand)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DigitlabError, match="locked by another program"):
            store.add(hand[0][0], b"new picture", 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sum(store.counts().values()) == 30


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from digitlab.data.your_digits import DigitStore
    store = DigitStore(sys.argv[1])
    tag, n = sys.argv[2], int(sys.argv[3])
    image = np.zeros((28, 28), np.uint8)
    for k in range(n):
        store.add(image, f"{tag}-{k}".encode(), k % 10, writer=tag, source="import")
    print("done", flush=True)
    """
)


def test_two_writers_at_once(tmp_path: Path) -> None:
    path = tmp_path / "mine.sqlite3"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "150"], stdout=subprocess.PIPE, text=True)
        for tag in ("ana", "bob")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done"
    assert DigitStore(path).writers() == {"ana": 150, "bob": 150}


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from digitlab.data.your_digits import DigitStore
    store = DigitStore(sys.argv[1])
    image = np.zeros((28, 28), np.uint8)
    store.add_many([(image, f"kept-{k}".encode(), k % 10) for k in range(20)], "me", "canvas")
    with store._transaction() as conn:  # a second write, killed before its COMMIT
        for k in range(500):
            conn.execute(
                "INSERT INTO digits (writer, label, image, picture, source, created, sha256) VALUES (?,?,?,?,?,?,?)",
                ("me", 1, image.tobytes(), b"x", "canvas", "now", f"lost-{k}"),
            )
        print("inserted", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_writer_loses_nothing_saved(tmp_path: Path) -> None:
    path = tmp_path / "mine.sqlite3"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip() == "inserted"
    store = DigitStore(path)
    assert sum(store.counts("me").values()) == 20  # the committed 20, none of the 500 half-written
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.add(np.zeros((28, 28), np.uint8), b"after", 3)  # and the store takes new digits
    assert sum(store.counts().values()) == 21


# --- the commands ---------------------------------------------------------------------------------


def write_pictures(folder: Path, hand: tuple) -> None:
    _, y, png = hand
    for k, label in enumerate(y):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        (folder / str(label) / f"d{k}.png").write_bytes(png[k])
    (folder / "loose").mkdir()
    (folder / "loose" / "scan-label4.png").write_bytes(png[4] + b"")  # same picture as d4: stored once
    (folder / "loose" / "unlabelled.png").write_bytes(png[5])
    (folder / "loose" / "broken-label3.png").write_bytes(b"not a picture")


def test_mine_commands(
    tmp_path: Path, hand: tuple, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(capsys)
    write_pictures(tmp_path / "pics", hand)
    one = tmp_path / "pics" / "7" / "d7.png"
    added = digitlab(
        "mine", "add", str(one), "--label", "7", "--writer", "ana", "--json", cwd=tmp_path
    )  # a real process
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["added"][0]["new"] is True
    imported = cli("mine", "import", str(tmp_path / "pics"), "--writer", "ana", "--json")
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert (result["files"], result["added"], result["already"]) == (33, 29, 2)
    assert result["unlabelled"] == [str(tmp_path / "pics" / "loose" / "unlabelled.png")]
    assert "unlabelled.png: no label" in imported.stderr and "broken-label3.png" in imported.stderr
    listed = json.loads(cli("mine", "list", "--writer", "ana", "--json").stdout)
    assert listed["counts"] == {str(d): 3 for d in range(10)} and listed["n_digits"] == 30
    table = cli("mine", "list")
    assert table.returncode == 0 and "ana" in table.stdout and "all writers: 30 digits" in table.stdout

    exported = cli("mine", "export", str(tmp_path / "idx"), "--format", "idx")
    assert exported.returncode == 0, exported.stderr
    images = read_idx(tmp_path / "idx" / "t10k-images-idx3-ubyte")
    labels = read_idx(tmp_path / "idx" / "t10k-labels-idx1-ubyte")
    stored, stored_labels, _ = DigitStore().arrays("ana")
    assert np.array_equal(images, stored) and np.array_equal(labels, stored_labels)
    assert cli("mine", "export", str(tmp_path / "png"), "--format", "png").returncode == 0
    assert sorted(p.parent.name for p in (tmp_path / "png").rglob("*.png")) == sorted(map(str, stored_labels))
    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("DIGITLAB_HOME", str(tmp_path / "elsewhere"))
        assert cli("mine", "import", str(tmp_path / "png")).returncode == 0
    again = DigitStore(tmp_path / "elsewhere" / "mine.sqlite3").arrays()[0]
    assert sorted(a.tobytes() for a in again) == sorted(a.tobytes() for a in stored)  # the same 28×28 images

    first = listed["digits"][0]["id"]
    removed = cli("mine", "rm", str(first))
    assert removed.returncode == 0 and sum(DigitStore().counts().values()) == 29
    gone = cli("mine", "rm", str(first))
    assert gone.returncode == 1 and gone.stderr.startswith("error: no digit with id")
    refused = digitlab("mine", "clear", "--writer", "ana", cwd=tmp_path)  # no terminal: asks for --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr and sum(DigitStore().counts().values()) == 29
    assert cli("mine", "clear", "--writer", "ana", "--yes").returncode == 0
    assert DigitStore().writers() == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mine", "add", "x.png", "--label", "12"), "label '12'"),
        (("mine", "add", "missing.png", "--label", "1"), "missing.png: no such file"),
        (("mine", "import", "nowhere"), "nowhere: no such folder"),
        (("mine", "export", "out", "--format", "csv"), "choose idx or png"),
        (("mine", "export", "out"), "no digits saved"),
        (("evaluate", "--dataset", "mine:bob", "--model", "x.skops"), "x.skops: no such model file"),
        (("train", "--dataset", "mine", "--model", "lr"), "your digits are a test set"),
        (("personalise", "--writer", "a/b"), "writer 'a/b'"),
        (("personalise", "--epochs", "0"), "--epochs 0"),
        (("personalise", "--out", "empty"), "no saved 'cnn' model"),
    ],
)
def test_mine_faults_are_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Through the CLI's own entry (in this process: the real-process fault campaign is tests/runs/test_faults.py)."""
    from digitlab.faces.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.png").write_bytes(b"\x89PNG junk")
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "home").exists() or not DigitStore().digits()


# --- measuring and personalising (the real quick MNIST run) ---------------------------------------


@pytest.fixture
def runs(private_runs: Path) -> Path:
    """A copy of the session's quick MNIST run under its own runs folder (personalise adds run folders)."""
    return private_runs


def test_evaluate_on_your_digits(runs: Path, real_mnist: Path, tmp_path: Path, hand: tuple) -> None:
    fill(DigitStore(), hand, "ana")
    proc = digitlab("evaluate", "--dataset", "mine:ana", "--model", "cnn", "--out", str(runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dataset"] == "mine:ana" and result["n_test"] == 30
    assert int(np.trace(np.asarray(result["confusion_matrix"]))) == 30 - result["n_errors"]

    run = runs / "latest"  # the evaluate run; the report of the quick run measures every model on the digits
    original = sorted(runs.glob("*-run"))[0]
    built = digitlab("report", str(original), "--out", str(runs), "--json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    mine = json.loads((original / "mine.json").read_text())
    assert mine["n_digits"] == 30 and {m["model"] for m in mine["models"]} >= {"lr", "knn", "svm", "mlp", "cnn"}
    cnn = next(m for m in mine["models"] if m["model"] == "cnn")
    assert cnn["accuracy"] == pytest.approx(result["accuracy"])  # the same digits, the same model
    html = (original / "report.html").read_text()
    assert "cnn on your digits" in html and "Every saved model on 30 of your digits" in html
    assert run.resolve() != original


def test_personalise_cnn_halves_the_error_on_a_new_hand(runs: Path, real_mnist: Path, tmp_path: Path) -> None:
    """A real measurement: 10 digits of each class of the continental writer, scored on 300 others of that writer."""
    x, y, png = writer_digits("continental", 10, seed=3)
    DigitStore().add_many([(x[k], png[k], int(y[k])) for k in range(len(y))], "me", "canvas")
    latest = (runs / "latest").resolve()
    proc = digitlab("personalise", "--model", "cnn", "--epochs", "20", "--out", str(runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"] == "cnn-personal" and result["n_digits"] == 100 and result["held_out"] == 30
    assert "cnn fold 1/1 epoch 1/20: loss" in proc.stderr and "s left" in proc.stderr  # progress with an estimate
    assert "cnn all digits epoch 20/20" in proc.stderr
    assert result["held_out_after"] >= result["held_out_before"]
    assert result["test_after"] >= result["test_before"] - 0.005  # quick test set: 1,000 MNIST digits
    assert (runs / "latest").resolve() == latest  # the personal model does not hide the run
    meta = json.loads(Path(result["model_path"] + ".json").read_text())["metadata"]
    assert meta["personalised"]["writer"] == "me" and meta["personalised"]["n_digits"] == 100

    from digitlab.models.store import load_model

    fresh_x, fresh_y, _ = writer_digits("continental", 30, seed=99)
    base = load_model(latest / "models" / "cnn.pt")[0]
    tuned = load_model(Path(result["model_path"]))[0]
    before = float((base.predict(fresh_x) != fresh_y).mean())
    after = float((tuned.predict(fresh_x) != fresh_y).mean())
    assert before >= 0.03 and after <= before / 2, (before, after)

    pictures = tmp_path / "pictures"  # ten fresh drawings of the writer, one of each digit
    pictures.mkdir()
    for k, png in enumerate(writer_digits("continental", 1, seed=5)[2]):
        (pictures / f"{k}.png").write_bytes(png)

    def right(model: str) -> tuple[int, str]:
        read = digitlab("predict", str(pictures), "--model", model, "--out", str(runs), "--json", cwd=tmp_path)
        assert read.returncode == 0, read.stderr
        answer = json.loads(read.stdout)
        return sum(Path(p["file"]).stem == p["label"] for p in answer["predictions"]), answer["model_path"]

    (personal_right, used), (base_right, _) = right("cnn-personal"), right("cnn")
    assert used == result["model_path"] and personal_right >= max(8, base_right), (personal_right, base_right)
    from digitlab import service

    served = service.load_served(service.ServeRequest(models=("cnn-personal", "cnn"), out=runs))
    assert [s.predictor.name for s in served] == ["cnn-personal", "cnn"]  # the server finds it by name too
    assert str(served[0].predictor.path) == result["model_path"]


def test_personalise_knn_adds_your_digits_and_logs_to_mlflow(
    runs: Path, real_mnist: Path, tmp_path: Path, migrated_mlflow_db: Path
) -> None:
    x, y, png = writer_digits("continental", 4, seed=4)
    DigitStore().add_many([(x[k], png[k], int(y[k])) for k in range(len(y))], "me", "canvas")
    shutil.copy(migrated_mlflow_db, runs / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "personalise", "--model", "knn", "--out", str(runs), "--json", "--mlflow"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"] == "knn-personal" and result["scheme"] == "stratified 4-fold"
    assert result["held_out"] == 40 and len(result["per_fold"]) == 4
    assert result["held_out_after"] >= result["held_out_before"]
    assert {m["model"] for m in result["mine"]} == {"knn", "knn-personal"}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=result["mlflow"]["tracking_uri"])
    parent = client.get_run(result["mlflow"]["run_id"])
    assert parent.data.params["personalise.writer"] == "me" and parent.data.params["personalise.n_digits"] == "40"
    assert parent.data.metrics["held_out_after"] == pytest.approx(result["held_out_after"])
    assert parent.data.metrics["held_out_before"] == pytest.approx(result["held_out_before"])
    assert set(result["mlflow"]["children"]) == {"knn-personal"}


def test_a_damaged_store_does_not_stop_a_report(runs: Path, tmp_path: Path) -> None:
    home = Path(os.environ["DIGITLAB_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "mine.sqlite3").write_bytes(b"not a database" * 100)
    proc = digitlab("report", "--out", str(runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "your digits left out of the report" in proc.stderr and "damaged digit store" in proc.stderr
    assert Path(json.loads(proc.stdout)["path"]).is_file()


def test_a_first_version_store_is_migrated_keeping_every_digit(tmp_path: Path, hand: tuple) -> None:
    """Stores made before per-writer pictures (sha256 unique across writers) open, keep their digits, and then
    take the same picture for another writer."""
    from digitlab.data.your_digits import APPLICATION_ID

    path = tmp_path / "mine.sqlite3"
    x, y, png = hand
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE digits (id INTEGER PRIMARY KEY, writer TEXT NOT NULL, label INTEGER NOT NULL, "
            "image BLOB NOT NULL, picture BLOB NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL, "
            "sha256 TEXT NOT NULL UNIQUE)"
        )
        for k in range(5):
            digest = hashlib.sha256(png[k]).hexdigest()
            conn.execute(
                "INSERT INTO digits VALUES (?, 'me', ?, ?, ?, 'upload', '2026-01-01T00:00:00+00:00', ?)",
                (k + 1, int(y[k]), x[k].tobytes(), png[k], digest),
            )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    store = DigitStore(path)
    assert [d.id for d in store.digits()] == [1, 2, 3, 4, 5]
    assert store.add(x[0], png[0], int(y[0]), "ana").new
    assert store.writers() == {"me": 5, "ana": 1}


def test_relabel_and_conflicts_are_said(tmp_path: Path, hand: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    png = hand[2]
    picture = tmp_path / "seven.png"
    picture.write_bytes(png[0])
    env = {"DIGITLAB_HOME": str(home)}
    proc = digitlab("mine", "add", str(picture), "--label", "7", "--writer", "ana", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    digit_id = json.loads(proc.stdout)["added"][0]["id"]
    proc = digitlab("mine", "add", str(picture), "--label", "1", "--writer", "ana", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and f"id {digit_id} is already stored as a 7, not a 1" in proc.stdout + proc.stderr
    assert f"digitlab mine relabel {digit_id} 1" in proc.stdout + proc.stderr
    proc = digitlab("mine", "relabel", str(digit_id), "1", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "from 7 to 1" in proc.stdout, proc.stderr
    assert DigitStore(home / "mine.sqlite3").digits("ana")[0].label == 1
    proc = digitlab("mine", "relabel", "999", "1", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and proc.stderr == "error: no digit with id 999; see `digitlab mine list`.\n"
    proc = digitlab("mine", "relabel", str(digit_id), "12", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "one of 0 to 9" in proc.stderr


def test_import_skips_and_warns_about_ambiguous_file_names(tmp_path: Path, hand: tuple) -> None:
    home = tmp_path / "home"
    png = hand[2]
    folder = tmp_path / "pics"
    (folder / "3").mkdir(parents=True)
    names = {
        "d_label3_label7.png": png[0],  # two labels
        "unlabel5.png": png[1],  # not a label at all
        "3/sample-label8.png": png[2],  # its folder says 3, its name 8
        "sample-label4.png": png[3],  # fine
        "3/plain.png": png[4],  # fine: the folder says 3
    }
    for name, data in names.items():
        (folder / name).write_bytes(data)
    proc = digitlab("mine", "import", str(folder), "--json", cwd=tmp_path, env={"DIGITLAB_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["added"] == 2
    assert sorted(Path(f).name for f in result["ambiguous"]) == ["d_label3_label7.png", "sample-label8.png"]
    assert [Path(f).name for f in result["unlabelled"]] == ["unlabel5.png"]
    assert proc.stderr.count("skipped:") == 3 and "two labels" in proc.stderr
    assert sorted(d.label for d in DigitStore(home / "mine.sqlite3").digits()) == [3, 4]


def test_feedback_to_personalise_to_reload_serves_a_model_that_reads_the_writer_better(
    runs: Path, real_mnist: Path, tmp_path: Path
) -> None:
    """#30's loop: an application sends a writer's corrected digits to POST /feedback; `digitlab personalise`
    learns them; the v2 repository load route serves the new cnn-personal without a restart; it reads
    that writer's new digits better than the cnn it started from."""
    import base64

    from tests.faces.server.test_faults import Server

    server = Server(["--out", str(runs), "--model", "cnn"], tmp_path)
    try:
        _, y, png = writer_digits("continental", 10, seed=3)
        for k in range(len(y)):
            sent = {"image": base64.b64encode(png[k]).decode(), "label": int(y[k]), "writer": "ana"}
            reply = server.client.post("/feedback", json=sent)
            assert reply.status_code == 200 and reply.json()["new"] and reply.json()["writer"] == "ana", reply.text
        again = server.client.post(
            "/feedback",
            files={"file": ("again.png", png[0], "image/png")},
            data={"label": str((int(y[0]) + 1) % 10), "writer": "ana"},
        )
        assert again.status_code == 200 and not again.json()["new"] and "already stored" in again.json()["conflict"]
        bad = server.client.post(
            "/feedback", json={"image": base64.b64encode(png[0]).decode(), "label": 12, "writer": "ana"}
        )
        assert bad.status_code == 422 and "0 to 9" in bad.json()["error"]
        assert DigitStore().counts("ana") == {d: 10 for d in range(10)}

        proc = digitlab("personalise", "--model", "cnn", "--writer", "ana", "--epochs", "20", "--out", str(runs),
                        "--json", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert server.client.get("/v2/models/cnn-personal").status_code == 404  # not served yet
        loaded = server.client.post("/v2/repository/models/cnn-personal/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["models"] == ["cnn", "cnn-personal"]
        index = server.client.post("/v2/repository/index").json()
        assert {m["name"] for m in index} == {"cnn", "cnn-personal"} and all(m["state"] == "READY" for m in index)

        fresh_x, fresh_y, _ = writer_digits("continental", 30, seed=99)

        def right(model: str) -> int:
            reply = server.client.post(f"/predict?model={model}", json={"arrays": fresh_x.tolist()})
            assert reply.status_code == 200, reply.text
            return sum(
                p["label"] == str(t) for p, t in zip(reply.json()["results"][0]["predictions"], fresh_y, strict=True)
            )

        base, personal = right("cnn"), right("cnn-personal")
        assert personal > base and len(fresh_y) - personal <= (len(fresh_y) - base) / 2, (base, personal)
        assert server.client.post("/v2/repository/models/cnn/unload").json()["models"] == ["cnn-personal"]
        assert server.client.post("/v2/repository/models/cnn-personal/unload").status_code == 409  # the last one
        assert server.client.post("/v2/repository/models/..%2Fetc/load").status_code == 404
        assert server.client.post("/v2/repository/models/scratch-mlp/load").status_code == 404  # none saved
    finally:
        server.stop()
    assert "Traceback" not in server.stderr()


def test_personalise_epochs_scale_with_the_number_of_digits() -> None:
    """#30 finding 11: 10,000 digits no longer take 40 passes (about 18 minutes); a few hundred still do."""
    from digitlab.training.personalise import MAX_EPOCHS, STEP_BUDGET, auto_epochs

    assert auto_epochs(2) == auto_epochs(100) == auto_epochs(300) == MAX_EPOCHS
    assert auto_epochs(10_000) == 3 and auto_epochs(1_000_000) == 3  # never fewer than 3 passes
    for n in (500, 1_000, 3_000, 10_000):
        steps = auto_epochs(n) * -(-n // 32)
        assert steps <= STEP_BUDGET + 32 or auto_epochs(n) == 3, (n, steps)
    assert [auto_epochs(n) for n in (500, 1_000, 3_000)] == sorted(
        [auto_epochs(n) for n in (500, 1_000, 3_000)], reverse=True
    )

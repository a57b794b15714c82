"""Your own digits: a local SQLite store (one file, WAL mode) that several processes may write at once.

Each digit keeps the 28×28 image as the models see it, the original picture as PNG bytes,
its label, the writer's name, where it came from (canvas, upload, import, correction), when
it was saved and the SHA-256 of the PNG, so that the same picture is stored once per writer
(two writers may each keep it). A file that is not a digit store is refused before anything
in it is changed (its journal mode included).

Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, ``synchronous=FULL``): a
process killed mid-write leaves the digits saved before it untouched. A damaged, foreign or
locked database file is one ``DigitlabError`` line naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.core.settings import HOME_ENV

FILE_NAME = "mine.sqlite3"
SOURCES = ("canvas", "upload", "import", "correction")
DEFAULT_WRITER = "me"
SIDE = 28
WRITER_NAME = re.compile(r"^[\w][\w .'-]{0,39}$")
APPLICATION_ID = 0x64676C62  # "dglb": marks the file as a digitlab digit store
SCHEMA_VERSION = 2  # PRAGMA user_version; 0: the first store, where a picture was unique across writers
TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY,
    writer TEXT NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    image BLOB NOT NULL CHECK (length(image) = 784),
    picture BLOB NOT NULL,
    source TEXT NOT NULL,
    created TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    UNIQUE (writer, sha256)
)"""
SCHEMA = (TABLE.format(name="digits"), "CREATE INDEX IF NOT EXISTS digits_writer ON digits (writer, label)")


def home() -> Path:
    """``$DIGITLAB_HOME``, else the user data folder (``platformdirs``)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("digitlab"))


def default_path() -> Path:
    return home() / FILE_NAME


def check_writer(name: str) -> str:
    name = (name or "").strip()
    if not WRITER_NAME.match(name):
        raise DigitlabError(
            f"writer {name!r}: use 1 to 40 letters, digits, spaces, dots, dashes or underscores "
            "(starting with a letter or digit), e.g. --writer ana."
        )
    return name


def check_label(label: Any) -> int:
    text = str(label).strip()
    if not (text.isdigit() and 0 <= int(text) <= 9):
        raise DigitlabError(f"label {label!r}: a digit's label is one of 0 to 9.")
    return int(text)


@dataclass(frozen=True)
class Digit:
    id: int
    writer: str
    label: int
    source: str
    created: str
    sha256: str
    image: np.ndarray  # (28, 28) uint8, white ink on black, as the models see it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "writer": self.writer,
            "label": self.label,
            "source": self.source,
            "created": self.created,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Added:
    id: int
    new: bool  # False: this writer had already stored the same picture (under ``id``)
    label: int  # the label stored (an existing digit keeps its own)
    writer: str
    asked: int | None = None  # the label asked for, when it differs from the one stored (a conflict)

    @property
    def conflict(self) -> bool:
        return self.asked is not None


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on ``conn`` (taken at once: ``BEGIN IMMEDIATE``): committed whole or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class DigitStore:
    """The digit database at ``path`` (created on first write; reading a missing one gives nothing)."""

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout

    # --- connection ---------------------------------------------------------------------
    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        if self.path.is_dir():
            raise DigitlabError(f"{self.path}: is a folder, not a digit store; remove it or set {HOME_ENV}.")
        if write:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DigitlabError(
                    f"{self.path.parent}: cannot create the folder for your digits ({exc.strerror}); "
                    f"set {HOME_ENV} to a writable folder."
                ) from None
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            self._prepare(conn)
            yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check the file is ours (or empty) before changing anything in it; then WAL, the schema, migrations."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("BEGIN")  # one snapshot for both reads: another process may be making the store right now
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.execute("COMMIT")
        if app not in (0, APPLICATION_ID):
            raise DigitlabError(f"{self.path}: not a digitlab digit store (another program's database); move it away.")
        if app == 0 and tables:  # a store is marked when it is made: an unmarked file with tables is someone else's
            raise DigitlabError(f"{self.path}: not a digitlab digit store (it holds other tables); move it away.")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        if app == 0:
            with _immediate(conn):
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """The first stores kept a picture once across writers (``sha256 UNIQUE``): now once per writer."""
        with _immediate(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:  # another process may have done it
                conn.execute(TABLE.format(name="digits_v2"))
                columns = "id, writer, label, image, picture, source, created, sha256"
                conn.execute(f"INSERT INTO digits_v2 SELECT {columns} FROM digits")
                conn.execute("DROP TABLE digits")
                conn.execute("ALTER TABLE digits_v2 RENAME TO digits")
                conn.execute(SCHEMA[1])
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _error(self, exc: sqlite3.Error) -> DigitlabError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return DigitlabError(
                f"{self.path}: the digit store is locked by another program for over {self.timeout:.0f} s; "
                "close it (or wait) and try again."
            )
        if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
            return DigitlabError(
                f"{self.path}: damaged digit store ({text}); move it away to start a new one, "
                "or restore it from a backup."
            )
        if "readonly" in text or "unable to open" in text:
            return DigitlabError(
                f"{self.path}: cannot write the digit store ({text}); set {HOME_ENV} to a writable folder."
            )
        return DigitlabError(f"{self.path}: digit store error ({text}).")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect(write=True) as conn, _immediate(conn):
            yield conn

    # --- writes -----------------------------------------------------------------------------
    def add(
        self, image: np.ndarray, picture: bytes, label: int, writer: str = DEFAULT_WRITER, source: str = "upload"
    ) -> Added:
        return self.add_many([(image, picture, label)], writer, source)[0]

    def add_many(
        self, items: Sequence[tuple[np.ndarray, bytes, int]], writer: str = DEFAULT_WRITER, source: str = "upload"
    ) -> list[Added]:
        """Store digits in one transaction: all of them or none. A picture this writer already stored is not
        stored again (it keeps its label; ``Added.asked`` says when another one was asked for)."""
        writer = check_writer(writer)
        if source not in SOURCES:
            raise DigitlabError(f"source {source!r}: one of {', '.join(SOURCES)}.")
        rows = []
        for image, picture, label in items:
            image = np.asarray(image)
            if image.shape != (SIDE, SIDE) or image.dtype != np.uint8:
                raise DigitlabError(f"a stored digit is a 28×28 uint8 image, got {image.dtype} {image.shape}.")
            rows.append((image, bytes(picture), check_label(label), hashlib.sha256(picture).hexdigest()))
        added = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as conn:
            for image, picture, label, digest in rows:
                found = conn.execute(
                    "SELECT id, label FROM digits WHERE writer = ? AND sha256 = ?", (writer, digest)
                ).fetchone()
                if found:
                    asked = label if label != int(found[1]) else None
                    added.append(Added(int(found[0]), False, int(found[1]), writer, asked))
                    continue
                cur = conn.execute(
                    "INSERT INTO digits (writer, label, image, picture, source, created, sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (writer, label, image.tobytes(), picture, source, now, digest),
                )
                added.append(Added(int(cur.lastrowid or 0), True, label, writer))
        return added

    def relabel(self, digit_id: int, label: int) -> tuple[int, int]:
        """Give a stored digit another label; returns (the old label, the new one)."""
        label = check_label(label)
        with self._transaction() as conn:
            found = conn.execute("SELECT label FROM digits WHERE id = ?", (int(digit_id),)).fetchone()
            if not found:
                raise DigitlabError(f"no digit with id {digit_id}; see `digitlab mine list`.")
            conn.execute("UPDATE digits SET label = ? WHERE id = ?", (label, int(digit_id)))
        return int(found[0]), label

    def remove(self, ids: Sequence[int]) -> list[int]:
        """Delete digits by id; returns the ids that existed (and are now gone)."""
        with self._transaction() as conn:
            found = [int(i) for i in ids if conn.execute("SELECT 1 FROM digits WHERE id = ?", (int(i),)).fetchone()]
            conn.executemany("DELETE FROM digits WHERE id = ?", [(i,) for i in found])
        return found

    def clear(self, writer: str) -> int:
        """Delete every digit of one writer; returns how many."""
        with self._transaction() as conn:
            return int(conn.execute("DELETE FROM digits WHERE writer = ?", (check_writer(writer),)).rowcount)

    # --- reads ------------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        with self._connect(write=False) as conn:
            return conn.execute(sql, args).fetchall()

    def digits(self, writer: str | None = None, ids: Sequence[int] | None = None) -> list[Digit]:
        """Digits, oldest first; of one writer when named."""
        sql = "SELECT id, writer, label, source, created, sha256, image FROM digits"
        where: list[str] = []
        args: list[Any] = []
        if writer is not None:
            where.append("writer = ?")
            args.append(check_writer(writer))
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(int(i) for i in ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY id", tuple(args))
        return [
            Digit(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5], np.frombuffer(r[6], np.uint8).reshape(SIDE, SIDE))
            for r in rows
        ]

    def picture(self, digit_id: int) -> bytes | None:
        rows = self._rows("SELECT picture FROM digits WHERE id = ?", (int(digit_id),))
        return bytes(rows[0][0]) if rows else None

    def arrays(self, writer: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images ``(n, 28, 28)`` uint8, labels ``(n,)`` int64 and ids ``(n,)`` of the digits."""
        found = self.digits(writer)
        images = np.stack([d.image for d in found]) if found else np.zeros((0, SIDE, SIDE), np.uint8)
        return images, np.array([d.label for d in found], np.int64), np.array([d.id for d in found], np.int64)

    def counts(self, writer: str | None = None) -> dict[int, int]:
        """How many digits of each label 0–9 (zeros included)."""
        sql = "SELECT label, COUNT(*) FROM digits"
        args: tuple[Any, ...] = ()
        if writer is not None:
            sql, args = sql + " WHERE writer = ?", (check_writer(writer),)
        found = {int(label): int(n) for label, n in self._rows(sql + " GROUP BY label", args)}
        return {d: found.get(d, 0) for d in range(10)}

    def writers(self) -> dict[str, int]:
        """Every writer with how many digits, most first."""
        rows = self._rows("SELECT writer, COUNT(*) FROM digits GROUP BY writer ORDER BY COUNT(*) DESC, writer")
        return {str(w): int(n) for w, n in rows}

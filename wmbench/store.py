"""The results store: one SQLite file per run, written only by the main process.

WAL mode plus one transaction per finished job means a crash (even ``kill -9``)
loses at most the job in flight, never half a cell; the primary key on the cell key
means ``--resume`` can neither skip an unfinished cell nor store one twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from wmbench.errors import WmbenchError

SCHEMA_VERSION = 1
DB_NAME = "results.sqlite"


@dataclass
class Record:
    """One cell's outcome. ``marked`` is False for the unmarked negatives."""

    cell_key: str
    sample: str
    modality: str
    method: str
    wm_key: str
    attack: str
    strength: Any  # JSON-able; None for the "none" attack
    strength_index: int  # position in the sweep, weak (0) -> strong
    marked: bool
    score: float | None = None
    p_value: float | None = None
    detected: bool | None = None
    bits_matched: int | None = None
    bits_total: int | None = None
    psnr: float | None = None  # images: detected item vs clean original (dB)
    ssim: float | None = None
    perplexity: float | None = None  # text: of the detected item under the reference LM
    similarity: float | None = None  # text: semantic similarity, attacked vs unattacked
    tokens: int | None = None  # text: tokens the detector scored
    seconds: float | None = None
    error: str | None = None
    skipped: str | None = None  # why the cell could not run here (the attack raised SkipCell)
    extra: dict[str, Any] | None = None


_COLUMNS = [f.name for f in fields(Record)]
_SQL_TYPES = {
    "cell_key": "TEXT PRIMARY KEY", "strength_index": "INTEGER", "marked": "INTEGER",
    "score": "REAL", "p_value": "REAL", "detected": "INTEGER", "bits_matched": "INTEGER",
    "bits_total": "INTEGER", "psnr": "REAL", "ssim": "REAL", "perplexity": "REAL", "similarity": "REAL",
    "tokens": "INTEGER", "seconds": "REAL",
}


class StoreError(WmbenchError):
    pass


class Store:
    def __init__(self, run_dir: Path, *, create: bool = True) -> None:
        self.path = Path(run_dir) / DB_NAME
        if not create and not self.path.is_file():
            raise StoreError(f"{run_dir}: no {DB_NAME} here; is this a wmbench run folder?")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if not create:
                self.db.execute("SELECT 1 FROM cells LIMIT 1")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a wmbench results database ({exc})") from None
        self._add_missing_columns()
        if create:
            cols = ", ".join(f"{c} {_SQL_TYPES.get(c, 'TEXT')}" for c in _COLUMNS)
            with self.db:
                self.db.execute(f"CREATE TABLE IF NOT EXISTS cells ({cols}, finished_at REAL)")
                self.db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
                self.db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )

    def _add_missing_columns(self) -> None:
        """Stores written by an older wmbench lack newer (optional) columns: add them empty."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(cells)")}
        if not have:
            return  # a new store: created below
        with self.db:
            for column in _COLUMNS:
                if column not in have:
                    self.db.execute(f"ALTER TABLE cells ADD COLUMN {column} {_SQL_TYPES.get(column, 'TEXT')}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------
    def set_meta(self, values: dict[str, Any]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT name, value FROM meta")}

    # -- cells ----------------------------------------------------------------
    def done_keys(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT cell_key FROM cells")}

    def add(self, records: Iterable[Record]) -> int:
        """Store finished cells in one transaction; an already stored key is kept as is."""
        rows = [_to_row(r) for r in records]
        now = time.time()
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        with self.db:
            cur = self.db.executemany(
                f"INSERT OR IGNORE INTO cells ({', '.join(_COLUMNS)}, finished_at) VALUES ({placeholders})",
                [row + (now,) for row in rows],
            )
        return cur.rowcount

    def delete_failed(self) -> int:
        """Forget failed and skipped cells so that a resumed run tries them again."""
        with self.db:
            return self.db.execute("DELETE FROM cells WHERE error IS NOT NULL OR skipped IS NOT NULL").rowcount

    def records(self) -> Iterator[Record]:
        cur = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM cells ORDER BY rowid")
        for row in cur:
            yield _from_row(row)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])


def _to_row(r: Record) -> tuple:
    d = asdict(r)
    d["strength"] = json.dumps(d["strength"])
    d["extra"] = json.dumps(d["extra"]) if d["extra"] else None
    for b in ("marked", "detected"):
        d[b] = None if d[b] is None else int(d[b])
    return tuple(d[c] for c in _COLUMNS)


def _from_row(row: tuple) -> Record:
    d = dict(zip(_COLUMNS, row))
    d["strength"] = json.loads(d["strength"])
    d["extra"] = json.loads(d["extra"]) if d["extra"] else None
    d["marked"] = bool(d["marked"])
    d["detected"] = None if d["detected"] is None else bool(d["detected"])
    return Record(**d)


def json_safe(value: Any) -> Any:
    """JSON has no infinity: identical images have PSNR = inf, exported as the string."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

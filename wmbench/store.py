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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from wmbench.errors import WmbenchError

SCHEMA_VERSION = 2  # 2: quality metrics in one JSON column, explicit roles, the run manifest
DB_NAME = "results.sqlite"

# What a cell's item is to the statistics: a marked item (its detections give the TPR)
# or a negative from one of two pools (they give the measured FPR). A *twin* is the
# unmarked counterpart of a marked item: the clean original for a mark added to an
# item, the unmarked generation (same prompt, same draws) for a generation mark. An
# *unpaired* negative is a sample the method only ever sees unmarked (a human text
# checked by a generation mark).
POSITIVE, TWIN, UNPAIRED = "positive", "twin", "unpaired"
ROLES = (POSITIVE, TWIN, UNPAIRED)

# Columns of the first schema that now live in ``metrics``: read back from old stores.
_LEGACY_METRICS = ("psnr", "ssim", "perplexity", "similarity")


@dataclass
class Record:
    """One cell's outcome. ``marked`` is False for the unmarked negatives; ``role`` says
    which pool a negative belongs to. ``metrics`` holds the modality's declared quality
    metrics (None: not measured, with the reason in ``extra["<name>_missing"]``)."""

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
    tokens: int | None = None  # units the detector scored (text: tokens), when it says
    seconds: float | None = None
    error: str | None = None
    skipped: str | None = None  # why the cell could not run here (the attack raised SkipCell)
    extra: dict[str, Any] | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    role: str = ""  # POSITIVE, TWIN or UNPAIRED; "" only while a job is being built
    # an unmarked cell's p-values under the method's other keys (``negative_keys``), if any
    other_keys: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.role:
            self.role = POSITIVE if self.marked else TWIN

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)

    @property
    def negative_p_values(self) -> list[float]:
        """This negative's p-values under every key it was scored with (its own first)."""
        if self.marked or self.p_value is None:
            return []
        return [self.p_value, *(self.other_keys or ())]


_COLUMNS = [f.name for f in fields(Record)]
_SQL_TYPES = {
    "cell_key": "TEXT PRIMARY KEY", "strength_index": "INTEGER", "marked": "INTEGER",
    "score": "REAL", "p_value": "REAL", "detected": "INTEGER", "bits_matched": "INTEGER",
    "bits_total": "INTEGER", "tokens": "INTEGER", "seconds": "REAL",
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
        """Stores written by an older wmbench lack newer columns: add them, and move the
        first schema's metric columns into ``metrics`` and derive each cell's role."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(cells)")}
        if not have:
            return  # a new store: created below
        with self.db:
            for column in _COLUMNS:
                if column not in have:
                    self.db.execute(f"ALTER TABLE cells ADD COLUMN {column} {_SQL_TYPES.get(column, 'TEXT')}")
            legacy = [c for c in _LEGACY_METRICS if c in have]
            if legacy:
                # JSON has no infinity (identical images: PSNR = inf): stored as "inf", as json_safe does
                pairs = ", ".join(f"'{c}', CASE WHEN {c} > 1e308 THEN 'inf' WHEN {c} < -1e308 THEN '-inf' "
                                  f"ELSE {c} END" for c in legacy)
                self.db.execute(f"UPDATE cells SET metrics = json_object({pairs}) WHERE metrics IS NULL")
            if "role" not in have:
                # the planner gives a sample marked cells under a method iff it can mark it
                self.db.execute(f"""UPDATE cells SET role = CASE
                    WHEN marked THEN '{POSITIVE}'
                    WHEN EXISTS (SELECT 1 FROM cells c2 WHERE c2.method = cells.method
                                 AND c2.sample = cells.sample AND c2.marked) THEN '{TWIN}'
                    ELSE '{UNPAIRED}' END""")

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

    def set_manifest(self, manifest: dict[str, Any]) -> None:
        """The resolved plan of the run (see :mod:`wmbench.manifest`): what the report reads."""
        self.set_meta({"manifest": manifest})

    def manifest(self) -> dict[str, Any] | None:
        return self.meta().get("manifest")

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
    d["metrics"] = json.dumps({k: json_safe(v) for k, v in d["metrics"].items()}) if d["metrics"] else None
    d["other_keys"] = json.dumps(d["other_keys"]) if d["other_keys"] is not None else None
    for b in ("marked", "detected"):
        d[b] = None if d[b] is None else int(d[b])
    return tuple(d[c] for c in _COLUMNS)


def _from_row(row: tuple) -> Record:
    d = dict(zip(_COLUMNS, row))
    d["strength"] = json.loads(d["strength"])
    d["extra"] = json.loads(d["extra"]) if d["extra"] else None
    d["metrics"] = {k: _from_json_number(v) for k, v in json.loads(d["metrics"]).items()} if d["metrics"] else {}
    d["other_keys"] = json.loads(d["other_keys"]) if d["other_keys"] else None
    d["marked"] = bool(d["marked"])
    d["detected"] = None if d["detected"] is None else bool(d["detected"])
    return Record(**d)


def _from_json_number(value: Any) -> float | None:
    """Undo :func:`json_safe` for a metric: "inf" back to infinity."""
    if isinstance(value, str):
        return float(value)
    return None if value is None else float(value)


def json_safe(value: Any) -> Any:
    """JSON has no infinity: identical images have PSNR = inf, exported as the string."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

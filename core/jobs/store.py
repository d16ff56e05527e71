"""The job list in SQLite: one row per job, shared by the studio, CLI commands and workers at once.

WAL mode lets readers run while one process writes; every write is a short `BEGIN IMMEDIATE` transaction, which
takes the write lock up front, so a read-then-update (the scheduler claiming a queued job) cannot interleave with
another process doing the same. Connections are per thread (Gradio handlers run in a thread pool).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
JSON_COLUMNS = ("request", "devices")
COLUMNS = (
    "id", "name", "kind", "status", "reason", "detail", "request", "devices", "attempt", "created_at", "queued_at",
    "started_at", "ended_at", "pid", "pid_ctime", "claimed_by", "stop_mode", "stop_at", "stop_timeout", "term_at",
    "exit_code", "progress", "step", "owner_pid", "owner_ctime", "needs_secrets", "run_dir",
)

_DDL = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL DEFAULT '{}',
    devices TEXT NOT NULL DEFAULT '[]',
    attempt INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    queued_at REAL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    pid_ctime REAL,
    claimed_by INTEGER,
    stop_mode TEXT,
    stop_at REAL,
    stop_timeout REAL,
    term_at REAL,
    exit_code INTEGER,
    progress REAL,
    step TEXT,
    owner_pid INTEGER,
    owner_ctime REAL,
    needs_secrets INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, queued_at);
"""


class Store:
    def __init__(self, db_path: str | Path, timeout_s: float = 30.0):
        self.path = Path(db_path)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _init_schema(self) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _DDL.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            # Additive migration: columns added after a workspace's database was created.
            have = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
            for line in _DDL.splitlines():
                parts = line.strip().rstrip(",").split()
                if len(parts) >= 2 and parts[0] in COLUMNS and parts[0] not in have:
                    conn.execute(f"ALTER TABLE jobs ADD COLUMN {' '.join(parts)}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # rows ---------------------------------------------------------------------------------------------------------

    @staticmethod
    def _decode(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        d = dict(row)
        for col in JSON_COLUMNS:
            try:
                d[col] = json.loads(d.get(col) or "null")
            except ValueError:
                d[col] = None
        return d

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in fields.items():
            if k not in COLUMNS:
                raise KeyError(f"unknown job column {k!r}")
            out[k] = json.dumps(v) if k in JSON_COLUMNS else v
        return out

    def insert(self, row: dict[str, Any], conn: sqlite3.Connection | None = None) -> None:
        enc = self._encode(row)
        sql = f"INSERT INTO jobs ({', '.join(enc)}) VALUES ({', '.join('?' for _ in enc)})"
        if conn is not None:
            conn.execute(sql, tuple(enc.values()))
            return
        with self.tx() as c:
            c.execute(sql, tuple(enc.values()))

    def get(self, job_id: str, conn: sqlite3.Connection | None = None) -> dict | None:
        c = conn or self._connect()
        return self._decode(c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def find(self, prefix: str) -> list[str]:
        """Ids equal to or starting with `prefix` (the CLI accepts unique prefixes)."""
        pat = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._connect().execute(
            "SELECT id FROM jobs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY seq", (prefix, pat)
        ).fetchall()
        return [r["id"] for r in rows]

    def rows(
        self, statuses: tuple[str, ...] | list[str] | None = None, conn: sqlite3.Connection | None = None,
        order: str = "seq DESC", limit: int | None = None,
    ) -> list[dict]:
        c = conn or self._connect()
        sql, args = "SELECT * FROM jobs", []
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._decode(r) for r in c.execute(sql, args).fetchall()]

    def update(
        self, job_id: str, fields: dict[str, Any], *, expect_status: tuple[str, ...] | None = None,
        expect_attempt: int | None = None, conn: sqlite3.Connection | None = None,
    ) -> bool:
        """Update a row if it is still in one of `expect_status` (and attempt); True when it was."""
        enc = self._encode(fields)
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in enc)} WHERE id = ?"
        args: list[Any] = [*enc.values(), job_id]
        if expect_status:
            sql += f" AND status IN ({', '.join('?' for _ in expect_status)})"
            args.extend(expect_status)
        if expect_attempt is not None:
            sql += " AND attempt = ?"
            args.append(expect_attempt)
        if conn is not None:
            return conn.execute(sql, args).rowcount > 0
        with self.tx() as c:
            return c.execute(sql, args).rowcount > 0

    def delete(self, job_id: str, conn: sqlite3.Connection | None = None) -> bool:
        if conn is not None:
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
        with self.tx() as c:
            return c.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

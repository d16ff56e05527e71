"""The job list in SQLite: one row per job, shared by the studio, CLI commands and workers at once.

WAL mode lets readers run while one process writes; every write is a short `BEGIN IMMEDIATE` transaction, which
takes the write lock up front, so a read-then-update (the scheduler claiming a queued job) cannot interleave with
another process doing the same. Connections are per thread (Gradio handlers run in a thread pool).

SQLite's own errors never leave this class: a full disk becomes `DiskFull`, a lock held too long or an unreadable
file `StoreUnavailable` (both UserErrors saying what to do), so callers show a message, never a traceback. On a full
disk the list can still be read: opening an up-to-date database writes nothing, and where SQLite cannot even open
it (WAL mode needs a shared-memory file, which takes space), reads fall back to a read-only snapshot of the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.jobs.errors import DiskFull, StoreUnavailable
from core.jobs.failure import FULL_BELOW, is_disk_full

SCHEMA_VERSION = 2
JSON_COLUMNS = ("request", "devices", "writes", "reads", "waits_for")
COLUMNS = (
    "id", "name", "kind", "status", "reason", "detail", "request", "devices", "attempt", "created_at", "queued_at",
    "started_at", "ended_at", "pid", "pid_ctime", "claimed_by", "stop_mode", "stop_at", "stop_timeout", "term_at",
    "exit_code", "progress", "step", "owner_pid", "owner_ctime", "needs_secrets", "run_dir", "cause", "writes",
    "reads", "waits_for", "executor", "remote_addr", "remote_id",
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
    run_dir TEXT NOT NULL,
    cause TEXT NOT NULL DEFAULT '',
    writes TEXT NOT NULL DEFAULT '[]',
    reads TEXT NOT NULL DEFAULT '[]',
    waits_for TEXT NOT NULL DEFAULT '[]',
    executor TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    remote_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, queued_at);
"""


def _lower(value: object) -> str:
    """Python's lower() in SQL (`eds_lower`): SQLite's own lower() leaves non-ASCII letters as they are."""
    return str(value or "").lower()


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
            try:
                conn.row_factory = sqlite3.Row
                conn.create_function("eds_lower", 1, _lower, deterministic=True)
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
                self._wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                conn.close()
                raise
            self._local.conn = conn
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """WAL mode. SQLite answers this pragma BUSY at once, without its busy handler, while another process opens
        (recovers) the same new database: wait for that here, as long as any other lock may be waited for."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e).lower() or "busy" in str(e).lower()
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _out_of_space(self, e: sqlite3.Error) -> bool:
        """SQLITE_FULL, or an I/O error on a filesystem with (almost) nothing free: what a full disk looks like."""
        if is_disk_full(e):
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if code is None or (code & 0xFF) not in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
            return False
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < FULL_BELOW

    def _read(self, sql: str, args: tuple | list = (), conn: sqlite3.Connection | None = None) -> list[sqlite3.Row]:
        """Rows of a query; on a disk too full to open the database normally, from a read-only snapshot."""
        with self._guard():
            if conn is not None:
                return conn.execute(sql, args).fetchall()
            try:
                return self._connect().execute(sql, args).fetchall()
            except sqlite3.OperationalError as e:
                if not self._out_of_space(e) or not self.path.exists():
                    raise
            uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro&immutable=1"
            snap = sqlite3.connect(uri, uri=True, timeout=self.timeout_s)
            try:
                snap.row_factory = sqlite3.Row
                snap.create_function("eds_lower", 1, _lower, deterministic=True)
                return snap.execute(sql, args).fetchall()
            finally:
                snap.close()

    def _init_schema(self) -> None:
        if self.path.exists():
            have = {r["name"] for r in self._read("PRAGMA table_info(jobs)")}
            if set(COLUMNS) <= have and self._read("PRAGMA user_version")[0][0] >= SCHEMA_VERSION:
                return  # up to date: write nothing (a full disk must not keep the list from being read)
        with self.tx() as conn:
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

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's operational errors as the UserErrors callers show: DiskFull, or StoreUnavailable saying why."""
        try:
            yield
        except sqlite3.Error as e:
            if not isinstance(e, sqlite3.OperationalError) and type(e) is not sqlite3.DatabaseError:
                raise  # a programming or integrity error is a bug, not the store being out of reach
            if self._out_of_space(e):
                raise DiskFull("the workspace folder", f"the job list ({self.path.name})") from None
            if "locked" in str(e).lower() or "busy" in str(e).lower():
                raise StoreUnavailable(
                    f"the job list ({self.path.name}) stayed locked by another process for over {self.timeout_s:.0f}s;"
                    " try again in a moment", "the workspace folder") from None
            raise StoreUnavailable(
                f"the job list ({self.path.name} in the workspace folder) cannot be used: {e}", "the workspace folder"
            ) from None

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # SQLite may have rolled back already (a failed COMMIT on a full disk does)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        with self._guard():
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise

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
            raw = d.get(col) or "null"
            if raw == "[]":  # most rows' writes / reads / waits_for / devices: no parser needed (a list per tick)
                d[col] = []
                continue
            try:
                d[col] = json.loads(raw)
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
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,), conn)
        return self._decode(rows[0]) if rows else None

    def find(self, prefix: str) -> list[str]:
        """Ids equal to or starting with `prefix` (the CLI accepts unique prefixes)."""
        pat = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read("SELECT id FROM jobs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY seq", (prefix, pat))
        return [r["id"] for r in rows]

    def rows(
        self, statuses: tuple[str, ...] | list[str] | None = None, conn: sqlite3.Connection | None = None,
        order: str = "seq DESC", limit: int | None = None,
    ) -> list[dict]:
        sql, args = "SELECT * FROM jobs", []
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._decode(r) for r in self._read(sql, args, conn)]

    def listing(self, statuses: tuple[str, ...] | list[str] | set[str] | None = None, kind: str | None = None,
                text: str | None = None, limit: int | None = None) -> list[dict]:
        """Rows newest first, filtered and limited in SQL, so a list of thousands of jobs costs what is returned:
        `statuses` (any of), `kind`, `text` (a case-insensitive substring of "id name kind"), at most `limit`."""
        where, args = [], []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(sorted(statuses))
        if kind:
            where.append("kind = ?")
            args.append(kind)
        needle = (text or "").lower()
        if needle:
            # SQLite's lower() folds ASCII only; a needle with other letters is matched by Python's lower()
            fold = "lower" if needle.isascii() else "eds_lower"
            where.append(f"instr({fold}(id || ' ' || name || ' ' || kind), ?) > 0")
            args.append(needle)
        sql = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._decode(r) for r in self._read(sql, args)]

    def queue_order(self) -> list[str]:
        """Ids of the queued jobs, first to start first (their queue positions), read without decoding rows."""
        return [r["id"] for r in self._read("SELECT id FROM jobs WHERE status = 'queued' ORDER BY queued_at, seq")]

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

"""SQLite as the state database and the local backend use it: shared by several processes
(WAL, a long busy timeout), written in transactions that are all or nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: how long a writer waits for another one, in seconds
BUSY_TIMEOUT = 60


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) the database at ``path``; transactions are explicit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000}")
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction, taken before reading so that concurrent writers queue up: all or
    nothing, even under ``kill -9``."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

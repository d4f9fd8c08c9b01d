"""Crash-safe state for live trading: JSON files (atomic write + fsync + rename) or SQLite (WAL).

A backend stores JSON-able records under (kind, key). Live keeps one record per
(symbol, strategy) holding the open position, the waiting order, partial levels, the signal
throttle bucket and the journal of closed trades, so every transition is a single atomic
write made before its event is emitted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

from . import _state
from .errors import PersistError, ValidationError
from .events import Outcome, PartialEvent, TickResult


class PersistBackend(Protocol):
    def read(self, kind: str, key: str) -> Any | None: ...
    def write(self, kind: str, key: str, value: Any) -> None: ...


def _safe(name: str) -> str:
    """A file-name-safe form of a key (no path separators), readable for normal symbols."""
    return re.sub(r"[^A-Za-z0-9._=-]", lambda m: f"%{ord(m.group()):02X}", name)


class FileBackend:
    """`<base>/<kind>/<key>.json`, each write atomic: temp file, fsync, rename, fsync dir."""

    def __init__(self, base_dir: str | os.PathLike = "./dump/data", fsync: bool = True):
        self.base = Path(base_dir)
        self.fsync = fsync

    def path(self, kind: str, key: str) -> Path:
        return self.base / kind / f"{_safe(key)}.json"

    def read(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise PersistError(f"cannot read state file {path}: {e}") from e
        try:
            return json.loads(text)
        except ValueError as e:
            raise PersistError(f"state file {path} is corrupt ({e}); fix or move it away "
                               "before restarting — it may hold an open position") from e

    def write(self, kind: str, key: str, value: Any) -> None:
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
        data = json.dumps(value, separators=(",", ":")).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.fsync:  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


    def lock(self, kind: str, key: str) -> TextIO:
        """An exclusive lock on one record for this process (released on exit, even on SIGKILL)."""
        import fcntl
        path = self.path(kind, key).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise PersistError(f"{self.path(kind, key)} is in use by another live process "
                               f"(lock {path}); two processes must not trade the same symbol and strategy") from None
        return f  # closing it releases the lock


class SqliteBackend:
    """One SQLite database in WAL mode; each write is one committed upsert."""

    def __init__(self, path: str | os.PathLike = "./dump/data/state.sqlite"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS state (kind TEXT, key TEXT, value TEXT NOT NULL, "
                             "PRIMARY KEY (kind, key))")
        except sqlite3.DatabaseError as e:
            raise PersistError(f"state database {self.path} is unusable: {e}") from e

    def read(self, kind: str, key: str) -> Any | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT value FROM state WHERE kind=? AND key=?", (kind, key)).fetchone()
            except sqlite3.DatabaseError as e:
                raise PersistError(f"state database {self.path} is unreadable: {e}") from e
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError as e:
            raise PersistError(f"state record {kind}/{key} in {self.path} is corrupt ({e})") from e

    def write(self, kind: str, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT INTO state (kind, key, value) VALUES (?, ?, ?) "
                             "ON CONFLICT (kind, key) DO UPDATE SET value=excluded.value",
                             (kind, key, json.dumps(value, separators=(",", ":"))))

    def close(self) -> None:
        self._db.close()


# kind ("*", "live", "risk") -> backend
_backends: dict[str, PersistBackend] = _state.register("persist_backends", {})


def _check(name: str, backend: object) -> None:
    if backend is not None and not (callable(getattr(backend, "read", None))
                                    and callable(getattr(backend, "write", None))):
        raise ValidationError(f"{name}: backend needs read(kind, key) and write(kind, key, value)")


def _use(kind: str, name: str, backend: PersistBackend | None) -> None:
    _check(name, backend)
    if backend is None:
        _backends.pop(kind, None)
    else:
        _backends[kind] = backend


def use_persist_adapter(backend: PersistBackend | None) -> None:
    """Store all live state in `backend` (FileBackend, SqliteBackend or your own); None = files."""
    _use("*", "use_persist_adapter", backend)


def use_persist_signal_adapter(backend: PersistBackend | None) -> None:
    """Backend of the per-strategy record: open position, waiting order, partial levels and
    closed-trade journal live in one record so each transition is one atomic write."""
    _use("live", "use_persist_signal_adapter", backend)


use_persist_schedule_adapter = use_persist_signal_adapter
use_persist_partial_adapter = use_persist_signal_adapter


def use_persist_risk_adapter(backend: PersistBackend | None) -> None:
    """Backend of the risk profiles' active positions."""
    _use("risk", "use_persist_risk_adapter", backend)


def current_backend(kind: str = "live") -> PersistBackend:
    return _backends.get(kind) or _backends.get("*") or FileBackend()



def journal_entry(result: Outcome) -> dict[str, Any]:
    """A closed or cancelled result as a JSON-able journal record."""
    entry: dict[str, Any] = {"action": result.action, "signal": result.signal.to_dict(),
                             "current_price": result.current_price, "close_timestamp": result.close_timestamp}
    if result.action == "closed":
        entry["close_reason"] = result.close_reason
        entry["pnl"] = dataclasses.asdict(result.pnl)
    return entry


class LiveStore:
    """The saved state of one (symbol, strategy): the machine's snapshot plus the journal of
    closed and cancelled trades, rewritten whole on every transition (one atomic write)."""

    def __init__(self, backend: PersistBackend, symbol: str, strategy_name: str):
        self.backend = backend
        self.key = f"{symbol}_{strategy_name}"
        self.journal: list[dict[str, Any]] = []
        self._snapshot: Callable[[], dict[str, Any]] = dict

    def bind(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def load(self) -> dict[str, Any] | None:
        data = self.backend.read("live", self.key)
        if data:
            self.journal = list(data.get("journal", []))
        return data

    def transition(self, event: TickResult | PartialEvent) -> None:
        if event.action == "closed" or event.action == "cancelled":
            self.journal.append(journal_entry(event))
        self.backend.write("live", self.key, {**self._snapshot(), "journal": self.journal})

    def describe(self) -> str:
        path = getattr(self.backend, "path", None)
        return str(path("live", self.key)) if callable(path) else f"live/{self.key} in {self.backend!r}"

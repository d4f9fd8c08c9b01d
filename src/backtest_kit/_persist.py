"""Crash-safe state for live trading: JSON files (atomic write + fsync + rename) or SQLite (WAL).

A backend stores JSON-able records under (kind, key). Live keeps one record per
(symbol, strategy) holding the open position, the waiting order, partial levels, the signal
throttle bucket and the journal of closed trades, so every transition is a single atomic
write made before its event is emitted.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import sqlite3
import string
import threading
import time
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


_FILE_SAFE = frozenset(string.ascii_letters + string.digits + "._=-")
_MAX_NAME = 200  # bytes of an escaped key; longer ones end in a hash (file names stop at 255)


def safe_name(name: str) -> str:
    """An injective, file-name-safe form of a key: letters, digits and `._=-` stay, everything
    else (and a leading `.`) becomes %XX of its UTF-8 bytes; a long key is cut and ends in
    `~` + a SHA-256 prefix (`~` never appears otherwise). `BTCUSDT_s` stays `BTCUSDT_s`."""
    raw = name.encode("utf-8", "surrogatepass")
    out = []
    for i, ch in enumerate(name):
        if ch in _FILE_SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    text = "".join(out)
    if len(text) > _MAX_NAME:
        text = f"{text[:_MAX_NAME - 33]}~{hashlib.sha256(raw).hexdigest()[:32]}"
    return text


def state_key(symbol: str, strategy_name: str) -> str:
    """The record key of one (symbol, strategy): `<symbol>_<strategy>` with `=` and `_` of the
    symbol escaped (`=3D`, `=5F`), so the first `_` always ends the symbol and no two pairs
    share a key. Names without them keep the key of earlier versions."""
    return f"{symbol.replace('=', '=3D').replace('_', '=5F')}_{strategy_name}"


def legacy_state_key(symbol: str, strategy_name: str) -> str:
    """The key before issue 12 (ambiguous when the symbol holds `_`): read, never written."""
    return f"{symbol}_{strategy_name}"


def describe(backend: object, kind: str, key: str) -> str:
    """Where a record lives, for messages: the file, the database record, or the backend."""
    fn = getattr(backend, "describe", None)
    if callable(fn):
        return str(fn(kind, key))
    path = getattr(backend, "path", None)
    return str(path(kind, key)) if callable(path) else f"record {kind}/{key} of {backend!r}"


def read_record(backend: PersistBackend, kind: str, key: str) -> Any | None:
    """backend.read, with any failure of a custom backend as a PersistError naming the record."""
    try:
        return backend.read(kind, key)
    except PersistError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a custom backend raises, the start stops
        raise PersistError(f"cannot read {describe(backend, kind, key)}: {type(e).__name__}: {e}") from e


def write_record(backend: PersistBackend, kind: str, key: str, value: Any, what: str) -> None:
    """backend.write; a failure is a PersistError naming the record and `what` was being saved."""
    try:
        backend.write(kind, key, value)
    except Exception as e:  # noqa: BLE001 - a lost write must stop the run, whatever the backend
        cause = str(e) if isinstance(e, PersistError) else (
            f"cannot write {describe(backend, kind, key)}: {type(e).__name__}: {e}")
        raise PersistError(f"cannot save {what}, so the run stops (the state saved before is intact): "
                           f"{cause}") from e


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _flock(path: Path, what: str) -> TextIO:
    """An exclusive OS lock on `path` for this process: released when the file is closed or the
    process dies (even by SIGKILL), so a crashed process never blocks its restart."""
    import fcntl
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        raise PersistError(f"cannot create the lock file {path} for {what}: {e}") from e
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise PersistError(f"{what} is in use by another live process{_holder(path)} (lock {path}); "
                           "two processes must not trade the same symbol and strategy") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f  # closing it releases the lock


# `.tmp-<pid>-<12 hex>-<name>` (older versions: no pid); kept names never start with a `.`
_TMP = re.compile(r"^\.tmp-(?:(\d+)-)?[0-9a-f]{12}-.+$")
_STALE_SECONDS = 600.0  # a temp file without a live writer is removed; one this old in any case


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class FileBackend:
    """`<base>/<kind>/<key>.json`, each write atomic: temp file written in full, fsync, rename,
    fsync of the directory. Temp files left by killed writes are removed at start-up."""

    def __init__(self, base_dir: str | os.PathLike[str] = "./dump/data", fsync: bool = True):
        self.base = Path(base_dir)
        self.fsync = fsync
        self._swept: set[Path] = set()

    def __repr__(self) -> str:
        return f"FileBackend({str(self.base)!r})"

    def path(self, kind: str, key: str) -> Path:
        return self.base / safe_name(kind) / f"{safe_name(key)}.json"

    def describe(self, kind: str, key: str) -> str:
        return f"state file {self.path(kind, key)}"

    def _sweep(self, folder: Path) -> None:
        """Remove the temp files of writes killed mid-way (once per folder and backend)."""
        if folder in self._swept:
            return
        self._swept.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        now = time.time()
        for entry in entries:
            m = _TMP.match(entry.name)
            if m is None:
                continue
            try:
                old = now - entry.stat().st_mtime > _STALE_SECONDS
                if old or (m.group(1) is not None and not _alive(int(m.group(1)))):
                    os.unlink(entry.path)
            except OSError:
                pass

    def read(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key)
        self._sweep(path.parent)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise PersistError(f"cannot read state file {path}: {e}") from e
        try:
            value = json.loads(text)
        except ValueError as e:
            raise PersistError(f"state file {path} is corrupt ({e}); fix or move it away "
                               "before restarting — it may hold an open position") from e
        if value is None:
            raise PersistError(f"state file {path} is corrupt (it holds null); fix or move it away "
                               "before restarting — it may hold an open position")
        return value

    def _write_fd(self, fd: int, data: memoryview) -> int:
        """One os.write (tests replace it to inject short writes and full disks)."""
        return os.write(fd, data)

    def write(self, kind: str, key: str, value: Any) -> None:
        path = self.path(kind, key)
        data = json.dumps(value, separators=(",", ":")).encode()
        tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sweep(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:  # os.write may write less than asked (a nearly full disk)
                    n = self._write_fd(fd, view)
                    if n <= 0:
                        raise OSError(errno.ENOSPC, f"short write: {len(view)} bytes not written")
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self.fsync:  # make the rename itself durable
                dfd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as e:
            _unlink(tmp)
            raise PersistError(f"cannot write state file {path}: {e}") from e
        except BaseException:
            _unlink(tmp)
            raise

    def lock(self, kind: str, key: str) -> TextIO:
        """An exclusive lock on one record for this process (released on exit, even on SIGKILL)."""
        path = self.path(kind, key)
        lock = _flock(path.with_name(f"{path.stem}.lock"), str(path))
        self._sweep(path.parent)  # temp files of live writers (other pids) are kept
        return lock


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class SqliteBackend:
    """One SQLite database in WAL mode; each write is one committed upsert. Locks are OS locks
    on files in `<database>-locks/`, so they die with their process as the file backend's do."""

    def __init__(self, path: str | os.PathLike[str] = "./dump/data/state.sqlite"):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS state (kind TEXT, key TEXT, value TEXT NOT NULL, "
                             "PRIMARY KEY (kind, key))")
        except (OSError, sqlite3.Error) as e:
            raise PersistError(f"state database {self.path} is unusable: {e}") from e

    def __repr__(self) -> str:
        return f"SqliteBackend({str(self.path)!r})"

    def describe(self, kind: str, key: str) -> str:
        return f"record {kind}/{key} of state database {self.path}"

    def read(self, kind: str, key: str) -> Any | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT value FROM state WHERE kind=? AND key=?", (kind, key)).fetchone()
            except sqlite3.Error as e:
                raise PersistError(f"state database {self.path} is unreadable: {e}") from e
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError) as e:
            raise PersistError(f"state record {kind}/{key} in {self.path} is corrupt ({e})") from e
        if value is None:
            raise PersistError(f"state record {kind}/{key} in {self.path} is corrupt (it holds null)")
        return value

    def write(self, kind: str, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            try:
                self._db.execute("INSERT INTO state (kind, key, value) VALUES (?, ?, ?) "
                                 "ON CONFLICT (kind, key) DO UPDATE SET value=excluded.value", (kind, key, text))
            except sqlite3.Error as e:
                raise PersistError(f"cannot write {self.describe(kind, key)}: {e}") from e

    def lock(self, kind: str, key: str) -> TextIO:
        """An exclusive lock on one record for this process (released on exit, even on SIGKILL)."""
        folder = Path(f"{self.path.resolve()}-locks") / safe_name(kind)
        return _flock(folder / f"{safe_name(key)}.lock", self.describe(kind, key))

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


def _transition(event: TickResult | PartialEvent) -> str:
    signal = getattr(event.signal, "id", None)
    if event.action == "profit" or event.action == "loss":
        return f"the partial {event.action} level {event.level}% of signal {signal}"
    return f"the '{event.action}' transition of signal {signal}"


class LiveStore:
    """The saved state of one (symbol, strategy): the machine's snapshot plus the journal of
    closed and cancelled trades, rewritten whole on every transition (one atomic write).

    A write that fails raises PersistError (the run must stop: memory would run ahead of the
    saved state). `load` refuses anything but a well-formed document of this symbol and strategy.
    """

    def __init__(self, backend: PersistBackend, symbol: str, strategy_name: str):
        self.backend = backend
        self.symbol = symbol
        self.strategy_name = strategy_name
        self.key = state_key(symbol, strategy_name)
        self.journal: list[dict[str, Any]] = []
        self._snapshot: Callable[[], dict[str, Any]] = dict
        self._where = describe(backend, "live", self.key)

    def bind(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def load(self) -> dict[str, Any] | None:
        """The saved document (None when there is none); PersistError when it is corrupt or foreign."""
        from ._restore import check_live_document

        data = read_record(self.backend, "live", self.key)
        legacy = legacy_state_key(self.symbol, self.strategy_name)
        if data is None and legacy != self.key:
            old = read_record(self.backend, "live", legacy)
            # The old key was shared by other names: take the record only if it is ours.
            if isinstance(old, dict) and (old.get("symbol"), old.get("strategy_name")) == (
                    self.symbol, self.strategy_name):
                data, self._where = old, describe(self.backend, "live", legacy)
        if data is None:
            return None
        doc = check_live_document(data, self._where, self.symbol, self.strategy_name)
        self.journal = list(doc["journal"])
        return doc

    def transition(self, event: TickResult | PartialEvent) -> None:
        journal = self.journal
        if event.action == "closed" or event.action == "cancelled":
            journal = [*journal, journal_entry(event)]
        write_record(self.backend, "live", self.key, {**self._snapshot(), "journal": journal},
                     f"the live state of {self.symbol}/{self.strategy_name} for {_transition(event)}")
        self.journal = journal

    def describe(self) -> str:
        return self._where

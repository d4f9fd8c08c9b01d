"""Issue 12: live state that cannot be lost — short and failed writes, locks, keys, restore checks.

Full-disk and short-write cases are injected through a FileBackend subclass or a wrapping
backend (and SQLite's own max_page_count), so nothing here needs root or special mounts.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit import _state
from backtest_kit._persist import FileBackend, state_key
from backtest_kit.demo import ArrayExchange
from helpers.market import flat_market

T0 = 1_704_067_200_000
M = 60_000
NEW_PROCESS = ("live_instances", "runs", "risk_books")
LONG = {"position": "long", "price_take_profit": 101.0, "price_stop_loss": 99.0, "minute_estimated_time": 60}

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def market(minutes: int = 300, bars: dict[int, float] | None = None) -> np.ndarray:
    return flat_market(minutes, prices=bars)


def every(n: int, signal: dict = LONG):
    """A get_signal answering `signal` at every n-th minute."""
    def get_signal(symbol, when):
        minute = (int(when.timestamp() * 1000) - T0) // M
        return dict(signal) if minute % n == 0 else None
    return get_signal


def register(get_signal, candles=None, strategy="s", risk_name=None):
    if "ex" not in [e.exchange_name for e in bk.list_exchanges()]:
        bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(
            market() if candles is None else candles).get_candles)
    bk.add_strategy(strategy_name=strategy, interval="1m", get_signal=get_signal, risk_name=risk_name)


async def arun(symbol="BTC", strategy="s", start=10, end=None, n=None, strict=False):
    out = []
    clock = bk.VirtualClock(T0 + start * M + 1, None if end is None else T0 + end * M)
    extra = {"strict": True} if strict else {}
    async for r in bk.Live.run(symbol, strategy_name=strategy, exchange_name="ex", clock=clock, **extra):
        out.append(r)
        if n and len(out) >= n:
            break
    return out


def run(**kw):
    return asyncio.run(arun(**kw))


STATE = Path("dump/data/live/BTC_s.json")


# --- 1. writes loop until complete; a failed write keeps the good state --------------------------

class ShortWrites(FileBackend):
    """At most `chunk` bytes per os.write, as on a nearly full disk."""

    def __init__(self, base, chunk=7):
        super().__init__(base)
        self.chunk, self.calls = chunk, 0

    def _write_fd(self, fd, data):
        self.calls += 1
        return os.write(fd, bytes(data[: self.chunk]))


class FullDisk(FileBackend):
    """os.write fails with ENOSPC after `ok` successful record writes."""

    def __init__(self, base, ok):
        super().__init__(base)
        self.ok = ok

    def _write_fd(self, fd, data):
        if self.ok <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.ok -= 1
        return os.write(fd, data)


def test_short_os_writes_are_looped_until_the_record_is_whole(tmp_path):
    backend = ShortWrites(tmp_path / "state")
    value = {"journal": [{"note": "x" * 300}], "n": list(range(50))}
    backend.write("live", "BTC_s", value)
    assert backend.calls > 10  # really written in short pieces
    assert backend.read("live", "BTC_s") == value
    assert [p.name for p in (tmp_path / "state" / "live").iterdir()] == ["BTC_s.json"]


def test_a_failed_write_keeps_the_previous_state_and_names_the_file(tmp_path):
    backend = FullDisk(tmp_path / "state", ok=1)
    backend.write("live", "BTC_s", {"good": True})
    with pytest.raises(bk.PersistError, match=r"BTC_s\.json.*No space left"):
        backend.write("live", "BTC_s", {"good": False, "pad": "y" * 1000})
    assert backend.read("live", "BTC_s") == {"good": True}
    assert sorted(p.name for p in (tmp_path / "state" / "live").iterdir()) == ["BTC_s.json"]  # no temp left


# --- 3. a failed state write stops the live run before anything else happens -----------------------

class FailAfter:
    """Wraps a backend: the live record's writes fail after `ok` successes (read-only disk)."""

    def __init__(self, inner, ok, error=None):
        self.inner, self.ok = inner, ok
        self.error = error or OSError(errno.EROFS, "Read-only file system")

    def read(self, kind, key):
        return self.inner.read(kind, key)

    def write(self, kind, key, value):
        if kind == "live":
            if self.ok <= 0:
                raise self.error
            self.ok -= 1
        self.inner.write(kind, key, value)

    def path(self, kind, key):
        return self.inner.path(kind, key)


@pytest.mark.parametrize("ok, failed", [(0, "opened"), (1, "closed")])
def test_failed_write_stops_live_run_naming_file_and_transition(ok, failed):
    bk.use_persist_adapter(FailAfter(FileBackend(), ok))
    register(every(30))  # with the flat market the long opens at 10 + 30k and expires after 60 min
    heard = []
    bk.listen_signal_live(lambda r: r.action in ("idle", "active") or heard.append(r.action))
    with pytest.raises(bk.PersistError) as info:
        run(end=200)
    text = str(info.value)
    assert "BTC_s.json" in text and failed in text and "Read-only" in text
    # nothing after the failed transition was emitted: the event of that transition neither
    assert failed not in heard and heard == ([] if ok == 0 else ["opened"])
    stats = asyncio.run(bk.Live.get_data("BTC", "s"))
    assert stats.total_closed == 0


def test_background_reports_a_failed_write_to_listen_exit():
    bk.use_persist_adapter(FailAfter(FileBackend(), 0))
    register(every(30))

    async def main():
        exits, done = [], asyncio.Event()
        bk.listen_exit(exits.append)
        bk.listen_done_live(lambda e: done.set())
        clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 200 * M)
        bk.Live.background("BTC", strategy_name="s", exchange_name="ex", clock=clock)
        await asyncio.wait_for(done.wait(), 10)
        return exits

    exits = asyncio.run(main())
    assert len(exits) == 1 and isinstance(exits[0], bk.PersistError) and "opened" in str(exits[0])


def test_sqlite_disk_full_stops_the_run(tmp_path):
    backend = bk.SqliteBackend(tmp_path / "state.sqlite")
    register(every(30, {**LONG, "note": "n" * 20_000}))  # a record larger than the database may grow
    pages = backend._db.execute("PRAGMA page_count").fetchone()[0]
    backend._db.execute(f"PRAGMA max_page_count={pages}")
    bk.use_persist_adapter(backend)
    with pytest.raises(bk.PersistError, match=r"opened.*state\.sqlite.*full"):
        run(end=200)


# --- 2. every backend refuses a second process; the lock dies with its process --------------------

HOLD = """
import sys, time
sys.path.insert(0, {src!r})
import backtest_kit as bk
backend = bk.FileBackend({base!r}) if {kind!r} == "file" else bk.SqliteBackend({base!r})
lock = backend.lock("live", "BTC_s")
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_second_process_on_the_same_state_is_refused_until_the_first_dies(tmp_path, kind):
    base = str(tmp_path / ("state" if kind == "file" else "state.sqlite"))
    src = str(Path(bk.__file__).parent.parent)
    child = subprocess.Popen([sys.executable, "-c", HOLD.format(src=src, base=base, kind=kind)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        bk.use_persist_adapter(bk.FileBackend(base) if kind == "file" else bk.SqliteBackend(base))
        register(lambda s, w: None)
        with pytest.raises(bk.PersistError, match="in use by another live process"):
            run(end=20)
    finally:
        child.kill()
        child.wait()
    assert run(end=20) == []  # the lock died with the killed process


# --- 4. state keys are unambiguous ---------------------------------------------------------------

def test_state_keys_never_collide():
    pairs = [("AAA_X", "Y"), ("AAA", "X_Y"), ("A=5FB", "C"), ("A_B", "C"), ("A", "B_C")]
    keys = {state_key(s, t) for s, t in pairs}
    assert len(keys) == len(pairs)
    assert state_key("BTCUSDT", "ma_cross") == "BTCUSDT_ma_cross"  # the usual names keep their key
    backend = FileBackend("x")
    names = ["\u01f6", "\x1f6", "a/b", "a%2Fb", ".", "..", ".tmp-1-abcdefabcdef-x", "\0", "k" * 400, "k" * 401]
    paths = {backend.path("live", n) for n in names}
    assert len(paths) == len(names)
    for p in paths:
        assert p.parent == Path("x/live") and len(p.name.encode()) < 250 and not p.name.startswith(".")


def test_two_strategies_with_colliding_legacy_names_keep_their_own_trades():
    register(every(30), strategy="Y")
    register(every(30), strategy="X_Y")
    first = run(symbol="AAA_X", strategy="Y", end=200)
    assert [r.action for r in first].count("closed") >= 2
    _state.clear(*NEW_PROCESS)
    second = run(symbol="AAA", strategy="X_Y", end=35)
    assert [r.action for r in second] == ["opened"]
    stats = asyncio.run(bk.Live.get_data("AAA", "X_Y"))
    assert stats.total_closed == 0 and all(e.symbol == "AAA" for e in stats.event_list)


def test_a_state_file_of_the_old_key_format_is_still_read():
    register(every(30))
    run(symbol="BTC_USDT", n=1)  # opens a position
    new = Path("dump/data/live") / f"{state_key('BTC_USDT', 's')}.json"
    old = Path("dump/data/live/BTC_USDT_s.json")
    new.rename(old)  # as a version before issue 12 would have named it
    _state.clear(*NEW_PROCESS)
    results = run(symbol="BTC_USDT", start=30, end=200)
    assert results and results[0].action == "closed"  # the restored position closed; none reopened first


# --- 6 and 7. restored state is validated: corrupt or foreign state is never traded or discarded -----

def saved_state() -> dict:
    """A real saved document: an open long and one closed trade in the journal."""
    register(every(40))
    run(end=125)  # opened at 40, expired at 100, opened again at 120
    _state.clear(*NEW_PROCESS)
    doc = json.loads(STATE.read_text())
    assert doc["pending"] and len(doc["journal"]) == 1
    return doc


def refused(doc, match):
    STATE.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    before = STATE.read_text()
    with pytest.raises(bk.PersistError, match=match) as info:
        run(start=130, end=150)
    assert str(STATE) in str(info.value) or STATE.name in str(info.value)
    assert STATE.read_text() == before  # never discarded or overwritten
    _state.clear(*NEW_PROCESS)


@pytest.mark.parametrize("text", ["{}", "[]", "null", "0", "false", '""', '"x"', "[1]"])
def test_falsy_or_wrongly_shaped_documents_are_corrupt_not_a_fresh_start(text):
    register(every(30))
    STATE.parent.mkdir(parents=True)
    refused(text, "corrupt")


def edit(doc, path, value):
    doc = json.loads(json.dumps(doc))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, field", [
    (("pending", "position"), "sideways", "pending.position"),
    (("pending", "price_take_profit"), 50.0, "pending.price_take_profit"),
    (("pending", "price_take_profit"), float("nan"), "pending.price_take_profit"),
    (("pending", "price_stop_loss"), "99", "pending.price_stop_loss"),
    (("pending", "price_open"), -1, "pending.price_open"),
    (("pending", "minute_estimated_time"), 0, "pending.minute_estimated_time"),
    (("pending", "pending_at"), "yesterday", "pending.pending_at"),
    (("pending", "is_scheduled"), True, "pending.is_scheduled"),
    (("pending", "surprise"), 1, "pending"),
    (("pending",), [1, 2], "pending"),
    (("scheduled",), 7, "scheduled"),
    (("partial",), [], "partial"),
    (("partial",), {"x": [[10, "a"], []]}, "partial"),
    (("last_bucket",), "soon", "last_bucket"),
    (("cursor",), 1.5, "cursor"),
    (("journal",), {}, "journal"),
    (("journal", 0, "action"), "exploded", r"journal\[0\]\.action"),
    (("journal", 0, "pnl"), None, r"journal\[0\]\.pnl"),
    (("journal", 0, "signal", "symbol"), "ETH", r"journal\[0\]\.signal\.symbol"),
    (("journal", 0, "close_timestamp"), 10**30, r"journal\[0\]\.close_timestamp"),
])
def test_restored_fields_are_checked_like_new_signals(path, value, field):
    doc = saved_state()
    refused(edit(doc, path, value), field)


@pytest.mark.parametrize("key, value", [("symbol", "ETH"), ("strategy_name", "other"), ("exchange_name", "ex2")])
def test_foreign_state_is_refused_never_merged(key, value):
    doc = saved_state()
    refused(edit(doc, (key,), value), "belongs to")


def test_missing_fields_and_a_position_with_a_waiting_order_are_corrupt():
    doc = saved_state()
    for key in ("pending", "journal", "symbol"):
        refused({k: v for k, v in doc.items() if k != key}, key)
    both = edit(doc, ("scheduled",), {**doc["pending"], "is_scheduled": True})
    refused(both, "both")


def test_a_valid_saved_document_still_restores():
    doc = saved_state()
    STATE.write_text(json.dumps(doc))
    results = run(start=130, end=250)
    assert results[0].action == "closed" and results[0].signal.id == doc["pending"]["id"]
    assert asyncio.run(bk.Live.get_data("BTC", "s")).total_closed >= 2  # the journal's trade counts


# --- 8. malformed risk files, unusable state directories, temp files of killed writes ---------------

@pytest.mark.parametrize("text", ["{}", "null", "[1]", '[{"symbol": "BTC"}]',
                                  '[{"strategy_name": "s", "symbol": "BTC", "open_timestamp": "x", "signal": null}]'])
def test_malformed_risk_file_is_a_persist_error(text):
    bk.add_risk(risk_name="r", validations=[])
    register(every(30), risk_name="r")
    risk_file = Path("dump/data/risk/r.json")
    risk_file.parent.mkdir(parents=True)
    risk_file.write_text(text)
    with pytest.raises(bk.PersistError, match=r"r\.json"):
        run(end=20)
    assert risk_file.read_text() == text


def test_unusable_state_directory_is_a_persist_error(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    bk.use_persist_adapter(bk.FileBackend(tmp_path / "blocker" / "state"))
    register(every(30))
    with pytest.raises(bk.PersistError, match="blocker"):
        run(end=20)
    with pytest.raises(bk.PersistError, match="blocker"):
        bk.SqliteBackend(tmp_path / "blocker" / "state.sqlite")


def test_temp_files_of_killed_writes_are_removed_at_start_up():
    register(lambda s, w: None)
    folder = STATE.parent
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [folder / f".tmp-{dead.pid}-0123456789ab-BTC_s.json", folder / ".tmp-0123456789ab-BTC_s.json"]
    for p in stale:
        p.write_text("{")
    old = time.time() - 7200
    os.utime(stale[1], (old, old))  # the pre-issue-12 name carries no pid: removed once old
    in_flight = folder / f".tmp-{os.getpid()}-0123456789ab-ETH_s.json"  # a live writer's: kept
    in_flight.write_text("{")
    run(end=20)
    assert not any(p.exists() for p in stale) and in_flight.exists()


def test_timestamps_after_the_last_tick_or_closes_before_opens_are_corrupt():
    doc = saved_state()
    refused(edit(doc, ("pending", "pending_at"), doc["cursor"] + 60_000), "pending.pending_at")
    refused(edit(doc, ("journal", 0, "close_timestamp"), doc["journal"][0]["signal"]["pending_at"] - 1),
            r"journal\[0\]\.close_timestamp")

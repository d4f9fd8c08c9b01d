"""Live trading: virtual clock, persistence before events, restore, stop, crash safety."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit import _state
from backtest_kit._execution.live import next_tick
from backtest_kit.demo import ArrayExchange
from helpers.live_child import REPLAY_END, child_env
from helpers.market import flat_market

T0 = 1_704_067_200_000
M = 60_000
CHILD = Path(__file__).parent / "helpers" / "live_child.py"

# What a restarted process no longer has in memory (schemas are registered again by the code).
NEW_PROCESS = ("live_instances", "runs", "risk_books")


pytestmark = pytest.mark.usefixtures("in_tmp_dir")  # state files go under ./dump


def flat(minutes: int, bars: dict[int, float] | None = None) -> np.ndarray:
    return flat_market(minutes, prices=bars)


LONG = {"position": "long", "price_take_profit": 101.0, "price_stop_loss": 99.0, "minute_estimated_time": 60}


def register(candles, get_signal, callbacks=None):
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal, callbacks=callbacks)


def once(signal):
    asked = []

    def get_signal(symbol, when):
        asked.append(when)
        return dict(signal) if len(asked) == 1 else None

    return get_signal, asked


async def run(clock, n=None):
    out = []
    async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="ex", clock=clock):
        out.append(r)
        if n and len(out) >= n:
            break
    return out


def test_virtual_clock_ticks_on_the_minute_grid():
    assert next_tick(T0 + 10 * M + 1) == T0 + 11 * M + 1
    assert next_tick(T0 + 10 * M + 30_000) == T0 + 11 * M + 1
    bk.set_config(CC_TICK_TTL_MS=5000)
    assert next_tick(T0 + 1) == T0 + 5001


def test_live_opens_and_closes_on_vwap_and_state_is_written_before_events():
    # The VWAP of the 5 closed candles reaches 101 at minute 25 (5 candles of 101 -> 101).
    candles = flat(120, {i: 101.0 for i in range(20, 40)})
    fn, _ = once(LONG)
    writes = []

    def on_open(symbol, signal, price, backtest):
        saved = json.loads(Path("dump/data/live/BTC_s.json").read_text())
        writes.append(("open", saved["pending"]["id"] == signal.id))

    register(candles, fn, callbacks={"on_open": on_open})
    seen = []

    def on_event(result):
        saved = json.loads(Path("dump/data/live/BTC_s.json").read_text())
        seen.append((result.action, saved["pending"] is None))

    bk.listen_signal_live(on_event)
    clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 100 * M)
    results = asyncio.run(run(clock))
    assert [r.action for r in results] == ["opened", "closed"]
    opened, closed = results
    # D23: the tick at 10:00.001 is the state at minute 10; candle 20 reaches the TP (high 101)
    assert opened.signal.pending_at == T0 + 10 * M and opened.current_price == 100.0
    assert (closed.close_reason, closed.current_price) == ("take_profit", 101.0)
    assert closed.close_timestamp == T0 + 20 * M
    assert writes == [("open", True)]
    assert ("opened", False) in seen and ("closed", True) in seen
    stats = asyncio.run(bk.Live.get_data("BTC", "s"))
    assert stats.total_closed == 1 and stats.total_events == 2


def test_restart_restores_position_fires_on_active_and_never_reopens():
    candles = flat(200, {i: 101.0 for i in range(40, 60)})
    fn, asked = once(LONG)
    active = []
    register(candles, fn, callbacks={"on_active": lambda s, sig, p, b: active.append(sig.id)})
    first = asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1), n=1))  # stop reading after "opened"
    assert [r.action for r in first] == ["opened"]
    _state.clear(*NEW_PROCESS)  # a new process: nothing in memory
    second = asyncio.run(run(bk.VirtualClock(T0 + 30 * M + 1, T0 + 150 * M)))
    assert active == [first[0].signal.id]
    assert [r.action for r in second] == ["closed"]
    assert second[0].signal.id == first[0].signal.id and second[0].close_reason == "take_profit"
    # the strategy is not asked while the restored position is open
    assert [w for w in asked[1:] if w.timestamp() * 1000 <= second[0].close_timestamp] == []


def test_stop_lets_open_position_close_then_ends_and_done_fires():
    candles = flat(200, {i: 101.0 for i in range(60, 200)})
    fn, _ = once(LONG)
    register(candles, fn)

    async def main():
        done = []
        bk.listen_done_live(done.append)

        async def on_signal(result):
            if result.action == "opened":
                await bk.Live.stop("BTC", "s")

        bk.listen_signal_live(on_signal)
        clock = bk.VirtualClock(T0 + 10 * M + 1)
        finished = asyncio.Event()
        bk.listen_done_live(lambda e: finished.set())
        bk.Live.background("BTC", strategy_name="s", exchange_name="ex", clock=clock)
        await asyncio.wait_for(finished.wait(), 10)
        return done, clock.now_ms()

    done, now = asyncio.run(main())
    assert len(done) == 1 and done[0].backtest is False
    stats = asyncio.run(bk.Live.get_data("BTC", "s"))
    assert [t.close_reason for t in stats.signal_list] == ["take_profit"]
    assert now < T0 + 70 * M  # ended right after the close


def test_stop_cancels_waiting_limit_order():
    fn, _ = once({**LONG, "price_open": 99.5, "price_stop_loss": 98.0})
    register(flat(200), fn)

    async def main():
        async def on_signal(result):
            if result.action == "scheduled":
                await bk.Live.stop("BTC", "s")

        bk.listen_signal_live(on_signal)
        return await run(bk.VirtualClock(T0 + 10 * M + 1))

    results = asyncio.run(main())
    assert [(r.action, r.close_timestamp) for r in results] == [("cancelled", T0 + 11 * M)]
    saved = json.loads(Path("dump/data/live/BTC_s.json").read_text())
    assert saved["scheduled"] is None and saved["journal"][0]["action"] == "cancelled"


def test_corrupt_state_file_stops_start_naming_the_file():
    register(flat(50), lambda s, w: None)
    path = Path("dump/data/live/BTC_s.json")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    async def main():
        errors = []
        bk.listen_exit(errors.append)
        with pytest.raises(bk.PersistError, match=r"BTC_s.json is corrupt"):
            await run(bk.VirtualClock(T0 + 10 * M + 1, T0 + 20 * M))

    asyncio.run(main())
    assert path.read_text() == "{not json"  # never discarded


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_backends_round_trip(tmp_path, backend):
    store = bk.FileBackend(tmp_path / "f") if backend == "file" else bk.SqliteBackend(tmp_path / "s.sqlite")
    assert store.read("live", "BTC_s") is None
    store.write("live", "BTC_s", {"a": [1, 2.5, None]})
    store.write("live", "BTC_s", {"a": [3]})
    assert store.read("live", "BTC_s") == {"a": [3]}
    assert store.read("live", "ETH_s") is None


def test_sqlite_backend_restores_a_position(tmp_path):
    bk.use_persist_adapter(bk.SqliteBackend(tmp_path / "state.sqlite"))
    candles = flat(200, {i: 101.0 for i in range(40, 60)})
    fn, asked = once(LONG)
    register(candles, fn)
    asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1), n=1))
    _state.clear(*NEW_PROCESS)
    second = asyncio.run(run(bk.VirtualClock(T0 + 30 * M + 1, T0 + 150 * M)))
    assert [r.action for r in second] == ["closed"]
    assert [w for w in asked[1:] if w.timestamp() * 1000 <= second[0].close_timestamp] == []


# --- crash test ---------------------------------------------------------------------------------

def _journal(state_dir: Path) -> tuple[list, dict | None]:
    saved = json.loads((state_dir / "live" / "BTCUSDT_rule.json").read_text())

    def strip(signal):
        return {k: v for k, v in signal.items() if k != "id"}  # ids are random per process

    trades = [{**e, "signal": strip(e["signal"])} for e in saved["journal"]]
    return trades, strip(saved["pending"]) if saved["pending"] else None


def _child(state_dir: Path, start_ms: int | None = None) -> subprocess.Popen:
    args = [str(state_dir)] + ([str(start_ms)] if start_ms is not None else [])
    return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=child_env())


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    reference_dir, crash_dir = tmp_path / "reference", tmp_path / "crash"
    p = _child(reference_dir)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and out.strip().endswith("done")
    reference, reference_open = _journal(reference_dir)
    assert len(reference) >= 10  # the replay really trades

    rng = random.Random(20261124)
    modes = ["opened", "active", "closed", "count"]
    kills: Counter = Counter()
    restarts = 0
    while True:
        p = _child(crash_dir)
        mode = modes[restarts % len(modes)]
        skip = rng.randint(0, 1)  # kill at the (skip+1)-th matching line
        target = rng.randint(1, 40)
        finished = killed = False
        n = 0
        for line in p.stdout:
            line = line.strip()
            if line == "done":
                finished = True
                break
            n += 1
            action = line.split()[1]
            if restarts < 36 and ((mode == "count" and n >= target) or action == mode):
                if mode != "count" and skip:
                    skip -= 1
                    continue
                p.send_signal(signal.SIGKILL)
                kills[action] += 1
                killed = True
                break
        p.stdout.close()
        p.wait(timeout=60)
        restarts += 1
        if finished and not killed:
            break
        assert restarts < 80, "the crashed replay never finished"
    trades, still_open = _journal(crash_dir)
    print(f"crash test: {restarts} starts, kills by phase {dict(kills)}, {len(trades)} trades")
    assert sum(kills.values()) >= 20
    assert kills["opened"] and kills["active"] and kills["closed"], kills
    notes = [t["signal"]["note"] for t in trades]
    assert len(notes) == len(set(notes))  # each signal closed (or cancelled) once
    assert trades == reference  # and exactly the uninterrupted run's trades
    assert still_open == reference_open


def test_restart_after_downtime_replays_the_missed_candles(tmp_path):
    """Killed with a position open; the process stays down well past the candle that reached its
    TP or SL (or its expiry); the restart replays the missed candles before anything else and
    closes it at that candle's time and price, exactly as the uninterrupted run did."""
    reference_dir, crash_dir = tmp_path / "reference", tmp_path / "crash"
    p = _child(reference_dir)
    p.communicate(timeout=120)
    assert p.returncode == 0
    reference, _ = _journal(reference_dir)
    closes = {t["signal"]["note"]: t for t in reference if t["action"] == "closed"}
    end = REPLAY_END
    replayed: list[str] = []
    start_ms = None
    opened_seen = 0
    for _ in range(40):
        p = _child(crash_dir, start_ms)
        finished = killed = False
        for line in p.stdout:
            if line.strip() == "done":
                finished = True
                break
            if line.split()[1] == "opened":
                opened_seen += 1
                if opened_seen % 3 == 0 and len(replayed) < 6:  # every third position
                    p.send_signal(signal.SIGKILL)
                    killed = True
                    break
        p.stdout.close()
        p.wait(timeout=60)
        if finished and not killed:
            break
        start_ms = None
        if killed:
            _, pending = _journal(crash_dir)
            closed = closes.get(pending["note"]) if pending else None
            if closed is not None and closed["close_timestamp"] + 40 * M < end:
                start_ms = closed["close_timestamp"] + 30 * M + 1  # down 30 minutes past the close
                replayed.append(pending["note"])
    trades, _ = _journal(crash_dir)
    by_note = {t["signal"]["note"]: t for t in trades}
    assert len(by_note) == len(trades)  # nothing closed twice
    assert len(replayed) >= 3, replayed
    def unsized(t: dict) -> dict:  # earlier downtimes skipped other trades, so equity (and size) differ
        return {**t, "signal": {k: v for k, v in t["signal"].items() if k != "quantity"}}

    for note in replayed:  # closed while down: same time, reason, price and PnL as uninterrupted
        assert unsized(by_note[note]) == unsized(closes[note])


def test_custom_adapters_per_kind(tmp_path):
    class Memory:
        def __init__(self):
            self.data = {}

        def read(self, kind, key):
            return self.data.get((kind, key))

        def write(self, kind, key, value):
            self.data[(kind, key)] = json.loads(json.dumps(value))

    signals, risks = Memory(), Memory()
    bk.use_persist_signal_adapter(signals)
    bk.use_persist_risk_adapter(risks)
    bk.add_risk(risk_name="r", validations=[])
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat(100)).get_candles)
    fn, _ = once(LONG)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=fn, risk_name="r")
    asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1), n=1))
    assert signals.data[("live", "BTC_s")]["pending"]["position"] == "long"
    assert [p["symbol"] for p in risks.data[("risk", "r")]] == ["BTC"]
    assert not Path("dump").exists()  # nothing went to the default files
    with pytest.raises(bk.ValidationError, match="read"):
        bk.use_persist_adapter(object())


def test_second_live_process_on_the_same_state_is_refused(tmp_path):
    register(flat(100), lambda s, w: None)
    holder = bk.FileBackend().lock("live", "BTC_s")  # as if another process were trading it
    try:
        with pytest.raises(bk.PersistError, match="in use by another live process"):
            asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1, T0 + 20 * M)))
    finally:
        holder.close()
    assert asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1, T0 + 20 * M))) == []  # free again


def test_a_state_started_with_another_fingerprint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    candles = flat(200, {i: 101.0 for i in range(40, 60)})
    fn, _ = once(LONG)
    register(candles, fn)

    async def go(fingerprint):
        async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="ex", fingerprint=fingerprint,
                                   clock=bk.VirtualClock(T0 + 10 * M + 1, T0 + 12 * M)):
            return r

    assert asyncio.run(go({"data": "a.csv"})).action == "opened"
    _state.clear(*NEW_PROCESS)
    with pytest.raises(bk.PersistError, match=r"other settings \(data: saved 'a.csv', now 'b.csv'\)"):
        asyncio.run(go({"data": "b.csv"}))
    _state.clear(*NEW_PROCESS)
    assert asyncio.run(go({"data": "a.csv"})) is None  # the same settings resume (position still open)


def _flaky_exchange(candles, down: tuple[int, int], error: BaseException):
    """The candles, but every request made while the clock is in [down) minutes fails."""
    source = ArrayExchange(candles)
    clock_box: dict = {}

    async def get_candles(symbol, interval, since, limit):
        now = clock_box["clock"].now_ms()
        if T0 + down[0] * M <= now < T0 + down[1] * M:
            raise error
        return await source.get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    return clock_box


def test_an_outage_is_counted_and_the_missed_candles_are_replayed(no_retry_delay):
    candles = flat(200, {25: 101.5})  # the TP (101) is reached by minute 25's candle
    reference_fn, _ = once(LONG)
    register(candles, reference_fn)
    reference = asyncio.run(run(bk.VirtualClock(T0 + 10 * M + 1, T0 + 80 * M)))
    bk.reset()
    bk.use_persist_adapter(bk.FileBackend("outage-state"))  # not the reference's state
    box = _flaky_exchange(candles, (20, 40), ConnectionError("venue down"))
    fn, _ = once(LONG)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=fn)
    box["clock"] = clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 80 * M)
    outage = asyncio.run(run(clock))
    key = [(r.action, r.signal.pending_at, getattr(r, "close_timestamp", None), r.current_price) for r in reference]
    assert [(r.action, r.signal.pending_at, getattr(r, "close_timestamp", None), r.current_price)
            for r in outage] == key
    assert key[1] == ("closed", T0 + 10 * M, T0 + 25 * M, 101.0)  # at the TP, at that candle's time
    stats = asyncio.run(bk.Live.get_data("BTC", "s"))
    assert stats.error_count >= 10 and "venue down" in stats.first_error


def test_an_error_that_cannot_succeed_stops_live(no_retry_delay):
    box = _flaky_exchange(flat(200), (15, 16), bk.ValidationError("unknown symbol BTC"))
    fn, _ = once(LONG)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=fn)
    box["clock"] = clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 80 * M)
    with pytest.raises(bk.CandleError, match="unknown symbol BTC"):
        asyncio.run(run(clock))

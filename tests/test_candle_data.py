"""Issue 11, candle data you can trust: the real ccxt against the loopback FakeBinance.

Each test starts and stops its own server on 127.0.0.1 (a hard request cap bounds every loop);
retry pauses go through a recorded fake sleep, never the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest_kit as bk
from backtest_kit import _exchange
from backtest_kit import _registry as registry
from backtest_kit._exchange import CandleFetchError, ExchangeClient
from backtest_kit.demo import ArrayExchange, rule_strategy
from backtest_kit.exchanges import add_ccxt_exchange
from helpers.fake_exchange_api import EXCHANGE_INFO, KLINES, MINUTE_MS, T0, FakeBinance, make_client, synthetic_candles

M = MINUTE_MS
N = 5000
DATA = synthetic_candles(N, seed=11, volatility=0.002)
FRAME = (60, N - 1)  # minutes since T0
SRC = Path(bk.__file__).parents[1]
TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """Every retry pause of a run, recorded instead of slept."""
    got: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        got.append(seconds)

    monkeypatch.setattr(_exchange, "default_sleep", fake_sleep)
    return got


def register(frame=FRAME, strategy="rule", frame_name="fr") -> None:
    bk.add_frame(frame_name=frame_name, interval="1m", start_date=T0 + frame[0] * M, end_date=T0 + frame[1] * M)
    bk.add_strategy(strategy_name=strategy, interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 120))


async def run(symbol="BTC/USDT", strategy="rule", exchange="ex", frame="fr") -> list:
    return [r async for r in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name=exchange,
                                             frame_name=frame)]


def trades(results) -> list[tuple]:
    """What a result is, without its random id."""
    return [(r.action, r.signal.position, r.signal.price_open, r.close_reason, r.close_timestamp,
             r.pnl.pnl_percentage) for r in results]


def reference(data=DATA, frame=FRAME) -> list[tuple]:
    """The trades of the same backtest on the candles themselves (no exchange in between)."""
    bk.add_exchange(exchange_name="direct", get_candles=ArrayExchange(data).get_candles)
    if "fr" not in [f.frame_name for f in bk.list_frames()]:
        register(frame)
    out = trades(asyncio.run(run(exchange="direct")))
    assert len(out) >= 10
    return out


@contextlib.asynccontextmanager
async def venue(server: FakeBinance, store=None, **config) -> AsyncIterator[object]:
    """An async ccxt binance on the fake, registered as "ex" (markets loaded, closed on exit)."""
    async with add_ccxt_exchange("ex", make_client(server, async_=True, **config), store=store) as adapter:
        server.reset_log()
        yield adapter


def backtest_on(server: FakeBinance, store=None, symbol="BTC/USDT", frame=FRAME) -> list[tuple]:
    async def go() -> list[tuple]:
        async with venue(server, store):
            return trades(await run(symbol))
    if "fr" not in [f.frame_name for f in bk.list_frames()]:
        register(frame)
    return asyncio.run(go())


# --- 1. no silent differences --------------------------------------------------------------------------


def test_two_429s_on_the_first_request_change_nothing_and_retry_after_is_honoured(sleeps):
    ref = reference()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        server.rate_limit_next(times=2, retry_after=3)
        assert backtest_on(server) == ref
        assert server.statuses(KLINES)[:3] == [429, 429, 200]
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps)


def test_a_fetch_failing_after_its_retries_fails_the_run_naming_the_request(sleeps):
    register()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        server.rate_limit_next(times=3, retry_after=1)  # issue 11: three 429s used to change 12 of 15 trades
        with pytest.raises(bk.CandleError) as failed:
            backtest_on(server)
    msg = str(failed.value)
    assert "exchange 'ex'" in msg and "symbol='BTC/USDT'" in msg and "interval='1m'" in msg
    assert "since=2024-01-01T00:55:00.000Z" in msg and "window 2024-01-01T00:55:00.000Z .. " in msg
    assert "failed after 3 attempt(s)" in msg and "DDoSProtection" in msg and "Too many requests" in msg
    assert len(sleeps) == 2


def test_background_delivers_the_candle_error_to_listen_exit(sleeps):
    register()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        server.server_error_next(status=502, times=3)
        add_ccxt_exchange("ex", make_client(server))  # sync ccxt: the background thread has its own loop
        exits, done = [], []
        bk.listen_exit(exits.append)
        bk.listen_done_backtest(done.append)
        background = bk.Backtest.background("BTC/USDT", strategy_name="rule", exchange_name="ex", frame_name="fr")
        assert background.wait(30)
    (err,) = exits
    assert isinstance(err, bk.CandleError) and "ExchangeNotAvailable" in str(err) and "exchange 'ex'" in str(err)
    assert len(done) == 1


# --- 2. retries that fit the error ---------------------------------------------------------------------


def direct_client(server: FakeBinance, got: list[float], jitter=lambda: 1.0, **config) -> ExchangeClient:
    """A client (no cache) over a sync ccxt binance on the fake, sleeping into `got`."""
    add_ccxt_exchange("ex", make_client(server, **config))

    async def sleep(seconds: float) -> None:
        got.append(seconds)

    return ExchangeClient(registry.get_exchange("ex"), backtest=False, sleep=sleep, jitter=jitter)


def fetch(client: ExchangeClient, symbol="BTC/USDT", limit=10):
    return asyncio.run(client.fetch(symbol, "1m", T0, limit))


def test_bad_symbol_fails_at_once():
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got)
        server.invalid_symbol_next()
        with pytest.raises(CandleFetchError) as failed:
            fetch(c)
        assert server.count(KLINES) == 1 and got == []
        assert failed.value.permanent and "not retried: BadSymbol cannot succeed" in str(failed.value)
        with pytest.raises(CandleFetchError, match="BadSymbol"):
            fetch(c, "XRP/USDT")  # unknown to the markets: ccxt refuses before any request
        assert server.count(KLINES) == 1 and got == []


@pytest.mark.parametrize("error", [bk.ValidationError("no such market"), "no volume column"])
def test_user_errors_that_cannot_succeed_are_not_retried_on_and_on(error):
    calls, got = [], []

    async def get_candles(symbol, interval, since, limit):
        calls.append(since)
        if isinstance(error, Exception):
            raise error
        return pd.DataFrame({"timestamp": [T0], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})

    bk.add_exchange(exchange_name="user", get_candles=get_candles)

    async def sleep(seconds):
        got.append(seconds)

    c = ExchangeClient(registry.get_exchange("user"), backtest=False, sleep=sleep)
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=10)
    with pytest.raises(CandleFetchError) as failed:
        asyncio.run(c.fetch("X", "1m", T0, 5))
    assert failed.value.permanent
    if isinstance(error, Exception):
        assert len(calls) == 1 and got == []  # a ValidationError from user code: at once
    else:
        assert len(calls) == 2 and len(got) == 1  # invalid the same way twice: no third try
        assert "lacks column(s) volume" in str(failed.value) and "the same failure twice" in str(failed.value)


@pytest.mark.parametrize(("fault", "expected"), [
    ("429", "DDoSProtection"), ("502", "ExchangeNotAvailable"), ("503", "ExchangeNotAvailable"),
    ("504", "RequestTimeout"), ("slow", "RequestTimeout"), ("500-json", "OperationFailed"),
])
def test_transient_errors_back_off_exponentially_then_succeed(fault, expected):
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=200, CC_GET_CANDLES_RETRY_COUNT=4)
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got, timeout=150)
        asyncio.run(c.schema.get_candles("BTC/USDT", "1m", T0, 1))  # markets loaded: only klines below
        server.reset_log()
        for _ in range(3):
            if fault == "429":
                server.fail_next(KLINES, 429)  # no Retry-After: the backoff alone
            elif fault == "slow":
                server.slow_next(delay_s=0.3)
            elif fault == "500-json":
                server.server_error_next(status=500, body={"code": -1001, "msg": "Internal error; try again."})
            else:
                server.server_error_next(status=int(fault))
        got_candles = fetch(c)
        assert len(got_candles) == 10 and server.count(KLINES) == 4
    assert got == pytest.approx([0.2, 0.4, 0.8])  # 200 ms, doubled each time (jitter factor 1.0)
    assert c.failures == 0


def test_backoff_has_jitter_within_half_to_full_delay():
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=1000, CC_GET_CANDLES_RETRY_COUNT=4)
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got, jitter=iter([0.0, 0.5, 0.999]).__next__)
        server.server_error_next(times=3)
        fetch(c)
    assert got == pytest.approx([0.5, 1.5, 3.998])


def test_os_errors_from_user_code_are_retried_with_backoff():
    calls, got = [], []

    async def get_candles(symbol, interval, since, limit):
        calls.append(since)
        if len(calls) < 3:
            raise ConnectionResetError("peer reset")
        return [[T0, 1.0, 1.0, 1.0, 1.0, 1.0]]

    bk.add_exchange(exchange_name="user", get_candles=get_candles)

    async def sleep(seconds):
        got.append(seconds)

    c = ExchangeClient(registry.get_exchange("user"), backtest=False, sleep=sleep, jitter=lambda: 1.0)
    assert len(asyncio.run(c.fetch("X", "1m", T0, 1))) == 1
    assert len(calls) == 3 and got == [5.0, 10.0]  # the default 5000 ms delay, doubled


def test_retry_after_longer_than_the_backoff_is_waited_out():
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=100)
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got)
        server.rate_limit_next(times=1, retry_after=7)
        assert len(fetch(c)) == 10
    assert got == [7.0]


def test_an_ip_ban_is_waited_out_as_told_or_fails_saying_so():
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got)
        server.ban_next(retry_after=120)
        assert len(fetch(c)) == 10
        assert got == [120.0]
        server.ban_next(retry_after=7200)
        with pytest.raises(CandleFetchError) as failed:
            fetch(c)
        assert got == [120.0] and server.statuses(KLINES)[-1] == 418  # no second request into the ban
    msg = str(failed.value)
    assert "banned this IP (HTTP 418)" in msg and "Retry-After 7200 s" in msg and failed.value.permanent


def test_a_failure_never_reads_the_retry_after_of_an_earlier_response():
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=100)
    with FakeBinance({"BTCUSDT": DATA}) as server:
        got: list[float] = []
        c = direct_client(server, got, timeout=150)
        server.rate_limit_next(retry_after=9)
        fetch(c)
        server.slow_next(delay_s=0.3)  # a timeout has no response: no Retry-After
        fetch(c)
    assert got == [9.0, pytest.approx(0.1)]


# --- 3. emptiness is never assumed -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["garbage", "empty"])
def test_one_garbled_or_empty_page_changes_nothing(fault):
    ref = reference()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        getattr(server, f"{fault}_next")()
        assert backtest_on(server) == ref
        assert server.requests(KLINES)[0].fault == fault


def test_an_empty_answer_of_a_plain_get_candles_is_asked_again():
    ref = reference()
    source = ArrayExchange(DATA)
    calls = []

    async def get_candles(symbol, interval, since, limit):
        calls.append(since)
        return [] if len(calls) == 1 else await source.get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="flaky", get_candles=get_candles)
    assert trades(asyncio.run(run(exchange="flaky"))) == ref
    assert calls[0] == calls[1]  # the same request again, not 20,000 minutes of "no candles"


def test_a_venue_reading_since_and_limit_as_a_window_before_a_listing():
    listing = T0 + 1500 * M
    with FakeBinance({"BTCUSDT": DATA}, listings={"BTCUSDT": listing}) as server:
        binance_like = backtest_on(server)
    bk.reset()
    with FakeBinance({"BTCUSDT": DATA}, listings={"BTCUSDT": listing}, window_mode=True) as server:
        windowed = backtest_on(server)
        requests = server.count(KLINES)
    assert windowed == binance_like and len(windowed) >= 5  # 0 trades before issue 11
    assert all(t[4] > listing for t in windowed)
    assert requests < 30


def test_the_end_of_the_data_is_found_and_ends_the_run_cleanly(caplog):
    caplog.set_level("INFO", logger="backtest_kit")
    frame = (60, N - 1 + 2 * 1440)  # two days past the last candle
    register(frame)
    ref = reference(frame=frame)
    errors = []
    bk.listen_error(errors.append)
    with FakeBinance({"BTCUSDT": DATA}) as server:
        assert backtest_on(server, frame=frame) == ref
        requests = server.count(KLINES)
    assert [e for e in errors if "no closed 1m candles" in str(e)] == []
    assert requests < 30  # pages, one confirmation, a few probes up to the wall clock: not one per frame
    assert any("no 1m candles from 2024-01-04T11:20:00.000Z on" in r.getMessage() for r in caplog.records)


# --- 4. paging in every mode -------------------------------------------------------------------------


def test_live_window_larger_than_the_page_cap_returns_the_newest_closed_candles():
    now = T0 + 3000 * M + 30_000  # the candle of minute 3000 is still forming
    with FakeBinance({"BTCUSDT": DATA}, page_cap=1000, now_ms=now) as server:
        add_ccxt_exchange("ex", make_client(server))
        c = ExchangeClient(registry.get_exchange("ex"), backtest=False, now_ms=lambda: now)
        got = asyncio.run(c.window("BTC/USDT", "1m", now, 1500))
        assert server.count(KLINES) == 2
    assert len(got) == 1500
    assert int(got.timestamp[-1]) == T0 + 2999 * M and int(got.timestamp[0]) == T0 + 1500 * M


def test_live_strategy_sees_the_newest_candles_through_a_capped_venue(in_tmp_dir):
    now = T0 + 3000 * M
    seen = []

    async def get_signal(symbol, when):
        c = await bk.get_candles(symbol, "1m", 1500)
        seen.append((int(when.timestamp() * 1000), int(c.timestamp[0]), int(c.timestamp[-1]), len(c)))
        return None

    bk.add_strategy(strategy_name="probe", interval="1m", get_signal=get_signal)
    with FakeBinance({"BTCUSDT": DATA}, page_cap=1000, now_ms=now + 10 * M) as server:
        add_ccxt_exchange("ex", make_client(server))
        clock = bk.VirtualClock(now, now + 2 * M)

        async def go():
            async for _ in bk.Live.run("BTC/USDT", strategy_name="probe", exchange_name="ex", clock=clock):
                pass
        asyncio.run(go())
    assert seen and all(last == when // M * M - M and n == 1500 for when, _, last, n in seen)


def test_a_frame_past_the_wall_clock_stops_at_the_horizon_without_refetching():
    now = int(time.time() * 1000) // M * M
    data = synthetic_candles(3000, start_ms=now - 2999 * M, seed=3)  # up to the forming minute
    bk.add_frame(frame_name="fr", interval="1m", start_date=now - 2900 * M, end_date=now + 3 * 1440 * M)
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 120))
    errors = []
    bk.listen_error(errors.append)
    started = time.perf_counter()
    with FakeBinance({"BTCUSDT": data}, max_requests=200) as server:

        async def go():
            async with venue(server):
                return await run()
        results = asyncio.run(go())
        requests = server.count(KLINES)
    assert requests < 12 and server.capped == 0
    assert time.perf_counter() - started < 20
    assert all(r.close_timestamp <= int(time.time() * 1000) for r in results)
    assert [e for e in errors if "no closed 1m candles" in str(e)] == []


def test_cache_fills_page_once_per_chunk_not_per_venue_page():
    """A capped venue answers 1000 candles a page; the cache still adds whole chunks (few copies)."""
    adds = []
    original = _exchange._Series.add

    def counting(self, c, lo, hi, bad=None):
        adds.append(len(c))
        return original(self, c, lo, hi, bad)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_exchange._Series, "add", counting)
        with FakeBinance({"BTCUSDT": DATA}, page_cap=1000) as server:
            register()
            backtest_on(server)
            pages = server.count(KLINES)
    # (an empty add records a probe past the data's end: no copy)
    assert pages >= N // 1000 and len([n for n in adds if n]) <= 2


# --- 5. a candle store -------------------------------------------------------------------------------

CHILD = """
import asyncio, json, sys, types
import backtest_kit as bk
from backtest_kit.demo import rule_strategy
from backtest_kit.exchanges import add_ccxt_exchange
from helpers.fake_exchange_api import make_client

url, store, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def main():
    client = make_client(types.SimpleNamespace(base_url=url), async_=True)
    add_ccxt_exchange("ex", client, store=bk.CandleStore(store))
    bk.add_frame(frame_name="fr", interval="1m", start_date=start, end_date=end)
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 120))
    try:
        out = [r async for r in bk.Backtest.run("BTC/USDT", strategy_name="rule", exchange_name="ex",
                                                frame_name="fr")]
    finally:
        await client.close()
    stats = await bk.Backtest.get_data("BTC/USDT", "rule")
    print(json.dumps({"trades": [[r.action, r.signal.position, r.signal.price_open, r.close_reason,
                                  r.close_timestamp, r.pnl.pnl_percentage] for r in out],
                      "gaps": [stats.data_gaps, stats.longest_gap_minutes]}))

asyncio.run(main())
"""


def child(tmp_path: Path, server: FakeBinance, store: Path, frame=FRAME) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}"}
    return subprocess.Popen([sys.executable, str(script), server.base_url, str(store), str(T0 + frame[0] * M),
                             str(T0 + frame[1] * M)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def outcome(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_the_same_backtest_in_a_new_process_makes_no_request(tmp_path):
    frame = (60, N - 1 + 1440)  # a day past the data: its end is found and recorded too
    gap = (T0 + 2000 * M, T0 + 2030 * M)
    store_dir = tmp_path / "store"
    with FakeBinance({"BTCUSDT": DATA}) as server:
        server.add_gap("BTCUSDT", *gap)
        register(frame)
        first = backtest_on(server, bk.CandleStore(store_dir), frame=frame)
        assert server.count(KLINES) > 0
        server.reset_log()
        second = outcome(child(tmp_path, server, store_dir, frame))
        assert server.count() == 0  # no klines, no exchangeInfo: nothing at all
    assert [tuple(t) for t in second["trades"]] == first and len(first) >= 10
    assert second["gaps"] == [1, 30]
    store = bk.CandleStore(store_dir)
    covered = store.coverage("ex", "BTC/USDT", "1m")
    assert any(lo <= gap[0] and gap[1] <= hi for lo, hi in covered)  # the gap is recorded as no data
    assert store.data_end("ex", "BTC/USDT", "1m") == T0 + N * M  # so is the end of the data
    assert store.missing("ex", "BTC/USDT", "1m", T0 + 9 * M, T0 + N * M) == []


def test_a_store_run_equals_a_run_without_store(tmp_path):
    ref = reference()
    with FakeBinance({"BTCUSDT": DATA}, page_cap=700) as server:
        assert backtest_on(server, bk.CandleStore(tmp_path)) == ref
    bk.reset()
    register()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        assert backtest_on(server, bk.CandleStore(tmp_path)) == ref  # read back from the store
        assert server.count(KLINES) == 0


def test_unclosed_candles_are_never_stored(tmp_path):
    now = T0 + 300 * M + 30_000  # minute 300 is still forming; the venue serves it anyway
    store = bk.CandleStore(tmp_path)
    with FakeBinance({"BTCUSDT": DATA}, now_ms=now, serve_unclosed=True) as server:
        add_ccxt_exchange("ex", make_client(server), store=store)
        c = ExchangeClient(registry.get_exchange("ex"), backtest=True, now_ms=lambda: now)
        got = asyncio.run(c.range("BTC/USDT", "1m", T0, T0 + 400 * M))
    assert int(got.timestamp[-1]) == T0 + 299 * M
    stored = store.read("ex", "BTC/USDT", "1m", T0, T0 + 400 * M)["timestamp"]
    assert int(stored[-1]) == T0 + 299 * M and len(stored) == 300
    assert max(hi for _, hi in store.coverage("ex", "BTC/USDT", "1m")) <= T0 + 300 * M


def test_two_processes_backtesting_into_one_store_at_once(tmp_path):
    store_dir = tmp_path / "store"
    with FakeBinance({"BTCUSDT": DATA}, page_cap=500) as server:
        procs = [child(tmp_path, server, store_dir) for _ in range(2)]
        results = [outcome(p) for p in procs]
    assert results[0] == results[1] and len(results[0]["trades"]) >= 10
    store = bk.CandleStore(store_dir)
    stored = store.read("ex", "BTC/USDT", "1m", T0, T0 + N * M)
    first = 60 - 51  # the strategy's first window: 51 closed 1m candles before minute 60
    assert stored["timestamp"].tolist() == DATA[first:, 0].astype(np.int64).tolist()
    np.testing.assert_allclose(stored["close"], DATA[first:, 4])


def test_runs_on_one_exchange_share_what_was_fetched():
    with FakeBinance({"BTCUSDT": DATA}) as server:
        register()
        bk.add_strategy(strategy_name="rule2", interval="15m", get_signal=rule_strategy(5, 30, 1.0, 0.6, 60))

        async def go():
            async with venue(server):
                await run(strategy="rule")
                first = server.count(KLINES)
                await run(strategy="rule2")
                return first, server.count(KLINES)
        first, both = asyncio.run(go())
    assert first > 0 and both == first


def test_a_walker_fetches_once_for_all_its_strategies():
    counts = []
    for strategies in (["a"], ["a", "b", "c"]):
        bk.reset()
        bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 60 * M, end_date=T0 + (N - 1) * M)
        for i, name in enumerate(strategies):
            bk.add_strategy(strategy_name=name, interval="5m", get_signal=rule_strategy(10 + i, 50, 1.0, 0.6, 120))
        bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr", strategies=strategies)
        with FakeBinance({"BTCUSDT": DATA}) as server:

            async def go():
                async with venue(server):
                    return [p async for p in bk.Walker.run("BTC/USDT", walker_name="w")]
            assert len(asyncio.run(go())) == len(strategies)
            counts.append(server.count(KLINES))
    assert counts[0] == counts[1] > 0


# --- 7. one market, one name -------------------------------------------------------------------------


def test_btcusdt_and_btc_slash_usdt_are_one_market_and_the_adapter_closes_its_client():
    register()
    seen_counts = []
    bk.add_risk(risk_name="count", validations=[lambda args: seen_counts.append(args.active_position_count)])
    bk.add_strategy(strategy_name="risky", interval="5m", risk_name="count",
                    get_signal=rule_strategy(10, 50, 1.0, 0.6, 120))
    with FakeBinance({"BTCUSDT": DATA}) as server:
        client = make_client(server, async_=True)

        async def go():
            async with add_ccxt_exchange("ex", client) as adapter:
                assert adapter.resolve_symbol("BTCUSDT") == "BTC/USDT"
                one = await run("BTCUSDT")
                two = await run("BTC/USDT")
                await run("BTCUSDT", strategy="risky")
                return one, two, await bk.Backtest.list(), await bk.Heat.get_data("rule")
        one, two, listed, heat = asyncio.run(go())
        assert server.count(EXCHANGE_INFO) == 1
    assert trades(one) == trades(two) and {r.symbol for r in one + two} == {"BTC/USDT"}
    assert [(i.symbol, i.strategy_name) for i in listed] == [("BTC/USDT", "rule"), ("BTC/USDT", "risky")]
    assert [row.symbol for row in heat.symbols] == ["BTC/USDT"]
    stats = asyncio.run(bk.Backtest.get_data("BTCUSDT", "rule"))
    assert stats.total_signals == len(one)
    assert client.session is None  # closed by `async with`
    assert seen_counts and max(seen_counts) == 0  # one position at a time on the one market


# --- 8. data quality in runs -------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "value", "words"), [
    (2, 90.0, "high < low"),            # high below the low
    (1, 200.0, "open outside [low, high]"),
    (4, 1.0, "close outside [low, high]"),
])
def test_inconsistent_candles_are_rejected_like_nan_candles(column, value, words):
    data = DATA.copy()
    data[1000, column] = value
    if column == 2:
        data[1000, 3] = 95.0  # low above the high
    register()
    with FakeBinance({"BTCUSDT": data}) as server, pytest.raises(bk.CandleError) as failed:
        backtest_on(server)
    assert words in str(failed.value) and "2024-01-01T16:40:00.000Z" in str(failed.value)


def test_data_gaps_of_the_frame_are_counted_and_reported():
    register()
    with FakeBinance({"BTCUSDT": DATA}) as server:
        server.add_gap("BTCUSDT", T0 + 1000 * M, T0 + 1030 * M)
        server.add_gap("BTCUSDT", T0 + 3000 * M, T0 + 3007 * M)
        server.add_gap("BTCUSDT", T0 + 5 * M, T0 + 20 * M)  # before the frame's first window: not met
        backtest_on(server)
    stats = asyncio.run(bk.Backtest.get_data("BTC/USDT", "rule"))
    assert (stats.data_gaps, stats.longest_gap_minutes) == (2, 30)
    report = asyncio.run(bk.Backtest.get_report("BTC/USDT", "rule"))
    assert "**Data gaps:** 2 in the frame's 1m candles (longest 30 min)" in report


# --- helpers of the retry policy and the live-side contract ------------------------------------------


def test_error_kinds_retry_after_and_bans_without_ccxt_specifics():
    class Http(Exception):
        def __init__(self, status, headers):
            super().__init__(f"HTTP {status}")
            self.status, self.headers = status, headers

    assert _exchange.error_kind(bk.ValidationError("x")) == "permanent"
    assert _exchange.error_kind(TimeoutError()) == _exchange.error_kind(ConnectionError()) == "transient"
    assert _exchange.error_kind(_exchange.RetryableError()) == "transient"
    assert _exchange.error_kind(ValueError("x")) == "other"
    assert _exchange.retry_after(Http(429, {"retry-after": "12"})) == 12.0
    assert _exchange.is_ban(Http(418, {})) and not _exchange.is_ban(ValueError("candle 418 banned"))


def test_a_live_client_counts_failures_and_says_which_cannot_succeed():
    with FakeBinance({"BTCUSDT": DATA}, now_ms=T0 + 100 * M) as server:
        add_ccxt_exchange("ex", make_client(server))
        got: list[float] = []

        async def sleep(seconds):
            got.append(seconds)

        c = ExchangeClient(registry.get_exchange("ex"), backtest=False, sleep=sleep, now_ms=lambda: T0 + 100 * M)
        server.server_error_next(times=3)
        with pytest.raises(CandleFetchError) as outage:
            asyncio.run(c.average_price("BTC/USDT", T0 + 100 * M))
        assert not outage.value.permanent and c.failures == 1 and c.last_failure is outage.value
        assert c.failure is None  # only a backtest keeps it to fail the run
        assert asyncio.run(c.average_price("BTC/USDT", T0 + 100 * M)) > 0  # the next tick: fine again
        server.invalid_symbol_next()
        with pytest.raises(CandleFetchError) as bad:
            asyncio.run(c.average_price("BTC/USDT", T0 + 100 * M))
        assert bad.value.permanent and c.failures == 2


def test_a_sync_client_with_with_loads_markets_and_closes():
    with FakeBinance({"BTCUSDT": DATA}) as server:
        client = make_client(server)
        with add_ccxt_exchange("ex", client) as adapter:
            assert client.markets and adapter.resolve_symbol("BTCUSDT") == "BTC/USDT"
            assert server.count(EXCHANGE_INFO) == 1
        assert registry.canonical_symbol("BTCUSDT", "ex") == "BTC/USDT"
        assert registry.canonical_symbol("BTCUSDT") == "BTC/USDT"  # remembered for get_data and reports


def test_live_asks_once_when_the_newest_candle_is_not_published_yet():
    now = T0 + 300 * M + 5_000
    with FakeBinance({"BTCUSDT": DATA}, now_ms=now - 2 * M) as server:  # minute 299 is not published yet
        add_ccxt_exchange("ex", make_client(server))
        c = ExchangeClient(registry.get_exchange("ex"), backtest=False, now_ms=lambda: now)
        asyncio.run(c.schema.get_candles("BTC/USDT", "1m", T0, 1))
        server.reset_log()
        got = asyncio.run(c.window("BTC/USDT", "1m", now, 5))
        assert [int(t) for t in got.timestamp] == [T0 + m * M for m in range(295, 299)]
        assert server.count(KLINES) == 2  # the page, then one ask for the missing newest candle

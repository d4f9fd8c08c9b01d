"""The second round of engine fast paths: each gives what the plain computation gives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit._engine.machine import Machine
from backtest_kit._exchange import ExchangeClient
from backtest_kit._execution.backtest import open_loop
from backtest_kit._hub import Hub
from backtest_kit._registry import get_exchange
from backtest_kit._time import to_datetime
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def _market(minutes: int, interval: str = "5m", get_signal=None) -> None:
    exchange = ArrayExchange(synthetic_candles(minutes + 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="x", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (minutes - 1) * M)
    bk.add_strategy(strategy_name="s", interval=interval,
                    get_signal=get_signal or rule_strategy(10, 50, 1.0, 0.6, 120, anchor="price"))


def _key(r) -> tuple:
    return (r.action, r.signal.pending_at, r.close_timestamp, r.current_price,
            getattr(r, "close_reason", None), r.signal.price_take_profit, r.signal.price_stop_loss)


# --- the hub's version: a loop keeps its "does anyone listen" answers while it is unchanged ----------


def test_hub_version_changes_whenever_a_listener_comes_or_goes():
    hub = Hub()
    seen = [hub.version]
    off = hub.subscribe("signal", lambda e: None)
    seen.append(hub.version)
    off()
    seen.append(hub.version)
    off()  # already gone: nothing changes
    seen.append(hub.version)
    hub.subscribe("error", lambda e: None, lambda e: True, once=True)
    seen.append(hub.version)
    asyncio.run(hub.emit("error", ValueError("x")))  # the once-listener is removed when it fires
    seen.append(hub.version)
    hub.subscribe("risk", lambda e: None)
    hub.clear()
    seen.append(hub.version)
    assert seen == [0, 1, 2, 2, 3, 4, 6]
    assert len(hub) == 0


def test_a_listener_added_by_strategy_code_sees_every_tick_after_it():
    minutes, subscribe_at = 120, 40  # the ask at minute 40 subscribes (a 5m bucket's first frame)
    ticks: list[str] = []

    async def get_signal(symbol: str, when: datetime) -> None:
        if int(when.timestamp() * 1000) == T0 + subscribe_at * M:
            bk.listen_signal_backtest(lambda r: ticks.append(r.action))
        return None

    _market(minutes, get_signal=get_signal)

    async def go() -> list:
        return [r async for r in bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="x", frame_name="f")]

    assert asyncio.run(go()) == []
    # Every frame from the subscribing ask on is ticked and published: minutes 40 .. 119.
    assert ticks == ["idle"] * (minutes - subscribe_at)


# --- the ask's datetime is stepped on from the previous ask's ----------------------------------------


def test_ask_datetimes_are_the_datetimes_of_their_times():
    bk.add_exchange(exchange_name="x", get_candles=ArrayExchange(synthetic_candles(10, start_ms=T0)).get_candles)
    bk.add_strategy(strategy_name="s", interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 120))
    from backtest_kit._engine.runs import Run
    from backtest_kit._engine.sink import Sink
    from backtest_kit._registry import get_strategy

    schema = get_strategy("s", "test")
    sink = Sink(schema, "BTCUSDT", backtest=True, run=Run("backtest", "BTCUSDT", "s"))
    machine = Machine(schema, ExchangeClient(get_exchange("x", "test"), backtest=True), "BTCUSDT", sink)
    rng = np.random.default_rng(5)
    when = T0
    for _ in range(2000):
        when += int(rng.choice([5 * M, 5 * M, 5 * M, 10 * M, 7, -3 * M, 86_400_000]))
        got = machine._datetime(when)
        expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=when)
        assert got == expected and got.tzinfo is UTC and got == to_datetime(when), when


# --- a loop driven alone handles its quiet frames in one call, with the same results -----------------


@pytest.mark.parametrize("interval", ["1m", "5m", "15m"])
def test_quiet_frames_in_one_call_trade_as_one_frame_a_call(interval):
    _market(4000, interval)

    async def alone() -> list:
        return [_key(r) async for r in bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="x",
                                                         frame_name="f")]

    async def frame_by_frame() -> tuple[list, int]:
        exchange = ExchangeClient(get_exchange("x", "test"), backtest=True)
        loop = await open_loop("BTCUSDT", "s", exchange, "f", lambda m: None)
        out, steps = [], 0
        while not loop.done:
            r = await loop.step()
            steps += 1
            if r is not None:
                out.append(_key(r))
        return out, steps

    quiet = asyncio.run(alone())
    stepped, steps = asyncio.run(frame_by_frame())
    assert len(quiet) > 5 and quiet == stepped
    assert steps > 4000 // {"1m": 1, "5m": 5, "15m": 15}[interval] // 2  # one frame (or skip) per call there


# --- get_data's equity block is numpy only: no pandas, the same figures -----------------------------


def test_get_data_does_not_load_pandas():
    code = """
import asyncio, sys
import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
T0, M = 1_704_067_200_000, 60_000
ex = ArrayExchange(synthetic_candles(6000, start_ms=T0 - 1440 * M))
bk.add_exchange(exchange_name="x", get_candles=ex.get_candles)
bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + 4000 * M)
bk.add_strategy(strategy_name="s", interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 120, anchor="price"))
async def go():
    n = len([r async for r in bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="x", frame_name="f")])
    stats = await bk.Backtest.get_data("BTCUSDT", "s")
    print(n > 5, stats.sharpe is not None, stats.final_equity is not None, "pandas" in sys.modules)
asyncio.run(go())
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "False"]


@pytest.mark.parametrize("seed", range(6))
def test_array_statistics_are_the_series_statistics(seed):
    import pandas as pd

    from backtest_kit._equity import equity_statistics, equity_statistics_of, resample_last, resampled_last

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    ts = T0 + np.cumsum(rng.integers(1, 4, n)) * M  # gaps of 1 to 3 minutes
    eq = 10_000 * np.cumprod(1 + rng.normal(0, 0.002, n))
    close = 100 * np.cumprod(1 + rng.normal(0, 0.001, n))
    freq = ["1m", "1h", "1d"][seed % 3]
    labels, last = resampled_last(ts, eq, freq)
    series = resample_last(ts, eq, freq)
    assert labels.tolist() == series.index.as_unit("ms").asi8.tolist() and last.tolist() == series.tolist()
    expected = equity_statistics(series, initial_capital=10_000, annualization_days=365, exposure_pct=42.0,
                                 benchmark=pd.Series(close))
    got = equity_statistics_of(labels, last, initial_capital=10_000, annualization_days=365, exposure_pct=42.0,
                               benchmark=close)
    assert got == expected  # every field, to the last bit (None where undefined alike)


# --- per trade: the note, the id, the funded row ------------------------------------------------------


def test_plain_note_skips_the_rules_only_where_none_could_apply(monkeypatch):
    from backtest_kit import _signal

    rng = np.random.default_rng(11)
    alphabet = list("ab c1.9\n\t`[]()!#>*_~<+-/@") + ["**", "__", "~~", "```", "1. ", "- ", "> ", "<b>"]
    notes = ["rule@1546300800000", "plain text", "  spaced\n\nout  ", "v1.2", "1.5%", "a_b"]
    notes += ["".join(rng.choice(alphabet, int(rng.integers(1, 30)))) for _ in range(3000)]
    fast = [_signal.plain_note(n) for n in notes]
    monkeypatch.setattr(_signal, "_MD_SIGNS", type("Always", (), {"search": staticmethod(lambda text: True)}))
    assert fast == [_signal.plain_note(n) for n in notes]


def test_new_ids_are_random_version_4_uuids():
    import uuid

    from backtest_kit._signal import new_id

    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
    # every other hex digit takes all 16 values (the bytes are random)
    digits = {i: {t[i] for t in ids} for i in range(36) if i not in (8, 13, 14, 18, 19, 23)}
    assert all(len(d) == 16 for d in digits.values())
    assert {t[19] for t in ids} == set("89ab")


def test_the_funded_row_is_the_row_with_its_quantity():
    import dataclasses

    from backtest_kit._engine.machine import _with_quantity
    from backtest_kit.events import SignalRow

    values = {"id": "i", "position": "short", "price_open": 1.5, "price_take_profit": 1.25, "price_stop_loss": 2.5,
              "minute_estimated_time": 7, "note": "n", "symbol": "S", "strategy_name": "st", "exchange_name": "ex",
              "scheduled_at": 3, "pending_at": 4, "is_scheduled": True, "order_type": "stop", "quantity": 9.0}
    assert [f.name for f in dataclasses.fields(SignalRow)] == list(values)  # every field is set above
    row = SignalRow(**values)
    assert _with_quantity(row, 2.75) == dataclasses.replace(row, quantity=2.75)


def test_a_cached_series_ships_to_another_process_and_prices_alike():
    import pickle

    from backtest_kit import _exchange
    from backtest_kit._candles import Candles, vwap

    arr = synthetic_candles(300, start_ms=T0)
    c = Candles(arr[:, 0].astype(np.int64), *(np.ascontiguousarray(arr[:, i]) for i in range(1, 6)))
    s = _exchange._Series(M)
    s.add(c, T0, T0 + 300 * M)
    copy = pickle.loads(pickle.dumps(s))
    for k in (5, 17, 300):
        assert copy.price(T0 + k * M, 5) == s.price(T0 + k * M, 5) == vwap(c[k - 5:k])
    assert copy.c.close.tolist() == c.close.tolist() and (copy.clean_from, copy.clean_to) == (T0, T0 + 300 * M)

"""Shared fixtures for the engine unit tests.

Every test starts and ends with `bk.reset()` (no schema, listener, instance or config
override leaks between tests). The `kit` fixture builds tiny hand-made markets: 1m candles
`[ts, o, h, l, c, v]` served by `backtest_kit.demo.ArrayExchange`, a frame given in minutes
relative to T0 (2024-01-01 00:00 UTC) and a scripted strategy whose `get_signal` answers
from a {minute: signal} table and logs every call.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SYMBOL = "BTCUSDT"


@pytest.fixture(autouse=True)
def _fresh_library():
    bk.reset()
    yield
    bk.reset()


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run the test in its own working directory (reports and live state go under ./dump)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_retry_delay():
    """Candle retries without wall-clock pauses."""
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def ms(minute: float) -> int:
    """Epoch ms of T0 + `minute` minutes."""
    return T0 + int(round(minute * M))


def minute_of(value) -> float:
    """Minutes since T0 of a datetime or epoch ms (an int when whole)."""
    t = int(round(value.timestamp() * 1000)) if isinstance(value, datetime) else int(value)
    m = (t - T0) / M
    return int(m) if m == int(m) else m


class Kit:
    """Builds a market + frame + scripted strategy and runs Backtest.run on it."""

    T0 = T0
    M = M
    SYMBOL = SYMBOL

    def __init__(self):
        self.calls: list = []         # minutes (since T0) of every get_signal call
        self.errors: list = []        # everything listen_error received
        self.fetches: list = []       # (interval, since minute, limit) of every exchange call
        self.rows: dict[int, list] = {}

    # --- candles -------------------------------------------------------------------------

    def flat(self, first: int, last: int, price: float = 100.0, volume: float = 1.0) -> Kit:
        """1m candles o=h=l=c=price for minutes first..last (inclusive)."""
        for m in range(first, last + 1):
            t = ms(m)
            self.rows[t] = [t, price, price, price, price, volume]
        return self

    def candle(self, minute: int, o=None, h=None, l=None, c=None, v=None) -> Kit:
        """Override fields of the candle at `minute` (creating it from 100s if absent). An open
        that is not given is kept inside [low, high], so the candle stays valid."""
        t = ms(minute)
        row = self.rows.get(t, [t, 100.0, 100.0, 100.0, 100.0, 1.0])
        for i, val in enumerate((o, h, l, c, v), start=1):
            if val is not None:
                row[i] = float(val)
        if o is None:
            row[1] = min(max(row[1], row[3]), row[2])
        self.rows[t] = row
        return self

    def drop(self, first: int, last: int) -> Kit:
        for m in range(first, last + 1):
            self.rows.pop(ms(m), None)
        return self

    def array(self) -> np.ndarray:
        return np.array([self.rows[t] for t in sorted(self.rows)], dtype=np.float64)

    # --- registration ----------------------------------------------------------------------

    def setup(self, *, frame=(0, 60), frame_interval="1m", interval="1m", signals=None,
              callbacks=None, get_candles=None, format_price=None, format_quantity=None,
              strategy_name="st", exchange_name="ex", frame_name="fr", listen_errors=True,
              sizing_name=None) -> Kit:
        """Register exchange/frame/strategy. `signals` maps minute -> signal; a value may be a
        dict / bk.Signal, an Exception (raised), or a callable(symbol, when) (awaited if async)."""
        table = dict(signals or {})
        self.exchange_name, self.frame_name, self.strategy_name = exchange_name, frame_name, strategy_name
        if get_candles is None:
            source = ArrayExchange(self.array())

            async def get_candles(symbol, interval_, since, limit):
                self.fetches.append((interval_, minute_of(since), limit))
                return await source.get_candles(symbol, interval_, since, limit)

        bk.add_exchange(exchange_name=exchange_name, get_candles=get_candles,
                        format_price=format_price, format_quantity=format_quantity)
        start, end = frame
        bk.add_frame(frame_name=frame_name, interval=frame_interval,
                     start_date=datetime.fromtimestamp(ms(start) / 1000, tz=UTC),
                     end_date=datetime.fromtimestamp(ms(end) / 1000, tz=UTC))

        async def get_signal(symbol, when):
            m = minute_of(when)
            self.calls.append(m)
            value = table.get(m)
            if isinstance(value, BaseException):
                raise value
            if callable(value) and not isinstance(value, (dict, bk.Signal)):
                value = value(symbol, when)
                if inspect.isawaitable(value):
                    value = await value
            return dict(value) if isinstance(value, dict) else value

        bk.add_strategy(strategy_name=strategy_name, interval=interval, get_signal=get_signal,
                        callbacks=callbacks, sizing_name=sizing_name)
        if listen_errors:
            bk.listen_error(self.errors.append)
        return self

    # --- running ---------------------------------------------------------------------------

    async def arun(self) -> list:
        return [r async for r in bk.Backtest.run(self.SYMBOL, strategy_name=self.strategy_name,
                                                 exchange_name=self.exchange_name,
                                                 frame_name=self.frame_name)]

    def run(self) -> list:
        return asyncio.run(self.arun())

    def stats(self):
        return asyncio.run(bk.Backtest.get_data(self.SYMBOL, self.strategy_name))

    def error_texts(self) -> list[str]:
        return [str(e) for e in self.errors]


@pytest.fixture
def kit() -> Kit:
    return Kit()


def long_signal(tp=102.0, sl=98.0, minutes=60, **extra) -> dict:
    return {"position": "long", "price_take_profit": tp, "price_stop_loss": sl,
            "minute_estimated_time": minutes, **extra}


def short_signal(tp=98.0, sl=102.0, minutes=60, **extra) -> dict:
    return {"position": "short", "price_take_profit": tp, "price_stop_loss": sl,
            "minute_estimated_time": minutes, **extra}


def pnl_long(open_, close, s=0.1, f=0.1) -> float:
    """ENGINE.md PnL formula, long side."""
    o = open_ * (1 + s / 100)
    c = close * (1 - s / 100)
    return (c - o) / o * 100 - 2 * f


def pnl_short(open_, close, s=0.1, f=0.1) -> float:
    """ENGINE.md PnL formula, short side."""
    o = open_ * (1 - s / 100)
    c = close * (1 + s / 100)
    return (o - c) / o * 100 - 2 * f

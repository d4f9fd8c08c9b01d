"""Backtest and live agree on the same candles (D23): trade by trade, over several strategies.

Each case runs `Backtest.run` over a 1m frame [S, E] and `Live.run` on a `VirtualClock` from S
over the same bundled candles. The strategy is the same function; live keeps ticking past E
(returning no new signal after E) so positions and orders open at E are resolved on the same
later candles, as the backtest's fast path resolves them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy

M = 60_000


def _bundled() -> np.ndarray:
    with resources.files("backtest_kit").joinpath("data/demo_candles_1m.npz").open("rb") as f, np.load(f) as npz:
        cols = ("timestamp", "open", "high", "low", "close", "volume")
        return np.column_stack([np.asarray(npz[c], dtype=np.float64) for c in cols])


CANDLES = _bundled()
S = int(CANDLES[0, 0]) + 1440 * M      # a day of warm-up
E = S + 2 * 1440 * M                   # two days traded


def _breakout(minutes: int) -> Any:
    """A stop entry 0.15 % beyond the last close, in the direction of the crossover."""
    base = rule_strategy(5, 30, 0.8, 0.6, minutes)

    async def get_signal(symbol: str, when: datetime) -> dict[str, Any] | None:
        s = await base(symbol, when)
        if s is None:
            return None
        last = (await bk.get_candles(symbol, "1m", 1)).close[-1]
        k = 1 if s["position"] == "long" else -1
        po = last * (1 + k * 0.0015)
        return {**s, "price_open": po, "order_type": "stop", "price_take_profit": po * (1 + k * 0.008),
                "price_stop_loss": po * (1 - k * 0.006)}

    return get_signal


CASES = {
    "immediate-both-sides-5m": ("5m", rule_strategy(5, 30, 0.6, 0.6, 240)),
    "immediate-short-life-1m": ("1m", rule_strategy(3, 15, 0.7, 0.6, 15)),
    "limit-15m": ("15m", rule_strategy(5, 40, 0.8, 0.6, 600, limit_offset_pct=0.1)),
    "long-only-long-life-5m": ("5m", rule_strategy(3, 20, 1.5, 0.8, 1440, shorts=False)),
    "stop-entries-5m": ("5m", _breakout(300)),
}


def _until_end(fn: Any) -> Any:
    async def get_signal(symbol: str, when: datetime) -> Any:
        if int(when.timestamp() * 1000) > E:
            return None
        return await fn(symbol, when)
    return get_signal


def _register(interval: str, fn: Any, callbacks: Any = None) -> None:
    source = ArrayExchange(CANDLES)
    bk.add_exchange(exchange_name="bundled", get_candles=source.get_candles)
    bk.add_frame(frame_name="period", interval="1m", start_date=datetime.fromtimestamp(S / 1000, UTC),
                 end_date=datetime.fromtimestamp(E / 1000, UTC))
    bk.add_strategy(strategy_name="s", interval=interval, get_signal=_until_end(fn), callbacks=callbacks)


def _key(r: Any) -> tuple:
    s = r.signal
    base = (r.action, s.position, s.scheduled_at, s.pending_at if r.action == "closed" else None,
            r.close_timestamp, round(s.price_open, 9), round(r.current_price, 9))
    if r.action == "closed":
        return base + (r.close_reason, round(r.pnl.pnl_percentage, 9))
    return base


async def _backtest() -> list:
    return [r async for r in bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="bundled",
                                             frame_name="period")]


async def _live() -> list:
    clock = bk.VirtualClock(S, E + 3 * 1440 * M)  # long enough for what is open at E to resolve
    return [r async for r in bk.Live.run("BTCUSDT", strategy_name="s", exchange_name="bundled", clock=clock)
            if r.action != "opened"]


@pytest.mark.parametrize("partials", [False, True], ids=["no-listeners", "partial-listeners"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_backtest_and_live_yield_the_same_trades(case, partials, tmp_path):
    interval, fn = CASES[case]
    bk.use_persist_adapter(bk.FileBackend(tmp_path, fsync=False))
    levels: dict[bool, list] = {True: [], False: []}
    if partials:
        bk.listen_partial_profit(lambda e: levels[e.backtest].append((e.signal.pending_at, e.level, e.timestamp)))
        bk.listen_partial_loss(lambda e: levels[e.backtest].append((e.signal.pending_at, -e.level, e.timestamp)))
    _register(interval, fn)
    backtest = asyncio.run(_backtest())
    live = asyncio.run(_live())
    assert len(backtest) >= 5, "the case should trade"
    assert [_key(r) for r in live] == [_key(r) for r in backtest]
    assert levels[False] == levels[True]
    if partials:
        assert levels[True], "partial levels should be reached"


def test_the_suite_covers_every_exit_and_entry_kind(tmp_path):
    """The cases above are only evidence if they exercise each rule."""
    reasons: set = set()
    kinds: set = set()
    for interval, fn in CASES.values():
        bk.reset()
        _register(interval, fn)
        for r in asyncio.run(_backtest()):
            kinds.add((r.action, r.signal.position))
            if r.action == "closed":
                reasons.add(r.close_reason)
    assert {"take_profit", "stop_loss", "time_expired"} <= reasons
    assert {("closed", "long"), ("closed", "short"), ("cancelled", "long")} <= kinds

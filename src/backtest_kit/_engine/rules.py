"""The backtest fast path: after a tick opens a position or places a limit order, scan 1m
candle arrays with numpy for the fill, take-profit, stop-loss, expiry or timeout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._candles import Candles, vwap
from .._config import cfg
from .._context import ExecutionContext, enter, leave
from .._time import MINUTE_MS
from ..events import CancelledResult, ClosedResult, Outcome, SignalRow
from .machine import Machine


def _first(mask: np.ndarray) -> int:
    """Index of the first True, or -1."""
    i = int(mask.argmax()) if len(mask) else 0
    return i if len(mask) and mask[i] else -1


def price_at(v: np.ndarray, c: Candles, k: int) -> float:
    """VWAP of the candles up to k (fewer than CC_AVG_PRICE_CANDLES_COUNT at the data's start)."""
    return float(v[k]) if np.isfinite(v[k]) else vwap(c[: k + 1][-cfg.CC_AVG_PRICE_CANDLES_COUNT:])


def _price_at_end(c: Candles, v: np.ndarray) -> float:
    """VWAP of the last CC_AVG_PRICE_CANDLES_COUNT candles (fewer when that is all there is)."""
    n = cfg.CC_AVG_PRICE_CANDLES_COUNT
    return float(v[-1]) if len(c) >= n and np.isfinite(v[-1]) else vwap(c[-n:])


async def resolve(state: Machine, when: int) -> Outcome | None:
    """Run the signal the tick at `when` opened or placed to its end on 1m candles.

    Returns the closed or cancelled result, or None when the signal is still there: no
    candles came back (later ticks watch it), or a limit order still waits when the data
    ends (D6).
    """
    n = cfg.CC_AVG_PRICE_CANDLES_COUNT
    start = when - (n - 1) * MINUTE_MS
    if state.scheduled is not None:
        count = n - 1 + cfg.CC_SCHEDULE_AWAIT_MINUTES + state.scheduled.minute_estimated_time + 1
    else:
        assert state.pending is not None
        count = state.pending.minute_estimated_time + n  # D15: the full lifetime
    c, v = await state.exchange.minute_series(state.symbol, start, count)
    if not len(c):
        return None
    ts = c.timestamp
    k0 = int(np.searchsorted(ts, when))  # checks start at the candle that opens at `when`
    token = enter(ExecutionContext(state.symbol, when, True, state.exchange, state.strategy_name))
    try:
        if state.scheduled is not None:
            wait = await _scan_waiting(state, state.scheduled, c, v, k0)
            if wait.kind == "cancelled":
                return wait.result
            if wait.kind == "waiting":
                return None
            k0 = wait.index + 1  # D2: the fill candle's successors are checked
        assert state.pending is not None
        return await _scan_open(state, state.pending, c, v, k0)
    finally:
        leave(token)


@dataclass(slots=True, frozen=True)
class _Wait:
    """How a waiting order's scan ended: filled at candle `index`, cancelled, or still waiting
    when the data ends (D6)."""

    kind: Literal["filled", "cancelled", "waiting"]
    index: int = -1
    result: CancelledResult | None = None


async def _scan_waiting(state: Machine, row: SignalRow, c: Candles, v: np.ndarray, k0: int) -> _Wait:
    ts = c.timestamp[k0:]
    timeout = ts - row.scheduled_at >= cfg.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS
    long = row.position == "long"
    stop = c.low[k0:] <= row.price_stop_loss if long else c.high[k0:] >= row.price_stop_loss
    if row.order_type == "stop":  # a breakout: triggered when the price moves through price_open
        fill = c.high[k0:] >= row.price_open if long else c.low[k0:] <= row.price_open
    else:
        fill = c.low[k0:] <= row.price_open if long else c.high[k0:] >= row.price_open
    i = _first(timeout | stop | fill)
    if i < 0:
        return _Wait("waiting")
    k = k0 + i
    when = int(c.timestamp[k])
    if timeout[i] or stop[i]:  # the timeout, then the stop, beat a fill on the same candle
        return _Wait("cancelled", k, await state.cancel(price_at(v, c, k), when))
    result = await state.fill(price_at(v, c, k), when, _fill_price(row, float(c.open[k])))  # D5: an `opened` event
    if result.action == "cancelled":
        return _Wait("cancelled", k, result)
    return _Wait("filled", k)


async def _scan_open(state: Machine, row: SignalRow, c: Candles, v: np.ndarray, k0: int) -> ClosedResult:
    ts = c.timestamp[k0:]
    expired = ts - row.pending_at >= row.minute_estimated_time * MINUTE_MS
    if row.position == "long":
        tp = c.high[k0:] >= row.price_take_profit
        sl = c.low[k0:] <= row.price_stop_loss
    else:
        tp = c.low[k0:] <= row.price_take_profit
        sl = c.high[k0:] >= row.price_stop_loss
    i = _first(expired | tp | sl)
    end = k0 + i if i >= 0 else len(c)
    if state.sink.observes_progress:
        for k in range(k0, end):
            if np.isfinite(v[k]):
                await state.progress(float(v[k]), int(c.timestamp[k]))
    if i < 0:  # D21: candles ran out before the lifetime did
        return await state.close("end_of_data", _price_at_end(c, v), int(c.timestamp[-1]))
    k = k0 + i
    when = int(c.timestamp[k])
    if expired[i]:
        return await state.close("time_expired", price_at(v, c, k), when)
    if tp[i] and sl[i]:  # one candle reached both: the policy decides, and the trade is marked
        if _take_profit_first(float(c.open[k]), row):
            return await state.close("take_profit", row.price_take_profit, when, ambiguous=True)
        return await state.close("stop_loss", row.price_stop_loss, when, ambiguous=True)
    if tp[i]:
        return await state.close("take_profit", row.price_take_profit, when)
    return await state.close("stop_loss", row.price_stop_loss, when)


def _fill_price(row: SignalRow, candle_open: float) -> float:
    """A limit fills at price_open; a stop at price_open, or at the candle's open when the
    candle opened beyond it (a gap through the trigger)."""
    if row.order_type != "stop":
        return row.price_open
    if row.position == "long":
        return max(row.price_open, candle_open)
    return min(row.price_open, candle_open)


def _take_profit_first(candle_open: float, row: SignalRow) -> bool:
    """CC_INTRABAR_POLICY: "take_profit" (1.5.27), "stop_loss" (pessimistic), or "open_distance"
    (the level nearer the candle's open was reached first; a tie goes to the stop-loss)."""
    policy = cfg.CC_INTRABAR_POLICY
    if policy == "take_profit":
        return True
    if policy == "stop_loss":
        return False
    return abs(row.price_take_profit - candle_open) < abs(candle_open - row.price_stop_loss)

"""THE rules, over closed 1m candles (numpy columns), for backtest and live alike.

A waiting order: the schedule timeout, then the stop-loss, beat a fill on the same candle; a
limit fills when the price comes to price_open, a stop when it moves through it. An open
position: the lifetime, then take-profit and stop-loss (CC_INTRABAR_POLICY when one candle
reaches both). Pure functions: they return decisions; the machine turns them into events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._candles import Candles, Vwaps, vwap
from .._config import cfg
from .._time import MINUTE_MS
from ..events import CloseReason, SignalRow


def _first(mask: np.ndarray) -> int:
    """Index of the first True, or -1."""
    i = int(mask.argmax()) if len(mask) else 0
    return i if len(mask) and mask[i] else -1


@dataclass(slots=True, frozen=True)
class WaitDecision:
    """What candles k0.. did to a waiting order: filled or cancelled at candle `index`, or
    nothing yet (`index` -1)."""

    kind: Literal["fill", "cancel", "none"]
    index: int = -1
    fill_price: float = 0.0


@dataclass(slots=True, frozen=True)
class ExitDecision:
    """What candles k0.. did to an open position: closed at candle `index` for `reason`, or
    nothing yet (`index` -1). Take-profit and stop-loss close at their level; an expiry at the
    candle's VWAP (the caller prices it)."""

    reason: CloseReason | None
    index: int = -1
    ambiguous: bool = False


def decide_waiting(row: SignalRow, c: Candles, k0: int) -> WaitDecision:
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
        return WaitDecision("none")
    k = k0 + i
    if timeout[i] or stop[i]:
        return WaitDecision("cancel", k)
    return WaitDecision("fill", k, fill_price(row, float(c.open[k])))


def fill_price(row: SignalRow, candle_open: float) -> float:
    """A limit fills at price_open; a stop at price_open, or at the candle's open when the
    candle opened beyond it (a gap through the trigger)."""
    if row.order_type != "stop":
        return row.price_open
    if row.position == "long":
        return max(row.price_open, candle_open)
    return min(row.price_open, candle_open)


def decide_exit(row: SignalRow, c: Candles, k0: int) -> ExitDecision:
    ts = c.timestamp[k0:]
    expired = ts - row.pending_at >= row.minute_estimated_time * MINUTE_MS
    if row.position == "long":
        tp = c.high[k0:] >= row.price_take_profit
        sl = c.low[k0:] <= row.price_stop_loss
    else:
        tp = c.low[k0:] <= row.price_take_profit
        sl = c.high[k0:] >= row.price_stop_loss
    i = _first(expired | tp | sl)
    if i < 0:
        return ExitDecision(None)
    k = k0 + i
    if expired[i]:
        return ExitDecision("time_expired", k)
    if tp[i] and sl[i]:  # one candle reached both: the policy decides, and the trade is marked
        first: CloseReason = "take_profit" if _take_profit_first(float(c.open[k]), row) else "stop_loss"
        return ExitDecision(first, k, ambiguous=True)
    return ExitDecision("take_profit" if tp[i] else "stop_loss", k)


def _take_profit_first(candle_open: float, row: SignalRow) -> bool:
    """CC_INTRABAR_POLICY: "take_profit" (1.5.27), "stop_loss" (pessimistic), or "open_distance"
    (the level nearer the candle's open was reached first; a tie goes to the stop-loss)."""
    policy = cfg.CC_INTRABAR_POLICY
    if policy == "take_profit":
        return True
    if policy == "stop_loss":
        return False
    return abs(row.price_take_profit - candle_open) < abs(candle_open - row.price_stop_loss)


def price_at(v: Vwaps, c: Candles, k: int) -> float:
    """VWAP of the candles up to k (fewer than CC_AVG_PRICE_CANDLES_COUNT at the data's start)."""
    x = v[k]
    return float(x) if math.isfinite(x) else vwap(c[: k + 1][-cfg.CC_AVG_PRICE_CANDLES_COUNT:])


def price_at_end(c: Candles, v: Vwaps) -> float:
    """VWAP of the last CC_AVG_PRICE_CANDLES_COUNT candles (fewer when that is all there is)."""
    n = cfg.CC_AVG_PRICE_CANDLES_COUNT
    if len(c) >= n:
        x = v[-1]
        if math.isfinite(x):
            return float(x)
    return vwap(c[-n:])

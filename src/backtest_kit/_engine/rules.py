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
    # The timeout holds from its first candle on (times are sorted): only the candles before
    # it are scanned for the stop and the fill, and at it the timeout beats both.
    e = _first_at(c.timestamp, k0, row.scheduled_at, cfg.CC_SCHEDULE_AWAIT_MINUTES)
    long = row.position == "long"
    stop = c.low[k0:e] <= row.price_stop_loss if long else c.high[k0:e] >= row.price_stop_loss
    if row.order_type == "stop":  # a breakout: triggered when the price moves through price_open
        fill = c.high[k0:e] >= row.price_open if long else c.low[k0:e] <= row.price_open
    else:
        fill = c.low[k0:e] <= row.price_open if long else c.high[k0:e] >= row.price_open
    i = _first(stop | fill)
    if i < 0:
        return WaitDecision("cancel", e) if e < len(c.timestamp) else WaitDecision("none")
    k = k0 + i
    if stop[i]:
        return WaitDecision("cancel", k)
    return WaitDecision("fill", k, fill_price(row, float(c.open[k])))


def _first_at(ts: np.ndarray, k0: int, since: int, minutes: float) -> int:
    """The first candle from k0 on with `ts - since >= minutes` minutes (len(ts) when none):
    the same test as on every candle, found by bisection on the sorted times."""
    span = minutes * MINUTE_MS
    if not len(ts) or not span <= int(ts[-1]) - since:  # NaN too: no candle reaches it
        return len(ts)
    # The smallest whole time reaching the span (the times are whole milliseconds).
    return max(k0, int(ts.searchsorted(since + math.ceil(span), side="left")))


def fill_price(row: SignalRow, candle_open: float) -> float:
    """A limit fills at price_open; a stop at price_open, or at the candle's open when the
    candle opened beyond it (a gap through the trigger)."""
    if row.order_type != "stop":
        return row.price_open
    if row.position == "long":
        return max(row.price_open, candle_open)
    return min(row.price_open, candle_open)


def decide_exit(row: SignalRow, c: Candles, k0: int) -> ExitDecision:
    # As for the timeout above: the lifetime ends at candle e and beats a level reached there.
    e = _first_at(c.timestamp, k0, row.pending_at, row.minute_estimated_time)
    if row.position == "long":
        tp = c.high[k0:e] >= row.price_take_profit
        sl = c.low[k0:e] <= row.price_stop_loss
    else:
        tp = c.low[k0:e] <= row.price_take_profit
        sl = c.high[k0:e] >= row.price_stop_loss
    i = _first(tp | sl)
    if i < 0:
        return ExitDecision("time_expired", e) if e < len(c.timestamp) else ExitDecision(None)
    k = k0 + i
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

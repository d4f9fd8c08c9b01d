"""Bundled demo pieces: synthetic candles, an in-memory exchange and the moving-average rule
strategy used by the demo command, the benchmark and the golden tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np

from ._context import get_average_price, get_candles
from ._time import MINUTE_MS, interval_ms, to_ms

# A strategy's get_signal(symbol, when) as the rule strategy implements it.
GetSignal = Callable[[str, datetime], Awaitable[dict[str, Any] | None]]


def synthetic_candles(n: int, *, start_ms: int = 1_704_067_200_000, seed: int = 7,
                      price: float = 30_000.0) -> np.ndarray:
    """`n` consecutive 1m candles as an (n, 6) array: a seeded random walk with regimes."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.0012, n))
    # Subtract a 3-day moving average so the walk stays near `price` over any horizon,
    # and add 12-hour trend regimes so crossovers have something to follow.
    window = min(4320, n)
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window, walk[0]), walk])
    walk = walk - np.convolve(padded, kernel, mode="full")[window:window + n]
    regimes = np.repeat(rng.normal(0, 0.0004, n // 720 + 1), 720)[:n]
    close = price * np.exp(walk + np.cumsum(regimes - regimes.mean()) * 0.05)
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0008, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 5.0, n) + 0.1
    ts = start_ms + np.arange(n, dtype=np.float64) * MINUTE_MS
    return np.column_stack([ts, np.round(open_, 2), np.round(high, 2), np.round(low, 2),
                            np.round(close, 2), np.round(volume, 4)])


class ArrayExchange:
    """Serves 1m candles from an (n, 6) array; longer intervals are aggregated from them."""

    def __init__(self, candles: np.ndarray) -> None:
        self.minute = np.asarray(candles, dtype=np.float64)
        self._by_interval = {"1m": self.minute}

    def _series(self, interval: str) -> np.ndarray:
        arr = self._by_interval.get(interval)
        if arr is None:
            step = interval_ms(interval)
            m = self.minute
            bucket = (m[:, 0] // step) * step
            starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
            ends = np.r_[starts[1:], len(m)] - 1
            arr = np.column_stack([
                bucket[starts], m[starts, 1], np.maximum.reduceat(m[:, 2], starts),
                np.minimum.reduceat(m[:, 3], starts), m[ends, 4], np.add.reduceat(m[:, 5], starts)])
            self._by_interval[interval] = arr
        return arr

    async def get_candles(self, symbol: str, interval: str, since: datetime | int, limit: int) -> np.ndarray:
        arr = self._series(interval)
        i = int(np.searchsorted(arr[:, 0], to_ms(since)))
        return arr[i:i + limit]


def _mean(xs: np.ndarray) -> float:
    """Mean summed left to right (np.add.accumulate is a sequential scan, unlike np.sum)."""
    return float(np.add.accumulate(xs)[-1]) / len(xs)


def rule_strategy(fast: int, slow: int, tp_pct: float, sl_pct: float, minutes: int,
                  shorts: bool = True, limit_offset_pct: float | None = None,
                  anchor: str = "close") -> GetSignal:
    """get_signal of a fast/slow moving-average crossover on closed 1m candles.

    TP and SL are set `tp_pct` / `sl_pct` from the last close (`anchor="close"`, the golden
    rule) or from the current price the trade opens at (`anchor="price"`, so the distances
    hold exactly and no signal fails the minimum-distance rules).
    """

    async def get_signal(symbol: str, when: datetime) -> dict[str, Any] | None:
        c = await get_candles(symbol, "1m", slow + 1)
        if len(c) < slow + 1:
            return None
        closes_all = c.close
        closes, prev = closes_all[1:], closes_all[:-1]
        fast_now, slow_now = _mean(closes[-fast:]), _mean(closes)
        fast_prev, slow_prev = _mean(prev[-fast:]), _mean(prev)
        if fast_prev <= slow_prev and fast_now > slow_now:
            k, position = 1, "long"
        elif shorts and fast_prev >= slow_prev and fast_now < slow_now:
            k, position = -1, "short"
        else:
            return None
        last = float(closes[-1]) if anchor == "close" else await get_average_price(symbol)
        base = last * (1 - k * limit_offset_pct / 100) if limit_offset_pct is not None else last
        signal: dict[str, Any] = {
            "position": position,
            "price_take_profit": base * (1 + k * tp_pct / 100),
            "price_stop_loss": base * (1 - k * sl_pct / 100),
            "minute_estimated_time": minutes,
            "note": f"rule@{to_ms(when)}",
        }
        if limit_offset_pct is not None:
            signal["price_open"] = base
        return signal

    return get_signal

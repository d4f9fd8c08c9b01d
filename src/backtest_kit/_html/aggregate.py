"""Numpy down-sampling for the HTML charts: OHLCV bars on a coarser interval, series snapped onto them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from backtest_kit.errors import ValidationError

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]

MINUTE_MS = 60_000
WEEK_MS = 7 * 24 * 60 * MINUTE_MS
INTERVALS: tuple[tuple[str, int], ...] = (
    ("1m", MINUTE_MS),
    ("5m", 5 * MINUTE_MS),
    ("15m", 15 * MINUTE_MS),
    ("1h", 60 * MINUTE_MS),
    ("4h", 240 * MINUTE_MS),
    ("1d", 1440 * MINUTE_MS),
    ("1w", WEEK_MS),
)
# The epoch fell on a Thursday; exchanges start weeks on Monday (1970-01-05).
_WEEK_ORIGIN_MS = 4 * 1440 * MINUTE_MS
CANDLE_KEYS = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bars:
    """OHLCV bars; `time_ms` is each bar's open time (bucket start), ascending and unique."""

    time_ms: Ints
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    interval: str
    step_ms: int

    def __len__(self) -> int:
        return int(self.time_ms.size)


def bucket(ts_ms: Ints, step_ms: int) -> Ints:
    """Bucket start of every timestamp (UTC; weeks start on Monday)."""
    origin = _WEEK_ORIGIN_MS if step_ms == WEEK_MS else 0
    return (ts_ms - origin) // step_ms * step_ms + origin


def _distinct_sorted(values: Ints) -> int:
    if values.size == 0:
        return 0
    return 1 + int(np.count_nonzero(values[1:] != values[:-1]))


def choose_interval(ts_ms: Ints, max_bars: int) -> tuple[str, int]:
    """Smallest interval of INTERVALS giving at most `max_bars` buckets for sorted `ts_ms` (1w if none does)."""
    if max_bars < 1:
        raise ValidationError(f"max_bars must be >= 1, got {max_bars}")
    gaps = np.diff(ts_ms)
    gaps = gaps[gaps > 0]
    # An interval finer than the data's own spacing would only mislabel the same bars.
    base = int(gaps.min()) if gaps.size else 0
    for name, step in INTERVALS:
        if step < base and step != WEEK_MS:
            continue
        if _distinct_sorted(bucket(ts_ms, step)) <= max_bars:
            return name, step
    return INTERVALS[-1]


def _column(candles: Mapping[str, ArrayLike], key: str) -> Floats:
    if key not in candles:
        raise ValidationError(f"candles lack the {key!r} column (need {', '.join(CANDLE_KEYS)})")
    col = np.asarray(candles[key], dtype=np.float64).reshape(-1)
    return col


def aggregate_ohlcv(candles: Mapping[str, ArrayLike], max_bars: int) -> Bars:
    """Aggregate candles to the smallest interval that yields at most `max_bars` bars."""
    cols = {key: _column(candles, key) for key in CANDLE_KEYS}
    sizes = {col.size for col in cols.values()}
    if len(sizes) != 1:
        raise ValidationError(f"candle columns differ in length: { {k: v.size for k, v in cols.items()} }")
    ts_f = cols["timestamp"]
    ohlc = np.vstack([cols["open"], cols["high"], cols["low"], cols["close"]])
    # A bad row would turn a whole aggregated bar into NaN, which the chart rejects.
    keep = np.isfinite(ts_f) & np.isfinite(ohlc).all(axis=0)
    ts = ts_f[keep].astype(np.int64)
    o, h, low, c = (row[keep] for row in ohlc)
    v = np.nan_to_num(cols["volume"][keep], nan=0.0, posinf=0.0, neginf=0.0)
    if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, o, h, low, c, v = ts[order], o[order], h[order], low[order], c[order], v[order]
    name, step = choose_interval(ts, max_bars)
    if ts.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return Bars(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty, name, step)
    b = bucket(ts, step)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], ts.size] - 1
    return Bars(
        time_ms=b[starts],
        open=o[starts],
        high=np.maximum.reduceat(h, starts),
        low=np.minimum.reduceat(low, starts),
        close=c[ends],
        volume=np.add.reduceat(v, starts),
        interval=name,
        step_ms=step,
    )


def snap(grid_ms: Ints, ts_ms: ArrayLike) -> Ints:
    """Index of the grid bar holding each timestamp (before the first bar: 0; in a gap: the bar before)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if grid_ms.size == 0:
        return np.zeros(ts.shape, dtype=np.int64)
    idx = np.searchsorted(grid_ms, ts, side="right") - 1
    return np.clip(idx, 0, grid_ms.size - 1).astype(np.int64)


def series_on_grid(
    grid_ms: Ints, ts_ms: ArrayLike, values: ArrayLike, how: Literal["last", "min"] = "last"
) -> tuple[Ints, Floats]:
    """Down-sample a series to one point per grid bar: its last value, or its minimum (for drawdowns)."""
    ts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    if ts.size != vals.size:
        raise ValidationError(f"series has {ts.size} timestamps but {vals.size} values")
    keep = np.isfinite(vals)
    ts, vals = ts[keep], vals[keep]
    if ts.size == 0 or grid_ms.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    idx = snap(grid_ms, ts)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    if how == "min":
        out = np.minimum.reduceat(vals, starts)
    else:
        out = vals[np.r_[starts[1:], idx.size] - 1]
    return grid_ms[idx[starts]], out


def grid_for(ts_ms: ArrayLike, max_points: int) -> Ints:
    """Bucket starts covering sorted-or-not timestamps on the finest interval giving <= `max_points` buckets."""
    ts = np.sort(np.asarray(ts_ms, dtype=np.int64).reshape(-1))
    if ts.size == 0:
        return ts
    _, step = choose_interval(ts, max_points)
    return np.unique(bucket(ts, step))


def drawdown(values: Floats) -> tuple[Floats, bool]:
    """Drawdown from the running peak: in percent when the curve stays positive, else in its own units."""
    if values.size == 0:
        return values, True
    peak = np.maximum.accumulate(values)
    if bool(np.all(values > 0)):
        return (values / peak - 1.0) * 100.0, True
    return values - peak, False

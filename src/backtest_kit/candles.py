"""Candle shapes -> numpy columns, batch validation and the VWAP ("current price")."""

from __future__ import annotations

import math
from typing import Any, Iterator, NamedTuple

import numpy as np

from ._time import iso


class Candle(NamedTuple):
    """One candle; `timestamp` is its open time in epoch ms."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


_COLUMNS = Candle._fields


class Candles:
    """A read-only run of candles held as numpy columns.

    Behaves like a sequence of `Candle` (len, indexing, iteration) and exposes the columns
    (`timestamp`, `open`, `high`, `low`, `close`, `volume`) for vectorised work.
    """

    __slots__ = ("timestamp", "open", "high", "low", "close", "volume")

    def __init__(self, timestamp, open, high, low, close, volume):
        self.timestamp = timestamp
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    @classmethod
    def empty(cls) -> "Candles":
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)

    def __len__(self) -> int:
        return len(self.timestamp)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return Candles(self.timestamp[key], self.open[key], self.high[key], self.low[key],
                           self.close[key], self.volume[key])
        return Candle(int(self.timestamp[key]), float(self.open[key]), float(self.high[key]),
                      float(self.low[key]), float(self.close[key]), float(self.volume[key]))

    def __iter__(self) -> Iterator[Candle]:
        cols = [getattr(self, c).tolist() for c in _COLUMNS]
        return (Candle(*row) for row in zip(*cols))

    def __repr__(self) -> str:
        if not len(self):
            return "Candles([])"
        return f"Candles({len(self)} from {iso(int(self.timestamp[0]))} to {iso(int(self.timestamp[-1]))})"

    def to_list(self) -> list[Candle]:
        return list(self)

    def to_dicts(self) -> list[dict]:
        return [c._asdict() for c in self]


def to_candles(data: Any) -> Candles:
    """Accept Candle/dict/6-tuple sequences, a pandas DataFrame, a numpy array or Candles."""
    if isinstance(data, Candles):
        return data
    if data is None:
        return Candles.empty()
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas DataFrame
        if len(data) == 0:  # no rows: no candles, whatever the columns (e.g. pd.DataFrame())
            return Candles.empty()
        missing = [c for c in _COLUMNS if c not in data.columns]
        if missing:
            raise ValueError(f"candle DataFrame lacks column(s) {', '.join(missing)}")
        return _from_columns([data[c].to_numpy() for c in _COLUMNS])
    if isinstance(data, np.ndarray):
        if data.dtype.names:
            missing = [c for c in _COLUMNS if c not in data.dtype.names]
            if missing:
                raise ValueError(f"candle array lacks field(s) {', '.join(missing)}")
            return _from_columns([data[c] for c in _COLUMNS])
        if data.size == 0:
            return Candles.empty()
        if data.ndim != 2 or data.shape[1] != 6:
            raise ValueError(f"candle array must have shape (n, 6), got {data.shape}")
        return _from_columns([data[:, i] for i in range(6)])
    rows = list(data)
    if not rows:
        return Candles.empty()
    first = rows[0]
    if isinstance(first, dict):
        try:
            cols = [[r[c] for r in rows] for c in _COLUMNS]
        except KeyError as e:
            raise ValueError(f"candle dict lacks key {e.args[0]!r}; expected {', '.join(_COLUMNS)}") from None
    elif isinstance(first, (tuple, list)):
        bad = next((i for i, r in enumerate(rows) if len(r) != 6), None)
        if bad is not None:
            raise ValueError(f"candle #{bad} has {len(rows[bad])} values, expected 6 "
                             "(timestamp, open, high, low, close, volume)")
        cols = [list(col) for col in zip(*rows)]
    elif all(hasattr(first, c) for c in _COLUMNS):
        cols = [[getattr(r, c) for r in rows] for c in _COLUMNS]
    else:
        raise ValueError(f"unsupported candle type {type(first).__name__}; use Candle, dict, "
                         "6-tuple, DataFrame or numpy array")
    return _from_columns(cols)


def _from_columns(cols) -> Candles:
    try:
        ts = np.asarray(cols[0], dtype=np.float64)
        rest = [np.asarray(c, dtype=np.float64) for c in cols[1:]]
    except (TypeError, ValueError) as e:
        raise ValueError(f"candle values must be numbers: {e}") from None
    return Candles(ts, *rest)  # timestamps stay float until validated


def check_batch(c: Candles, *, median_min: int, anomaly_factor: float) -> Candles:
    """Validate one batch from an exchange; return it sorted with int64 timestamps.

    Raises ValueError naming the first bad candle and what is wrong with it.
    """
    n = len(c)
    if n == 0:
        return Candles.empty()
    ts = c.timestamp
    values = np.stack([ts, c.open, c.high, c.low, c.close, c.volume])
    finite = np.isfinite(values).all(axis=0)
    if not finite.all():
        i = int(np.argmin(finite))
        bad = [name for name, v in zip(_COLUMNS, values[:, i]) if not math.isfinite(v)]
        raise ValueError(f"candle #{i} ({_when(ts[i])}) has non-finite {', '.join(bad)}: "
                         f"{_fmt(values[:, i])}")
    if not (ts == np.floor(ts)).all():
        i = int(np.argmin(ts == np.floor(ts)))
        raise ValueError(f"candle #{i} timestamp {ts[i]!r} is not whole milliseconds")
    prices = values[1:5]
    positive = (prices > 0).all(axis=0) & (c.volume >= 0)
    if not positive.all():
        i = int(np.argmin(positive))
        raise ValueError(f"candle #{i} ({_when(ts[i])}) has zero or negative values "
                         f"(prices must be > 0, volume >= 0): {_fmt(values[:, i])}")
    flat = prices.T.ravel()  # O, H, L, C of each candle in order, as the reference collects them
    if n >= median_min:
        ref = float(np.sort(flat)[len(flat) // 2])
    else:
        ref = float(sum(flat.tolist()) / len(flat))
    threshold = ref / anomaly_factor
    low = (prices >= threshold).all(axis=0)
    if not low.all():
        i = int(np.argmin(low))
        raise ValueError(f"candle #{i} ({_when(ts[i])}) has an anomalously low price: "
                         f"{_fmt(values[:, i])}; reference price {ref!r}, threshold {threshold!r} "
                         f"(reference / CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR)")
    its = ts.astype(np.int64)
    order = None
    if n > 1 and (np.diff(its) <= 0).any():
        order = np.argsort(its, kind="stable")
        its = its[order]
        dup = np.diff(its) == 0
        if dup.any():
            raise ValueError(f"duplicate candle timestamp {iso(int(its[int(np.argmax(dup))]))}")
    cols = [c.open, c.high, c.low, c.close, c.volume]
    if order is not None:
        cols = [col[order] for col in cols]
    return Candles(its, *(np.ascontiguousarray(col, dtype=np.float64) for col in cols))


def _when(ts: float) -> str:
    return iso(int(ts)) if math.isfinite(ts) else repr(ts)


def _fmt(v) -> str:
    return ", ".join(f"{name}={float(x)!r}" for name, x in zip(_COLUMNS, v))


def vwap(c: Candles) -> float:
    """sum(((h+l+c)/3)*v) / sum(v) in time order; mean close when volume is 0."""
    if len(c) == 0:
        raise ValueError("no candles")
    h, l, cl, v = c.high.tolist(), c.low.tolist(), c.close.tolist(), c.volume.tolist()
    num = 0.0
    vol = 0.0
    for i in range(len(h)):
        num += (h[i] + l[i] + cl[i]) / 3 * v[i]
        vol += v[i]
    if vol == 0:
        s = 0.0
        for x in cl:
            s += x
        return s / len(cl)
    return num / vol


def rolling_vwap(c: Candles, n: int) -> np.ndarray:
    """out[k] = vwap(c[k-n+1 .. k]) for k >= n-1 (NaN before), summed left to right like vwap()."""
    size = len(c)
    out = np.full(size, np.nan)
    if size < n:
        return out
    tv = (c.high + c.low + c.close) / 3 * c.volume
    m = size - n + 1
    num = tv[0:m].copy()
    vol = c.volume[0:m].copy()
    cls = c.close[0:m].copy()
    for j in range(1, n):  # sequential adds keep the exact order of the scalar formula
        num += tv[j:j + m]
        vol += c.volume[j:j + m]
        cls += c.close[j:j + m]
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.where(vol == 0, cls / n, num / vol)
    out[n - 1:] = res
    return out

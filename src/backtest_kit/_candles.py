"""Candle shapes -> numpy columns, batch validation and the VWAP ("current price")."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

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

    timestamp: np.ndarray  # int64 epoch ms (float64 between parsing and check_batch)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __init__(self, timestamp: np.ndarray, open: np.ndarray, high: np.ndarray, low: np.ndarray,
                 close: np.ndarray, volume: np.ndarray) -> None:
        self.timestamp = timestamp
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    @classmethod
    def empty(cls) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)

    @classmethod
    def concat(cls, parts: list[Candles]) -> Candles:
        """The parts one after another (empty for no parts)."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in _COLUMNS))

    def __len__(self) -> int:
        return len(self.timestamp)

    @overload
    def __getitem__(self, key: slice) -> Candles: ...
    @overload
    def __getitem__(self, key: SupportsIndex) -> Candle: ...

    def __getitem__(self, key: slice | SupportsIndex) -> Candles | Candle:
        if isinstance(key, slice):
            lo, hi, stride = key.indices(len(self))
            if stride == 1:
                return self.view(lo, max(hi, lo))
            return Candles(self.timestamp[key], self.open[key], self.high[key], self.low[key],
                           self.close[key], self.volume[key])
        return Candle(int(self.timestamp[key]), float(self.open[key]), float(self.high[key]),
                      float(self.low[key]), float(self.close[key]), float(self.volume[key]))

    def view(self, lo: int, hi: int) -> Candles:
        """c[lo:hi] for 0 <= lo <= hi <= len(c), its columns sliced when first read."""
        return _Window(self, lo, hi)

    def __iter__(self) -> Iterator[Candle]:
        cols = [getattr(self, c).tolist() for c in _COLUMNS]
        return (Candle(*row) for row in zip(*cols))

    def __repr__(self) -> str:
        if not len(self):
            return "Candles([])"
        return f"Candles({len(self)} from {iso(int(self.timestamp[0]))} to {iso(int(self.timestamp[-1]))})"

    def to_list(self) -> list[Candle]:
        return list(self)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [c._asdict() for c in self]


class _Window(Candles):
    """c[lo:hi]: each column is sliced from the candles it views when first read (a strategy
    asking for candles typically reads one or two of the six)."""

    __slots__ = ("_base", "_lo", "_hi")
    _base: Candles
    _lo: int
    _hi: int

    def __init__(self, base: Candles, lo: int, hi: int) -> None:  # columns are sliced lazily: no super()
        self._base, self._lo, self._hi = base, lo, hi

    def view(self, lo: int, hi: int) -> Candles:
        return _Window(self._base, self._lo + lo, self._lo + hi)  # a window of a window views the base

    def __len__(self) -> int:
        return self._hi - self._lo

    def __getattr__(self, name: str) -> np.ndarray:
        """Only called for a column not read yet (its slot is still empty)."""
        if name not in _COLUMNS:
            raise AttributeError(f"'Candles' object has no attribute {name!r}")
        col: np.ndarray = getattr(self._base, name)[self._lo:self._hi]
        setattr(self, name, col)
        return col


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


def _from_columns(cols: Sequence[npt.ArrayLike]) -> Candles:
    try:
        ts = np.asarray(cols[0], dtype=np.float64)
        rest = [np.asarray(c, dtype=np.float64) for c in cols[1:]]
    except (TypeError, ValueError) as e:
        raise ValueError(f"candle values must be numbers: {e}") from None
    return Candles(ts, *rest)  # timestamps stay float until validated


def _problems(c: Candles, median_min: int, anomaly_factor: float) -> tuple[np.ndarray, list[str]]:
    """Indices of invalid candles, in order, and why each is invalid (the reference's checks:
    finite values, prices > 0 and volume >= 0, no price below reference / factor; and a
    consistent shape: high >= low, open and close inside [low, high])."""
    if _plainly_valid(c, anomaly_factor):  # the usual batch: a few reductions instead of the full checks
        return np.empty(0, dtype=np.intp), []
    n = len(c)
    prices = np.stack([c.open, c.high, c.low, c.close])
    values = np.vstack([prices, c.volume[None, :]])
    finite = np.isfinite(values).all(axis=0)
    positive = (prices > 0).all(axis=0) & (c.volume >= 0)
    with np.errstate(invalid="ignore"):  # high >= low and open, close inside [low, high]
        shaped = (c.high >= c.low) & (c.open >= c.low) & (c.open <= c.high) & (c.close >= c.low) & (c.close <= c.high)
    flat = prices.T.ravel()  # O, H, L, C of each candle in order, as the reference collects them
    flat = flat[np.isfinite(flat) & (flat > 0)]
    if not len(flat):
        ref = 0.0
    elif n >= median_min:
        ref = float(np.sort(flat)[len(flat) // 2])
    else:
        ref = float(sum(flat.tolist()) / len(flat))
    threshold = ref / anomaly_factor
    with np.errstate(invalid="ignore"):
        anomalous = ~(prices >= threshold).all(axis=0)
    bad = np.flatnonzero(~finite | ~positive | ~shaped | anomalous)
    reasons = []
    for i in bad.tolist():
        row = [c.timestamp[i], *values[:, i]]
        if not finite[i]:
            names = [name for name, v in zip(_COLUMNS[1:], values[:, i]) if not math.isfinite(v)]
            reasons.append(f"candle #{i} ({_when(c.timestamp[i])}) has non-finite {', '.join(names)}: {_fmt(row)}")
        elif not positive[i]:
            reasons.append(f"candle #{i} ({_when(c.timestamp[i])}) has zero or negative values "
                           f"(prices must be > 0, volume >= 0): {_fmt(row)}")
        elif not shaped[i]:
            reasons.append(f"candle #{i} ({_when(c.timestamp[i])}) is inconsistent ({_shape_fault(row)}): "
                           f"{_fmt(row)}")
        else:
            reasons.append(f"candle #{i} ({_when(c.timestamp[i])}) has an anomalously low price: "
                           f"{_fmt(row)}; reference price {ref!r}, threshold {threshold!r} "
                           f"(reference / CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR)")
    return bad, reasons


_BLOCK = 1 << 16  # candles checked at a time: the temporaries of a large batch stay small


def _plainly_valid(c: Candles, anomaly_factor: float) -> bool:
    """No candle can fail _problems: all well shaped (open and close within [low, high], so none
    is NaN), low > 0, high finite, volume finite and >= 0, and no price below the highest /
    factor (the reference, a median or mean of the prices, is at most the highest)."""
    if not len(c) or not anomaly_factor > 0:
        return False
    o, h, lo, cl, v = c.open, c.high, c.low, c.close, c.volume
    with np.errstate(invalid="ignore"):
        for a in range(0, len(c), _BLOCK):
            b = a + _BLOCK
            # min(open, close) >= low and max(open, close) <= high: high >= low follows; NaN fails both
            if not ((np.minimum(o[a:b], cl[a:b]) >= lo[a:b]).all() and (np.maximum(o[a:b], cl[a:b]) <= h[a:b]).all()):
                return False
    low, high, vmin, vmax = float(lo.min()), float(h.max()), float(v.min()), float(v.max())
    return low > 0 and math.isfinite(high) and vmin >= 0 and math.isfinite(vmax) and low >= high / anomaly_factor


def _whole_ms(ts: np.ndarray) -> np.ndarray | None:
    """The timestamps as int64 when every one is a finite whole number of milliseconds (one
    cast and one comparison), else None (the caller then finds which is not)."""
    with np.errstate(invalid="ignore"):
        its = ts.astype(np.int64)
    for a in range(0, len(ts), _BLOCK):
        if not (its[a:a + _BLOCK] == ts[a:a + _BLOCK]).all():  # NaN and inf cast to a different number
            return None
    return its


def _increasing(its: np.ndarray) -> bool:
    """Each timestamp after the one before it."""
    later, earlier = its[1:], its[:-1]
    for a in range(0, len(later), _BLOCK):
        if not (later[a:a + _BLOCK] > earlier[a:a + _BLOCK]).all():
            return False
    return True


def _shape_fault(row: list[Any]) -> str:
    """What is wrong with the OHLC shape of [ts, o, h, l, c, v]."""
    _, o, h, lo, c, _v = (float(x) for x in row)
    if h < lo:
        return "high < low"
    return "open outside [low, high]" if not lo <= o <= h else "close outside [low, high]"


def check_batch(c: Candles, *, median_min: int, anomaly_factor: float) -> Candles:
    """Validate one batch from an exchange; return it sorted with int64 timestamps.

    Raises ValueError naming the first bad candle and what is wrong with it.
    """
    return _check_batch(c, median_min, anomaly_factor, lenient=False)[0]


def check_batch_lenient(c: Candles, *, median_min: int,
                        anomaly_factor: float) -> tuple[Candles, dict[int, str]]:
    """check_batch, except that bad candles are kept and reported instead of raising: returns
    (candles, {timestamp: reason}), so one bad candle in a large cached chunk only spoils the
    windows that contain it. Bad timestamps and duplicates still raise ValueError. The price
    and volume columns may be the batch's own arrays (the caller copies what it keeps)."""
    return _check_batch(c, median_min, anomaly_factor, lenient=True)


def _check_batch(c: Candles, median_min: int, anomaly_factor: float,
                 lenient: bool) -> tuple[Candles, dict[int, str]]:
    """check_batch / check_batch_lenient; without `lenient` the reasons are always empty."""
    n = len(c)
    if n == 0:
        return Candles.empty(), {}
    ts = c.timestamp
    its = _whole_ms(ts)
    if its is None:
        if not np.isfinite(ts).all():
            i = int(np.argmin(np.isfinite(ts)))
            raise ValueError(f"candle #{i} has a non-finite timestamp: {ts[i]!r}")
        if not (ts == np.floor(ts)).all():
            i = int(np.argmin(ts == np.floor(ts)))
            raise ValueError(f"candle #{i} timestamp {ts[i]!r} is not whole milliseconds")
        its = ts.astype(np.int64)  # whole and finite, past the int64 range: as before
    bad, reasons = _problems(c, median_min, anomaly_factor)
    if len(bad) and not lenient:
        raise ValueError(reasons[0])
    order = None
    if n > 1 and not _increasing(its):
        order = np.argsort(its, kind="stable")
        its = its[order]
        dup = np.diff(its) == 0
        if dup.any():
            raise ValueError(f"duplicate candle timestamp {iso(int(its[int(np.argmax(dup))]))}")
    cols = [c.open, c.high, c.low, c.close, c.volume]
    if order is not None:
        cols = [col[order] for col in cols]
    own = np.asarray if lenient else np.ascontiguousarray  # the cache copies into its own buffers anyway
    out = Candles(its, *(own(col, dtype=np.float64) for col in cols))
    return out, {int(ts[i]): r for i, r in zip(bad.tolist(), reasons)}


def _when(ts: float) -> str:
    return iso(int(ts)) if math.isfinite(ts) else repr(ts)


def _fmt(v: Iterable[float]) -> str:
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


def window_vwap(c: Candles, n: int, v: np.ndarray | None = None) -> np.ndarray:
    """Rolling VWAP of `n` candles at each candle (`v`: one already computed, rewritten in
    place); the first n-1 are over this window's candles only, never across a gap before it."""
    v = rolling_vwap(c, n) if v is None else v
    k = min(n - 1, len(c))
    if k:  # v[i] = vwap(c[:i + 1]): the same sums in the same order, in one pass
        h, lo, cl, vol = (col[:k].tolist() for col in (c.high, c.low, c.close, c.volume))
        num = volume = closes = 0.0
        for i in range(k):
            num += (h[i] + lo[i] + cl[i]) / 3 * vol[i]
            volume += vol[i]
            closes += cl[i]
            v[i] = num / volume if volume != 0 else closes / (i + 1)
    return v


class WindowVwap:
    """window_vwap(c, n), each value computed when it is read (a trade reads one or two of them)."""

    __slots__ = ("c", "n")

    def __init__(self, c: Candles, n: int) -> None:
        self.c, self.n = c, n

    def __len__(self) -> int:
        return len(self.c)

    def __getitem__(self, k: int) -> float:
        if k < 0:
            k += len(self.c)
        if not 0 <= k < len(self.c):
            raise IndexError(f"candle {k} is not in the window of {len(self.c)}")
        return vwap(self.c.view(max(0, k - self.n + 1), k + 1))

    def array(self) -> np.ndarray:
        """Every value at once."""
        return window_vwap(self.c, self.n)


Vwaps = np.ndarray | WindowVwap  # the rolling VWAP at each candle of a window, computed or to compute


def rolling_vwap(c: Candles, n: int) -> np.ndarray:
    """out[k] = vwap(c[k-n+1 .. k]) for k >= n-1 (NaN before), summed left to right like vwap()."""
    size = len(c)
    out = np.full(size, np.nan)
    if size < n:
        return out
    tv = c.high + c.low
    tv += c.close
    tv /= 3
    tv *= c.volume
    m = size - n + 1
    num = tv[0:m].copy()
    vol = c.volume[0:m].copy()
    for j in range(1, n):  # sequential adds keep the exact order of the scalar formula
        num += tv[j:j + m]
        vol += c.volume[j:j + m]
    with np.errstate(divide="ignore", invalid="ignore"):
        num /= vol
    zero = np.flatnonzero(vol == 0)
    if len(zero):  # no volume in the window: the mean close, summed in the same order
        cls = c.close[zero].copy()
        for j in range(1, n):
            cls += c.close[zero + j]
        num[zero] = cls / n
    out[n - 1:] = num
    return out

"""Vectorised strategies: `get_signals(candles)` turns the closed 1m history into per-bar arrays
(position, take-profit, stop-loss, lifetime, optional price_open / order_type).

The arrays are checked once; the machine then reads, at each moment a get_signal strategy
would be asked (D16), the signal of the last 1m bar that has closed: the bar opening at t is
usable from t + 1 minute on. Backtests compute the arrays once over the frame's history
(`warmup_minutes` before its start up to its end); live recomputes them on the recent history
at each ask. Unchanged from there on: risk, validation, sizing, the lifecycle and the scans.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from .._candles import Candles
from .._exchange import ExchangeClient
from .._schema import StrategySchema
from .._time import MINUTE_MS, iso
from ..errors import ValidationError
from ..events import OrderType, Signal

REQUIRED = ("position", "price_take_profit", "price_stop_loss", "minute_estimated_time")
OPTIONAL = ("price_open", "order_type")
KEYS = REQUIRED + OPTIONAL
NUMERIC = ("position", "price_take_profit", "price_stop_loss", "minute_estimated_time", "price_open")
NEVER = 2**62  # a time past any frame: no bucket left that could give a signal


class Signals:
    """The checked arrays of one get_signals call; bar k opened at `timestamp[k]`."""

    __slots__ = ("timestamp", "columns", "position")

    def __init__(self, timestamp: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.timestamp = timestamp
        self.columns = columns  # every key, one value per bar (defaults filled in)
        self.position = columns["position"]

    def __len__(self) -> int:
        return len(self.timestamp)

    def index_at(self, when: int) -> int:
        """The last bar closed by `when` (D1: open time + 1 minute <= when), or -1."""
        return int(self.timestamp.searchsorted(when - MINUTE_MS, side="right")) - 1

    def signal(self, k: int) -> Signal | None:
        """Bar k's signal as get_signal would return it (None for position 0)."""
        if k < 0:
            return None
        p = self.position[k]
        if p == 0:
            return None
        c = self.columns
        po = float(c["price_open"][k])
        return Signal(position="long" if p > 0 else "short", price_take_profit=float(c["price_take_profit"][k]),
                      price_stop_loss=float(c["price_stop_loss"][k]),
                      minute_estimated_time=_minutes(float(c["minute_estimated_time"][k])),
                      price_open=None if math.isnan(po) else po, order_type=cast(OrderType, str(c["order_type"][k])))

    def asks(self, start: int, end: int, frame_step: int, step: int) -> np.ndarray:
        """The frames of [start, end] (every `frame_step`) at which an idle strategy asked once
        per `step` bucket (D16: at the bucket's first frame) reads a bar with a signal."""
        if end < start:
            return np.empty(0, dtype=np.int64)
        buckets = np.arange(start // step, end // step + 1, dtype=np.int64) * step
        # The first frame at or after each bucket start (the frame start for the first bucket).
        first = start + -(-np.maximum(buckets - start, 0) // frame_step) * frame_step
        first = first[(first < buckets + step) & (first <= end)]
        read = np.searchsorted(self.timestamp, first - MINUTE_MS, side="right") - 1
        hit = np.zeros(len(first), dtype=bool)
        ok = read >= 0
        hit[ok] = self.position[read[ok]] != 0
        return first[hit]


def _minutes(value: float) -> Any:
    """An integral lifetime as int (what get_signal strategies usually return); else the float,
    which the signal rules then refuse by name."""
    return int(value) if value.is_integer() else value


def _where(strategy_name: str) -> str:
    return f"get_signals of strategy {strategy_name!r}"


def _span(ts: np.ndarray) -> str:
    return f"{iso(int(ts[0]))} .. {iso(int(ts[-1]))}" if len(ts) else "none"


def _bar(ts: np.ndarray, k: int) -> str:
    return f"bar {k} ({iso(int(ts[k]))})" if k < len(ts) else f"bar {k}"


def columns(raw: Any, ts: np.ndarray, strategy_name: str) -> dict[str, np.ndarray]:
    """The shape of what get_signals returned: a dict of the known keys, each one value per
    candle (a scalar for all but position), numeric where it must be. Values are not judged here."""
    where = _where(strategy_name)
    n = len(ts)
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{where} must return a dict of arrays (one value per 1m candle) with keys "
                              f"{', '.join(REQUIRED)} (optional {', '.join(OPTIONAL)}), got {type(raw).__name__}")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise ValidationError(f"{where} returned unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"expected {', '.join(KEYS)}")
    missing = [k for k in REQUIRED if raw.get(k) is None]
    if missing:
        raise ValidationError(f"{where} returned no {', '.join(map(repr, missing))} "
                              f"(required: {', '.join(REQUIRED)})")
    out: dict[str, np.ndarray] = {}
    for key in KEYS:
        value = raw.get(key)
        if value is None:
            value = math.nan if key == "price_open" else "limit"
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise ValidationError(f"{where}: key {key!r} is not an array ({e})") from None
        numeric = key in NUMERIC
        if numeric and arr.dtype.kind not in "biuf":
            raise ValidationError(f"{where}: key {key!r} must be numeric, got dtype {arr.dtype}"
                                  + (" (use NaN for market orders)" if key == "price_open" else ""))
        if not numeric and arr.dtype.kind not in "UO":
            raise ValidationError(f"{where}: key 'order_type' must hold 'limit' or 'stop', got dtype {arr.dtype}")
        if arr.ndim == 0 and key != "position":  # one value for every bar, held once
            out[key] = np.broadcast_to(arr.astype(np.float64) if numeric else arr, (n,))
            continue
        if arr.ndim != 1 or len(arr) != n:
            raise ValidationError(f"{where}: key {key!r} must hold one value per 1m candle ({n}), "
                                  f"got shape {arr.shape}")
        # A copy: the engine's own, whatever the strategy does with its buffers afterwards.
        out[key] = arr.astype(np.float64) if numeric else arr.copy()
    return out


def checked(cols: dict[str, np.ndarray], ts: np.ndarray, strategy_name: str) -> Signals:
    """The values the engine trades on: position +1 / -1 / 0; where it is not 0, finite prices
    and lifetime and an order type of 'limit' or 'stop' (the signal rules judge the rest)."""
    where = _where(strategy_name)
    pos = cols["position"]
    bad = np.flatnonzero((pos != 0) & (pos != 1) & (pos != -1))  # NaN too
    if len(bad):
        k = int(bad[0])
        raise ValidationError(f"{where}: key 'position' must be +1 (long), -1 (short) or 0 (none) at every bar, "
                              f"got {float(pos[k])!r} at {_bar(ts, k)} ({len(bad)} such bar(s))"
                              + ("; for no signal where it is NaN use np.nan_to_num(position) or "
                                 ".fillna(0)" if math.isnan(pos[k]) else ""))
    on = np.flatnonzero(pos)
    for key, rule in (("price_take_profit", "finite"), ("price_stop_loss", "finite"),
                      ("minute_estimated_time", "finite"), ("price_open", "finite or NaN (a market order)")):
        arr = cols[key][on]
        wrong = np.flatnonzero(~np.isfinite(arr) if key != "price_open" else np.isinf(arr))
        if len(wrong):
            k = int(on[wrong[0]])
            raise ValidationError(f"{where}: key {key!r} must be {rule} where position is not 0, got "
                                  f"{float(cols[key][k])!r} at {_bar(ts, k)} ({len(wrong)} such bar(s))")
    kinds = cols["order_type"]
    used = kinds[on]
    wrong = np.flatnonzero(~((used == "limit") | (used == "stop")))
    if len(wrong):
        k = int(on[wrong[0]])
        raise ValidationError(f"{where}: key 'order_type' must be 'limit' or 'stop' where position is not 0, "
                              f"got {kinds[k]!r} at {_bar(ts, k)}")
    out = dict(cols)
    out["position"] = pos.astype(np.int8)
    return Signals(ts, out)


def read_only(c: Candles) -> Candles:
    """Views of the columns that user code cannot write through (they are the shared cache)."""
    cols = []
    for name in Candles.__slots__:
        view = getattr(c, name).view()
        view.flags.writeable = False
        cols.append(view)
    return Candles(*cols)


async def call(fn: Callable[..., Any], c: Candles, strategy_name: str) -> dict[str, np.ndarray]:
    """get_signals(candles) (awaited when async), its shape checked."""
    try:
        raw = fn(read_only(c))
        if inspect.isawaitable(raw):
            raw = await raw
    except Exception as e:
        # The strategy's own error, unchanged, with where it came from.
        e.add_note(f"raised by {_where(strategy_name)} on {len(c)} 1m candles ({_span(c.timestamp)})")
        raise
    return columns(raw, c.timestamp, strategy_name)


async def compute(fn: Callable[..., Any], c: Candles, strategy_name: str) -> Signals:
    """The checked signals of `c` (no call for no candles: nothing to trade on)."""
    if not len(c):
        return Signals(c.timestamp, {k: np.empty(0, dtype=np.int8 if k == "position" else np.float64)
                                     for k in KEYS})
    return checked(await call(fn, c, strategy_name), c.timestamp, strategy_name)


async def history(exchange: ExchangeClient, symbol: str, start: int, end: int, warmup_minutes: int) -> Candles:
    """The closed 1m candles a frame [start, end] can read: `warmup_minutes` before its start up
    to the last bar that closes by its end."""
    return await exchange.range(symbol, "1m", start - warmup_minutes * MINUTE_MS, end // MINUTE_MS * MINUTE_MS)


class VectorSource:
    """A get_signals strategy's signals for one machine (one symbol, one run)."""

    def __init__(self, schema: StrategySchema, exchange: ExchangeClient, symbol: str) -> None:
        assert schema.get_signals is not None
        self.fn = schema.get_signals
        self.name = schema.strategy_name
        self.warmup = schema.warmup_minutes
        self.exchange = exchange
        self.symbol = symbol
        self.signals: Signals | None = None  # backtest: computed once by prepare()
        self._asks: np.ndarray | None = None  # backtest: the frames where an ask finds a signal

    async def prepare(self, start: int, end: int, frame_step: int, step: int) -> None:
        """Backtest: compute the signals once over the history the frame [start, end] (a frame
        every `frame_step`) reads, and the frames where asking (every `step`) finds one."""
        c = await history(self.exchange, self.symbol, start, end, self.warmup)
        self.signals = await compute(self.fn, c, self.name)
        self._asks = self.signals.asks(start, end, frame_step, step)

    async def signal_at(self, when: int) -> Signal | None:
        """The signal readable at `when`: from the prepared arrays, or (live, or a machine never
        prepared) recomputed on the `warmup_minutes` of closed candles before `when`."""
        s = self.signals
        if s is None:
            aligned = when // MINUTE_MS * MINUTE_MS
            c = await self.exchange.range(self.symbol, "1m", aligned - max(self.warmup, 1) * MINUTE_MS, aligned)
            s = await compute(self.fn, c, self.name)
        return s.signal(s.index_at(when))

    def may_signal(self, when: int) -> bool:
        """False only when the prepared arrays say an ask at `when` finds no signal."""
        s = self.signals
        if s is None:
            return True
        k = s.index_at(when)
        return k >= 0 and s.position[k] != 0

    def next_ask(self, when: int, step: int) -> int:
        """Backtest fast-forward, idle after `when`'s bucket: the next frame where asking finds a
        signal (NEVER when none is left; the next bucket when nothing is prepared)."""
        asks = self._asks
        if asks is None:
            return (when // step + 1) * step
        i = int(asks.searchsorted((when // step + 1) * step))
        return int(asks[i]) if i < len(asks) else NEVER

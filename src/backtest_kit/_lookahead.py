"""bk.check_lookahead: does a vectorised strategy's signal at a bar depend on later candles?

get_signals sees the whole history at once, so a centred window, a full-series statistic or
a negative shift silently reads the future. The check computes the signals on the frame's
history once, then again on the history cut at `samples` evenly spaced moments of the frame
(only candles closed by then kept), and lists every bar whose values differ between the two.
"""

from __future__ import annotations

import numpy as np

from . import _registry as registry
from ._engine.vector import KEYS, Signals, call, checked, history
from ._exchange import ExchangeClient
from ._execution.base import run_sync
from ._schema import ExchangeSchema, FrameSchema, StrategySchema
from ._time import MINUTE_MS, iso
from .errors import ValidationError
from .events import LookaheadReport

SOURCE = "check_lookahead"


def check_lookahead(strategy_name: str, exchange_name: str, frame_name: str, symbol: str,
                    samples: int = 50) -> LookaheadReport:
    """Recompute the get_signals strategy on its frame's history cut at `samples` evenly spaced
    moments and report every bar whose signal changed when the later candles were removed.
    Works from plain code and inside a running event loop."""
    registry.validate_symbol(symbol, SOURCE)
    strategy = registry.get_strategy(strategy_name, SOURCE)
    exchange = registry.get_exchange(exchange_name, SOURCE)
    frame = registry.get_frame(frame_name, SOURCE)
    if strategy.get_signals is None:
        raise ValidationError(f"{SOURCE}: strategy {strategy_name!r} is registered with get_signal; only a "
                              "vectorised strategy (add_strategy(..., get_signals=fn)) can be checked")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValidationError(f"{SOURCE}: samples must be an int >= 1, got {samples!r}")
    symbol = registry.canonical_symbol(symbol, exchange_name)
    return run_sync(lambda: _check(strategy, exchange, frame, symbol, samples))


def cut_bars(ts: np.ndarray, start: int, end: int, samples: int) -> np.ndarray:
    """Indices of the last bar kept by each cut: up to `samples` bars, evenly spaced over those
    that close within [start, end] and leave at least one later candle to remove."""
    close = ts + MINUTE_MS
    candidates = np.flatnonzero((close >= start) & (close <= end))
    candidates = candidates[candidates < len(ts) - 1]
    if not len(candidates):
        return candidates
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, min(samples, len(candidates)))).astype(np.int64))
    return candidates[picks]


def differences(full: Signals, part: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Bars of `part` (a prefix of the history) whose values differ from `full`'s, NaN equal to
    NaN; and the keys that differ."""
    m = len(part["position"])
    changed = np.zeros(m, dtype=bool)
    keys = []
    for key in KEYS:
        a, b = full.columns[key][:m], part[key]
        if key == "order_type":
            diff = np.asarray(a.astype(object) != b.astype(object), dtype=bool)
        else:
            a = a.astype(np.float64, copy=False)
            diff = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if diff.any():
            keys.append(key)
            changed |= diff
    return changed, keys


async def _check(strategy: StrategySchema, exchange: ExchangeSchema, frame: FrameSchema, symbol: str,
                 samples: int) -> LookaheadReport:
    assert strategy.get_signals is not None
    client = ExchangeClient(exchange, backtest=True)  # in the thread that runs it: its own candle cache
    fn, name = strategy.get_signals, strategy.strategy_name
    c = await history(client, symbol, frame.start_ms, frame.end_ms, strategy.warmup_minutes)
    cuts = cut_bars(c.timestamp, frame.start_ms, frame.end_ms, samples)
    if not len(cuts):
        raise ValidationError(f"{SOURCE}: exchange {client.name!r} has too few closed 1m candles of {symbol!r} "
                              f"for frame {frame.frame_name!r} ({iso(frame.start_ms)} .. {iso(frame.end_ms)}) "
                              f"to cut the history anywhere ({len(c)} candle(s)): nothing to check")
    full = checked(await call(fn, c, name), c.timestamp, name)
    biased = np.zeros(len(c), dtype=bool)
    keys: set[str] = set()
    compared = 0
    for k in cuts:
        changed, differ = differences(full, await call(fn, c[: int(k) + 1], name))
        biased[: len(changed)] |= changed
        keys.update(differ)
        compared += len(changed)
    flagged = [int(t) for t in c.timestamp[biased]]
    return LookaheadReport(checked=compared, biased=flagged, ok=not flagged, strategy_name=name, symbol=symbol,
                           keys=[k for k in KEYS if k in keys], cuts=[int(c.timestamp[k]) + MINUTE_MS for k in cuts])



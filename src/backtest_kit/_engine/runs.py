"""The run log: what each run of (mode, symbol, strategy) produced, filled only by the sink.

Every report and every `get_data` reads from here; nothing reads execution objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from .. import _state
from .._candles import Candles
from .._registry import canonical_symbol
from ..events import ClosedResult, Mode, Outcome, PartialEvent, PerformanceEvent, RiskEvent, TickResult


@dataclass(slots=True, eq=False)
class RunError:
    """A recoverable error met during a run (the run went on)."""

    where: str
    error: BaseException


@dataclass(slots=True, eq=False)
class Run:
    """The record of one run; a new run of the same key replaces it."""

    mode: Mode
    symbol: str
    strategy_name: str
    results: list[Outcome] = field(default_factory=list)       # closed and cancelled, in order
    events: list[TickResult] = field(default_factory=list)     # every non-idle tick result
    perf: list[PerformanceEvent] = field(default_factory=list)
    rejections: list[RiskEvent] = field(default_factory=list)
    partials: list[PartialEvent] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)
    initial_capital: float = 0.0
    gaps: tuple[int, int] = (0, 0)  # data gaps and the longest, in minutes, met in the frame's 1m candles
    # Where the run's 1m candles come from (fetched once, when equity or a chart is first asked for).
    mark_source: Callable[[], Awaitable[Candles]] | None = None
    _candles: Candles | None = None

    async def candles(self) -> Candles | None:
        """The run's 1m candles, from the frame's start to its end (or its last close)."""
        if self._candles is None and self.mark_source is not None:
            self._candles = await self.mark_source()
        return self._candles

    async def marks(self) -> tuple[np.ndarray, np.ndarray] | None:
        """1m candle open times and closes over the run, to mark the account to market."""
        c = await self.candles()
        return None if c is None else (c.timestamp.astype(np.int64), c.close.astype(np.float64))

    def release(self) -> None:
        """Drop the fetched candles (a sweep keeps many runs; they are fetched again if asked for)."""
        self._candles = None

    def add(self, result: TickResult) -> None:
        if result.action == "idle":
            return  # idle ticks are observable through listeners, not worth keeping
        self.events.append(result)
        if result.action == "closed" or result.action == "cancelled":
            self.results.append(result)

    def restore(self, outcome: Outcome) -> None:
        """A trade closed before a restart (live): counts in statistics, emits nothing."""
        self.events.append(outcome)
        self.results.append(outcome)

    @property
    def closed(self) -> list[ClosedResult]:
        return [r for r in self.results if r.action == "closed"]


class RunLog:
    """The latest run of each (mode, symbol, strategy)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[Mode, str, str], Run] = {}

    def start(self, mode: Mode, symbol: str, strategy_name: str) -> Run:
        symbol = canonical_symbol(symbol)  # the key get() looks up
        run = self._runs[(mode, symbol, strategy_name)] = Run(mode, symbol, strategy_name)
        return run

    def put(self, run: Run) -> None:
        """Log a run made elsewhere (a walker's strategy run by a worker) as the latest of its key."""
        self._runs[(run.mode, canonical_symbol(run.symbol), run.strategy_name)] = run

    def get(self, mode: Mode, symbol: str, strategy_name: str) -> Run | None:
        return self._runs.get((mode, canonical_symbol(symbol), strategy_name))

    def all(self, mode: Mode) -> list[Run]:
        """The latest run of every (symbol, strategy) in `mode`, in the order keys first ran."""
        return [r for (m, _, _), r in self._runs.items() if m == mode]

    def clear(self) -> None:
        self._runs.clear()

    def __len__(self) -> int:
        return len(self._runs)


runs = _state.register("runs", RunLog())


def mode_of(backtest: bool) -> Mode:
    return "backtest" if backtest else "live"

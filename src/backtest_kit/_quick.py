"""bk.backtest: one call from a get_signal and some candles to statistics, trades, equity and a chart.

Works from plain code and inside a running event loop (a notebook cell), and can be called
again without bk.reset(): each call registers its own exchange, frame and strategy.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _registry as registry
from ._candles import to_candles
from ._config import get_config, set_config
from ._engine.runs import Run, runs
from ._engine.stats import BacktestStatistics
from ._execution.backtest import Backtest
from ._execution.base import run_sync
from ._files import check_candles, load_candles
from ._report.html import backtest_page
from ._time import MINUTE_MS, to_ms
from .demo import ArrayExchange
from .errors import ValidationError

if TYPE_CHECKING:  # pandas loads on first use: `import backtest_kit` stays light
    import pandas as pd

_calls = itertools.count(1)


class BacktestResult:
    """What bk.backtest returns: `.stats`, `.trades`, `.equity`, `.report()`, `.plot(path=None)`."""

    def __init__(self, name: str, symbol: str, run: Run, stats: BacktestStatistics, trades: pd.DataFrame,
                 equity: pd.Series):
        self.name, self.symbol = name, symbol
        self.stats, self.trades, self.equity = stats, trades, equity
        self._run = run
        self._markdown: str | None = None

    def report(self) -> str:
        """The markdown report."""
        if self._markdown is None:
            self._markdown = run_sync(lambda: Backtest.get_report(self.symbol, self.name))
        return self._markdown

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The HTML chart: shown inline in a notebook (IPython) when `path` is None, written to
        `path` otherwise (or when not in a notebook: ./dump/backtest/<name>.html); returns the
        IPython display object or the file's path."""
        page = run_sync(lambda: backtest_page(self._run, self.stats, f"Backtest on {self.symbol}"))
        if path is None and _in_notebook():
            from IPython.display import HTML  # noqa: PLC0415 - only inside a notebook
            return HTML(page)
        target = Path(path) if path is not None else Path("dump", "backtest", f"{self.name}.html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        return str(target.absolute())

    def __repr__(self) -> str:
        s = self.stats
        return (f"<BacktestResult {self.symbol}: {s.total_signals} trades, return "
                f"{'N/A' if s.total_return_pct is None else f'{s.total_return_pct:+.2f}%'}>")

    def _repr_html_(self) -> str:
        return self.stats._repr_html_()


def backtest(get_signal: Callable[..., Any], candles: Any, *, interval: str = "5m", symbol: str = "BTCUSDT",
             start: datetime | int | str | None = None, end: datetime | int | str | None = None,
             **config: Any) -> BacktestResult:
    """Backtest `get_signal(symbol, when)` on 1m `candles` (a DataFrame, an (n, 6) array, a
    .csv / .npz / .parquet path) over [start, end] (default: after a day of warm-up to the last
    candle); `config` are CC_* overrides for this call only.

    >>> import backtest_kit as bk
    >>> from backtest_kit.demo import synthetic_candles
    >>> result = bk.backtest(lambda symbol, when: None, synthetic_candles(3 * 1440))
    >>> result.stats.total_signals
    0
    """
    data = _candles(candles)
    first, last = int(data[0, 0]), int(data[-1, 0])
    start_ms = _ms(start, "start") if start is not None else min(first + 1440 * MINUTE_MS, last)
    end_ms = _ms(end, "end") if end is not None else last
    if not first <= start_ms <= end_ms:
        raise ValidationError(f"bk.backtest: start {start_ms} must be within the candles "
                              f"({first} .. {last}) and not after end {end_ms}")
    n = next(_calls)
    name = f"backtest-{n}"
    saved = get_config()
    set_config(**config)  # validated: a bad key changes nothing
    try:
        registry.add_exchange(exchange_name=name, get_candles=ArrayExchange(data).get_candles)
        registry.add_frame(frame_name=name, interval="1m", start_date=start_ms, end_date=end_ms)
        registry.add_strategy(strategy_name=name, interval=interval, get_signal=get_signal)
        return run_sync(lambda: _go(name, symbol))
    finally:
        set_config(**saved)


async def _go(name: str, symbol: str) -> BacktestResult:
    async for _ in Backtest.run(symbol, strategy_name=name, exchange_name=name, frame_name=name):
        pass
    run = runs.get("backtest", symbol, name)
    assert run is not None
    return BacktestResult(name, symbol, run, await Backtest.get_data(symbol, name),
                          await Backtest.get_trades(symbol, name), await Backtest.get_equity(symbol, name, "1d"))


def _candles(candles: Any) -> np.ndarray:
    if isinstance(candles, (str, os.PathLike)):
        return load_candles(Path(candles))
    pd = sys.modules.get("pandas")  # a DataFrame given means pandas is loaded; never load it to check
    if pd is not None and isinstance(candles, pd.DataFrame):
        if "timestamp" not in candles.columns and isinstance(candles.index, pd.DatetimeIndex):
            candles = candles.rename_axis("timestamp").reset_index()  # a time-indexed frame
            candles["timestamp"] = candles["timestamp"].map(lambda t: to_ms(t.to_pydatetime()))
        candles = candles.rename(columns=str.lower)
    c = to_candles(candles)
    arr = np.column_stack([c.timestamp, c.open, c.high, c.low, c.close, c.volume]).astype(np.float64)
    return check_candles(arr, "bk.backtest candles")


def _ms(value: datetime | int | str, what: str) -> int:
    if isinstance(value, str):
        try:
            return to_ms(datetime.fromisoformat(value))
        except ValueError:
            raise ValidationError(f"bk.backtest: {what} {value!r} is not an ISO-8601 date") from None
    return to_ms(value)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # noqa: PLC0415 - optional
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


__all__ = ["BacktestResult", "backtest"]

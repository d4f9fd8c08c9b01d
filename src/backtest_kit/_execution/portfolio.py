"""Portfolio: many symbols and strategies, one account, processed in one time order.

Each (symbol, strategy) walks the frame as a backtest does; the loops are merged by their
next frame time, so risk profiles, cash and sizing see the true simultaneous state.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas loads on first use: `import backtest_kit` stays light
    import pandas as pd

from .. import _registry as registry
from .._config import cfg
from .._engine.account import Account, pnl_money
from .._engine.machine import Machine
from .._engine.runs import Run
from .._engine.stats import BacktestStatistics, backtest_statistics, trade_arrays
from .._equity import equity_curve, equity_statistics, exposure_mask, resample_last
from .._exchange import ExchangeClient
from .._report.backtest import equity_lines, summary_lines
from .._report.html import comparison_page, equity_curve_of
from .._report.table import fmt_num, fmt_pct
from .._tabular import Tabular
from ..errors import ValidationError
from ..events import ClosedResult, DoneEvent, Outcome
from .backtest import FrameLoop, marks_of, open_loop
from .base import BackgroundRun, Facade, Instance, check_format, check_freq


@dataclass(slots=True)
class PortfolioRow(Tabular):
    """One symbol and strategy of a portfolio."""

    symbol: str
    strategy_name: str
    total_signals: int = 0
    win_rate: float | None = None
    total_pnl: float | None = None   # sum of per-trade %
    pnl_money: float = 0.0
    sharpe_ratio: float | None = None


@dataclass(slots=True)
class PortfolioStatistics(BacktestStatistics):
    """Portfolio.get_data: the account's statistics over every trade, and a row per symbol and strategy."""

    frame_name: str = ""
    symbols: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    rows: list[PortfolioRow] = field(default_factory=list)


class PortfolioInstance(Instance):
    """A portfolio over one frame: its machines (for stop) and its runs."""

    def __init__(self, symbol: str, name: str):
        super().__init__(symbol, name)
        self.symbols: list[str] = []
        self.strategies: list[str] = []
        self.account: Account | None = None
        self.runs: list[Run] = []


def _names(value: str | Sequence[str], what: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValidationError(f"Portfolio.run: {what} must be a non-empty str or a non-empty list of str, "
                              f"got {value!r}")
    if len(set(names)) != len(names):
        raise ValidationError(f"Portfolio.run: {what} has duplicates: {names!r}")
    return names


class PortfolioUtils(Facade[PortfolioInstance]):
    """`bk.Portfolio`: backtest several symbols and strategies against one account."""

    kind, done_topic, folder = "Portfolio", "done_backtest", "portfolio"

    def __init__(self) -> None:
        super().__init__(PortfolioInstance)

    def _validate(self, symbols: str | Sequence[str], strategies: str | Sequence[str], exchange_name: str,
                  frame_name: str, source: str) -> tuple[list[str], list[str]]:
        syms = _names(symbols, "symbols")
        for s in syms:
            registry.validate_symbol(s, source)
        registry.get_exchange(exchange_name, source)
        # One market, one name ("BTCUSDT" and "BTC/USDT" on a ccxt exchange), as Backtest.run does.
        syms = [registry.canonical_symbol(s, exchange_name) for s in syms]
        if len(set(syms)) != len(syms):
            raise ValidationError(f"{source}: symbols name one market twice: {syms!r}")
        strats = _names(strategies, "strategies")
        for name in strats:
            registry.validate_strategy_refs(name, source)
        registry.get_frame(frame_name, source)
        return syms, strats

    def run(self, symbols: str | Sequence[str], *, strategies: str | Sequence[str], exchange_name: str,
            frame_name: str) -> AsyncIterator[Outcome]:
        """Backtest every (symbol, strategy) in one time order on one account; yields closed and
        cancelled results of every symbol in close-time order."""
        syms, strats = self._validate(symbols, strategies, exchange_name, frame_name, "Portfolio.run")
        inst = self._registry.get(",".join(syms), frame_name)
        return self._guarded(inst, lambda: self._walk(inst, syms, strats, exchange_name, frame_name))

    def background(self, symbols: str | Sequence[str], *, strategies: str | Sequence[str], exchange_name: str,
                   frame_name: str) -> BackgroundRun:
        """Run the portfolio without yielding; returns cancel() at once (a graceful stop)."""
        syms, strats = self._validate(symbols, strategies, exchange_name, frame_name, "Portfolio.background")
        inst = self._registry.get(",".join(syms), frame_name)
        return self._background(inst, lambda: self._walk(inst, syms, strats, exchange_name, frame_name),
                                DoneEvent(exchange_name, frame_name, True, ",".join(syms)))

    async def _walk(self, inst: PortfolioInstance, symbols: list[str], strategies: list[str], exchange_name: str,
                    frame_name: str) -> AsyncIterator[Outcome]:
        started = time.perf_counter()
        account = inst.account = Account()
        inst.symbols, inst.strategies = symbols, strategies
        # One client: the symbols share its candle cache for the whole run.
        exchange = ExchangeClient(registry.get_exchange(exchange_name, "Portfolio.run"), backtest=True)
        loops: list[FrameLoop] = []
        for symbol in symbols:
            for name in strategies:
                loops.append(await open_loop(symbol, name, exchange, frame_name, _stop_all(inst), account))
        inst.runs = [loop.sink.run for loop in loops]
        heap = [(t, k) for k, loop in enumerate(loops) if (t := loop.next_time) is not None]
        heapq.heapify(heap)
        pending: list[tuple[int, int, Outcome]] = []  # outcomes by close time, released in order
        seq = 0
        while heap:
            now, k = heapq.heappop(heap)
            while pending and pending[0][0] <= now:
                yield heapq.heappop(pending)[2]
            loop = loops[k]
            outcome = await loop.step()
            if outcome is not None:
                heapq.heappush(pending, (outcome.close_timestamp, seq, outcome))
                seq += 1
            t = loop.next_time
            if t is not None:
                heapq.heappush(heap, (t, k))
        while pending:
            yield heapq.heappop(pending)[2]
        for loop in loops:
            await loop.finish()
            await loop.timer.sample("backtest_total", started)

    async def stop(self, frame_name: str) -> None:
        """No new signals on any symbol; waiting orders are dropped; open positions run to their end."""
        registry.get_frame(frame_name, "Portfolio.stop")
        for inst in self._instances_of(frame_name):
            inst.stop()

    def _instances_of(self, frame_name: str) -> list[PortfolioInstance]:
        return [i for i in self._registry.all() if i.name == frame_name]

    def _latest(self, frame_name: str, method: str) -> PortfolioInstance:
        registry.get_frame(frame_name, f"Portfolio.{method}")
        done = [i for i in self._instances_of(frame_name) if i.account is not None]
        if not done:
            raise ValidationError(f"Portfolio.{method}: no portfolio has run on frame {frame_name!r}; "
                                  "run Portfolio.run or Portfolio.background first")
        return done[-1]

    async def get_data(self, frame_name: str) -> PortfolioStatistics:
        return await self._stats(self._latest(frame_name, "get_data"), frame_name)

    async def get_equity(self, frame_name: str, freq: str = "1d") -> pd.Series:
        """The account's equity over all symbols, sampled like Backtest.get_equity."""
        check_freq(freq, "Portfolio.get_equity")
        ts, eq, _ = await _equity(self._latest(frame_name, "get_equity"))
        return resample_last(ts, eq, freq).rename("equity")  # type: ignore[arg-type]

    async def _stats(self, inst: PortfolioInstance, frame_name: str) -> PortfolioStatistics:
        closed = sorted((r for run in inst.runs for r in run.closed), key=lambda r: r.close_timestamp)
        ts, eq, exposed = await _equity(inst)
        assert inst.account is not None
        initial = inst.account.initial
        block = equity_statistics(resample_last(ts, eq, "1m"), initial_capital=initial,
                                  annualization_days=cfg.CC_ANNUALIZATION_DAYS,
                                  exposure_pct=float(exposed.mean() * 100)) if len(ts) else None
        base = backtest_statistics(closed, block)
        rows = [_row(run) for run in inst.runs]
        return PortfolioStatistics(**{f: getattr(base, f) for f in BacktestStatistics.__dataclass_fields__},
                                   frame_name=frame_name, symbols=inst.symbols, strategies=inst.strategies, rows=rows)

    async def get_report(self, frame_name: str) -> str:
        s = await self.get_data(frame_name)
        lines = [f"# Portfolio Report: {frame_name}",
                 f"**Symbols:** {', '.join(s.symbols)} | **Strategies:** {', '.join(s.strategies)}",
                 *[line for line in equity_lines(s) if line != "## Trades"], "## By symbol and strategy",
                 "| Symbol | Strategy | Trades | Win rate | PnL (sum of %) | PnL (money) | Sharpe (per trade) |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in s.rows:
            wr = "N/A" if r.win_rate is None else f"{fmt_num(r.win_rate, 2)}%"
            lines.append(f"| {r.symbol} | {r.strategy_name} | {r.total_signals} | {wr} | {fmt_pct(r.total_pnl)} | "
                         f"{r.pnl_money:,.2f} | {fmt_num(r.sharpe_ratio, 3)} |")
        return "\n\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n\n" + "\n\n".join(summary_lines(s))

    async def dump(self, frame_name: str, path: str | None = None, format: str = "md") -> str:
        """Write the report; `path` is a directory (default ./dump/portfolio) or a .md / .html file.
        `format="html"`: the account's equity beside each symbol's, and a row per symbol and strategy."""
        ext = check_format(format, "Portfolio.dump")
        if ext == ".md":
            return await self._dump(await self.get_report(frame_name), path, frame_name)
        inst = self._latest(frame_name, "dump")
        s = await self._stats(inst, frame_name)
        ts, eq, _ = await _equity(inst)
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {"account": (ts, eq)} if len(ts) else {}
        for run in inst.runs:
            curve = await equity_curve_of(run)
            if curve is not None:
                curves[f"{run.symbol} {run.strategy_name}"] = curve
        metrics: dict[str, float | None] = {f"{r.symbol} {r.strategy_name}": r.pnl_money for r in s.rows}
        rows = [{"symbol": r.symbol, "strategy": r.strategy_name, "trades": r.total_signals, "win rate": r.win_rate,
                 "PnL (sum of %)": r.total_pnl, "PnL (money)": r.pnl_money} for r in s.rows]
        page = comparison_page(f"Portfolio on {frame_name}", curves, "PnL (money)", metrics, rows)
        return await self._dump(page, path, frame_name, ext)


class _Machines:
    """What a portfolio's stop() reaches: every machine of the run."""

    def __init__(self) -> None:
        self.machines: list[Machine] = []

    @property
    def stopped(self) -> bool:
        return any(m.stopped for m in self.machines)

    @stopped.setter
    def stopped(self, value: bool) -> None:
        for m in self.machines:
            m.stopped = value


def _stop_all(inst: PortfolioInstance) -> Callable[[Machine], None]:
    """attach() for every machine of the portfolio: stop() reaches all of them."""
    group = _Machines()

    def attach(machine: Machine) -> None:
        group.machines.append(machine)
        inst.attach(group)

    return attach


def _row(run: Run) -> PortfolioRow:
    closed = run.closed
    s = backtest_statistics(closed)
    return PortfolioRow(run.symbol, run.strategy_name, s.total_signals, s.win_rate, s.total_pnl,
                        sum(pnl_money(t.signal, t.pnl.pnl_percentage) for t in closed), s.sharpe_ratio)


async def _equity(inst: PortfolioInstance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The account's equity on the union of every symbol's 1m grid: each symbol's trades marked
    at its own closes (forward-filled across the others' minutes), plus the capital."""
    assert inst.account is not None
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    by_symbol: dict[str, list[ClosedResult]] = {}
    marks_by_symbol: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for run in inst.runs:
        by_symbol.setdefault(run.symbol, []).extend(run.closed)
        if run.symbol not in marks_by_symbol:
            marks = await marks_of(run, "Portfolio")
            if marks is not None:
                marks_by_symbol[run.symbol] = marks
    for symbol, closed in by_symbol.items():
        if symbol not in marks_by_symbol:
            continue
        ts, close = marks_by_symbol[symbol]
        trades = trade_arrays(sorted(closed, key=lambda r: r.close_timestamp), ts)
        parts.append((ts, equity_curve(ts, close, trades, 0.0), exposure_mask(ts, trades)))
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=bool)
    grid = np.unique(np.concatenate([p[0] for p in parts]))
    total = np.full(len(grid), inst.account.initial)
    exposed = np.zeros(len(grid), dtype=bool)
    for ts, contribution, mask in parts:
        k = np.searchsorted(ts, grid, side="right") - 1  # the last close at or before each minute
        valid = k >= 0
        total[valid] += contribution[k[valid]]
        exposed[valid] |= mask[k[valid]]
    return grid, total, exposed


Portfolio = PortfolioUtils()

"""The portfolio heatmap: per-symbol trade statistics of one strategy, ranked by Sharpe ratio."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .. import _registry as registry
from .._engine.stats import STD_EPSILON
from .._tabular import Tabular
from ..events import ClosedResult
from .source import RunSource, default_runs, dump_report
from .table import Column, fmt_num, fmt_pct, render_table


@dataclass(slots=True)
class HeatmapRow(Tabular):
    """Statistics of one symbol's closed trades (percentages are PnL %)."""

    symbol: str
    total_trades: int = 0
    win_count: int = 0
    loss_count: int = 0
    win_rate: float | None = None
    total_pnl: float | None = None
    avg_pnl: float | None = None
    std_dev: float | None = None
    sharpe_ratio: float | None = None
    max_drawdown: float | None = None
    profit_factor: float | None = None
    avg_win: float | None = None
    avg_loss: float | None = None
    max_win_streak: int = 0
    max_loss_streak: int = 0
    expectancy: float | None = None


@dataclass(slots=True)
class HeatmapStatistics(Tabular):
    symbols: list[HeatmapRow] = field(default_factory=list)  # HeatmapRow, best Sharpe first, undefined last
    total_symbols: int = 0
    portfolio_total_pnl: float | None = None
    portfolio_sharpe_ratio: float | None = None
    portfolio_total_trades: int = 0


def _safe(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _sum(xs: Iterable[float]) -> float:
    s = 0.0
    for x in xs:  # left to right, as the backtest statistics sum
        s += x
    return s


def heatmap_row(symbol: str, pnls: Sequence[float]) -> HeatmapRow:
    """HeatmapRow of a symbol's trade PnL percentages in close order."""
    n = len(pnls)
    if not n:
        return HeatmapRow(symbol, max_drawdown=0.0)
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    total = _sum(pnls)
    avg = total / n
    std = None
    if n > 1:
        std = math.sqrt(_sum((p - avg) ** 2 for p in pnls) / n)
        std = 0.0 if std < STD_EPSILON else std  # D13
    peak = equity = drawdown = 0.0
    streak = [0, 0, 0, 0]  # current win, current loss, max win, max loss
    for p in pnls:
        equity += p
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
        if p > 0:
            streak[0], streak[1] = streak[0] + 1, 0
        elif p < 0:
            streak[0], streak[1] = 0, streak[1] + 1
        streak[2], streak[3] = max(streak[2], streak[0]), max(streak[3], streak[1])
    win_rate = len(wins) / n * 100
    avg_win = _sum(wins) / len(wins) if wins else None
    avg_loss = _sum(losses) / len(losses) if losses else None
    expectancy = None
    if avg_win is not None and avg_loss is not None:
        expectancy = win_rate / 100 * avg_win + (100 - win_rate) / 100 * avg_loss
    return HeatmapRow(
        symbol, n, len(wins), len(losses), _safe(win_rate), _safe(total), _safe(avg),
        _safe(std), _safe(avg / std) if std else None, _safe(drawdown),
        _safe(_sum(wins) / -_sum(losses)) if wins and losses else None,
        _safe(avg_win), _safe(avg_loss), streak[2], streak[3], _safe(expectancy))


def heatmap_statistics(closed: Iterable[ClosedResult]) -> HeatmapStatistics:
    """HeatmapStatistics of closed results (grouped by symbol, each group in the given order)."""
    groups: dict[str, list[float]] = {}
    for r in closed:
        groups.setdefault(r.symbol, []).append(r.pnl.pnl_percentage)
    rows = [heatmap_row(s, p) for s, p in groups.items()]
    rows.sort(key=lambda r: (r.sharpe_ratio is None, -(r.sharpe_ratio or 0.0)))
    trades = sum(r.total_trades for r in rows)
    valid = [(r.sharpe_ratio, r.total_trades) for r in rows if r.sharpe_ratio is not None]
    return HeatmapStatistics(
        rows, len(rows),
        _safe(_sum(r.total_pnl or 0.0 for r in rows)) if rows else None,
        _safe(_sum(sharpe * n for sharpe, n in valid) / trades) if valid and trades else None,
        trades)


def _count(key: str, label: str) -> Column:
    return Column(key, label, lambda r: str(getattr(r, key)))


def heat_columns() -> list[Column]:
    """The default columns of a heatmap report (rows are HeatmapRow)."""
    return [
        Column("symbol", "Symbol", lambda r: r.symbol),
        Column("total_pnl", "Total PNL", lambda r: fmt_pct(r.total_pnl)),
        Column("sharpe_ratio", "Sharpe", lambda r: fmt_num(r.sharpe_ratio, 3)),
        Column("profit_factor", "PF", lambda r: fmt_num(r.profit_factor, 3)),
        Column("expectancy", "Expect", lambda r: fmt_pct(r.expectancy)),
        Column("win_rate", "WR", lambda r: "N/A" if r.win_rate is None else f"{fmt_num(r.win_rate, 2)}%"),
        Column("avg_win", "Avg Win", lambda r: fmt_pct(r.avg_win)),
        Column("avg_loss", "Avg Loss", lambda r: fmt_pct(r.avg_loss)),
        Column("max_drawdown", "Max DD", lambda r: fmt_pct(None if r.max_drawdown is None else -r.max_drawdown)),
        _count("max_win_streak", "W Streak"),
        _count("max_loss_streak", "L Streak"),
        _count("total_trades", "Trades"),
    ]


async def render_heat_report(strategy_name: str, stats: HeatmapStatistics,
                             columns: Sequence[Column] | None = None) -> str:
    """Markdown report: title, portfolio summary line and the per-symbol table."""
    title = f"# Portfolio Heatmap: {strategy_name}"
    if not stats.total_symbols:
        return f"{title}\n\n*No data available*"
    summary = (f"**Total Symbols:** {stats.total_symbols} | "
               f"**Portfolio PNL:** {fmt_pct(stats.portfolio_total_pnl)} | "
               f"**Portfolio Sharpe:** {fmt_num(stats.portfolio_sharpe_ratio, 3)} | "
               f"**Total Trades:** {stats.portfolio_total_trades}")
    table = await render_table(stats.symbols, heat_columns() if columns is None else list(columns))
    return "\n\n".join([title, summary] + ([table] if table else []))


class HeatUtils:
    """`bk.Heat`: the portfolio heatmap of a strategy over every symbol it ran on."""

    def __init__(self, source: RunSource = default_runs) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "<backtest_kit.Heat>"

    def _stats(self, strategy_name: str, backtest: bool, source: str) -> HeatmapStatistics:
        registry.validate_strategy_refs(strategy_name, source)
        return heatmap_statistics(r for run in self._source(backtest) if run.strategy_name == strategy_name
                                  for r in run.results if r.action == "closed")

    async def get_data(self, strategy_name: str, backtest: bool = True) -> HeatmapStatistics:
        """Heatmap statistics of strategy_name across symbols."""
        return self._stats(strategy_name, backtest, "Heat.get_data")

    async def get_report(self, strategy_name: str, backtest: bool = True,
                         columns: Sequence[Column] | None = None) -> str:
        """The markdown heatmap report."""
        return await render_heat_report(strategy_name, self._stats(strategy_name, backtest, "Heat.get_report"),
                                        columns)

    async def dump(self, strategy_name: str, backtest: bool = True, path: str | None = None,
                   columns: Sequence[Column] | None = None) -> str:
        """Write the report (default ./dump/heatmap/<strategy>.md); returns the absolute path."""
        stats = self._stats(strategy_name, backtest, "Heat.dump")
        text = await render_heat_report(strategy_name, stats, columns)
        return await dump_report(path, "heatmap", strategy_name, text)


Heat = HeatUtils()

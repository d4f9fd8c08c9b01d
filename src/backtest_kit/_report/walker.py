"""The walker report: strategies ranked by the walker's metric, the winner marked, and the
closed trades of every strategy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._schema import score
from ..events import StrategyResult, WalkerStatistics
from .table import Column, fmt_num, fmt_pct, fmt_time, render_table


def walker_strategy_columns(best: str | None = None) -> list[Column]:
    """Default columns of the comparison table (rows are (rank, StrategyResult))."""
    return [
        Column("rank", "Rank", lambda r: str(r[0])),
        Column("strategy", "Strategy", lambda r: r[1].strategy_name + (" 🏆" if r[1].strategy_name == best else "")),
        Column("metric", "Metric", lambda r: fmt_num(r[1].metric_value, 4)),
        Column("total_signals", "Total Signals", lambda r: str(r[1].stats.total_signals)),
        Column("win_rate", "Win Rate", lambda r: _unit(r[1].stats.win_rate, 2, "%")),
        Column("avg_pnl", "Avg PNL", lambda r: fmt_pct(r[1].stats.avg_pnl)),
        Column("total_pnl", "Total PNL", lambda r: fmt_pct(r[1].stats.total_pnl)),
        Column("sharpe_ratio", "Sharpe Ratio", lambda r: fmt_num(r[1].stats.sharpe_ratio, 3)),
        Column("std_dev", "Std Dev", lambda r: _unit(r[1].stats.std_dev, 3, "%")),
    ]


def walker_pnl_columns() -> list[Column]:
    """Default columns of the per-strategy trade tables (rows are (strategy_name, ClosedResult))."""
    return [
        Column("strategy", "Strategy", lambda r: r[0]),
        Column("signal_id", "Signal ID", lambda r: r[1].signal.id),
        Column("symbol", "Symbol", lambda r: r[1].symbol),
        Column("position", "Position", lambda r: r[1].signal.position.upper()),
        Column("pnl", "PNL (net)", lambda r: fmt_pct(r[1].pnl.pnl_percentage)),
        Column("close_reason", "Close Reason", lambda r: r[1].close_reason),
        Column("open_time", "Open Time", lambda r: fmt_time(r[1].signal.pending_at)),
        Column("close_time", "Close Time", lambda r: fmt_time(r[1].close_timestamp)),
    ]


def _unit(x: float | None, digits: int, unit: str) -> str:
    text = fmt_num(x, digits)
    return text if text == "N/A" else text + unit


def ranked(results: Iterable[StrategyResult], metric: str) -> list[StrategyResult]:
    """Strategy results by metric, best first (drawdowns, spreads, error counts: lowest); undefined
    metrics last; ties keep schema order."""
    return sorted(results, key=lambda r: (r.metric_value is None, -(score(metric, r.metric_value) or 0.0)))


async def render_walker_report(data: WalkerStatistics, strategy_columns: Sequence[Column] | None = None,
                               pnl_columns: Sequence[Column] | None = None) -> str:
    """Markdown report of a WalkerStatistics."""
    order = ranked(data.strategy_results, data.metric)
    parts = [
        f"# Walker Comparison Report: {data.walker_name}",
        f"**Symbol:** {data.symbol}  \n**Exchange:** {data.exchange_name}  \n**Frame:** {data.frame_name}  \n"
        f"**Metric:** {data.metric}  \n**Strategies tested:** {len(order)} of {data.total_strategies}",
        f"## Best Strategy: {data.best_strategy or 'none'}",
        f"**Best {data.metric}:** {fmt_num(data.best_metric, 4)}  \n"
        f"**Total signals of the best:** {data.best_stats.total_signals if data.best_stats else 'N/A'}",
        "## Strategies Compared",
    ]
    cols = walker_strategy_columns(data.best_strategy) if strategy_columns is None else strategy_columns
    parts.append(await render_table(list(enumerate(order, 1)), cols) or "No strategy completed.")
    parts.append("## Closed Trades")
    pcols = walker_pnl_columns() if pnl_columns is None else pnl_columns
    for r in order:
        trades = [(r.strategy_name, t) for t in r.stats.signal_list]
        parts.append(f"### {r.strategy_name}")
        parts.append(await render_table(trades, pcols) if trades else "No closed trades.")
    return "\n\n".join(parts)

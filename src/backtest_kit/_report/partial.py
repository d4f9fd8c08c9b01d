"""The partial profit/loss report: each 10 % level of progress toward TP or SL, once per signal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._engine.runs import Run
from .._tabular import Tabular
from ..events import PartialEvent
from .source import InstanceReport
from .table import Column, fmt_price, fmt_time, render_table


@dataclass(slots=True)
class PartialStatistics(Tabular):
    event_list: list[PartialEvent] = field(default_factory=list)
    total_events: int = 0
    total_profit: int = 0
    total_loss: int = 0


def partial_statistics(events: Iterable[PartialEvent]) -> PartialStatistics:
    rows = list(events)
    profit = sum(1 for e in rows if e.action == "profit")
    return PartialStatistics(rows, len(rows), profit, len(rows) - profit)


def partial_columns() -> list[Column]:
    """Default columns (rows are PartialEvent)."""
    return [
        Column("action", "Action", lambda e: e.action.upper()),
        Column("symbol", "Symbol", lambda e: e.symbol),
        Column("strategy_name", "Strategy", lambda e: e.strategy_name),
        Column("signal_id", "Signal ID", lambda e: e.signal.id),
        Column("position", "Position", lambda e: e.signal.position.upper()),
        Column("level", "Level %", lambda e: f"{'+' if e.action == 'profit' else '-'}{e.level}%"),
        Column("current_price", "Current Price", lambda e: fmt_price(e.current_price)),
        Column("timestamp", "Timestamp", lambda e: fmt_time(e.timestamp)),
        Column("mode", "Mode", lambda e: "Backtest" if e.backtest else "Live"),
    ]


async def render_partial_report(symbol: str, strategy_name: str, stats: PartialStatistics,
                                columns: Sequence[Column] | None = None) -> str:
    title = f"# Partial Profit/Loss Report: {symbol}:{strategy_name}"
    if not stats.total_events:
        return f"{title}\n\nNo partial profit/loss events recorded yet."
    table = await render_table(stats.event_list, partial_columns() if columns is None else columns)
    return "\n\n".join([title, table, f"**Total events:** {stats.total_events}",
                        f"**Profit events:** {stats.total_profit}", f"**Loss events:** {stats.total_loss}"])


class PartialUtils(InstanceReport[PartialStatistics]):
    """`bk.Partial`: partial profit / loss levels reached for a symbol and strategy."""

    title, folder, per_symbol = "Partial", "partial", True

    def compute(self, run: Run | None, symbol: str, strategy_name: str) -> PartialStatistics:
        return partial_statistics(run.partials if run is not None else [])

    async def render(self, symbol: str, strategy_name: str, stats: PartialStatistics,
                     columns: Sequence[Column] | None) -> str:
        return await render_partial_report(symbol, strategy_name, stats, columns)


Partial = PartialUtils()

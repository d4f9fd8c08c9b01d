"""The risk report: signals rejected by risk profiles, counted by symbol and by strategy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._config import cfg
from .._engine.runs import Run
from .._signal import plain_note
from .._tabular import Tabular
from ..events import RiskEvent
from .source import InstanceReport
from .table import Column, fmt_price, fmt_time, render_table


@dataclass(slots=True)
class RiskStatistics(Tabular):
    event_list: list[RiskEvent] = field(default_factory=list)
    total_rejections: int = 0
    by_symbol: dict[str, int] = field(default_factory=dict)
    by_strategy: dict[str, int] = field(default_factory=dict)


def risk_statistics(events: Iterable[RiskEvent]) -> RiskStatistics:
    rows = list(events)
    return RiskStatistics(rows, len(rows), dict(Counter(e.symbol for e in rows)),
                          dict(Counter(e.strategy_name for e in rows)))


def risk_columns() -> list[Column]:
    """Default columns (rows are RiskEvent)."""
    sig = lambda e: e.pending_signal  # noqa: E731
    return [
        Column("symbol", "Symbol", lambda e: e.symbol),
        Column("strategy_name", "Strategy", lambda e: e.strategy_name),
        Column("signal_id", "Signal ID", lambda e: sig(e).id or "N/A"),
        Column("position", "Position", lambda e: str(sig(e).position).upper()),
        Column("note", "Note", lambda e: plain_note(sig(e).note) or "N/A", lambda: cfg.CC_REPORT_SHOW_SIGNAL_NOTE),
        Column("exchange_name", "Exchange", lambda e: e.exchange_name),
        Column("open_price", "Open Price", lambda e: fmt_price(sig(e).price_open)),
        Column("take_profit", "Take Profit", lambda e: fmt_price(sig(e).price_take_profit)),
        Column("stop_loss", "Stop Loss", lambda e: fmt_price(sig(e).price_stop_loss)),
        Column("current_price", "Current Price", lambda e: fmt_price(e.current_price)),
        Column("active_position_count", "Active Positions", lambda e: str(e.active_position_count)),
        Column("comment", "Reason", lambda e: e.comment),
        Column("timestamp", "Timestamp", lambda e: fmt_time(e.timestamp)),
    ]


async def render_risk_report(symbol: str, strategy_name: str, stats: RiskStatistics,
                             columns: Sequence[Column] | None = None) -> str:
    title = f"# Risk Rejection Report: {symbol}:{strategy_name}"
    if not stats.total_rejections:
        return f"{title}\n\nNo risk rejections recorded yet."
    table = await render_table(stats.event_list, risk_columns() if columns is None else columns)
    parts = [title, table, f"**Total rejections:** {stats.total_rejections}", "## Rejections by Symbol",
             "\n".join(f"- {k}: {v}" for k, v in stats.by_symbol.items()), "## Rejections by Strategy",
             "\n".join(f"- {k}: {v}" for k, v in stats.by_strategy.items())]
    return "\n\n".join(p for p in parts if p)


class RiskUtils(InstanceReport[RiskStatistics]):
    """`bk.Risk`: signals refused by risk profiles for a symbol and strategy."""

    title, folder, per_symbol = "Risk", "risk", True

    def compute(self, run: Run | None, symbol: str, strategy_name: str) -> RiskStatistics:
        return risk_statistics(run.rejections if run is not None else [])

    async def render(self, symbol: str, strategy_name: str, stats: RiskStatistics,
                     columns: Sequence[Column] | None) -> str:
        return await render_risk_report(symbol, strategy_name, stats, columns)


Risk = RiskUtils()

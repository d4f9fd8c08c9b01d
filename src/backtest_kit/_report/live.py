"""The live report: every opened / scheduled / closed / cancelled event, then trade statistics."""

from __future__ import annotations

from collections.abc import Sequence

from .._config import cfg
from .._engine.stats import LiveStatistics
from .._signal import plain_note
from ..events import CancelledResult, ClosedResult, OpenedResult, ScheduledResult
from .backtest import error_lines, summary_lines
from .table import Column, fmt_pct, fmt_price, fmt_time, js_round, render_table

# The rows of the live report (LiveStatistics.event_list).
LiveEvent = OpenedResult | ScheduledResult | ClosedResult | CancelledResult


def _time(r: LiveEvent) -> int:
    if r.action == "closed" or r.action == "cancelled":
        return r.close_timestamp
    return r.signal.pending_at if r.action == "opened" else r.signal.scheduled_at


def _duration(r: LiveEvent) -> str:
    if r.action != "closed":
        return "N/A"
    return str(js_round((r.close_timestamp - r.signal.pending_at) / 60_000))


def live_columns() -> list[Column]:
    """Default columns of the live report (rows are tick results)."""
    return [
        Column("timestamp", "Timestamp", lambda r: fmt_time(_time(r))),
        Column("action", "Action", lambda r: r.action.upper()),
        Column("symbol", "Symbol", lambda r: r.symbol),
        Column("signal_id", "Signal ID", lambda r: r.signal.id),
        Column("position", "Position", lambda r: r.signal.position.upper()),
        Column("note", "Note", lambda r: plain_note(r.signal.note) or "N/A", lambda: cfg.CC_REPORT_SHOW_SIGNAL_NOTE),
        Column("current_price", "Current Price", lambda r: fmt_price(r.current_price)),
        Column("open_price", "Open Price", lambda r: fmt_price(r.signal.price_open)),
        Column("take_profit", "Take Profit", lambda r: fmt_price(r.signal.price_take_profit)),
        Column("stop_loss", "Stop Loss", lambda r: fmt_price(r.signal.price_stop_loss)),
        Column("pnl", "PNL (net)", lambda r: fmt_pct(r.pnl.pnl_percentage) if r.action == "closed" else "N/A"),
        Column("close_reason", "Close Reason", lambda r: getattr(r, "close_reason", None) or "N/A"),
        Column("duration", "Duration (min)", _duration),
    ]


async def render_live_report(symbol: str, strategy_name: str, stats: LiveStatistics,
                             columns: Sequence[Column] | None = None) -> str:
    title = f"# Live Trading Report: {strategy_name}"
    if not stats.total_events:
        return "\n\n".join([title, "No events recorded yet.", *error_lines(stats)])
    table = await render_table(stats.event_list, live_columns() if columns is None else columns)
    summary = summary_lines(stats)
    k = len(error_lines(stats))
    summary[k] = f"**Total events:** {stats.total_events}"
    summary[k + 1] = f"**Closed signals:** {stats.total_closed}"
    return "\n\n".join([title, f"**Symbol:** {symbol}"] + ([table] if table else []) + summary)

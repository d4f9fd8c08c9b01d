"""The scheduled-signals report: limit orders placed, filled (D5) and cancelled, with wait times."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._config import cfg
from .._engine.runs import Run
from .._signal import plain_note
from .._tabular import Tabular
from ..events import CancelledResult, OpenedResult, ScheduledResult, SignalRow, TickResult
from .source import InstanceReport
from .table import Column, fmt_num, fmt_price, fmt_time, js_round, render_table


@dataclass(slots=True)
class ScheduledEvent:
    """One row of the schedule report: a scheduled, opened (filled) or cancelled limit order."""

    timestamp: int
    action: str
    symbol: str
    signal_id: str
    position: str
    note: str
    current_price: float
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    duration: int | None = None  # whole minutes since scheduled_at (opened / cancelled)
    signal: SignalRow | None = None


@dataclass(slots=True)
class ScheduleStatistics(Tabular):
    event_list: list[ScheduledEvent] = field(default_factory=list)
    total_events: int = 0
    total_scheduled: int = 0
    total_opened: int = 0
    total_cancelled: int = 0
    cancellation_rate: float | None = None
    activation_rate: float | None = None
    avg_wait_time: float | None = None
    avg_activation_time: float | None = None


def _event(r: ScheduledResult | OpenedResult | CancelledResult, action: str, timestamp: int,
           duration: int | None) -> ScheduledEvent:
    s = r.signal
    return ScheduledEvent(timestamp, action, s.symbol, s.id, s.position, s.note, r.current_price,
                          s.price_open, s.price_take_profit, s.price_stop_loss, duration, s)


def schedule_events(results: Iterable[TickResult]) -> list[ScheduledEvent]:
    """Schedule rows of tick results in emission order; `opened` only for signals scheduled before."""
    out: list[ScheduledEvent] = []
    scheduled: set[str] = set()
    for r in results:
        if r.action == "scheduled":
            scheduled.add(r.signal.id)
            out.append(_event(r, r.action, r.signal.scheduled_at, None))
        elif r.action == "opened" and r.signal.id in scheduled:
            s = r.signal
            out.append(_event(r, r.action, s.pending_at, js_round((s.pending_at - s.scheduled_at) / 60_000)))
        elif r.action == "cancelled":
            ts = r.close_timestamp
            out.append(_event(r, r.action, ts, js_round((ts - r.signal.scheduled_at) / 60_000)))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def schedule_statistics(results: Iterable[TickResult]) -> ScheduleStatistics:
    """ScheduleStatistics of tick results (any actions; the irrelevant ones are skipped)."""
    events = schedule_events(results)
    by = {a: [e for e in events if e.action == a] for a in ("scheduled", "opened", "cancelled")}
    n_s, n_o, n_c = (len(by[a]) for a in ("scheduled", "opened", "cancelled"))
    return ScheduleStatistics(
        event_list=events, total_events=len(events), total_scheduled=n_s, total_opened=n_o,
        total_cancelled=n_c,
        cancellation_rate=n_c / n_s * 100 if n_s else None,
        activation_rate=n_o / n_s * 100 if n_s else None,
        # opened and cancelled rows always carry a duration; only scheduled rows have None
        avg_wait_time=_mean([e.duration for e in by["cancelled"] if e.duration is not None]),
        avg_activation_time=_mean([e.duration for e in by["opened"] if e.duration is not None]),
    )


def schedule_columns() -> list[Column]:
    """The default columns of a schedule report (rows are ScheduledEvent)."""
    return [
        Column("timestamp", "Timestamp", lambda e: fmt_time(e.timestamp)),
        Column("action", "Action", lambda e: e.action.upper()),
        Column("symbol", "Symbol", lambda e: e.symbol),
        Column("signal_id", "Signal ID", lambda e: e.signal_id),
        Column("position", "Position", lambda e: e.position.upper()),
        Column("note", "Note", lambda e: plain_note(e.note) or "N/A",
               lambda: cfg.CC_REPORT_SHOW_SIGNAL_NOTE),
        Column("current_price", "Current Price", lambda e: fmt_price(e.current_price)),
        Column("price_open", "Entry Price", lambda e: fmt_price(e.price_open)),
        Column("take_profit", "Take Profit", lambda e: fmt_price(e.price_take_profit)),
        Column("stop_loss", "Stop Loss", lambda e: fmt_price(e.price_stop_loss)),
        Column("duration", "Wait Time (min)", lambda e: "N/A" if e.duration is None else str(e.duration)),
    ]


def _rate(x: float | None, hint: str) -> str:
    return "N/A" if x is None else f"{fmt_num(x, 2)}% ({hint} is better)"


def _minutes(x: float | None) -> str:
    return "N/A" if x is None else f"{fmt_num(x, 2)} minutes"


async def render_schedule_report(strategy_name: str, stats: ScheduleStatistics,
                                 columns: Sequence[Column] | None = None) -> str:
    """Markdown report: title, event table and the schedule totals."""
    title = f"# Scheduled Signals Report: {strategy_name}"
    if not stats.total_events:
        return f"{title}\n\nNo scheduled signals recorded yet."
    table = await render_table(stats.event_list, schedule_columns() if columns is None else list(columns))
    return "\n\n".join([title] + ([table] if table else []) + [
        f"**Total events:** {stats.total_events}",
        f"**Scheduled signals:** {stats.total_scheduled}",
        f"**Opened signals:** {stats.total_opened}",
        f"**Cancelled signals:** {stats.total_cancelled}",
        f"**Activation rate:** {_rate(stats.activation_rate, 'higher')}",
        f"**Cancellation rate:** {_rate(stats.cancellation_rate, 'lower')}",
        f"**Average activation time:** {_minutes(stats.avg_activation_time)}",
        f"**Average wait time (cancelled):** {_minutes(stats.avg_wait_time)}",
    ])


class ScheduleUtils(InstanceReport[ScheduleStatistics]):
    """`bk.Schedule`: scheduled / activated / cancelled limit orders of a symbol and strategy."""

    title, folder = "Schedule", "schedule"

    def compute(self, run: Run | None, symbol: str, strategy_name: str) -> ScheduleStatistics:
        return schedule_statistics(run.events if run is not None else [])

    async def render(self, symbol: str, strategy_name: str, stats: ScheduleStatistics,
                     columns: Sequence[Column] | None) -> str:
        return await render_schedule_report(strategy_name, stats, columns)


Schedule = ScheduleUtils()

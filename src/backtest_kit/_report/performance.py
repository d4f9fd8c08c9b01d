"""The performance report: timing samples (frames, signals, whole runs, live ticks) per metric type."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._engine.runs import Run
from .._tabular import Tabular
from ..events import PerformanceEvent
from .source import InstanceReport
from .table import Column, render_table, to_fixed


@dataclass(slots=True)
class MetricStats(Tabular):
    """Duration and wait-time statistics (ms) of one metric type."""

    metric_type: str
    count: int = 0
    total_duration: float = 0.0
    avg_duration: float = 0.0
    min_duration: float = 0.0
    max_duration: float = 0.0
    std_dev: float = 0.0
    median: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    avg_wait_time: float = 0.0
    min_wait_time: float = 0.0
    max_wait_time: float = 0.0


@dataclass(slots=True)
class PerformanceStatistics(Tabular):
    strategy_name: str
    total_events: int = 0
    total_duration: float = 0.0
    metric_stats: dict[str, MetricStats] = field(default_factory=dict)  # metric_type -> stats, first-seen order
    events: list[PerformanceEvent] = field(default_factory=list)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list: sorted[max(0, ceil(n*p/100) - 1)] (0 if empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(len(sorted_values) * p / 100) - 1)]


def metric_stats(metric_type: str, events: Sequence[PerformanceEvent]) -> MetricStats:
    """MetricStats of the samples of one metric type."""
    d = sorted(e.duration for e in events)
    n = len(d)
    if not n:
        return MetricStats(metric_type)
    total = sum(d)
    avg = total / n
    waits = sorted(e.timestamp - e.previous_timestamp for e in events if e.previous_timestamp is not None)
    return MetricStats(
        metric_type, n, total, avg, d[0], d[-1], math.sqrt(sum((x - avg) ** 2 for x in d) / n),
        percentile(d, 50), percentile(d, 95), percentile(d, 99),
        sum(waits) / len(waits) if waits else 0.0, waits[0] if waits else 0.0, waits[-1] if waits else 0.0)


def performance_statistics(strategy_name: str, events: Iterable[PerformanceEvent]) -> PerformanceStatistics:
    """PerformanceStatistics of PerformanceEvent samples (kept in the given order)."""
    samples = list(events)
    groups: dict[str, list[PerformanceEvent]] = {}
    for e in samples:
        groups.setdefault(e.metric_type, []).append(e)
    return PerformanceStatistics(
        strategy_name, len(samples), sum(e.duration for e in samples),
        {k: metric_stats(k, v) for k, v in groups.items()}, samples)


def _ms(key: str, label: str) -> Column:
    return Column(key, label, lambda m: to_fixed(getattr(m, key), 2))


def performance_columns() -> list[Column]:
    """The default columns of a performance report (rows are MetricStats)."""
    return [
        Column("metric_type", "Metric Type", lambda m: m.metric_type),
        Column("count", "Count", lambda m: str(m.count)),
        _ms("total_duration", "Total (ms)"),
        _ms("avg_duration", "Avg (ms)"),
        _ms("min_duration", "Min (ms)"),
        _ms("max_duration", "Max (ms)"),
        _ms("std_dev", "Std Dev (ms)"),
        _ms("median", "Median (ms)"),
        _ms("p95", "P95 (ms)"),
        _ms("p99", "P99 (ms)"),
        _ms("avg_wait_time", "Avg Wait (ms)"),
        _ms("min_wait_time", "Min Wait (ms)"),
        _ms("max_wait_time", "Max Wait (ms)"),
    ]


NOTE = ("**Note:** All durations are in milliseconds. P95/P99 are the 95th and 99th percentile "
        "(nearest rank). Wait times are the wall-clock intervals since the previous sample of any type.")


async def render_performance_report(stats: PerformanceStatistics,
                                    columns: Sequence[Column] | None = None) -> str:
    """Markdown report: totals, time distribution, detailed metrics table and a note."""
    title = f"# Performance Report: {stats.strategy_name}"
    if not stats.total_events:
        return f"{title}\n\nNo performance metrics recorded yet."
    metrics = sorted(stats.metric_stats.values(), key=lambda m: -m.total_duration)
    total = stats.total_duration
    bullets = "\n".join(
        f"- **{m.metric_type}**: {to_fixed(m.total_duration / total * 100 if total > 0 else 0.0, 1)}% "
        f"({to_fixed(m.total_duration, 2)}ms total)" for m in metrics)
    table = await render_table(metrics, performance_columns() if columns is None else list(columns))
    return "\n\n".join([
        title,
        f"**Total events:** {stats.total_events}",
        f"**Total execution time:** {to_fixed(total, 2)}ms",
        f"**Number of metric types:** {len(metrics)}",
        "## Time Distribution", bullets,
        "## Detailed Metrics"] + ([table] if table else []) + [NOTE])


class PerformanceUtils(InstanceReport[PerformanceStatistics]):
    """`bk.Performance`: timing statistics of the last run of a symbol and strategy."""

    title, folder = "Performance", "performance"

    def compute(self, run: Run | None, symbol: str, strategy_name: str) -> PerformanceStatistics:
        return performance_statistics(strategy_name, run.perf if run is not None else [])

    async def render(self, symbol: str, strategy_name: str, stats: PerformanceStatistics,
                     columns: Sequence[Column] | None) -> str:
        return await render_performance_report(stats, columns)


Performance = PerformanceUtils()

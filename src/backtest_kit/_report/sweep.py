"""Markdown reports of a sweep (trials ranked by the metric) and of a walk-forward (per-window
in-sample and out-of-sample metrics, the stitched out-of-sample statistics, overfitting signs)."""

from __future__ import annotations

from .._engine.stats import BacktestStatistics
from .._schema import LOWER_IS_BETTER
from ..events import SweepStatistics, SweepTrial, WalkForwardStatistics, WalkForwardWindow
from .backtest import equity_lines, fmt_value, summary_lines
from .table import Column, fmt_num, fmt_pct, fmt_time, render_table


def _params(p: dict[str, object] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) if p else "N/A"


def _error(t: SweepTrial) -> str:
    if t.error is None:
        return ""
    lines = t.error.strip().splitlines()
    return lines[-1] if lines else "failed"


def _account(s: BacktestStatistics) -> list[str]:
    return [line for line in equity_lines(s) if line != "## Trades"]  # no trade table follows here


def sweep_columns() -> list[Column]:
    return [
        Column("rank", "Rank", lambda r: str(r[0])),
        Column("trial", "Trial", lambda r: str(r[1].number)),
        Column("params", "Parameters", lambda r: _params(r[1].params)),
        Column("metric", "Metric", lambda r: fmt_num(r[1].metric_value, 4)),
        Column("total_signals", "Trades", lambda r: str(r[1].stats.total_signals)),
        Column("win_rate", "Win Rate", lambda r: fmt_value(r[1].stats.win_rate, ".2f", "%")),
        Column("total_pnl", "Total PNL", lambda r: fmt_pct(r[1].stats.total_pnl)),
        Column("total_return_pct", "Return", lambda r: fmt_pct(r[1].stats.total_return_pct)),
        Column("max_drawdown_pct", "Max DD", lambda r: fmt_value(r[1].stats.max_drawdown_pct, ".2f", "%")),
        Column("error", "Error", lambda r: _error(r[1])),
    ]


async def render_sweep_report(data: SweepStatistics) -> str:
    failed = data.failed
    direction = "minimised" if data.metric in LOWER_IS_BETTER else "maximised"
    parts = [
        f"# Sweep Report: {data.sweep_name}",
        f"**Symbol:** {data.symbol}  \n**Metric:** {data.metric} ({direction})  \n**Trials:** {len(data.trials)}"
        f"  \n**Failed trials:** {len(failed)}",
        f"## Best: {_params(data.best.params) if data.best else 'none'}",
        f"**Best {data.metric}:** {fmt_num(data.best.metric_value if data.best else None, 4)}",
        await render_table(list(enumerate(data.trials, 1)), sweep_columns()),
    ]
    if data.best is not None:
        parts += ["## Best trial", "\n".join(_account(data.best.stats) + summary_lines(data.best.stats))]
    return "\n\n".join(parts) + "\n"


def window_columns() -> list[Column]:
    return [
        Column("window", "Window", lambda w: str(w.index + 1)),
        Column("train", "Train", lambda w: f"{fmt_time(w.train_start)} .. {fmt_time(w.train_end)}"),
        Column("test", "Test", lambda w: f"{fmt_time(w.test_start)} .. {fmt_time(w.test_end)}"),
        Column("params", "Chosen parameters", lambda w: _params(w.params)),
        Column("in_sample", "In-sample", lambda w: fmt_num(w.in_sample_metric, 4)),
        Column("out_of_sample", "Out-of-sample", lambda w: fmt_num(w.out_of_sample_metric, 4)),
        Column("median", "OOS median (all sets)", lambda w: fmt_num(w.out_of_sample_median, 4)),
    ]


async def render_walk_forward_report(data: WalkForwardStatistics) -> str:
    windows: list[WalkForwardWindow] = data.windows
    stability = ", ".join(f"{k} {v:.0%}" for k, v in data.param_stability.items()) or "N/A"
    parts = [
        f"# Walk-Forward Report: {data.walk_name}",
        f"**Symbol:** {data.symbol}  \n**Sweep:** {data.sweep_name}  \n**Metric:** {data.metric}  \n"
        f"**Windows:** {len(windows)}",
        "## Overfitting signs",
        f"**Out-of-sample / in-sample ({data.metric}):** {fmt_num(data.efficiency, 3)}  \n"
        f"**Windows whose winner is below the out-of-sample median:** "
        f"{'N/A' if data.below_median_share is None else f'{data.below_median_share:.0%}'}  \n"
        f"**Parameter stability (share of windows choosing the most frequent value):** {stability}",
        await render_table(windows, window_columns()),
        "## Out-of-sample (stitched test windows)",
        "\n".join(_account(data.out_of_sample) + summary_lines(data.out_of_sample)),
    ]
    return "\n\n".join(parts) + "\n"

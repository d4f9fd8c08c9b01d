"""The backtest report: default closed-trade columns, the markdown document and atomic file writing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from .._config import cfg
from .._engine.stats import BacktestStatistics
from .._signal import plain_note
from ..events import ClosedResult
from .table import Column, fmt_num, fmt_pct, fmt_price, fmt_time, js_round, render_table


def _duration_min(r: ClosedResult) -> str:
    """Whole minutes from open to close, rounded half up like JavaScript's Math.round."""
    return str(js_round((r.close_timestamp - r.signal.pending_at) / 60_000))


def backtest_columns() -> list[Column]:
    """The default columns of a backtest report (rows are ClosedResult)."""
    return [
        Column("signal_id", "Signal ID", lambda r: r.signal.id),
        Column("symbol", "Symbol", lambda r: r.signal.symbol),
        Column("position", "Position", lambda r: r.signal.position.upper()),
        Column("note", "Note", lambda r: plain_note(r.signal.note) or "N/A",
               lambda: cfg.CC_REPORT_SHOW_SIGNAL_NOTE),
        Column("open_price", "Open Price", lambda r: fmt_price(r.signal.price_open)),
        Column("take_profit", "Take Profit", lambda r: fmt_price(r.signal.price_take_profit)),
        Column("stop_loss", "Stop Loss", lambda r: fmt_price(r.signal.price_stop_loss)),
        Column("close_price", "Close Price", lambda r: fmt_price(r.current_price)),
        Column("pnl", "PNL (net)", lambda r: fmt_pct(r.pnl.pnl_percentage)),
        Column("close_reason", "Close Reason", lambda r: r.close_reason),
        Column("open_time", "Open Time", lambda r: fmt_time(r.signal.pending_at)),
        Column("close_time", "Close Time", lambda r: fmt_time(r.close_timestamp)),
        Column("duration", "Duration (min)", _duration_min),
    ]


def _better(text: str, hint: str) -> str:
    """`text (hint is better)`, or "N/A" when the value is undefined."""
    return text if text == "N/A" else f"{text} ({hint} is better)"


def _unit(x: float | None, digits: int, unit: str) -> str:
    """Fixed-point text followed by a unit, or "N/A"."""
    text = fmt_num(x, digits)
    return text if text == "N/A" else f"{text}{unit}"


def error_lines(s: BacktestStatistics) -> list[str]:
    """The errors line of a run that met errors (none when it met none)."""
    if not s.error_count:
        return []
    first = " ".join(str(s.first_error).split())
    first = first if len(first) <= 300 else first[:297] + "..."
    return [f"**Errors:** {s.error_count} during the run; the first: {first} "
            "(each is sent to listen_error; strict=True raises the first)"]


def summary_lines(s: BacktestStatistics) -> list[str]:
    """The bold statistics lines under the table."""
    win_rate = _unit(s.win_rate, 2, f"% ({s.win_count}W / {s.loss_count}L)")
    return error_lines(s) + [
        f"**Total signals:** {s.total_signals}",
        f"**Closed signals:** {s.total_signals}",
        f"**Win rate:** {_better(win_rate, 'higher')}",
        f"**Average PNL:** {_better(fmt_pct(s.avg_pnl), 'higher')}",
        f"**Total PNL (sum of per-trade %):** {_better(fmt_pct(s.total_pnl), 'higher')}",
        f"**Standard Deviation:** {_better(_unit(s.std_dev, 3, '%'), 'lower')}",
        f"**Sharpe Ratio:** {_better(fmt_num(s.sharpe_ratio, 3), 'higher')}",
        f"**Annualized Sharpe Ratio:** {_better(fmt_num(s.annualized_sharpe_ratio, 3), 'higher')}",
        f"**Certainty Ratio:** {_better(fmt_num(s.certainty_ratio, 3), 'higher')}",
        f"**Expected Yearly Returns:** {_better(fmt_pct(s.expected_yearly_returns), 'higher')}",
        f"**Max Drawdown (of summed per-trade %):** {_better(_unit(s.max_drawdown, 2, '%'), 'lower')}",
        f"**Profit Factor:** {_better(fmt_num(s.profit_factor, 3), 'higher')}",
        f"**Average Duration:** {_unit(s.avg_duration_minutes, 1, ' min')}",
        f"**Ambiguous exits:** {s.ambiguous_exit_count} (exit candle reached both TP and SL; "
        f"CC_INTRABAR_POLICY={cfg.CC_INTRABAR_POLICY})",
        f"**Data gaps:** {s.data_gaps} in the frame's 1m candles (longest {s.longest_gap_minutes} min)",
    ]


def fmt_value(x: float | None, spec: str, unit: str = "") -> str:
    """`x` formatted with `spec` and `unit`, or "N/A"."""
    return "N/A" if x is None else format(x, spec) + unit


def headline(s: BacktestStatistics) -> list[tuple[str, str]]:
    """(label, text) pairs of the headline statistics, equity first; undefined values read N/A."""
    return [
        ("Equity", f"{fmt_value(s.initial_capital, ',.2f')} -> {fmt_value(s.final_equity, ',.2f')}"),
        ("Return (compounded)", fmt_value(s.total_return_pct, "+.2f", "%")),
        ("CAGR", fmt_value(s.cagr_pct, "+.2f", "%")),
        ("Max drawdown (equity)", fmt_value(s.max_drawdown_pct, ".2f", "%")),
        ("Sharpe / Sortino (daily)", f"{fmt_value(s.sharpe, '.3f')} / {fmt_value(s.sortino, '.3f')}"),
        ("Exposure", fmt_value(s.exposure_pct, ".1f", "%")),
        ("Buy and hold", fmt_value(s.buy_and_hold_return_pct, "+.2f", "%")),
        ("Trades", str(s.total_signals)),
        ("Win rate", fmt_value(s.win_rate, ".2f", f"% ({s.win_count}W / {s.loss_count}L)")),
        ("Sum of trade PnL %", fmt_value(s.total_pnl, "+.2f", "%")),
        ("Avg PnL", fmt_value(s.avg_pnl, "+.3f", "%")),
        ("Sharpe (per trade)", fmt_value(s.sharpe_ratio, ".3f")),
        ("Profit factor", fmt_value(s.profit_factor, ".3f")),
        ("Avg duration", fmt_value(s.avg_duration_minutes, ".1f", " min")),
        ("Data gaps", f"{s.data_gaps} (longest {s.longest_gap_minutes} min)"),
    ]


def equity_lines(s: BacktestStatistics) -> list[str]:
    """The account block: equity marked to market, compounded, ratios from daily returns."""
    if s.final_equity is None or s.initial_capital is None:
        return []
    money = f"{s.initial_capital:,.2f} -> {s.final_equity:,.2f}"
    return [
        "## Account",
        f"**Equity:** {money} ({fmt_pct(s.total_return_pct)} compounded; buy and hold "
        f"{fmt_pct(s.buy_and_hold_return_pct)})",
        f"**CAGR:** {fmt_pct(s.cagr_pct)}",
        f"**Max drawdown (equity):** {_unit(s.max_drawdown_pct, 2, '%')}, longest "
        f"{_unit(s.max_drawdown_duration_days, 1, ' days')}",
        f"**Volatility (annualised):** {_unit(s.volatility_ann_pct, 2, '%')}",
        f"**Sharpe / Sortino / Calmar:** {fmt_num(s.sharpe, 3)} / {fmt_num(s.sortino, 3)} / {fmt_num(s.calmar, 3)} "
        f"(daily returns, {cfg.CC_ANNUALIZATION_DAYS} days a year)",
        f"**Exposure:** {_unit(s.exposure_pct, 1, '% of the time in a position')}",
        "## Trades",
    ]


async def render_backtest_report(symbol: str, strategy_name: str, stats: BacktestStatistics,
                                 columns: Sequence[Column] | None = None,
                                 max_rows: int | None = None) -> str:
    """Markdown report of a backtest: title, symbol, trade table (close order) and statistics."""
    title = f"# Backtest Report: {strategy_name}"
    if not stats.total_signals:
        return "\n\n".join([title, "No signals closed yet.", *error_lines(stats)])
    if max_rows is not None and max_rows < 0:
        raise ValueError(f"max_rows must be >= 0 or None, got {max_rows!r}")
    rows = stats.signal_list
    hidden = 0 if max_rows is None else max(0, len(rows) - max_rows)
    if hidden:
        rows = rows[:max_rows]
    table = await render_table(rows, backtest_columns() if columns is None else columns)
    parts = [title, f"**Symbol:** {symbol}", *equity_lines(stats)] + ([table] if table else [])
    if hidden:
        parts.append(f"… and {hidden} more trades (see get_data for all)")
    return "\n\n".join(parts + summary_lines(stats))


def _write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file beside path, then rename it over path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def write_report(path: str | os.PathLike[str], text: str) -> str:
    """Create the parent directories, write text as UTF-8 atomically and return the absolute path."""
    target = Path(path).absolute()
    await asyncio.to_thread(_write_atomic, target, text)
    return str(target)

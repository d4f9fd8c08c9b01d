"""Backtest report: table rendering, default columns, summary lines, paging and file writing."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from backtest_kit._config import cfg, set_config
from backtest_kit._engine.stats import BacktestStatistics, backtest_statistics
from backtest_kit._report.backtest import backtest_columns, render_backtest_report, write_report
from backtest_kit._report.table import Column, fmt_num, fmt_pct, fmt_price, fmt_time, render_table
from backtest_kit.events import ClosedResult, PnL, SignalRow

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00.000Z
MIN = 60_000


def trade(pnl: float, *, sid: str = "sig-1", position: str = "long", note: str = "",
          pending_at: int = T0, close_ts: int = T0 + 60 * MIN, close_price: float = 101.0,
          reason: str = "take_profit") -> ClosedResult:
    """A closed trade built by hand with known values."""
    signal = SignalRow(
        id=sid, position=position, price_open=100.0, price_take_profit=101.0,
        price_stop_loss=99.5, minute_estimated_time=120, note=note, symbol="BTCUSDT",
        strategy_name="strat", exchange_name="ex", scheduled_at=pending_at, pending_at=pending_at)
    return ClosedResult(
        signal=signal, current_price=close_price, symbol="BTCUSDT", strategy_name="strat",
        exchange_name="ex", backtest=True, close_reason=reason, close_timestamp=close_ts,
        pnl=PnL(pnl_percentage=pnl, price_open=100.0, price_close=close_price))


def run(coro):
    return asyncio.run(coro)


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table line in text (header and separator included)."""
    return [line[2:-2].split(" | ") for line in text.splitlines() if line.startswith("| ")]


def cells_by_label(row: ClosedResult, columns=None) -> dict[str, str]:
    header, _sep, cells = table_rows(run(render_table([row], columns or backtest_columns())))
    return dict(zip(header, cells))


# --- formatting helpers ------------------------------------------------------------------

def test_format_helpers():
    assert fmt_price(42000.5) == "42000.50000000 USD"
    assert fmt_price(None) == "N/A"
    assert fmt_pct(1.234) == "+1.23%"
    assert fmt_pct(-1.234) == "-1.23%"
    assert fmt_pct(0.0) == "0.00%"
    assert fmt_pct(-0.0) == "0.00%"
    assert fmt_pct(None) == "N/A"
    assert fmt_pct(float("nan")) == "N/A"
    assert fmt_pct(12.3456, 3) == "+12.346%"
    assert fmt_pct(0.125) == "+0.13%"  # half away from zero, like JavaScript's toFixed
    assert fmt_num(2.0, 3) == "2.000"
    assert fmt_num(None, 3) == "N/A"
    assert fmt_time(T0 + 1_234) == "2024-01-01T00:00:01.234Z"
    assert fmt_time(None) == "N/A"


# --- default columns ---------------------------------------------------------------------

def test_default_columns_keys_and_labels():
    cols = backtest_columns()
    assert [c.key for c in cols] == [
        "signal_id", "symbol", "position", "note", "open_price", "take_profit", "stop_loss",
        "close_price", "pnl", "close_reason", "open_time", "close_time", "duration"]
    assert [c.label for c in cols] == [
        "Signal ID", "Symbol", "Position", "Note", "Open Price", "Take Profit", "Stop Loss",
        "Close Price", "PNL (net)", "Close Reason", "Open Time", "Close Time", "Duration (min)"]


def test_default_row_cells():
    row = trade(1.0, sid="abc", position="short", close_price=99.25, reason="stop_loss",
                pending_at=T0 + 5 * MIN, close_ts=T0 + 95 * MIN)
    text = run(render_table([row], backtest_columns()))
    lines = text.splitlines()
    assert lines[0] == ("| Signal ID | Symbol | Position | Open Price | Take Profit | Stop Loss | "
                        "Close Price | PNL (net) | Close Reason | Open Time | Close Time | "
                        "Duration (min) |")
    assert lines[1] == "| " + " | ".join(["---"] * 12) + " |"
    assert lines[2] == ("| abc | BTCUSDT | SHORT | 100.00000000 USD | 101.00000000 USD | "
                        "99.50000000 USD | 99.25000000 USD | +1.00% | stop_loss | "
                        "2024-01-01T00:05:00.000Z | 2024-01-01T01:35:00.000Z | 90 |")
    assert len(lines) == 3


def test_pnl_sign_in_cells():
    assert cells_by_label(trade(2.345))["PNL (net)"] == "+2.35%"
    assert cells_by_label(trade(-0.5))["PNL (net)"] == "-0.50%"
    assert cells_by_label(trade(0.0))["PNL (net)"] == "0.00%"


@pytest.mark.parametrize("ms, minutes", [
    (0, "0"), (29_999, "0"), (30_000, "1"), (89_999, "1"), (90_000, "2"),
    (150_000, "3"),  # 2.5 min rounds up, as JavaScript's Math.round (not banker's rounding)
    (1440 * MIN, "1440"),
])
def test_duration_rounding(ms, minutes):
    assert cells_by_label(trade(1.0, close_ts=T0 + ms))["Duration (min)"] == minutes


def test_note_hidden_by_default_and_shown_when_configured():
    row = trade(1.0, note="**Breakout** on\nvolume")
    assert "Note" not in cells_by_label(row)
    set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)
    cells = cells_by_label(row)
    assert list(cells)[3] == "Note"
    assert cells["Note"] == "Breakout on volume"
    assert cells_by_label(trade(1.0, note=""))["Note"] == "N/A"
    cfg.clear()
    assert "Note" not in cells_by_label(row)


# --- custom columns ----------------------------------------------------------------------

def test_custom_columns_only_those_in_order():
    async def async_pnl(r):
        await asyncio.sleep(0)
        return f"{r.pnl.pnl_percentage:.1f}"

    async def async_visible():
        return True

    cols = [
        Column("idx", "#", lambda r, i: str(i + 1)),
        Column("hidden", "Hidden", lambda r: "x", is_visible=lambda: False),
        Column("pnl", "P", async_pnl, is_visible=async_visible),
        Column("id", "ID", lambda r: r.signal.id),
    ]
    rows = [trade(1.0, sid="a"), trade(-2.0, sid="b")]
    text = run(render_table(rows, cols))
    assert text.splitlines() == [
        "| # | P | ID |",
        "| --- | --- | --- |",
        "| 1 | 1.0 | a |",
        "| 2 | -2.0 | b |",
    ]


def test_custom_columns_in_report():
    stats = backtest_statistics([trade(1.0, sid="only")])
    text = run(render_backtest_report("BTCUSDT", "strat", stats, [Column("id", "ID", lambda r: r.signal.id)]))
    assert "| ID |\n| --- |\n| only |" in text
    assert "Signal ID" not in text


def test_builtin_format_called_with_row_only():
    text = run(render_table([3, 4], [Column("v", "V", str)]))
    assert text.splitlines()[2:] == ["| 3 |", "| 4 |"]


def test_no_visible_columns_gives_empty_table():
    assert run(render_table([1], [Column("a", "A", str, lambda: False)])) == ""


def test_pipe_and_newline_escaping():
    cols = [Column("a|b", "A|B", lambda r: "x|y\nz\r\nw")]
    assert run(render_table([None], cols)).splitlines() == [
        "| A\\|B |", "| --- |", "| x\\|y z w |"]


def test_sync_rendering_is_fast():
    rows = [trade(0.1 * (i % 7 - 3), sid=str(i)) for i in range(5000)]
    start = time.perf_counter()
    text = run(render_table(rows, backtest_columns()))
    assert time.perf_counter() - start < 2.0
    assert len(text.splitlines()) == 5002


# --- report document ---------------------------------------------------------------------

def test_empty_report():
    text = run(render_backtest_report("BTCUSDT", "strat", BacktestStatistics()))
    assert text == "# Backtest Report: strat\n\nNo signals closed yet."


def three_trades() -> list[ClosedResult]:
    """PnLs 1.0, -0.5, 2.0 held 60, 30 and 90 minutes."""
    return [
        trade(1.0, sid="t1", pending_at=T0, close_ts=T0 + 60 * MIN),
        trade(-0.5, sid="t2", pending_at=T0 + 100 * MIN, close_ts=T0 + 130 * MIN, reason="stop_loss"),
        trade(2.0, sid="t3", pending_at=T0 + 200 * MIN, close_ts=T0 + 290 * MIN),
    ]


def test_report_summary_three_trades():
    text = run(render_backtest_report("BTCUSDT", "strat", backtest_statistics(three_trades())))
    head, rest = text.split("\n\n", 1)
    assert head == "# Backtest Report: strat"
    assert rest.startswith("**Symbol:** BTCUSDT\n\n| Signal ID |")
    ids = [r[0] for r in table_rows(text)[2:]]
    assert ids == ["t1", "t2", "t3"]  # close order
    # By hand: sum 2.5, mean 5/6; population variance ((1/6)^2 + (4/3)^2 + (7/6)^2)/3 = 19/18,
    # std = 1.02740; Sharpe = (5/6)/1.02740 = 0.81111, x sqrt(365) = 15.4961; wins 2 (mean 1.5),
    # losses 1 (mean -0.5) -> certainty 3; mean hold 60 min = 1/24 day -> (5/6) * 365 * 24 = 7300;
    # equity 1.0, 0.5, 2.5 -> max drawdown 0.5; profit factor 3.0 / 0.5 = 6.
    summary = text.split("| t3 |")[1].split("\n", 1)[1]
    assert summary == "\n" + "\n\n".join([
        "**Total signals:** 3",
        "**Closed signals:** 3",
        "**Win rate:** 66.67% (2W / 1L) (higher is better)",
        "**Average PNL:** +0.83% (higher is better)",
        "**Total PNL (sum of per-trade %):** +2.50% (higher is better)",
        "**Standard Deviation:** 1.027% (lower is better)",
        "**Sharpe Ratio:** 0.811 (higher is better)",
        "**Annualized Sharpe Ratio:** 15.496 (higher is better)",
        "**Certainty Ratio:** 3.000 (higher is better)",
        "**Expected Yearly Returns:** +7300.00% (higher is better)",
        "**Max Drawdown (of summed per-trade %):** 0.50% (lower is better)",
        "**Profit Factor:** 6.000 (higher is better)",
        "**Average Duration:** 60.0 min",
        "**Ambiguous exits:** 0 (exit candle reached both TP and SL; CC_INTRABAR_POLICY=take_profit)",
        "**Data gaps:** 0 in the frame's 1m candles (longest 0 min)",
    ])


def test_report_undefined_values_are_na():
    stats = BacktestStatistics(signal_list=[trade(0.0)], total_signals=1, win_count=0, loss_count=0)
    text = run(render_backtest_report("ETHUSDT", "s2", stats))
    for label in ("Win rate", "Average PNL", "Total PNL (sum of per-trade %)", "Standard Deviation", "Sharpe Ratio",
                  "Annualized Sharpe Ratio", "Certainty Ratio", "Expected Yearly Returns",
                  "Max Drawdown (of summed per-trade %)", "Profit Factor", "Average Duration"):
        assert f"\n**{label}:** N/A" in text, label
    assert "**Total signals:** 1" in text


def test_report_negative_sign_lines():
    stats = BacktestStatistics(signal_list=[trade(-1.0)], total_signals=1, loss_count=1,
                               win_rate=0.0, avg_pnl=-1.0, total_pnl=-1.0, std_dev=0.0,
                               sharpe_ratio=0.0, expected_yearly_returns=-365.0)
    text = run(render_backtest_report("X", "s", stats))
    assert "**Win rate:** 0.00% (0W / 1L) (higher is better)" in text
    assert "**Average PNL:** -1.00% (higher is better)" in text
    assert "**Standard Deviation:** 0.000% (lower is better)" in text
    assert "**Sharpe Ratio:** 0.000 (higher is better)" in text
    assert "**Expected Yearly Returns:** -365.00% (higher is better)" in text


def test_max_rows_paging():
    trades = [trade(1.0, sid=f"s{i}", close_ts=T0 + (i + 1) * MIN) for i in range(5)]
    stats = backtest_statistics(trades)
    text = run(render_backtest_report("BTCUSDT", "strat", stats, max_rows=2))
    assert [r[0] for r in table_rows(text)[2:]] == ["s0", "s1"]
    assert "| s1 |" in text and "\n\n… and 3 more trades (see get_data for all)\n\n**Total signals:** 5" in text
    full = run(render_backtest_report("BTCUSDT", "strat", stats))
    assert len(table_rows(full)) == 7 and "more trades" not in full
    exact = run(render_backtest_report("BTCUSDT", "strat", stats, max_rows=5))
    assert exact == full
    with pytest.raises(ValueError):
        run(render_backtest_report("BTCUSDT", "strat", stats, max_rows=-1))


def test_write_report_creates_dirs(tmp_path):
    text = "# Backtest Report: strat\n\nÜnïcødé …\n"
    target = tmp_path / "a" / "b" / "strat.md"
    written = run(write_report(str(target), text))
    assert written == str(target) and os.path.isabs(written)
    assert target.read_bytes() == text.encode("utf-8")
    run(write_report(target, "second"))
    assert target.read_text(encoding="utf-8") == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["strat.md"]  # no temp files left


def test_write_report_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = run(write_report("dump/backtest/s.md", "x"))
    assert written == str(tmp_path / "dump" / "backtest" / "s.md")
    assert (tmp_path / "dump" / "backtest" / "s.md").read_text() == "x"

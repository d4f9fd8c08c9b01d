"""Schedule, Performance and Heat reports: statistics by hand, report text, dump, end to end."""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import backtest_kit as bk
from backtest_kit._report.heat import (
    Heat,
    HeatmapRow,
    HeatmapStatistics,
    HeatUtils,
    heat_columns,
    heatmap_row,
    heatmap_statistics,
)
from backtest_kit._report.performance import (
    MetricStats,
    Performance,
    PerformanceStatistics,
    PerformanceUtils,
    percentile,
    performance_columns,
    performance_statistics,
)
from backtest_kit._report.schedule import (
    Schedule,
    ScheduleStatistics,
    ScheduleUtils,
    schedule_columns,
    schedule_statistics,
)
from backtest_kit._report.source import default_runs
from backtest_kit._report.table import Column
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
from backtest_kit.events import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    OpenedResult,
    PerformanceEvent,
    PnL,
    ScheduledResult,
    SignalRow,
    WaitingResult,
)

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00.000Z
MIN = 60_000


def run(coro):
    return asyncio.run(coro)


def table_rows(text: str) -> list[list[str]]:
    return [line[2:-2].split(" | ") for line in text.splitlines() if line.startswith("| ")]


def cells(text: str) -> list[dict[str, str]]:
    """Each data row of the (single) table in text as {label: cell}."""
    header, _sep, *rows = table_rows(text)
    return [dict(zip(header, r)) for r in rows]


def row(sid: str, scheduled_at: int, pending_at: int, symbol: str = "BTCUSDT", note: str = "") -> SignalRow:
    return SignalRow(id=sid, position="long", price_open=100.0, price_take_profit=102.0,
                     price_stop_loss=99.0, minute_estimated_time=120, note=note, symbol=symbol,
                     strategy_name="strat", exchange_name="ex", scheduled_at=scheduled_at,
                     pending_at=pending_at, is_scheduled=True)


def meta(symbol: str = "BTCUSDT") -> dict:
    return dict(symbol=symbol, strategy_name="strat", exchange_name="ex", backtest=True)


def closed(pnl: float, symbol: str = "BTCUSDT", t: int = T0) -> ClosedResult:
    return ClosedResult(signal=row("c", t, t, symbol), current_price=101.0, close_reason="take_profit",
                        close_timestamp=t + 10 * MIN, pnl=PnL(pnl, 100.0, 101.0), **meta(symbol))


def register_strategy(name: str = "strat") -> None:
    bk.add_strategy(strategy_name=name, interval="5m", get_signal=lambda symbol, when: None)


# --- Schedule ------------------------------------------------------------------------------

def schedule_results() -> list:
    """Four limit orders (one filled, two cancelled, one still waiting) and one market open."""
    s1 = row("s1", T0, T0)
    s1_filled = row("s1", T0, T0 + 5 * MIN + 20_000)                    # 5.33 min -> 5
    s2 = row("s2", T0 + 10 * MIN, T0 + 10 * MIN)
    s3 = row("s3", T0 + 20 * MIN, T0 + 20 * MIN, note="**limit** order")
    s5 = row("s5", T0 + 30 * MIN, T0 + 30 * MIN)
    market = row("m1", T0 + 40 * MIN, T0 + 40 * MIN)
    m = meta()
    return [
        ScheduledResult(signal=s1, current_price=100.5, **m),
        WaitingResult(signal=s1, current_price=100.4, **m),
        OpenedResult(signal=s1_filled, current_price=100.0, **m),
        ActiveResult(signal=s1_filled, current_price=100.2, **m),
        ScheduledResult(signal=s2, current_price=100.7, **m),
        CancelledResult(signal=s2, current_price=98.5, close_timestamp=T0 + 11 * MIN + 30_000, **m),  # 1.5 -> 2
        ScheduledResult(signal=s3, current_price=100.9, **m),
        CancelledResult(signal=s3, current_price=98.0, close_timestamp=T0 + 23 * MIN, **m),  # 3
        ScheduledResult(signal=s5, current_price=101.0, **m),
        OpenedResult(signal=market, current_price=101.0, **m),  # never scheduled: not a row
        ClosedResult(signal=s1_filled, current_price=102.0, close_reason="take_profit",
                     close_timestamp=T0 + 50 * MIN, pnl=PnL(1.6, 100.0, 102.0), **m),
    ]


def test_schedule_statistics_by_hand():
    s = schedule_statistics(schedule_results())
    assert (s.total_scheduled, s.total_opened, s.total_cancelled, s.total_events) == (4, 1, 2, 7)
    assert s.cancellation_rate == pytest.approx(50.0)
    assert s.activation_rate == pytest.approx(25.0)
    assert s.avg_wait_time == pytest.approx(2.5)
    assert s.avg_activation_time == pytest.approx(5.0)
    ev = s.event_list
    assert [(e.action, e.signal_id) for e in ev] == [
        ("scheduled", "s1"), ("opened", "s1"), ("scheduled", "s2"), ("cancelled", "s2"),
        ("scheduled", "s3"), ("cancelled", "s3"), ("scheduled", "s5")]
    assert [e.timestamp for e in ev] == [T0, T0 + 5 * MIN + 20_000, T0 + 10 * MIN, T0 + 11 * MIN + 30_000,
                                         T0 + 20 * MIN, T0 + 23 * MIN, T0 + 30 * MIN]
    assert [e.duration for e in ev] == [None, 5, None, 2, None, 3, None]


def test_schedule_statistics_empty_and_undefined():
    s = schedule_statistics([])
    assert s == ScheduleStatistics()
    assert s.activation_rate is None and s.cancellation_rate is None
    only = schedule_statistics([ScheduledResult(signal=row("x", T0, T0), current_price=1.0, **meta())])
    assert (only.total_scheduled, only.activation_rate, only.cancellation_rate) == (1, 0.0, 0.0)
    assert only.avg_wait_time is None and only.avg_activation_time is None
    # an opened result for a signal scheduled only later is not an activation
    late = schedule_statistics([OpenedResult(signal=row("y", T0, T0 + MIN), current_price=1.0, **meta()),
                                ScheduledResult(signal=row("y", T0, T0), current_price=1.0, **meta())])
    assert (late.total_opened, late.total_scheduled) == (0, 1)


def test_schedule_report_text_and_note_column():
    stats = schedule_statistics(schedule_results())
    from backtest_kit._report.schedule import render_schedule_report
    text = run(render_schedule_report("strat", stats))
    assert text.startswith("# Scheduled Signals Report: strat\n\n| Timestamp | Action |")
    rows = cells(text)
    assert len(rows) == 7 and "Note" not in rows[0]
    assert rows[0]["Action"] == "SCHEDULED" and rows[0]["Wait Time (min)"] == "N/A"
    assert rows[0]["Timestamp"] == "2024-01-01T00:00:00.000Z"
    assert rows[1]["Action"] == "OPENED" and rows[1]["Wait Time (min)"] == "5"
    assert rows[3]["Current Price"] == "98.50000000 USD" and rows[3]["Entry Price"] == "100.00000000 USD"
    for line in ("**Total events:** 7", "**Scheduled signals:** 4", "**Opened signals:** 1",
                 "**Cancelled signals:** 2", "**Activation rate:** 25.00% (higher is better)",
                 "**Cancellation rate:** 50.00% (lower is better)",
                 "**Average activation time:** 5.00 minutes",
                 "**Average wait time (cancelled):** 2.50 minutes"):
        assert line in text
    bk.set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)
    rows = cells(run(render_schedule_report("strat", stats)))
    assert rows[4]["Note"] == "limit order" and rows[0]["Note"] == "N/A"
    assert [c.key for c in schedule_columns()][:3] == ["timestamp", "action", "symbol"]


def test_schedule_utils_source_validation_custom_columns_and_dump(tmp_path, monkeypatch):
    register_strategy()
    inst = SimpleNamespace(symbol="BTCUSDT", strategy_name="strat", events=schedule_results(), results=[], perf=[])
    utils = ScheduleUtils(lambda backtest: [inst] if backtest else [])
    assert run(utils.get_data("BTCUSDT", "strat")).total_scheduled == 4
    assert run(utils.get_data("BTCUSDT", "strat", backtest=False)).total_events == 0
    assert run(utils.get_data("ETHUSDT", "strat")) == ScheduleStatistics()
    empty = run(utils.get_report("ETHUSDT", "strat"))
    assert empty == "# Scheduled Signals Report: strat\n\nNo scheduled signals recorded yet."
    with pytest.raises(bk.ValidationError, match="nope"):
        run(utils.get_data("BTCUSDT", "nope"))
    cols = [Column("id", "ID", lambda e: e.signal_id), Column("i", "#", lambda e, i: i + 1)]
    text = run(utils.get_report("BTCUSDT", "strat", columns=cols))
    assert table_rows(text)[:3] == [["ID", "#"], ["---", "---"], ["s1", "1"]]
    written = run(utils.dump("BTCUSDT", "strat", path=str(tmp_path / "out")))
    assert written == str(tmp_path / "out" / "strat.md")
    with open(written, encoding="utf-8") as f:
        assert f.read() == run(utils.get_report("BTCUSDT", "strat"))
    monkeypatch.chdir(tmp_path)
    default = run(utils.dump("BTCUSDT", "strat"))
    assert default == os.path.join(str(tmp_path), "dump", "schedule", "strat.md") and os.path.isfile(default)


# --- Performance ---------------------------------------------------------------------------

def perf(ts: float, prev, metric: str, duration: float) -> PerformanceEvent:
    return PerformanceEvent(ts, prev, metric, duration, "strat", "ex", "BTCUSDT", True)


def perf_events() -> list:
    return [
        perf(1000, None, "backtest_timeframe", 4.0),
        perf(1010, 1000, "backtest_timeframe", 1.0),
        perf(1030, 1010, "backtest_timeframe", 3.0),
        perf(1070, 1030, "backtest_timeframe", 2.0),
        perf(1080, 1070, "backtest_signal", 7.0),
        perf(2000, 1080, "backtest_total", 20.0),
    ]


def test_percentile_nearest_rank():
    assert percentile([], 50) == 0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile(list(range(1, 11)), 99) == 10
    assert percentile(list(range(1, 11)), 50) == 5  # lower middle of an even count
    assert percentile([7.0], 99) == 7.0


def test_performance_statistics_by_hand():
    s = performance_statistics("strat", perf_events())
    assert (s.strategy_name, s.total_events, s.total_duration) == ("strat", 6, 37.0)
    assert list(s.metric_stats) == ["backtest_timeframe", "backtest_signal", "backtest_total"]
    tf = s.metric_stats["backtest_timeframe"]
    assert isinstance(tf, MetricStats)
    assert (tf.count, tf.total_duration, tf.avg_duration, tf.min_duration, tf.max_duration) == (4, 10.0, 2.5, 1.0, 4.0)
    assert tf.std_dev == pytest.approx(math.sqrt(1.25))
    assert (tf.median, tf.p95, tf.p99) == (2.0, 4.0, 4.0)
    assert tf.avg_wait_time == pytest.approx(70 / 3)
    assert (tf.min_wait_time, tf.max_wait_time) == (10, 40)
    sig = s.metric_stats["backtest_signal"]
    assert (sig.count, sig.std_dev, sig.median, sig.p99, sig.avg_wait_time) == (1, 0.0, 7.0, 7.0, 10)
    assert s.metric_stats["backtest_total"].max_wait_time == 920
    first = performance_statistics("strat", perf_events()[:1]).metric_stats["backtest_timeframe"]
    assert (first.avg_wait_time, first.min_wait_time, first.max_wait_time) == (0, 0, 0)
    empty = performance_statistics("strat", [])
    assert empty == PerformanceStatistics("strat") and empty.metric_stats == {}


def test_performance_report_text():
    from backtest_kit._report.performance import render_performance_report
    text = run(render_performance_report(performance_statistics("strat", perf_events())))
    assert text.startswith("# Performance Report: strat\n\n**Total events:** 6")
    assert "**Total execution time:** 37.00ms" in text
    dist = ("## Time Distribution\n\n- **backtest_total**: 54.1% (20.00ms total)\n"
            "- **backtest_timeframe**: 27.0% (10.00ms total)\n- **backtest_signal**: 18.9% (7.00ms total)")
    assert dist in text
    assert text.index("## Time Distribution") < text.index("## Detailed Metrics") < text.index("**Note:**")
    rows = table_rows(text)
    assert rows[0] == [c.label for c in performance_columns()]
    assert [r[0] for r in rows[2:]] == ["backtest_total", "backtest_timeframe", "backtest_signal"]
    assert rows[3] == ["backtest_timeframe", "4", "10.00", "2.50", "1.00", "4.00", "1.12", "2.00",
                       "4.00", "4.00", "23.33", "10.00", "40.00"]
    empty = run(render_performance_report(PerformanceStatistics("strat")))
    assert empty == "# Performance Report: strat\n\nNo performance metrics recorded yet."
    custom = run(render_performance_report(performance_statistics("strat", perf_events()),
                                           [Column("m", "M", lambda m: m.metric_type.upper())]))
    assert table_rows(custom)[2] == ["BACKTEST_TOTAL"]


def test_performance_utils_and_dump(tmp_path):
    register_strategy()
    inst = SimpleNamespace(symbol="BTCUSDT", strategy_name="strat", events=[], results=[], perf=perf_events())
    utils = PerformanceUtils(lambda backtest: [inst] if backtest else [])
    assert run(utils.get_data("BTCUSDT", "strat")).total_events == 6
    assert run(utils.get_data("BTCUSDT", "strat", False)).total_events == 0
    assert run(utils.get_data("XRPUSDT", "strat")).metric_stats == {}
    with pytest.raises(bk.ValidationError):
        run(utils.get_report("BTCUSDT", "missing"))
    path = run(utils.dump("BTCUSDT", "strat", path=str(tmp_path / "perf.md")))
    assert path == str(tmp_path / "perf.md")
    assert open(path, encoding="utf-8").read().startswith("# Performance Report: strat")


# --- Heat ----------------------------------------------------------------------------------

HEAT_TRADES = [("BBB", 1.5), ("CCC", -1.0), ("AAA", 2.0), ("AAA", -1.0), ("CCC", -2.0), ("AAA", 0.0),
               ("DDD", 1.0), ("AAA", -3.0), ("AAA", 4.0), ("DDD", 1.0), ("AAA", 1.0)]


def heat_closed() -> list:
    return [closed(p, s, T0 + i * MIN) for i, (s, p) in enumerate(HEAT_TRADES)]


def test_heatmap_row_by_hand():
    r = heatmap_row("AAA", [2.0, -1.0, 0.0, -3.0, 4.0, 1.0])
    assert isinstance(r, HeatmapRow)
    assert (r.total_trades, r.win_count, r.loss_count) == (6, 3, 2)
    assert r.win_rate == pytest.approx(50.0)
    assert r.total_pnl == pytest.approx(3.0) and r.avg_pnl == pytest.approx(0.5)
    assert r.std_dev == pytest.approx(math.sqrt(29.5 / 6))
    assert r.sharpe_ratio == pytest.approx(0.5 / math.sqrt(29.5 / 6))
    # chronological peak-to-trough: equity 2, 1, 1, -2, 2, 3 -> peak 2 down to -2
    assert r.max_drawdown == pytest.approx(4.0)
    assert r.profit_factor == pytest.approx(7 / 4)
    assert r.avg_win == pytest.approx(7 / 3) and r.avg_loss == pytest.approx(-2.0)
    assert (r.max_win_streak, r.max_loss_streak) == (2, 2)  # the 0.0 trade does not break the losses
    assert r.expectancy == pytest.approx(0.5 * 7 / 3 + 0.5 * -2.0)


def test_heatmap_row_undefined_values():
    one = heatmap_row("BBB", [1.5])
    assert one.std_dev is None and one.sharpe_ratio is None and one.profit_factor is None
    assert one.avg_loss is None and one.expectancy is None
    assert (one.win_rate, one.max_drawdown, one.max_win_streak, one.max_loss_streak) == (100.0, 0.0, 1, 0)
    flat = heatmap_row("DDD", [1.0, 1.0])
    assert flat.std_dev == 0.0 and flat.sharpe_ratio is None
    losers = heatmap_row("CCC", [-1.0, -2.0])
    assert losers.sharpe_ratio == pytest.approx(-3.0) and losers.max_drawdown == pytest.approx(3.0)
    assert losers.avg_win is None and losers.profit_factor is None and losers.win_rate == 0.0


def test_heatmap_statistics_portfolio():
    s = heatmap_statistics(heat_closed())
    assert [r.symbol for r in s.symbols] == ["AAA", "CCC", "BBB", "DDD"]  # sharpe desc, undefined last
    assert s.total_symbols == 4 and s.portfolio_total_trades == 11
    assert s.portfolio_total_pnl == pytest.approx(3.0 - 3.0 + 1.5 + 2.0)
    sharpe_a = 0.5 / math.sqrt(29.5 / 6)
    assert s.portfolio_sharpe_ratio == pytest.approx((sharpe_a * 6 + -3.0 * 2) / 11)
    assert heatmap_statistics([]) == HeatmapStatistics()


def test_heat_report_text():
    from backtest_kit._report.heat import render_heat_report
    text = run(render_heat_report("strat", heatmap_statistics(heat_closed())))
    assert text.startswith("# Portfolio Heatmap: strat\n\n**Total Symbols:** 4 | **Portfolio PNL:** +3.50% | "
                           "**Portfolio Sharpe:** -0.422 | **Total Trades:** 11\n\n| Symbol |")
    assert "%+" not in text and "%%" not in text  # D12: formatted numbers, not format strings
    rows = {r["Symbol"]: r for r in cells(text)}
    assert rows["AAA"] == {"Symbol": "AAA", "Total PNL": "+3.00%", "Sharpe": "0.225", "PF": "1.750",
                           "Expect": "+0.17%", "WR": "50.00%", "Avg Win": "+2.33%", "Avg Loss": "-2.00%",
                           "Max DD": "-4.00%", "W Streak": "2", "L Streak": "2", "Trades": "6"}
    assert (rows["BBB"]["Sharpe"], rows["BBB"]["PF"], rows["BBB"]["Avg Loss"], rows["BBB"]["Max DD"]) == \
        ("N/A", "N/A", "N/A", "0.00%")
    assert rows["CCC"]["Avg Win"] == "N/A" and rows["CCC"]["Sharpe"] == "-3.000"
    assert run(render_heat_report("strat", HeatmapStatistics())) == "# Portfolio Heatmap: strat\n\n*No data available*"
    custom = run(render_heat_report("strat", heatmap_statistics(heat_closed()),
                                    [Column("s", "S", lambda r: r.symbol.lower()),
                                     Column("hidden", "H", lambda r: "x", lambda: False)]))
    assert table_rows(custom)[2:] == [["aaa"], ["ccc"], ["bbb"], ["ddd"]]
    assert [c.key for c in heat_columns()][0] == "symbol"


def test_heat_utils_groups_instances_by_strategy(tmp_path):
    register_strategy()
    register_strategy("other")
    by_symbol: dict = {}
    for r in heat_closed():
        by_symbol.setdefault(r.symbol, []).append(r)
    insts = [SimpleNamespace(symbol=s, strategy_name="strat", results=rs, events=rs, perf=[]) for s, rs in by_symbol.items()]
    cancelled = CancelledResult(signal=row("z", T0, T0, "EEE"), current_price=1.0, close_timestamp=T0, **meta("EEE"))
    insts.append(SimpleNamespace(symbol="EEE", strategy_name="strat", results=[cancelled], events=[], perf=[]))
    insts.append(SimpleNamespace(symbol="FFF", strategy_name="other", results=[closed(9.0, "FFF")], events=[], perf=[]))
    utils = HeatUtils(lambda backtest: insts if backtest else [])
    data = run(utils.get_data("strat"))
    assert [r.symbol for r in data.symbols] == ["AAA", "CCC", "BBB", "DDD"]  # no cancelled-only EEE, no FFF
    assert run(utils.get_data("strat", backtest=False)) == HeatmapStatistics()
    assert run(utils.get_data("other")).portfolio_total_pnl == pytest.approx(9.0)
    with pytest.raises(bk.ValidationError):
        run(utils.get_data("missing"))
    path = run(utils.dump("strat", path=str(tmp_path)))
    assert path == str(tmp_path / "strat.md")
    assert open(path, encoding="utf-8").read() == run(utils.get_report("strat"))


# --- end to end ----------------------------------------------------------------------------

def test_end_to_end_backtest_two_symbols():
    candles = synthetic_candles(3000)
    exchange = ArrayExchange(candles)
    start = datetime.fromtimestamp(candles[0, 0] / 1000, tz=UTC) + timedelta(days=1)
    bk.add_exchange(exchange_name="ex", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="day", interval="1m", start_date=start, end_date=start + timedelta(hours=23))
    bk.add_strategy(strategy_name="rule", interval="5m",
                    get_signal=rule_strategy(10, 50, 1.0, 0.6, 360, limit_offset_pct=0.2))
    seen: list = []
    bk.listen_signal_backtest(seen.append)
    symbols = ("BTCUSDT", "ETHUSDT")

    async def main():
        yielded = []
        for symbol in symbols:
            async for r in bk.Backtest.run(symbol, strategy_name="rule", exchange_name="ex", frame_name="day"):
                yielded.append(r)
        heat = await Heat.get_data("rule")
        schedules = {s: await Schedule.get_data(s, "rule") for s in symbols}
        perf = await Performance.get_data(symbols[0], "rule")
        report = await Heat.get_report("rule")
        return yielded, heat, schedules, perf, report

    yielded, heat, schedules, perf, report = run(main())
    assert heat.total_symbols == 2 and {r.symbol for r in heat.symbols} == set(symbols)
    assert heat.portfolio_total_trades == sum(r.action == "closed" for r in yielded)
    assert report.startswith("# Portfolio Heatmap: rule")
    for symbol in symbols:
        mine = [r for r in seen if r.symbol == symbol]
        counts = Counter(r.action for r in mine)
        scheduled_ids = {r.signal.id for r in mine if r.action == "scheduled"}
        activations = sum(r.action == "opened" and r.signal.id in scheduled_ids for r in mine)
        s = schedules[symbol]
        assert s.total_scheduled == counts["scheduled"] > 0
        assert s.total_cancelled == counts["cancelled"]
        assert s.total_opened == activations > 0  # D5: backtest fills are real activations
    assert perf.metric_stats["backtest_total"].count == 1
    assert perf.metric_stats["backtest_signal"].count > 0
    # per-frame samples are kept only while someone listens to listen_performance
    assert "backtest_timeframe" not in perf.metric_stats
    assert isinstance(list(default_runs(False)), list)

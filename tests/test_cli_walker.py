"""`backtest-kit walker`: several strategies on the same candles, ranked by a metric, compared with
bk.Walker run directly on the same candles; TARGETs, per-target --param; clear errors."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import backtest_kit as bk
from backtest_kit.cli import app
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
from helpers.cli_files import STRATEGY_FILE, write_csv

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that rich does not wrap the table or paths
MINUTE = 60_000
ROW = re.compile(r"^│\s*(\d+|-)\s*│\s*([^│]+?)\s*│\s*([^│]+?)\s*│\s*(\d*)\s*│", re.M)





def _rows(output: str) -> list[tuple[str, str, str, str]]:
    """(rank, strategy, metric, trades) of each row of the ranking table."""
    return ROW.findall(output)


def _flat(output: str) -> str:
    return re.sub(r"[│╭╮╰╯─\s]+", " ", output)  # rich wraps usage errors in a box


def _walk_directly(candles: np.ndarray, strategies: dict, metric: str, interval: str) -> bk.WalkerStatistics:
    """bk.Walker over the same candles and the frame the CLI builds by default: from the first
    candle + 51 minutes of warm-up (the rule's slow 50 + 1) to the last candle."""
    bk.reset()
    bk.add_exchange(exchange_name="direct", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="direct", interval="1m", start_date=int(candles[0, 0]) + 51 * MINUTE,
                 end_date=int(candles[-1, 0]))
    for name, fn in strategies.items():
        bk.add_strategy(strategy_name=name, interval=interval, get_signal=fn)
    bk.add_walker(walker_name="direct", exchange_name="direct", frame_name="direct", strategies=list(strategies),
                  metric=metric)

    async def walk() -> bk.WalkerStatistics:
        async for _ in bk.Walker.run("BTCUSDT", walker_name="direct"):
            pass
        return await bk.Walker.get_data("BTCUSDT", "direct")

    data = asyncio.run(walk())
    bk.reset()
    return data


def test_walker_without_target_ranks_the_rule_at_two_settings_as_bk_walker_does(tmp_path):
    candles = synthetic_candles(4 * 1440, seed=11)
    csv = write_csv(tmp_path / "candles.csv", candles)
    result = runner.invoke(app, ["walker", "--candles", str(csv), "--out", str(tmp_path), "--html"])
    assert result.exit_code == 0, result.output
    data = _walk_directly(candles, {"ma-10-50": rule_strategy(10, 50, 1.0, 0.6, 360),
                                    "ma-20-50": rule_strategy(20, 50, 1.0, 0.6, 360)}, "sharpe_ratio", "5m")
    by_metric = sorted(data.strategy_results, key=lambda r: -r.metric_value)  # both are defined here
    assert [r.metric_value is not None for r in data.strategy_results] == [True, True]
    assert _rows(result.output) == [(str(i), r.strategy_name, f"{r.metric_value:.4f}", str(r.stats.total_signals))
                                    for i, r in enumerate(by_metric, start=1)]
    assert by_metric[0].stats.total_signals > 0 and by_metric[0].metric_value != by_metric[1].metric_value
    assert f"Best by sharpe_ratio: {data.best_strategy} ({data.best_metric:.4f})" in result.output
    # 4 days of 1m candles from 2024-01-01, less 51 minutes of warm-up
    assert "2024-01-01T00:51 .. 2024-01-04T23:59: 5,709 1m frames x 2 strategies" in result.output
    md, html = tmp_path / "walker.md", tmp_path / "walker.html"
    assert f"Report: {md}" in result.output and f"Report: {html}" in result.output
    assert md.read_text().startswith("# Walker Comparison Report: walker")
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "ma-10-50" in page and "ma-20-50" in page


def test_walker_targets_shared_and_per_target_params_and_another_metric(tmp_path):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(3 * 1440))
    target = f"{tmp_path / 'mine.py'}:make"
    result = runner.invoke(app, ["walker", target, target, target, "--param", "every=6", "--param", "2.every=12",
                                 "--param", "3.every=3", "--candles", str(csv), "--interval", "1m",
                                 "--metric", "total_signals", "--name", "every", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # The frame runs from 00:51 on day 1 to the end of day 3, and a trade lasts at most 120
    # minutes, so every mark trades: every 3 h 7 + 8 + 8, every 6 h 3 + 4 + 4, every 12 h 1 + 2 + 2.
    assert _rows(result.output) == [("1", "mine:make(every=3)", "23.0000", "23"),
                                    ("2", "mine:make", "11.0000", "11"),
                                    ("3", "mine:make(every=12)", "5.0000", "5")]
    assert (tmp_path / "every.md").exists() and not (tmp_path / "every.html").exists()


def test_walker_plain_targets_are_named_after_them_and_match_bk_walker(tmp_path):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    candles = synthetic_candles(3 * 1440, seed=5)
    csv = write_csv(tmp_path / "candles.csv", candles)
    result = runner.invoke(app, ["walker", f"{tmp_path / 'mine.py'}:get_signal", "backtest_kit.demo:rule_strategy",
                                 "--param", "2.fast=10", "--param", "2.slow=50", "--param", "2.tp_pct=1.0",
                                 "--param", "2.sl_pct=0.6", "--param", "2.minutes=360", "--candles", str(csv),
                                 "--metric", "total_return_pct", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rule_name = "backtest_kit.demo:rule_strategy(fast=10, slow=50, tp_pct=1.0, sl_pct=0.6, minutes=360)"
    namespace: dict = {}
    exec(STRATEGY_FILE, namespace)  # noqa: S102 - the test's own strategy file
    data = _walk_directly(candles, {"mine:get_signal": namespace["get_signal"],
                                    rule_name: rule_strategy(10, 50, 1.0, 0.6, 360)}, "total_return_pct", "5m")
    ranked = sorted(data.strategy_results, key=lambda r: -r.metric_value)
    assert ranked[0].metric_value != ranked[1].metric_value
    assert _rows(result.output) == [(str(i), r.strategy_name, f"{r.metric_value:.4f}", str(r.stats.total_signals))
                                    for i, r in enumerate(ranked, start=1)]
    assert f"Best by total_return_pct: {data.best_strategy} ({data.best_metric:.4f})" in result.output


def test_walker_on_a_store_offline(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    bk.CandleStore(tmp_path / "store").write("mine", "BTC/USDT", "1m", synthetic_candles(3 * 1440))
    result = runner.invoke(app, ["walker", f"{tmp_path / 'mine.py'}:get_signal", "--store", str(tmp_path / "store"),
                                 "--exchange", "mine", "--symbol", "BTC/USDT", "--interval", "1m",
                                 "--metric", "total_signals", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == [("1", "mine:get_signal", "11.0000", "11")]  # as from the file, above
    assert "Walker walker on BTC/USDT" in result.output


def test_walker_reports_a_strategy_whose_backtest_failed_and_exits_1(tmp_path):
    pytest.importorskip("pyarrow")
    candles = synthetic_candles(3 * 1440)
    store = bk.CandleStore(tmp_path / "store")
    store.write("x", "BTCUSDT", "1m", candles[:1440])
    store.write("x", "BTCUSDT", "1m", candles[2000:])  # a hole on day 2: offline, it cannot be filled
    result = runner.invoke(app, ["walker", "--store", str(tmp_path / "store"), "--exchange", "x", "--symbol",
                                 "BTCUSDT", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert _rows(result.output) == [("-", "ma-10-50", "failed", ""), ("-", "ma-20-50", "failed", "")]
    flat = " ".join(result.output.split())
    assert "Error: strategy ma-10-50 failed:" in flat and "is not in" in flat and "Traceback" not in flat


@pytest.mark.parametrize(("args", "option", "message"), [
    (["nope.py:get_signal"], "TARGET", "no file nope.py"),
    (["{mine}:nope"], "TARGET", "has no callable 'nope'"),
    (["{mine}:make", "{mine}:make"], "TARGET", "TARGETs 1 and 2 are both 'mine:make'"),
    (["{mine}:make", "--param", "2.every=3"], "--param", "there is no TARGET 2"),
    (["{mine}:make", "--param", "every"], "--param", "expected name=value"),
    (["{mine}:get_signal", "--param", "every=3"], "TARGET", "cannot be called with --param every=3"),
    (["--param", "every=3"], "--param", "--param needs a TARGET"),
    (["--metric", "luck"], "--metric", "'luck' is not one of total_signals"),
    (["--interval", "7m"], "--interval", "'7m' is not one of 1m"),
    (["--start", "soon"], "--start", "is not an ISO-8601 date"),
    (["--exchange", "binance"], "--exchange", "--exchange goes with --store"),
])
def test_walker_errors_name_the_option_without_a_traceback(tmp_path, args, option, message):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(300))
    args = [a.replace("{mine}", str(tmp_path / "mine.py")) for a in args]
    result = runner.invoke(app, ["walker", *args, "--candles", str(csv), "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    flat = _flat(result.output)
    assert f"Invalid value for {option}: " in flat and message in flat, flat
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("args", "option", "message"), [
    ([], "--candles", "give either --candles FILE or --store DIR"),
    (["--candles", "missing.csv"], "'--candles'", "does not exist"),
    (["--store", "{tmp}"], "--exchange", "--store needs --exchange"),
    (["--store", "{tmp}", "--exchange", "x"], "--symbol", "--store needs --symbol"),
])
def test_walker_needs_candles_or_a_store(tmp_path, args, option, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["walker", *args])
    assert result.exit_code == 2, result.output
    flat = _flat(result.output)
    assert f"Invalid value for {option}: " in flat and message in flat, flat

"""bk.backtest: one call from a function and candles to stats, trades, equity, report and chart."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

import backtest_kit as bk
from backtest_kit.demo import rule_strategy, synthetic_candles

CANDLES = synthetic_candles(5 * 1440, seed=3)
RULE = rule_strategy(5, 30, 0.8, 0.6, 240)
COLS = ["timestamp", "open", "high", "low", "close", "volume"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(CANDLES, columns=COLS)


def test_one_call_on_an_array_gives_stats_trades_equity_and_a_report():
    r = bk.backtest(RULE, CANDLES, interval="5m")
    assert r.stats.total_signals == len(r.trades) > 0
    assert r.trades["pnl_money"].sum() == pytest.approx(r.stats.final_equity - 10_000, rel=1e-9)
    assert isinstance(r.equity, pd.Series) and r.equity.iloc[-1] == pytest.approx(r.stats.final_equity)
    assert r.report().startswith("# Backtest Report: ")
    assert "<table>" in r._repr_html_() and r.stats.to_dict()["total_signals"] == r.stats.total_signals


@pytest.mark.parametrize("kind", ["dataframe", "indexed-dataframe", "csv", "parquet"])
def test_candles_as_a_dataframe_or_a_file_give_the_same_trades(kind, tmp_path):
    expected = bk.backtest(RULE, CANDLES).trades[["pending_at", "close_timestamp", "pnl_percentage"]]
    if kind == "dataframe":
        source = _frame()
    elif kind == "indexed-dataframe":
        df = _frame()
        source = df.drop(columns="timestamp").set_index(pd.to_datetime(df["timestamp"], unit="ms", utc=True))
    elif kind == "csv":
        source = tmp_path / "c.csv"
        _frame().astype({"timestamp": "int64"}).to_csv(source, index=False)
    else:
        source = tmp_path / "c.parquet"
        _frame().astype({"timestamp": "int64"}).to_parquet(source)
    got = bk.backtest(RULE, source).trades[["pending_at", "close_timestamp", "pnl_percentage"]]
    pd.testing.assert_frame_equal(got, expected)


def test_works_inside_a_running_event_loop_and_again_without_reset():
    async def cell():  # a notebook cell runs inside the kernel's loop
        return bk.backtest(RULE, CANDLES)

    first = asyncio.run(cell())
    second = bk.backtest(RULE, CANDLES)
    assert first.stats.total_signals == second.stats.total_signals > 0


def test_config_applies_to_that_call_only():
    cheap = bk.backtest(RULE, CANDLES, CC_PERCENT_FEE=0.0, CC_PERCENT_SLIPPAGE=0.0)
    dear = bk.backtest(RULE, CANDLES)
    assert bk.get_config()["CC_PERCENT_FEE"] == 0.1
    assert cheap.stats.total_pnl > dear.stats.total_pnl
    with pytest.raises(bk.ConfigError):
        bk.backtest(RULE, CANDLES, CC_NOPE=1)


def test_start_end_and_plot(tmp_path):
    r = bk.backtest(RULE, CANDLES, start="2024-01-02T00:00", end="2024-01-03T00:00")
    assert all(r.trades["pending_at"] <= 1_704_240_000_000)
    path = r.plot(tmp_path / "chart.html")
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "LightweightCharts" in text


def test_bad_candles_are_library_errors(tmp_path):
    with pytest.raises(bk.ValidationError, match="no candles"):
        bk.backtest(RULE, np.empty((0, 6)))
    with pytest.raises(bk.ValidationError, match="unsupported file type"):
        bk.backtest(RULE, tmp_path / "x.txt")
    with pytest.raises(bk.ValidationError, match="start"):
        bk.backtest(RULE, CANDLES, start="1999-01-01")

"""The backtest-kit console script: demo on bundled data, backtest on a user CSV, clear input errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import backtest_kit as bk
from backtest_kit._files import load_candles
from backtest_kit.cli import app, demo_candles
from backtest_kit.demo import synthetic_candles
from helpers.cli_files import STRATEGY_FILE, write_csv

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that rich does not wrap paths


def _report(output: str) -> Path:
    match = re.search(r"Report: (.+\.md)", output)
    assert match, output
    return Path(match.group(1).strip())




def test_bundled_data_is_45_days_of_1m_candles():
    candles = demo_candles()
    assert candles.shape == (45 * 1440, 6)
    assert (np.diff(candles[:, 0]) == 60_000).all()


def test_demo_runs_and_dumps_the_report(tmp_path):
    result = runner.invoke(app, ["demo", "--days", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Trades" in result.output
    report = _report(result.output)
    assert report.exists() and report.parent == tmp_path
    assert report.read_text().startswith("# Backtest Report")


def test_demo_rejects_no_signal_shows_the_equity_block_and_writes_html(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])  # the defaults, 30 days
    assert result.exit_code == 0, result.output
    assert "errors reported" not in result.output  # every demo signal passes validation
    assert "Equity" in result.output and "Return (compounded)" in result.output
    html = tmp_path / "ma-crossover.html"
    assert f"Report: {html}" in result.output and html.read_text().startswith("<!DOCTYPE html>")


def test_demo_rejects_more_days_than_bundled(tmp_path):
    result = runner.invoke(app, ["demo", "--days", "45", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "44 days" in result.output


def test_backtest_on_a_user_csv(tmp_path):
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(2 * 1440))
    out = tmp_path / "reports"
    result = runner.invoke(app, ["backtest", "--candles", str(csv), "--symbol", "ETHUSDT",
                                 "--interval", "5m", "--fast", "10", "--slow", "50", "--tp", "1.0",
                                 "--sl", "1.0", "--minutes", "360", "--no-shorts",
                                 "--start", "2024-01-01T06:00:00Z", "--end", "2024-01-02T12:00Z",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = _report(result.output)
    assert report == out / "ma-crossover.md" and report.exists()
    text = report.read_text()
    assert text.startswith("# Backtest Report") and "ETHUSDT" in text
    assert "| LONG |" in text and "SHORT" not in text


def test_backtest_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["backtest", "--candles", str(missing), "--symbol", "X"])
    assert result.exit_code != 0
    assert "nope.csv" in result.output


def test_backtest_bad_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high\n1,2,3\n")
    result = runner.invoke(app, ["backtest", "--candles", str(bad), "--symbol", "X"])
    assert result.exit_code == 2
    assert "missing column" in result.output


def test_backtest_bad_date(tmp_path):
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(300))
    result = runner.invoke(app, ["backtest", "--candles", str(csv), "--symbol", "X",
                                 "--start", "yesterday"])
    assert result.exit_code == 2
    assert "ISO-8601" in result.output


def test_live_paper_replays_and_a_restart_resumes(tmp_path):
    args = ["live", "--paper", "--start", "2024-02-12T00:00", "--state", str(tmp_path / "state"),
            "--out", str(tmp_path)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    closed = first.output.count(" CLOSED ")
    assert closed > 0 and f"{closed} closed trades" in first.output
    bk.reset()
    second = runner.invoke(app, args)  # same state: nothing is traded twice
    assert second.exit_code == 0, second.output
    assert " OPENED " not in second.output and f"{closed} closed trades" in second.output
    assert (tmp_path / "ma-crossover.md").read_text().startswith("# Live Trading Report: ma-crossover")


def test_live_without_paper_explains(tmp_path):
    result = runner.invoke(app, ["live"])
    assert result.exit_code != 0 and "--paper" in result.output


def test_live_paper_refuses_a_state_started_with_other_parameters_or_data(tmp_path):
    state = tmp_path / "state"
    args = ["live", "--paper", "--start", "2024-02-12T00:00", "--end", "2024-02-12T12:00", "--state", str(state),
            "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    bk.reset()
    other_tp = runner.invoke(app, [*args, "--tp", "2.0"])
    assert other_tp.exit_code == 1
    assert "started with other settings" in other_tp.output and "'tp': 1.0" in other_tp.output
    bk.reset()
    csv = write_csv(tmp_path / "other.csv", synthetic_candles(45 * 1440, seed=3))
    other_data = runner.invoke(app, [*args, "--candles", str(csv)])
    assert other_data.exit_code == 1 and "candles: saved" in other_data.output
    bk.reset()
    fresh = runner.invoke(app, [*args, "--tp", "2.0", "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "Moved the previous state" in fresh.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state.")], "the old state is kept"




def test_backtest_your_own_strategy_file_and_a_factory_with_params(tmp_path):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(3 * 1440))
    common = ["--candles", str(csv), "--symbol", "X", "--interval", "1m", "--out", str(tmp_path)]
    plain = runner.invoke(app, ["backtest", f"{tmp_path / 'mine.py'}:get_signal", *common])
    assert plain.exit_code == 0, plain.output
    # the frame runs from 00:51 on day 1 (warm-up) to the end of day 3: 11 six-hour marks
    assert re.search(r"Trades\s+│\s+11\s+│", plain.output), plain.output
    bk.reset()
    factory = runner.invoke(app, ["backtest", f"{tmp_path / 'mine.py'}:make", "--param", "every=12",
                                  "--param", "tp=1.5", *common])
    assert factory.exit_code == 0, factory.output
    assert re.search(r"Trades\s+│\s+5\s+│", factory.output), factory.output  # every 12 hours
    bk.reset()
    missing = runner.invoke(app, ["backtest", f"{tmp_path / 'mine.py'}:nope", *common])
    flat = re.sub(r"[│╭╮╰╯─\s]+", " ", missing.output)  # rich wraps the message in a box
    assert missing.exit_code == 2 and "no callable 'nope'" in flat
    bk.reset()
    no_target = runner.invoke(app, ["backtest", "--param", "a=1", *common])
    assert no_target.exit_code == 2 and "--param needs a TARGET" in re.sub(r"[│╭╮╰╯─\s]+", " ", no_target.output)


def test_live_paper_runs_your_own_strategy(tmp_path):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    result = runner.invoke(app, ["live", f"{tmp_path / 'mine.py'}:get_signal", "--paper", "--interval", "1m",
                                 "--start", "2024-02-12T00:00", "--end", "2024-02-13T00:00",
                                 "--state", str(tmp_path / "state"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert " OPENED " in result.output and " CLOSED " in result.output
    # named after the TARGET, as a backtest of it is
    assert (tmp_path / "mine%3Aget_signal.md").read_text().startswith("# Live Trading Report: mine:get_signal")


def test_demo_save_candles_writes_the_bundled_candles_exactly(tmp_path):
    bundled = demo_candles()
    for name in ("candles.csv", "candles.npz"):
        result = runner.invoke(app, ["demo", "--save-candles", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert f"Wrote 64,800 1m candles (2024-01-01T00:00 .. 2024-02-14T23:59) to {tmp_path / name}" in result.output
        assert np.array_equal(load_candles(tmp_path / name), bundled)  # every float reads back unchanged
    assert (tmp_path / "candles.csv").read_text().startswith("timestamp,open,high,low,close,volume\n1704067200000,")
    bad = runner.invoke(app, ["demo", "--save-candles", str(tmp_path / "candles.txt")])
    assert bad.exit_code == 2 and "write a .csv or a .npz file" in bad.output
    assert not (tmp_path / "candles.txt").exists()


def test_backtest_of_a_target_is_named_after_it_and_the_symbol_defaults_to_btcusdt(tmp_path):
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(3 * 1440))
    result = runner.invoke(app, ["backtest", f"{tmp_path / 'mine.py'}:get_signal", "--candles", str(csv),
                                 "--interval", "1m", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Backtest mine:get_signal on BTCUSDT" in result.output
    report = _report(result.output)
    assert report == tmp_path / "mine%3Aget_signal.md"  # ':' is escaped in file names
    assert report.read_text().startswith("# Backtest Report: mine:get_signal\n\n**Symbol:** BTCUSDT\n")


def test_backtest_store_needs_exchange_and_symbol_and_candles_refuse_an_exchange(tmp_path):
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(300))
    with_exchange = runner.invoke(app, ["backtest", "--candles", str(csv), "--exchange", "binance"])
    assert with_exchange.exit_code == 2 and "--exchange goes with --store" in with_exchange.output
    no_symbol = runner.invoke(app, ["backtest", "--store", str(tmp_path), "--exchange", "binance"])
    assert no_symbol.exit_code == 2 and "--store needs --symbol" in no_symbol.output


@pytest.mark.parametrize(("source", "param", "message"), [
    ("raise RuntimeError('no config')\n", [], "running {path} raised RuntimeError: no config"),
    ("def make(n):\n    raise KeyError(n)\n", ["--param", "n=3"], "called with --param n=3 it raised KeyError: 3"),
    ("def make(n):\n    return 42\n", ["--param", "n=3"], "it must return a get_signal, got int"),
])
def test_a_target_that_fails_is_a_bad_target_not_a_traceback(tmp_path, source, param, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    csv = write_csv(tmp_path / "candles.csv", synthetic_candles(300))
    attr = "make" if param else "get_signal"
    result = runner.invoke(app, ["backtest", f"{path}:{attr}", *param, "--candles", str(csv)])
    assert result.exit_code == 2, result.output
    flat = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert "Invalid value for TARGET:" in flat and message.format(path=path) in flat, flat
    assert isinstance(result.exception, SystemExit)

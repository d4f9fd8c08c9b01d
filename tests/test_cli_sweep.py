"""`backtest-kit sweep` and `backtest-kit walk-forward`: the CLI's results equal bk.Sweep and
bk.WalkForward run directly on the same candles; Optuna studies resume; bad options exit 2."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import backtest_kit as bk
from backtest_kit.cli import app
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
from helpers.cli_files import write_csv

runner = CliRunner(env={"COLUMNS": "220"})
MINUTE = 60_000
T0 = 1_704_067_200_000
ROW = re.compile(r"^│\s*(\d+)\s*│\s*([^│]+?)\s*│\s*([^│]+?)\s*│\s*(\d+)\s*│", re.M)

FACTORY_FILE = '''
from backtest_kit.demo import rule_strategy

def make(fast, slow, tp=1.0):
    return rule_strategy(fast, slow, tp, 0.6, 240, anchor="price")
'''


@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> tuple[Path, np.ndarray]:
    monkeypatch.chdir(tmp_path)
    candles = synthetic_candles(8 * 1440, start_ms=T0, seed=5)
    write_csv(tmp_path / "c.csv", candles)
    (tmp_path / "strat.py").write_text(FACTORY_FILE)
    return tmp_path / "c.csv", candles


def _direct(candles: np.ndarray, space: dict, metric: str, **walk) -> bk.SweepStatistics | bk.WalkForwardStatistics:
    """bk.Sweep (or bk.WalkForward) over the same candles and the CLI's default frame: from the first
    candle + 61 minutes of warm-up to the last candle."""
    bk.reset()
    bk.add_exchange(exchange_name="direct", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="direct", interval="1m", start_date=int(candles[0, 0]) + 61 * MINUTE,
                 end_date=int(candles[-1, 0]))
    bk.add_sweep("direct", lambda fast, slow, tp=1.0: rule_strategy(fast, slow, tp, 0.6, 240, anchor="price"),
                 space, exchange_name="direct", frame_name="direct", interval="5m", metric=metric)

    async def run():
        if walk:
            bk.add_walk_forward("direct", "direct", **walk)
            async for _ in bk.WalkForward.run("BTCUSDT", walk_name="direct"):
                pass
            return await bk.WalkForward.get_data("BTCUSDT", "direct")
        async for _ in bk.Sweep.run("BTCUSDT", sweep_name="direct"):
            pass
        return await bk.Sweep.get_data("BTCUSDT", "direct")

    data = asyncio.run(run())
    bk.reset()
    return data


def test_sweep_of_a_factory_file_ranks_as_bk_sweep(files):
    csv, candles = files
    result = runner.invoke(app, ["sweep", "strat.py:make", "--space", "fast=5:15:5", "--space", "slow=30,60",
                                 "--param", "tp=1.2", "--candles", str(csv), "--metric", "total_return_pct",
                                 "--executor", "process", "--html"])
    assert result.exit_code == 0, result.output
    rows = ROW.findall(result.output)
    direct = _direct(candles, {"fast": [5, 10, 15], "slow": [30, 60], "tp": [1.2]}, "total_return_pct")
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (f"fast={t.params['fast']},slow={t.params['slow']}", f"{t.metric_value:.4f}", str(t.stats.total_signals))
        for t in direct.trials]
    assert "Report:" in result.output and (csv.parent / "dump" / "sweep" / "sweep.html").exists()
    assert "x 6 trials" in result.output


def test_default_sweep_is_the_moving_average_rule(files):
    csv, candles = files
    result = runner.invoke(app, ["sweep", "--candles", str(csv), "--metric", "total_pnl"])
    assert result.exit_code == 0, result.output
    assert len(ROW.findall(result.output)) == 8  # fast 5, 10, 15, 20 x slow 40, 60


def test_an_optuna_sweep_resumes_from_its_journal(files):
    csv, _ = files
    args = ["sweep", "strat.py:make", "--space", "fast=3:15", "--space", "slow=30:90", "--candles", str(csv),
            "--optuna", "--storage", "study.log", "--metric", "total_pnl"]
    first = runner.invoke(app, [*args, "--trials", "4"])
    assert first.exit_code == 0, first.output
    assert len(ROW.findall(first.output)) == 4
    optuna = pytest.importorskip("optuna")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("study.log"))
    before = {t.number: t.params for t in optuna.load_study(study_name="sweep:BTCUSDT", storage=storage).trials}
    bk.reset()  # a new command, as from a new process
    second = runner.invoke(app, [*args, "--trials", "6"])
    assert second.exit_code == 0, second.output
    trials = optuna.load_study(study_name="sweep:BTCUSDT", storage=storage).trials
    assert len(trials) == 6 and {t.number: t.params for t in trials[:4]} == before
    assert len(ROW.findall(second.output)) == 6


def test_walk_forward_windows_equal_bk_walk_forward(files):
    csv, candles = files
    result = runner.invoke(app, ["walk-forward", "--train", "3d", "--test", "2d", "--candles", str(csv),
                                 "--space", "fast=5,10", "--space", "slow=40,60", "--metric", "total_pnl"])
    assert result.exit_code == 0, result.output
    direct = _direct(candles, {"fast": [5, 10], "slow": [40, 60]}, "total_pnl", train="3d", test="2d")
    assert len(direct.windows) == 2  # 8 days less the warm-up hold two 3d + 2d windows, 2d apart
    for w in direct.windows:
        assert f"fast={w.params['fast']},slow={w.params['slow']}" in result.output
        assert f"{w.out_of_sample_metric:.4f}" in result.output
    assert f"Out of sample: {direct.out_of_sample.total_signals} trades" in result.output
    assert (csv.parent / "dump" / "walk_forward" / "walk.md").exists()


@pytest.mark.parametrize("args, option, text", [
    (["--trials", "5"], "--optuna", "--trials and --storage go with --optuna"),
    (["--optuna"], "--trials", "--optuna needs --trials"),
    (["--executor", "threads"], "--executor", "not one of"),
    (["--space", "fast=5:x"], "--space", "a range is start:stop"),
    (["--metric", "profit"], "--metric", "not one of"),
])
def test_bad_sweep_options_exit_2_naming_the_option(files, args, option, text):
    csv, _ = files
    result = runner.invoke(app, ["sweep", "--candles", str(csv), *args])
    assert result.exit_code == 2, result.output
    flat = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert option in flat and text in flat and "Traceback" not in flat


def test_a_factory_target_needs_a_space(files):
    csv, _ = files
    result = runner.invoke(app, ["sweep", "strat.py:make", "--candles", str(csv)])
    assert result.exit_code == 2 and "needs --space" in re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)


def test_walker_on_every_core_prints_the_sequential_ranking(files):
    csv, _ = files
    sequential = runner.invoke(app, ["walker", "--candles", str(csv), "--metric", "total_pnl"])
    bk.reset()
    process = runner.invoke(app, ["walker", "--candles", str(csv), "--metric", "total_pnl", "--executor", "process"])
    assert sequential.exit_code == 0 and process.exit_code == 0, process.output
    assert ROW.findall(process.output) == ROW.findall(sequential.output) != []

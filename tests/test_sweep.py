"""Sweeps: a grid or an Optuna study over a strategy factory, on every executor, with failures,
stops, resumes after a crash, reports; and the walker on the process executor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

T0 = 1_704_067_200_000
M = 60_000
DAYS = 6
SPACE = {"fast": [5, 10], "slow": [30, 60]}


def make(fast: int, slow: int):
    return rule_strategy(fast, slow, 1.0, 0.6, 240, shorts=True, anchor="price")


def _market(days: int = DAYS) -> None:
    ex = ArrayExchange(synthetic_candles((days + 1) * 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="syn", get_candles=ex.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (days * 1440 - 1) * M)


def _sweep(executor: str = "sequential", **kw) -> bk.SweepStatistics:
    _market()
    bk.add_sweep("sw", kw.pop("factory", make), kw.pop("space", SPACE), exchange_name="syn", frame_name="f",
                 interval="5m", metric=kw.pop("metric", "total_pnl"), executor=executor, **kw)

    async def main():
        progress = [p async for p in bk.Sweep.run("BTCUSDT", sweep_name="sw")]
        return progress, await bk.Sweep.get_data("BTCUSDT", "sw")

    progress, data = asyncio.run(main())
    resumed = sum(t.resumed for t in data.trials)  # read back from a storage: counted, not yielded
    assert [p.trials_done for p in progress] == list(range(resumed + 1, resumed + len(progress) + 1))
    return data


def _numbers(stats: bk.BacktestStatistics) -> dict:
    return {k: v for k, v in stats.to_dict().items() if k != "signal_list"}


def _trades(stats: bk.BacktestStatistics) -> list:
    return [(r.signal.position, r.signal.pending_at, r.close_timestamp, r.close_reason, r.pnl.pnl_percentage)
            for r in stats.signal_list]


def test_a_grid_trial_is_the_plain_backtest_of_its_parameters():
    data = _sweep()
    assert sorted(tuple(t.params.values()) for t in data.trials) == [(5, 30), (5, 60), (10, 30), (10, 60)]
    for fast, slow in [(5, 30), (10, 60)]:
        name = f"plain-{fast}-{slow}"
        bk.add_strategy(strategy_name=name, interval="5m", get_signal=make(fast, slow))

        async def run(name=name):
            async for _ in bk.Backtest.run("BTCUSDT", strategy_name=name, exchange_name="syn", frame_name="f"):
                pass
            return await bk.Backtest.get_data("BTCUSDT", name)

        plain = asyncio.run(run())
        trial = next(t for t in data.trials if t.params == {"fast": fast, "slow": slow})
        assert plain.total_signals > 10
        assert _numbers(trial.stats) == _numbers(plain)
        assert _trades(trial.stats) == _trades(plain)
        assert trial.metric_value == pytest.approx(plain.total_pnl)
    # ranked by the metric, best first; best is the first
    values = [t.metric_value for t in data.trials]
    assert values == sorted(values, reverse=True)
    assert data.best == data.trials[0] and data.metric == "total_pnl"


def test_process_and_ray_executors_give_the_sequential_results(ray_local):
    results = {}
    for kind in ("sequential", "process", "ray"):
        bk.reset()
        data = _sweep(kind)
        results[kind] = [(t.number, t.params, t.metric_value, _numbers(t.stats), _trades(t.stats))
                         for t in data.trials]
    assert all(not t[4] == [] for t in results["sequential"])
    assert results["process"] == results["sequential"]
    assert results["ray"] == results["sequential"]


def _boom(fast: int, slow: int):
    if slow == 60 and fast == 10:
        raise RuntimeError("no such market regime")
    return make(fast, slow)


def test_a_failing_trial_is_reported_with_its_parameters_and_traceback_and_the_sweep_goes_on():
    errors = []
    bk.listen_error(errors.append)
    data = _sweep(factory=_boom)
    failed = data.failed
    assert [t.params for t in failed] == [{"fast": 10, "slow": 60}]
    assert "RuntimeError: no such market regime" in failed[0].error and "Traceback" in failed[0].error
    assert failed[0].metric_value is None and data.trials[-1] is failed[0]  # ranked last
    assert len([t for t in data.trials if t.error is None]) == 3
    assert any("fast=10,slow=60" in str(e) and "no such market regime" in str(e) for e in errors)
    report = asyncio.run(bk.Sweep.get_report("BTCUSDT", "sw"))
    assert "**Failed trials:** 1" in report and "RuntimeError: no such market regime" in report


def test_a_failing_trial_in_a_worker_process_is_reported_too():
    data = _sweep("process", factory=_boom)
    assert [t.params for t in data.failed] == [{"fast": 10, "slow": 60}]
    assert "RuntimeError: no such market regime" in data.failed[0].error


def test_stop_ends_the_sweep_after_the_running_trial():
    _market()
    bk.add_sweep("sw", make, SPACE, exchange_name="syn", frame_name="f", interval="5m")

    async def main():
        seen = []
        async for p in bk.Sweep.run("BTCUSDT", sweep_name="sw"):
            seen.append(p)
            await bk.Sweep.stop("BTCUSDT", "sw")
        return seen, await bk.Sweep.get_data("BTCUSDT", "sw")

    seen, data = asyncio.run(main())
    assert len(seen) == 1 and len(data.trials) == 1 and seen[0].total_trials == 4


def test_optuna_search_is_deterministic_and_within_the_space():
    first = _sweep(search="optuna", trials=10, space={"fast": (3, 12), "slow": [30, 45, 60]})
    assert len(first.trials) == 10
    for t in first.trials:
        assert 3 <= t.params["fast"] <= 12 and isinstance(t.params["fast"], int)
        assert t.params["slow"] in (30, 45, 60)
    bk.reset()
    again = _sweep(search="optuna", trials=10, space={"fast": (3, 12), "slow": [30, 45, 60]})
    assert [(t.number, t.params, t.metric_value) for t in again.trials] == \
        [(t.number, t.params, t.metric_value) for t in first.trials]


def test_optuna_on_the_process_executor_asks_the_same_points():
    space = {"fast": (3, 12), "slow": [30, 45, 60]}
    seq = _sweep(search="optuna", trials=10, space=space)
    bk.reset()
    proc = _sweep("process", search="optuna", trials=10, space=space)
    assert sorted((t.number, tuple(t.params.items()), t.metric_value) for t in proc.trials) == \
        sorted((t.number, tuple(t.params.items()), t.metric_value) for t in seq.trials)


CRASHING_SWEEP = textwrap.dedent("""
    import asyncio, os, signal, sys
    import backtest_kit as bk
    from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
    T0, M = 1_704_067_200_000, 60_000
    journal, calls, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def make(fast, slow):
        with open(calls, "a") as f:
            f.write(f"{fast},{slow}\\n")
        if sum(1 for _ in open(calls)) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of a trial
        return rule_strategy(fast, slow, 1.0, 0.6, 240, shorts=True, anchor="price")

    ex = ArrayExchange(synthetic_candles(4 * 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="syn", get_candles=ex.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (3 * 1440 - 1) * M)
    bk.add_sweep("sw", make, {"fast": (3, 12), "slow": (20, 60)}, exchange_name="syn", frame_name="f",
                 interval="5m", metric="total_pnl", search="optuna", trials=12, storage=journal)

    async def main():
        async for p in bk.Sweep.run("BTCUSDT", sweep_name="sw"):
            pass
        data = await bk.Sweep.get_data("BTCUSDT", "sw")
        print(len(data.trials), sum(t.resumed for t in data.trials))
    asyncio.run(main())
""")


def test_a_killed_optuna_sweep_resumes_without_redoing_finished_trials(tmp_path):
    optuna = pytest.importorskip("optuna")
    script = tmp_path / "sweep.py"
    script.write_text(CRASHING_SWEEP)
    journal, calls = str(tmp_path / "study.log"), str(tmp_path / "calls.txt")
    crashed = subprocess.run([sys.executable, str(script), journal, calls, "6"], capture_output=True, text=True,
                             timeout=300)
    assert crashed.returncode == -9, crashed.stderr
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    study = optuna.load_study(study_name="sw:BTCUSDT", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 5  # the sixth died while running
    before = {t.number: (t.params, t.value) for t in finished}
    resumed = subprocess.run([sys.executable, str(script), journal, calls, "0"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["12", "5"]  # 12 trials in all, 5 of them read back, not rerun
    with open(calls) as f:
        assert len(f.readlines()) == 6 + 7  # 7 new trials ran after the crash
    study = optuna.load_study(study_name="sw:BTCUSDT", storage=storage)
    done = {t.number: (t.params, t.value) for t in study.trials if t.state.is_finished()}
    assert len(done) == 12
    assert all(done[n] == before[n] for n in before)  # the finished trials are untouched


def test_sweep_reports_md_and_html(in_tmp_dir):
    _sweep()
    md = asyncio.run(bk.Sweep.dump("BTCUSDT", "sw"))
    assert md.endswith(os.path.join("dump", "sweep", "sw.md"))
    text = open(md).read()
    assert "# Sweep Report: sw" in text and "fast=10, slow=60" in text
    html = asyncio.run(bk.Sweep.dump("BTCUSDT", "sw", format="html"))
    page = open(html).read()
    assert "<html" in page and "fast=5,slow=30" in page and "<script src=" not in page


def test_walker_on_worker_processes_matches_the_sequential_walk():
    def walk(kind):
        bk.reset()
        _market()
        for fast, slow in [(5, 30), (10, 60), (8, 40)]:
            bk.add_strategy(strategy_name=f"s{fast}-{slow}", interval="5m", get_signal=make(fast, slow))
        bk.add_walker("w", "syn", "f", ["s5-30", "s10-60", "s8-40"], metric="total_pnl", executor=kind)

        async def main():
            steps = [p async for p in bk.Walker.run("BTCUSDT", walker_name="w")]
            data = await bk.Walker.get_data("BTCUSDT", "w")
            plain = await bk.Backtest.get_data("BTCUSDT", "s8-40")  # walked runs are in the run log
            return steps, data, plain

        steps, data, plain = asyncio.run(main())
        return ({s.strategy_name for s in steps}, data.best_strategy, data.best_metric,
                [(r.strategy_name, r.metric_value, _numbers(r.stats)) for r in data.strategy_results],
                _numbers(plain))

    seq, proc = walk("sequential"), walk("process")
    assert seq == proc
    assert [name for name, _, _ in seq[3]] == ["s5-30", "s10-60", "s8-40"]  # schema order
    assert seq[2] == max(v for _, v, _ in seq[3])


@pytest.mark.parametrize("kwargs, message", [
    ({"space": {}}, "space must be a non-empty dict"),
    ({"space": {"fast": []}}, "space['fast'] has no values"),
    ({"space": {"1x": [1]}}, "must be a parameter name"),
    ({"metric": "sharpe_rato"}, "field 'metric' must be one of"),
    ({"search": "random"}, "field 'search' must be one of"),
    ({"executor": "threads"}, "field 'executor' must be one of"),
    ({"search": "optuna"}, "field 'trials' must be a positive int"),
    ({"trials": 5}, "applies to search='optuna' only"),
    ({"storage": "x.log"}, "applies to search='optuna' only"),
    ({"factory": 3}, "field 'factory' must be callable"),
    ({"interval": "7m"}, "field 'interval' must be one of"),
])
def test_bad_sweeps_are_refused_naming_the_field(kwargs, message):
    args = {"factory": make, "space": SPACE, "interval": "5m", **kwargs}
    factory, space, interval = args.pop("factory"), args.pop("space"), args.pop("interval")
    with pytest.raises(bk.ValidationError, match="add_sweep") as e:
        bk.add_sweep("bad", factory, space, exchange_name="syn", frame_name="f", interval=interval, **args)
    assert message in str(e.value)
    assert bk.Sweep is not None and "bad" not in str(bk.list_walkers())


def test_unknown_names_name_the_call():
    with pytest.raises(bk.ValidationError, match=r"sweep 'nope' not found \(called from Sweep.run\)"):
        bk.Sweep.run("BTCUSDT", sweep_name="nope")
    _market()
    bk.add_sweep("sw", make, SPACE, exchange_name="nowhere", frame_name="f", interval="5m")
    with pytest.raises(bk.ValidationError, match="exchange 'nowhere' not found"):
        bk.Sweep.run("BTCUSDT", sweep_name="sw")
    with pytest.raises(bk.BacktestKitError, match="no results for sweep 'sw'"):
        asyncio.run(bk.Sweep.get_data("BTCUSDT", "sw"))


def _quiet(fast: int, slow: int, quiet: bool):
    if quiet:
        async def never(symbol, when):
            return None
        return never
    return make(fast, slow)


def test_a_trial_without_trades_has_no_metric_and_is_ranked_last():
    data = _sweep(factory=_quiet, space={"fast": [5], "slow": [30], "quiet": [True, False]}, metric="sharpe_ratio")
    assert [t.params["quiet"] for t in data.trials] == [False, True]
    assert data.trials[1].stats.total_signals == 0 and data.trials[1].metric_value is None
    assert data.trials[1].error is None
    assert isinstance(data.trials[0].metric_value, float) and data.best is data.trials[0]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # CI reaches the package registries only
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_drawdown_metrics_are_minimised():
    data = _sweep(metric="max_drawdown_pct")
    values = [t.metric_value for t in data.trials]
    assert len(set(values)) == 4 and values == sorted(values)  # the smallest drawdown first
    assert data.best.metric_value == min(values) > 0
    report = asyncio.run(bk.Sweep.get_report("BTCUSDT", "sw"))
    assert "max_drawdown_pct (minimised)" in report
    bk.reset()
    optuna = _sweep(search="optuna", trials=8, metric="max_drawdown_pct", space={"fast": (3, 12), "slow": [30, 60]})
    assert optuna.best.metric_value == min(t.metric_value for t in optuna.trials)


def test_background_sweep_fires_done_once_and_lists_its_instance():
    _market()
    bk.add_sweep("sw", make, SPACE, exchange_name="syn", frame_name="f", interval="5m", metric="total_pnl")

    async def main():
        done = []
        finished = asyncio.Event()
        bk.listen_done_sweep(lambda e: (done.append(e), finished.set()))
        progress = []
        bk.listen_sweep(progress.append)
        bk.Sweep.background("BTCUSDT", sweep_name="sw")
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Sweep.background("BTCUSDT", sweep_name="sw")
        await asyncio.wait_for(finished.wait(), 60)
        listed = await bk.Sweep.list()
        return done, progress, listed, await bk.Sweep.get_data("BTCUSDT", "sw")

    done, progress, listed, data = asyncio.run(main())
    assert len(done) == 1 and done[0].strategy_name == "sw"
    assert [p.trials_done for p in progress] == [1, 2, 3, 4] and len(data.trials) == 4
    assert [(s.symbol, s.name, s.status) for s in listed] == [("BTCUSDT", "sw", "done")]


def test_a_stopped_optuna_sweep_resumes_the_trials_it_did_not_run(tmp_path):
    pytest.importorskip("optuna")
    journal = str(tmp_path / "study.log")
    space = {"fast": (3, 12), "slow": [30, 60]}

    async def first():
        async for _ in bk.Sweep.run("BTCUSDT", sweep_name="sw"):
            await bk.Sweep.stop("BTCUSDT", "sw")  # after the first trial: seven asked, never run

    _market()
    bk.add_sweep("sw", make, space, exchange_name="syn", frame_name="f", interval="5m", metric="total_pnl",
                 search="optuna", trials=10, storage=journal)
    asyncio.run(first())
    bk.reset()
    data = _sweep(search="optuna", trials=10, storage=journal, space=space)
    assert len(data.trials) == 10 and sum(t.resumed for t in data.trials) == 1
    assert all(t.error is None and t.stats.total_signals > 0 for t in data.trials)


def test_two_processes_share_one_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    script = tmp_path / "sweep.py"
    script.write_text(CRASHING_SWEEP)
    journal, calls = str(tmp_path / "study.log"), str(tmp_path / "calls.txt")
    procs = [subprocess.Popen([sys.executable, str(script), journal, calls, "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    trials = optuna.load_study(study_name="sw:BTCUSDT", storage=storage).trials
    finished = [t for t in trials if t.state.is_finished()]
    assert 12 <= len(finished) <= 12 + 8  # the study's total, overshot by at most a batch in flight elsewhere
    assert len({t.number for t in trials}) == len(trials)
    with open(calls) as f:
        assert len(f.readlines()) == len(finished)  # every trial ran once, on one of the two


def test_walker_picks_the_smallest_drawdown_and_ranks_it_first():
    _market()
    for fast, slow in [(5, 30), (10, 60), (8, 40)]:
        bk.add_strategy(strategy_name=f"s{fast}-{slow}", interval="5m", get_signal=make(fast, slow))
    bk.add_walker("w", "syn", "f", ["s5-30", "s10-60", "s8-40"], metric="max_drawdown_pct")

    async def main():
        async for _ in bk.Walker.run("BTCUSDT", walker_name="w"):
            pass
        return await bk.Walker.get_data("BTCUSDT", "w"), await bk.Walker.get_report("BTCUSDT", "w")

    data, report = asyncio.run(main())
    drawdowns = {r.strategy_name: r.metric_value for r in data.strategy_results}
    smallest = min(drawdowns, key=drawdowns.get)
    assert len(set(drawdowns.values())) == 3 and all(v > 0 for v in drawdowns.values())
    assert data.best_strategy == smallest and data.best_metric == drawdowns[smallest]
    assert f"| 1 | {smallest} 🏆 |" in report

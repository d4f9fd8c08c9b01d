"""Walk-forward: windows, the in-sample winner traded out of sample, the stitched out-of-sample
record and the overfitting signs, each checked against plain backtests of the same windows."""

from __future__ import annotations

import asyncio
import statistics

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

T0 = 1_704_067_200_000
M = 60_000
D = 86_400_000
SPACE = {"fast": [5, 10], "slow": [30, 60]}


def make(fast: int, slow: int):
    return rule_strategy(fast, slow, 1.0, 0.6, 240, shorts=True, anchor="price")


def _setup(days: int = 9, executor: str = "sequential", **walk) -> None:
    ex = ArrayExchange(synthetic_candles((days + 2) * 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="syn", get_candles=ex.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (days * 1440 - 1) * M)
    bk.add_sweep("sw", make, SPACE, exchange_name="syn", frame_name="f", interval="5m", metric="total_pnl",
                 executor=executor)
    bk.add_walk_forward("wf", "sw", **({"train": "3d", "test": "2d"} | walk))


def _walk() -> tuple[list[bk.WalkForwardProgress], bk.WalkForwardStatistics]:
    async def main():
        progress = [p async for p in bk.WalkForward.run("BTCUSDT", walk_name="wf")]
        return progress, await bk.WalkForward.get_data("BTCUSDT", "wf")

    return asyncio.run(main())


def _plain(fast: int, slow: int, start: int, end: int) -> bk.BacktestStatistics:
    """A plain backtest of (fast, slow) on frames [start, end) — registered once per window."""
    frame, name = f"f{start}-{end}", f"s{fast}-{slow}-{start}"
    if frame not in [f.frame_name for f in bk.list_frames()]:
        bk.add_frame(frame_name=frame, interval="1m", start_date=start, end_date=end - M)
    bk.add_strategy(strategy_name=name, interval="5m", get_signal=make(fast, slow))

    async def run():
        async for _ in bk.Backtest.run("BTCUSDT", strategy_name=name, exchange_name="syn", frame_name=frame):
            pass
        return await bk.Backtest.get_data("BTCUSDT", name)

    return asyncio.run(run())


def test_windows_roll_by_the_test_length_inside_the_frame():
    _setup()
    progress, data = _walk()
    bounds = [(w.train_start, w.train_end, w.test_start, w.test_end) for w in data.windows]
    assert bounds == [(T0, T0 + 3 * D, T0 + 3 * D, T0 + 5 * D), (T0 + 2 * D, T0 + 5 * D, T0 + 5 * D, T0 + 7 * D),
                      (T0 + 4 * D, T0 + 7 * D, T0 + 7 * D, T0 + 9 * D)]
    assert [(p.windows_done, p.total_windows) for p in progress] == [(1, 3), (2, 3), (3, 3)]


def test_anchored_windows_grow_from_the_frame_start_and_step_moves_them():
    _setup(anchored=True, step="3d", test="2d", train="2d")
    _, data = _walk()
    assert [(w.train_start, w.train_end, w.test_end) for w in data.windows] == [
        (T0, T0 + 2 * D, T0 + 4 * D), (T0, T0 + 5 * D, T0 + 7 * D)]


def test_each_window_trades_the_in_sample_winner_out_of_sample():
    _setup()
    _, data = _walk()
    oos_trades = 0
    oos_pnl: list[float] = []
    for w in data.windows:
        train = {(f, s): _plain(f, s, w.train_start, w.train_end).total_pnl for f in (5, 10) for s in (30, 60)}
        best = max(train, key=lambda k: (train[k] if train[k] is not None else -1e9, -list(train).index(k)))
        assert w.params == {"fast": best[0], "slow": best[1]}
        assert w.in_sample_metric == pytest.approx(train[best])
        tests = {k: _plain(*k, w.test_start, w.test_end) for k in train}
        assert w.out_of_sample_metric == pytest.approx(tests[best].total_pnl)
        assert w.out_of_sample_median == pytest.approx(statistics.median(t.total_pnl for t in tests.values()))
        assert w.stats.total_signals == tests[best].total_signals
        oos_trades += tests[best].total_signals
        oos_pnl += [r.pnl.pnl_percentage for r in tests[best].signal_list]
    assert data.out_of_sample.total_signals == oos_trades > 0
    assert data.out_of_sample.total_pnl == pytest.approx(sum(oos_pnl))
    assert data.out_of_sample.final_equity is not None  # the stitched equity is marked over the test span
    # overfitting signs, recomputed from the windows
    ins = [w.in_sample_metric for w in data.windows]
    outs = [w.out_of_sample_metric for w in data.windows]
    mean_in = sum(ins) / len(ins)
    assert data.efficiency == (pytest.approx(sum(outs) / len(outs) / mean_in) if mean_in > 0 else None)
    below = sum(w.out_of_sample_metric < w.out_of_sample_median for w in data.windows) / len(data.windows)
    assert data.below_median_share == pytest.approx(below)
    for name in ("fast", "slow"):
        chosen = [w.params[name] for w in data.windows]
        assert data.param_stability[name] == pytest.approx(max(chosen.count(v) for v in chosen) / len(chosen))


def test_the_process_executor_walks_to_the_same_result():
    _setup()
    _, seq = _walk()
    bk.reset()
    _setup(executor="process")
    _, proc = _walk()
    assert [(w.params, w.in_sample_metric, w.out_of_sample_metric, w.out_of_sample_median) for w in proc.windows] == \
        [(w.params, w.in_sample_metric, w.out_of_sample_metric, w.out_of_sample_median) for w in seq.windows]
    def trades(stats):  # signal ids are random per run; everything else must match
        return [(r.signal.position, r.signal.pending_at, r.close_timestamp, r.pnl.pnl_percentage, r.close_reason)
                for r in stats.signal_list]

    assert trades(proc.out_of_sample) == trades(seq.out_of_sample) != []
    assert {k: v for k, v in proc.out_of_sample.to_dict().items() if k != "signal_list"} == \
        {k: v for k, v in seq.out_of_sample.to_dict().items() if k != "signal_list"}


def test_reports(in_tmp_dir):
    _setup()
    _walk()
    md = open(asyncio.run(bk.WalkForward.dump("BTCUSDT", "wf"))).read()
    assert "# Walk-Forward Report: wf" in md and "Out-of-sample / in-sample" in md and "| 3 |" in md
    page = open(asyncio.run(bk.WalkForward.dump("BTCUSDT", "wf", format="html"))).read()
    assert "out-of-sample" in page and "window 3" in page


@pytest.mark.parametrize("walk, message", [
    ({"step": "1d"}, "field 'step' must be at least test"),
    ({"train": "three days"}, "field 'train' must be a duration"),
    ({"test": 0}, "field 'test' must be a positive whole number of minutes"),
    ({"anchored": "yes"}, "field 'anchored' must be a bool"),
])
def test_bad_walks_are_refused(walk, message):
    with pytest.raises(bk.ValidationError, match="add_walk_forward") as e:
        bk.add_walk_forward("bad", "sw", **({"train": "3d", "test": "2d"} | walk))
    assert message in str(e.value)


def test_a_frame_shorter_than_one_window_is_refused_at_run():
    _setup(days=4)  # 3d train + 2d test do not fit in 4 days
    with pytest.raises(bk.ValidationError, match="needs train \\+ test"):
        bk.WalkForward.run("BTCUSDT", walk_name="wf")
    bk.add_walk_forward("orphan", "missing", train="3d", test="1d")
    with pytest.raises(bk.ValidationError, match="sweep 'missing' not found.*referenced by walk-forward 'orphan'"):
        bk.WalkForward.run("BTCUSDT", walk_name="orphan")


def test_walk_forward_with_an_optuna_search_per_window(tmp_path):
    pytest.importorskip("optuna")
    ex = ArrayExchange(synthetic_candles(11 * 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="syn", get_candles=ex.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (9 * 1440 - 1) * M)
    journal = str(tmp_path / "wf.log")
    bk.add_sweep("sw", make, {"fast": (3, 12), "slow": [30, 60]}, exchange_name="syn", frame_name="f",
                 interval="5m", metric="total_pnl", search="optuna", trials=5, storage=journal)
    bk.add_walk_forward("wf", "sw", train="3d", test="2d")
    _, data = _walk()
    assert len(data.windows) == 3
    for w in data.windows:
        assert 3 <= w.params["fast"] <= 12 and w.params["slow"] in (30, 60)
        # the winner is the best of that window's own study
        assert w.in_sample_metric == pytest.approx(_plain(w.params["fast"], w.params["slow"], w.train_start,
                                                          w.train_end).total_pnl)
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert names == [f"sw:BTCUSDT:wf:{k}" for k in range(3)]
    assert all(len(optuna.load_study(study_name=n, storage=storage).trials) == 5 for n in names)

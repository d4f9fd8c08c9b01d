"""Backtest and Walker execution classes: single-run instances, background, stop, events, walker."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit._execution import trial as trial_module
from backtest_kit._execution.base import wait_background_threads
from backtest_kit.demo import ArrayExchange
from helpers.market import flat_market

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
M = 60_000


@pytest.fixture(autouse=True)
def _join_background_threads():
    yield
    wait_background_threads(10)  # before conftest's reset, so no run outlives its test


def flat_candles(minutes: int, bars: dict[int, tuple[float, float]] | None = None) -> np.ndarray:
    return flat_market(minutes, wicks=bars)


def setup(candles: np.ndarray, signal_fn, *, start_min=10, end_min=None, strategy="s", interval="1m"):
    if "ex" not in [e.exchange_name for e in bk.list_exchanges()]:
        bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    if "fr" not in [f.frame_name for f in bk.list_frames()]:
        end = len(candles) - 1 if end_min is None else end_min
        bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + start_min * M, end_date=T0 + end_min * M
                     if end_min is not None else T0 + end * M)
    bk.add_strategy(strategy_name=strategy, interval=interval, get_signal=signal_fn)


def recording(signal: dict | None, every=True):
    calls = []

    async def get_signal(symbol, when):
        calls.append(int(when.timestamp() * 1000))
        return dict(signal) if signal and (every or len(calls) == 1) else None

    return get_signal, calls


LONG = {"position": "long", "price_take_profit": 101.0, "price_stop_loss": 99.0, "minute_estimated_time": 60}


async def collect(symbol="BTC", strategy="s"):
    return [r async for r in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name="ex", frame_name="fr")]


# --- stop -----------------------------------------------------------------------------------

def test_stop_with_open_position_lets_it_close_then_ends():
    fn, calls = recording(LONG)
    setup(flat_candles(300, {40: (101.5, 100.0)}), fn)

    async def on_signal(result):
        if result.action == "opened":
            await bk.Backtest.stop("BTC", "s")

    bk.listen_signal_backtest(on_signal)
    results = asyncio.run(collect())
    assert [(r.action, r.close_reason, r.close_timestamp) for r in results] == [("closed", "take_profit", T0 + 40 * M)]
    assert calls == [T0 + 10 * M]  # no new signal after the stop


def test_stop_drops_waiting_limit_order_with_cancelled_result():
    fn, calls = recording({**LONG, "price_open": 99.5, "price_stop_loss": 98.0})
    setup(flat_candles(300, {50: (100.0, 99.4)}), fn)

    async def on_signal(result):
        if result.action == "scheduled":
            await bk.Backtest.stop("BTC", "s")

    bk.listen_signal_backtest(on_signal)
    results = asyncio.run(collect())
    assert [(r.action, r.close_timestamp) for r in results] == [("cancelled", T0 + 11 * M)]
    assert len(calls) == 1


def test_stop_when_idle_ends_run_at_next_frame():
    calls = []

    async def get_signal(symbol, when):
        calls.append(when)
        if len(calls) == 3:
            await bk.Backtest.stop("BTC", "s")
        return None

    setup(flat_candles(300), get_signal)
    assert asyncio.run(collect()) == []
    assert len(calls) == 3


# --- background, single run, list -------------------------------------------------------------

def test_background_in_running_loop_fires_done_once_and_keeps_data():
    fn, _ = recording(LONG)
    setup(flat_candles(300, {40: (101.5, 100.0)}), fn)

    async def main():
        done = []
        finished = asyncio.Event()

        def on_done(event):
            done.append(event)
            finished.set()

        bk.listen_done_backtest(on_done)
        cancel = bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
        assert callable(cancel)
        assert [s.status for s in await bk.Backtest.list()] == ["running"]
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0)
        return done

    done = asyncio.run(main())
    assert len(done) == 1
    assert (done[0].symbol, done[0].strategy_name, done[0].exchange_name, done[0].backtest) == ("BTC", "s", "ex", True)
    stats = asyncio.run(bk.Backtest.get_data("BTC", "s"))
    assert stats.total_signals >= 1
    assert [s.status for s in asyncio.run(bk.Backtest.list())] == ["done"]


def test_background_without_loop_runs_in_thread():
    fn, _ = recording(LONG)
    setup(flat_candles(300, {40: (101.5, 100.0)}), fn)
    done = []
    bk.listen_done_backtest(done.append)
    cancel = bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
    assert callable(cancel)
    assert cancel.wait(10) is True
    assert len(done) == 1
    assert asyncio.run(bk.Backtest.get_data("BTC", "s")).total_signals >= 1


def test_cancel_stops_background_and_done_fires_once():
    calls = []

    async def get_signal(symbol, when):
        calls.append(when)
        await asyncio.sleep(0)  # give the canceller a chance
        return None

    setup(flat_candles(2000), get_signal)

    async def main():
        done = []
        finished = asyncio.Event()
        bk.listen_done_backtest(lambda e: (done.append(e), finished.set()))
        cancel = bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
        await asyncio.sleep(0)
        cancel()
        cancel()
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0.01)
        return done

    done = asyncio.run(main())
    assert len(done) == 1
    assert len(calls) < 1990  # interrupted well before the end of the frame


def test_failed_background_goes_to_listen_exit_and_can_run_again():
    fn, _ = recording(None)
    state = {"fail": True}

    def on_timeframe(frames, start, end, interval):
        if state["fail"]:
            raise RuntimeError("frame source broken")

    candles = flat_candles(100)
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 90 * M,
                 callbacks={"on_timeframe": on_timeframe})
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=fn)
    exits, done = [], []
    bk.listen_exit(exits.append)
    bk.listen_done_backtest(done.append)
    bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
    wait_background_threads(10)
    assert [str(e) for e in exits] == ["frame source broken"] and len(done) == 1
    state["fail"] = False  # D9: the failed instance runs again
    bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")
    wait_background_threads(10)
    assert len(exits) == 1 and len(done) == 2


def test_unknown_names_are_reported_with_the_method():
    fn, _ = recording(None)
    setup(flat_candles(100), fn)
    with pytest.raises(bk.ValidationError, match=r"strategy 'nope' not found \(called from Backtest.run\)"):
        bk.Backtest.run("BTC", strategy_name="nope", exchange_name="ex", frame_name="fr")
    with pytest.raises(bk.ValidationError, match=r"frame 'nope' not found \(called from Backtest.background\)"):
        bk.Backtest.background("BTC", strategy_name="s", exchange_name="ex", frame_name="nope")
    with pytest.raises(bk.ValidationError, match=r"walker 'w' not found \(called from Walker.run\)"):
        bk.Walker.run("BTC", walker_name="w")


def test_instances_are_memoised_per_symbol_and_strategy():
    fn, _ = recording(None)
    setup(flat_candles(100), fn)
    asyncio.run(bk.Backtest.get_data("BTC", "s"))
    asyncio.run(bk.Backtest.get_data("BTC", "s"))
    asyncio.run(bk.Backtest.get_data("ETH", "s"))
    listed = asyncio.run(bk.Backtest.list())
    assert [(s.symbol, s.strategy_name, s.status) for s in listed] == [("BTC", "s", "idle"), ("ETH", "s", "idle")]
    assert len({s.id for s in listed}) == 2


def test_two_symbols_in_background_keep_separate_state():
    rows_a = flat_candles(300, {40: (101.5, 100.0)})
    rows_b = flat_candles(300, {30: (100.0, 98.5)})

    async def get_candles(symbol, interval, since, limit):
        return await ArrayExchange(rows_a if symbol == "AAA" else rows_b).get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 299 * M)
    asked = set()

    def once_per_symbol(symbol, when):
        if symbol in asked:
            return None
        asked.add(symbol)
        return dict(LONG)

    bk.add_strategy(strategy_name="s", interval="1m", get_signal=once_per_symbol)

    async def main():
        finished = []
        event = asyncio.Event()
        bk.listen_done_backtest(lambda e: (finished.append(e.symbol), len(finished) == 2 and event.set()))
        bk.Backtest.background("AAA", strategy_name="s", exchange_name="ex", frame_name="fr")
        bk.Backtest.background("BBB", strategy_name="s", exchange_name="ex", frame_name="fr")
        await asyncio.wait_for(event.wait(), 10)
        return sorted(finished)

    assert asyncio.run(main()) == ["AAA", "BBB"]
    a = asyncio.run(bk.Backtest.get_data("AAA", "s"))
    b = asyncio.run(bk.Backtest.get_data("BBB", "s"))
    assert [t.close_reason for t in a.signal_list] == ["take_profit"]
    assert [t.close_reason for t in b.signal_list] == ["stop_loss"]
    assert "AAA" in asyncio.run(bk.Backtest.get_report("AAA", "s")) and "BBB" not in asyncio.run(bk.Backtest.get_report("AAA", "s"))


# --- events -------------------------------------------------------------------------------------

def test_listener_order_unsubscribe_once_and_raising_listener():
    fn, _ = recording(LONG, every=False)
    setup(flat_candles(200, {40: (101.5, 100.0)}), fn, end_min=60)
    seen, async_seen, once, errors = [], [], [], []

    async def slow(result):
        await asyncio.sleep(0)
        async_seen.append(result.action)

    def boom(result):
        raise ValueError("listener bug")

    bk.listen_signal_backtest(lambda r: seen.append(r.action))
    bk.listen_signal_backtest(slow)
    bk.listen_signal_backtest(boom)
    bk.listen_signal_backtest_once(lambda r: r.action == "closed", once.append)
    unsubscribe = bk.listen_signal(lambda r: pytest.fail("unsubscribed listener called"))
    unsubscribe()
    bk.listen_error(errors.append)
    results = asyncio.run(collect())
    assert [r.action for r in results] == ["closed"]  # D8: yields unaffected
    assert seen == async_seen
    assert seen[:2] == ["opened", "closed"] and set(seen[2:]) == {"idle"}
    assert len(once) == 1 and once[0].action == "closed"
    assert len(errors) == len(seen) and all(str(e) == "listener bug" for e in errors)


def test_progress_is_coalesced_and_ends_at_one():
    fn, _ = recording(None)
    setup(flat_candles(1000), fn)
    events = []
    bk.listen_backtest_progress(events.append)
    asyncio.run(collect())
    assert len(events) <= 101
    assert events[-1].progress == 1.0 and events[-1].processed_frames == events[-1].total_frames == 990
    assert [e.progress for e in events] == sorted(e.progress for e in events)


def test_performance_samples():
    fn, _ = recording(LONG, every=False)
    setup(flat_candles(200, {40: (101.5, 100.0)}), fn)
    samples = []
    bk.listen_performance(samples.append)
    asyncio.run(collect())
    kinds = [s.metric_type for s in samples]
    assert kinds[-1] == "backtest_total" and "backtest_signal" in kinds and "backtest_timeframe" in kinds
    assert all(s.duration >= 0 and s.strategy_name == "s" and s.backtest for s in samples)


# --- walker ---------------------------------------------------------------------------------------

def _walker_setup(metric="sharpe_ratio"):
    candles = flat_candles(400, {40: (101.5, 100.0), 150: (100.0, 98.5)})
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 399 * M)
    win = {**LONG}
    lose = {**LONG, "price_take_profit": 110.0}
    bk.add_strategy(strategy_name="none", interval="1m", get_signal=lambda s, w: None)
    bk.add_strategy(strategy_name="winner", interval="1m", get_signal=recording(win, every=False)[0])
    bk.add_strategy(strategy_name="winner2", interval="1m", get_signal=recording(win, every=False)[0])
    bk.add_strategy(strategy_name="loser", interval="1m", get_signal=recording(lose, every=False)[0])
    bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr",
                  strategies=["none", "loser", "winner", "winner2"], metric=metric)


async def _walk(name="w"):
    return [p async for p in bk.Walker.run("BTC", walker_name=name)]


def test_walker_ranks_by_metric_none_never_wins_ties_keep_earlier():
    _walker_setup(metric="total_pnl")
    complete, progress = [], []
    bk.listen_walker_complete(complete.append)
    bk.listen_walker_progress(progress.append)
    steps = asyncio.run(_walk())
    assert [p.strategy_name for p in steps] == ["none", "loser", "winner", "winner2"]
    assert steps[0].metric_value is None and steps[0].best_strategy is None
    assert steps[1].best_strategy == "loser"  # a negative value still beats None
    assert steps[1].metric_value < 0
    assert steps[2].best_strategy == "winner" and steps[3].best_strategy == "winner"  # tie: earlier keeps it
    assert [p.processed_strategies for p in progress] == [1, 2, 3, 4]
    assert complete[0].best_strategy == "winner" and complete[0].best_stats.total_signals == 1
    data = asyncio.run(bk.Walker.get_data("BTC", "w"))
    assert [r.strategy_name for r in data.strategy_results] == ["none", "loser", "winner", "winner2"]
    report = asyncio.run(bk.Walker.get_report("BTC", "w"))
    assert "## Best Strategy: winner" in report and "| 1 | winner 🏆 |" in report
    # the walked strategies are visible to Backtest reports too
    assert asyncio.run(bk.Backtest.get_data("BTC", "loser")).total_signals == 1


def test_walker_strategy_failure_is_reported_and_walk_goes_on(monkeypatch):
    _walker_setup()
    real = trial_module.open_loop

    def flaky(symbol, strategy_name, *args, **kwargs):
        if strategy_name == "loser":
            raise RuntimeError("loser exploded")
        return real(symbol, strategy_name, *args, **kwargs)

    monkeypatch.setattr(trial_module, "open_loop", flaky)
    errors = []
    bk.listen_error(errors.append)
    steps = asyncio.run(_walk())
    assert [p.strategy_name for p in steps] == ["none", "winner", "winner2"]
    assert [str(e) for e in errors] == ["loser exploded"]


def test_stopping_one_walker_leaves_the_other_running():
    _walker_setup()
    bk.add_walker(walker_name="w2", exchange_name="ex", frame_name="fr", strategies=["none", "loser", "winner"])

    async def main():
        async def on_walker(p):
            if p.walker_name == "w":
                await bk.Walker.stop("BTC", "w")

        bk.listen_walker(on_walker)
        done = []
        event = asyncio.Event()
        bk.listen_done_walker(lambda e: (done.append(e.strategy_name), len(done) == 2 and event.set()))
        bk.Walker.background("BTC", walker_name="w")
        bk.Walker.background("BTC", walker_name="w2")
        await asyncio.wait_for(event.wait(), 10)
        return (await bk.Walker.get_data("BTC", "w"), await bk.Walker.get_data("BTC", "w2"), sorted(done))

    w, w2, done = asyncio.run(main())
    assert [r.strategy_name for r in w.strategy_results] == ["none"]
    assert [r.strategy_name for r in w2.strategy_results] == ["none", "loser", "winner"]
    assert done == ["w", "w2"]


def test_walker_get_data_before_run_is_a_clear_error():
    _walker_setup()
    with pytest.raises(bk.BacktestKitError, match="no results for walker 'w' on BTC"):
        asyncio.run(bk.Walker.get_data("BTC", "w"))


def test_async_listener_sees_events_of_concurrent_runs_one_at_a_time_in_order():
    rows = flat_candles(300, {40: (101.5, 100.0)})
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(rows).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 60 * M)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=lambda s, w: None)
    active, overlaps, order = [0], [], {"AAA": [], "BBB": []}

    async def slow_listener(result):
        active[0] += 1
        overlaps.append(active[0])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order[result.symbol].append(result.current_price)
        active[0] -= 1

    bk.listen_signal_backtest(slow_listener)

    async def main():
        async def one(symbol):
            return [r async for r in bk.Backtest.run(symbol, strategy_name="s", exchange_name="ex", frame_name="fr")]
        await asyncio.gather(one("AAA"), one("BBB"))

    asyncio.run(main())
    assert max(overlaps) == 1  # never two calls of the listener at once
    assert len(order["AAA"]) == len(order["BBB"]) == 51  # every idle frame of each run delivered


@pytest.mark.parametrize("symbol", ["", "  ", None, 42])
def test_bad_symbol_is_refused_naming_the_method(symbol):
    fn, _ = recording(None)
    setup(flat_candles(100), fn)
    with pytest.raises(bk.ValidationError, match=r"Backtest.run: symbol must be a non-empty str"):
        bk.Backtest.run(symbol, strategy_name="s", exchange_name="ex", frame_name="fr")
    with pytest.raises(bk.ValidationError, match=r"Live.background: symbol must be a non-empty str"):
        bk.Live.background(symbol, strategy_name="s", exchange_name="ex")

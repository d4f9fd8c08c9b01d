"""Every statistics class has to_dict() with plain values and a notebook table (_repr_html_)."""

from __future__ import annotations

import asyncio
import json

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

T0 = 1_704_067_200_000
M = 60_000


def _setup() -> None:
    ex = ArrayExchange(synthetic_candles(4 * 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="syn", get_candles=ex.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (3 * 1440 - 1) * M)
    bk.add_strategy(strategy_name="a", interval="5m", get_signal=rule_strategy(5, 30, 1.0, 0.6, 240, anchor="price"))
    bk.add_strategy(strategy_name="b", interval="5m", get_signal=rule_strategy(10, 60, 1.0, 0.6, 240, anchor="price"))
    bk.add_walker("w", "syn", "f", ["a", "b"], metric="total_pnl")
    bk.add_sweep("sw", lambda fast: rule_strategy(fast, 40, 1.0, 0.6, 240, anchor="price"), {"fast": [5, 10]},
                 exchange_name="syn", frame_name="f", interval="5m", metric="total_pnl")
    bk.add_walk_forward("wf", "sw", train="1d", test="1d")


async def _all():
    async for _ in bk.Walker.run("BTCUSDT", walker_name="w"):
        pass
    async for _ in bk.Sweep.run("BTCUSDT", sweep_name="sw"):
        pass
    async for _ in bk.WalkForward.run("BTCUSDT", walk_name="wf"):
        pass
    return {
        "backtest": await bk.Backtest.get_data("BTCUSDT", "a"),
        "walker": await bk.Walker.get_data("BTCUSDT", "w"),
        "sweep": await bk.Sweep.get_data("BTCUSDT", "sw"),
        "walk_forward": await bk.WalkForward.get_data("BTCUSDT", "wf"),
        "schedule": await bk.Schedule.get_data("BTCUSDT", "a"),
        "performance": await bk.Performance.get_data("BTCUSDT", "a"),
        "heat": await bk.Heat.get_data("a"),
        "risk": await bk.Risk.get_data("BTCUSDT", "a"),
        "partial": await bk.Partial.get_data("BTCUSDT", "a"),
    }


@pytest.fixture(scope="module")
def results():
    bk.reset()
    _setup()
    data = asyncio.run(_all())
    yield data
    bk.reset()


@pytest.mark.parametrize("kind", ["backtest", "walker", "sweep", "walk_forward", "schedule", "performance",
                                  "heat", "risk", "partial"])
def test_to_dict_is_plain_and_repr_html_is_a_table(results, kind):
    stats = results[kind]
    d = stats.to_dict()
    json.dumps(d, default=str)  # plain values all the way down (numbers, strings, lists, dicts)
    for name in type(stats).__dataclass_fields__:
        assert name in d
    page = stats._repr_html_()
    assert page.startswith("<table><caption>") and type(stats).__name__ in page


def test_nested_results_show_as_rows(results):
    sweep = results["sweep"]
    page = sweep._repr_html_()
    assert page.count("<tr>") >= 1 + len(sweep.trials)  # the trials as a table
    assert sweep.to_dict()["best"]["params"] == sweep.best.params
    walker = results["walker"].to_dict()
    assert [r["strategy_name"] for r in walker["strategy_results"]] == ["a", "b"]
    assert walker["strategy_results"][0]["stats"]["total_signals"] == results["backtest"].total_signals

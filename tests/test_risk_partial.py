"""Risk profiles (shared books, portfolio limits, rejections, reports) and partial profit/loss."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange
from helpers.market import flat_market

T0 = 1_704_067_200_000
M = 60_000


pytestmark = pytest.mark.usefixtures("in_tmp_dir")  # state files go under ./dump


def candles(minutes: int, closes: dict[int, float] | None = None) -> np.ndarray:
    return flat_market(minutes, prices=closes)


LONG = {"position": "long", "price_take_profit": 110.0, "price_stop_loss": 90.0, "minute_estimated_time": 120}


def max_positions(limit: int):
    def check(args):
        if args.active_position_count >= limit:
            raise ValueError(f"already {args.active_position_count} open")
    return check


def test_portfolio_limit_rejects_the_third_concurrent_position_across_strategies_and_symbols():
    rejected, allowed, risk_events, validation_errors = [], [], [], []
    bk.add_risk(risk_name="portfolio", validations=[{"validate": max_positions(2), "note": "max 2 positions"}],
                callbacks={"on_rejected": lambda s, a: rejected.append((a.strategy_name, s)),
                           "on_allowed": lambda s, a: allowed.append((a.strategy_name, s))})
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles(300)).get_candles)
    bk.add_strategy(strategy_name="a", interval="1m", get_signal=lambda s, w: dict(LONG), risk_name="portfolio")
    bk.add_strategy(strategy_name="b", interval="1m", get_signal=lambda s, w: dict(LONG), risk_list=["portfolio"])
    bk.listen_risk(risk_events.append)
    bk.listen_validation(validation_errors.append)

    async def first_result(symbol, strategy):
        gen = bk.Live.run(symbol, strategy_name=strategy, exchange_name="ex", clock=bk.VirtualClock(T0 + 10 * M + 1))
        return gen, await gen.__anext__()  # the generator stays suspended with its position open

    async def main():
        g1, r1 = await first_result("BTC", "a")
        g2, r2 = await first_result("ETH", "b")
        g3 = bk.Live.run("SOL", strategy_name="a", exchange_name="ex",
                         clock=bk.VirtualClock(T0 + 10 * M + 1, T0 + 12 * M))
        third = [r async for r in g3]
        for g in (g1, g2):
            await g.aclose()
        return r1, r2, third

    r1, r2, third = asyncio.run(main())
    assert (r1.action, r2.action) == ("opened", "opened")
    assert third == []  # SOL never opens: two positions already share the profile
    assert rejected and all(x == ("a", "SOL") for x in rejected)
    assert ("a", "BTC") in allowed and ("b", "ETH") in allowed
    event = risk_events[0]
    assert (event.symbol, event.strategy_name, event.active_position_count, event.comment) == ("SOL", "a", 2, "max 2 positions")
    assert event.timestamp == T0 + 10 * M and event.backtest is False  # D10: execution time (the tick's minute)
    assert str(validation_errors[0]) == "already 2 open"
    # the live book is persisted
    saved = json.loads(Path("dump/data/risk/portfolio.json").read_text())
    assert sorted((p["strategy_name"], p["symbol"]) for p in saved) == [("a", "BTC"), ("b", "ETH")]
    stats = asyncio.run(bk.Risk.get_data("SOL", "a", backtest=False))
    assert stats.total_rejections == len(rejected) and stats.by_symbol == {"SOL": len(rejected)}


def test_backtest_rejection_by_signal_content_is_reported():
    def no_shorts(args):
        if args.pending_signal.position == "short":
            raise ValueError("shorts disabled")

    bk.add_risk(risk_name="longs-only", validations=[no_shorts])
    short = {"position": "short", "price_take_profit": 90.0, "price_stop_loss": 110.0, "minute_estimated_time": 30}
    asked = []

    def get_signal(symbol, when):
        asked.append(when)
        return dict(short) if len(asked) <= 2 else None

    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles(100)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 20 * M)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal, risk_name="longs-only")
    events = []
    bk.listen_risk(events.append)

    async def main():
        return [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")]

    assert asyncio.run(main()) == []
    assert [(e.comment, e.timestamp, e.backtest) for e in events] == [("N/A", T0 + 10 * M, True), ("N/A", T0 + 11 * M, True)]
    report = asyncio.run(bk.Risk.get_report("BTC", "s"))
    assert "# Risk Rejection Report: BTC:s" in report and "**Total rejections:** 2" in report and "- BTC: 2" in report


def test_missing_risk_profile_is_named_at_run():
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles(10)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0, end_date=T0 + 5 * M)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=lambda s, w: None, risk_list=["ghost"])
    with pytest.raises(bk.ValidationError, match=r"risk 'ghost' not found \(called from Backtest.run\)"):
        bk.Backtest.run("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")


def test_partial_levels_fire_once_in_order_with_callbacks():
    # Long from 100 with TP 110: the candle closes climb 102, 104, 106, 104, 108 then fall back.
    path = {20: 102.0, 21: 104.0, 22: 106.0, 23: 104.0, 24: 108.0, 25: 95.0}
    data = candles(200, path)
    asked = []

    def get_signal(symbol, when):
        asked.append(when)
        return dict(LONG) if len(asked) == 1 else None

    progress = []
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(data).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 40 * M)
    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal,
                    callbacks={"on_partial_profit": lambda s, sig, p, pct, bt: progress.append(("p", round(pct, 6))),
                               "on_partial_loss": lambda s, sig, p, pct, bt: progress.append(("l", round(pct, 6)))})
    profits, losses = [], []
    bk.listen_partial_profit(profits.append)
    bk.listen_partial_loss(losses.append)

    async def main():
        return [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")]

    asyncio.run(main())
    # VWAP (5 candles incl. the current one, volumes 1) at minutes 20..24: 100.4, 101.2, 102.4, 103.2, 104.8
    assert [(e.level, e.timestamp) for e in profits] == [(10, T0 + 21 * M), (20, T0 + 22 * M), (30, T0 + 23 * M),
                                                         (40, T0 + 24 * M)]
    assert progress[:5] == [("p", 4.0), ("p", 12.0), ("p", 24.0), ("p", 32.0), ("p", 48.0)]
    assert all(e.signal.position == "long" and e.backtest for e in profits)
    # then the price falls to 95: the loss side counts separately (progress to SL 90)
    assert losses and losses[0].level == 10
    stats = asyncio.run(bk.Partial.get_data("BTC", "s"))
    assert stats.total_profit == len(profits) and stats.total_loss == len(losses)
    assert "| PROFIT | BTC | s |" in asyncio.run(bk.Partial.get_report("BTC", "s"))


def test_constant_levels():
    assert (bk.Constant.TP_LEVEL1, bk.Constant.TP_LEVEL2, bk.Constant.TP_LEVEL3) == (30, 60, 90)
    assert (bk.Constant.SL_LEVEL1, bk.Constant.SL_LEVEL2) == (40, 80)


def test_backtest_portfolio_limit_sees_positions_open_at_the_same_simulated_time():
    """Backtests of three strategies on three symbols, run one after another, share the
    profile: the third is refused while both others hold a position at that moment."""
    bk.add_risk(risk_name="portfolio", validations=[{"validate": max_positions(2), "note": "max 2 positions"}])
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles(300)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 200 * M)

    def at(*minutes, minutes_open=60):
        def get_signal(symbol, when):
            if int(when.timestamp() * 1000) in [T0 + m * M for m in minutes]:
                return {**LONG, "minute_estimated_time": minutes_open}
            return None
        return get_signal

    bk.add_strategy(strategy_name="a", interval="1m", get_signal=at(10), risk_name="portfolio")    # open 10..70
    bk.add_strategy(strategy_name="b", interval="1m", get_signal=at(20), risk_name="portfolio")    # open 20..80
    bk.add_strategy(strategy_name="c", interval="1m", get_signal=at(30, 90), risk_name="portfolio")
    rejected = []
    bk.listen_risk(rejected.append)

    async def run(symbol, strategy):
        return [r async for r in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name="ex", frame_name="fr")]

    assert len(asyncio.run(run("BTC", "a"))) == 1
    assert len(asyncio.run(run("ETH", "b"))) == 1
    third = asyncio.run(run("SOL", "c"))
    assert [r.signal.pending_at for r in third] == [T0 + 90 * M]  # 30 refused, 90 allowed
    assert [(e.symbol, e.timestamp, e.active_position_count) for e in rejected] == [("SOL", T0 + 30 * M, 2)]
    # re-running "a" replaces its own positions instead of counting them twice
    assert len(asyncio.run(run("BTC", "a"))) == 1
    assert [r.signal.pending_at for r in asyncio.run(run("SOL", "c"))] == [T0 + 90 * M]

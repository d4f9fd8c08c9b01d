"""Portfolios: several symbols and strategies, one account, one time order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles
from conftest import T0, M, long_signal

SYMBOLS = ["AAA", "BBB", "CCC"]


def _market(symbols=SYMBOLS, days=3):
    sources = {s: ArrayExchange(synthetic_candles(days * 1440, start_ms=T0, seed=10 + i)) for i, s in enumerate(symbols)}

    async def get_candles(symbol, interval, since, limit):
        return await sources[symbol].get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=datetime.fromtimestamp((T0 + 1440 * M) / 1000, UTC),
                 end_date=datetime.fromtimestamp((T0 + 2 * 1440 * M) / 1000, UTC))


def _key(r):
    return (r.action, r.symbol, r.signal.position, r.signal.scheduled_at, r.signal.pending_at, r.close_timestamp,
            round(r.current_price, 9), getattr(r, "close_reason", None))


async def _collect(gen):
    return [r async for r in gen]


def test_each_symbol_trades_as_alone_when_no_limit_or_cash_intervenes():
    bk.add_sizing(sizing_name="small", method="fixed-percentage", risk_percentage=0.05)  # ~5 % notional each
    _market()
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(5, 30, 0.8, 0.6, 240),
                    sizing_name="small")
    together = asyncio.run(_collect(bk.Portfolio.run(SYMBOLS, strategies="rule", exchange_name="ex",
                                                     frame_name="fr")))
    assert len(together) >= 6
    closes = [r.close_timestamp for r in together]
    assert closes == sorted(closes)  # every symbol's results in one time order
    for symbol in SYMBOLS:
        alone = asyncio.run(_collect(bk.Backtest.run(symbol, strategy_name="rule", exchange_name="ex",
                                                     frame_name="fr")))
        assert [_key(r) for r in together if r.symbol == symbol] == [_key(r) for r in alone]
    stats = asyncio.run(bk.Portfolio.get_data("fr"))
    assert stats.total_signals == sum(1 for r in together if r.action == "closed")
    assert [(row.symbol, row.strategy_name) for row in stats.rows] == [(s, "rule") for s in SYMBOLS]
    assert stats.final_equity == pytest.approx(10_000 + sum(row.pnl_money for row in stats.rows), rel=1e-9)


def _three_concurrent(risk_name=None):
    """Each symbol opens a 2-hour long at minutes 10, 20, 30 of the frame's first hour."""
    starts = {"AAA": 10, "BBB": 20, "CCC": 30}
    t_frame = T0 + 1440 * M

    async def signal(symbol, when):
        if (int(when.timestamp() * 1000) - t_frame) // M != starts[symbol]:
            return None
        p = await bk.get_average_price(symbol)
        return long_signal(tp=p * 1.5, sl=p * 0.98, minutes=120)

    bk.add_strategy(strategy_name="hold", interval="1m", get_signal=signal, risk_name=risk_name,
                    sizing_name="forty")


def test_cash_refuses_the_third_concurrent_position():
    # 0.8 % of equity at risk over a 2 % stop: 40 % of equity in notional per trade
    bk.add_sizing(sizing_name="forty", method="fixed-percentage", risk_percentage=0.8)
    _market()
    _three_concurrent()
    rejected = []
    bk.listen_risk(rejected.append)
    results = asyncio.run(_collect(bk.Portfolio.run(SYMBOLS, strategies="hold", exchange_name="ex",
                                                    frame_name="fr")))
    opened = {r.symbol for r in results if r.action == "closed" and r.signal.pending_at < T0 + 1500 * M}
    assert opened == {"AAA", "BBB"}
    assert [(e.symbol, e.comment) for e in rejected] == [("CCC", "insufficient equity")]
    assert asyncio.run(bk.Risk.get_data("CCC", "hold")).total_rejections == 1


def test_a_risk_limit_of_two_positions_holds_across_symbols_in_simulated_time():
    bk.add_sizing(sizing_name="forty", method="fixed-percentage", risk_percentage=0.1)

    def at_most_two(args):
        if args.active_position_count >= 2:
            raise ValueError("two already open")

    bk.add_risk(risk_name="two", validations=[{"validate": at_most_two, "note": "max 2 positions"}])
    _market()
    _three_concurrent(risk_name="two")
    rejected = []
    bk.listen_risk(rejected.append)
    results = asyncio.run(_collect(bk.Portfolio.run(SYMBOLS, strategies="hold", exchange_name="ex",
                                                    frame_name="fr")))
    first_hour = [r for r in results if r.signal.pending_at < T0 + 1500 * M]
    assert {r.symbol for r in first_hour} == {"AAA", "BBB"}
    assert [(e.symbol, e.comment, e.active_position_count) for e in rejected] == [("CCC", "max 2 positions", 2)]


def test_portfolio_report_and_dump(tmp_path):
    bk.add_sizing(sizing_name="small", method="fixed-percentage", risk_percentage=0.05)
    _market(["AAA", "BBB"], days=2)
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(5, 30, 0.8, 0.6, 240),
                    sizing_name="small")
    bk.add_strategy(strategy_name="rule2", interval="15m", get_signal=rule_strategy(3, 20, 0.8, 0.6, 240),
                    sizing_name="small")
    asyncio.run(_collect(bk.Portfolio.run(["AAA", "BBB"], strategies=["rule", "rule2"], exchange_name="ex",
                                          frame_name="fr")))
    report = asyncio.run(bk.Portfolio.get_report("fr"))
    assert report.startswith("# Portfolio Report: fr") and "## Account" in report
    assert "| AAA | rule2 |" in report and "| BBB | rule |" in report
    path = asyncio.run(bk.Portfolio.dump("fr", path=str(tmp_path)))
    assert path.endswith("fr.md")
    equity = asyncio.run(bk.Portfolio.get_equity("fr", freq="1h"))
    assert len(equity) >= 24 and equity.iloc[-1] == pytest.approx(asyncio.run(bk.Portfolio.get_data("fr")).final_equity)
    assert [s.status for s in asyncio.run(bk.Portfolio.list())] == ["done"]


def test_portfolio_refuses_bad_input():
    _market()
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(5, 30, 0.8, 0.6, 240))
    with pytest.raises(bk.ValidationError, match="symbols"):
        bk.Portfolio.run([], strategies="rule", exchange_name="ex", frame_name="fr")
    with pytest.raises(bk.ValidationError, match="duplicates"):
        bk.Portfolio.run(["AAA", "AAA"], strategies="rule", exchange_name="ex", frame_name="fr")
    with pytest.raises(bk.ValidationError, match="nope"):
        bk.Portfolio.run(["AAA"], strategies="nope", exchange_name="ex", frame_name="fr")
    with pytest.raises(bk.ValidationError, match="no portfolio has run"):
        asyncio.run(bk.Portfolio.get_data("fr"))

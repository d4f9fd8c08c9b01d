"""Money, not only percentages: quantities, PnL in money, equity marked to market, statistics on
equity (cross-checked with quantstats), sizing schemas in runs, and what the account cannot fund."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

import backtest_kit as bk
from conftest import SYMBOL, long_signal, ms, pnl_long, pnl_short, short_signal

FEE, SLIP = 0.1, 0.1  # the defaults, in percent


def _three_trades(kit):
    """Flat 100, with three exits: a long to TP 102 at minute 10, a short to TP 98 at minute 40
    (opened at 100), a long stopped at 98 at minute 70."""
    kit.flat(-10, 120).candle(5, h=101, l=100, c=101).candle(10, h=102.5)
    kit.candle(40, l=97.5).candle(70, l=97.5)
    kit.setup(frame=(0, 100), signals={0: long_signal(tp=102, sl=98), 30: short_signal(tp=98, sl=102),
                                       60: long_signal(tp=102, sl=98)})
    return kit.run()


def test_three_trades_by_hand_quantities_money_and_equity(kit):
    results = _three_trades(kit)
    assert [r.close_reason for r in results] == ["take_profit", "take_profit", "stop_loss"]
    # All of the equity each time: q = equity / price_open; PnL in money = notional x pnl %.
    p1, p2, p3 = pnl_long(100, 102), pnl_short(100, 98), pnl_long(100, 98)
    e0 = 10_000.0
    q1 = e0 / 100
    e1 = e0 + q1 * 100 * p1 / 100
    q2 = e1 / 100
    e2 = e1 + q2 * 100 * p2 / 100
    q3 = e2 / 100
    e3 = e2 + q3 * 100 * p3 / 100
    trades = asyncio.run(bk.Backtest.get_trades(SYMBOL, kit.strategy_name))
    assert trades["quantity"].tolist() == pytest.approx([q1, q2, q3], rel=1e-12)
    assert trades["pnl_money"].tolist() == pytest.approx([e1 - e0, e2 - e1, e3 - e2], rel=1e-12)
    assert trades["notional"].tolist() == pytest.approx([e0, e1, e2], rel=1e-12)
    stats = kit.stats()
    assert stats.initial_capital == 10_000 and stats.final_equity == pytest.approx(e3, rel=1e-12)
    assert stats.total_return_pct == pytest.approx((e3 / e0 - 1) * 100, rel=1e-12)
    # Marked to market at 1m closes: at minute 5 (close 101) trade 1 is open; fees and
    # slippage of the entry, (fee + slippage) % of the notional, are already paid.
    eq = asyncio.run(bk.Backtest.get_equity(SYMBOL, kit.strategy_name, freq="1m"))
    at = {int(t.timestamp() * 1000): v for t, v in eq.items()}
    assert at[ms(5)] == pytest.approx(e0 + q1 * (101 - 100) - e0 * (FEE + SLIP) / 100, rel=1e-12)
    assert at[ms(20)] == pytest.approx(e1, rel=1e-12)  # flat between trades: exactly realised
    assert at[ms(100)] == pytest.approx(e3, rel=1e-12)
    # Drawdown on equity, in percent of the running peak (the initial capital counts as one)
    values = np.concatenate([[e0], eq.to_numpy()])
    peaks = np.maximum.accumulate(values)
    assert stats.max_drawdown_pct == pytest.approx(((1 - values / peaks) * 100).max(), rel=1e-9)
    assert stats.max_drawdown_pct > 0


def test_compounding_over_many_trades(kit):
    kit.flat(-10, 2100)
    signals = {}
    for k in range(20):
        start = 100 * k
        kit.candle(start + 10, h=102.5)  # each long reaches TP 102 ten minutes in
        signals[start] = long_signal(tp=102, sl=98, minutes=60)
    kit.setup(frame=(0, 2050), signals=signals)
    results = kit.run()
    assert len(results) == 20
    growth = math.prod(1 + r.pnl.pnl_percentage / 100 for r in results)
    stats = kit.stats()
    assert stats.final_equity == pytest.approx(10_000 * growth, rel=1e-12)
    assert stats.total_return_pct == pytest.approx((growth - 1) * 100, rel=1e-12)
    assert stats.total_pnl == pytest.approx(20 * pnl_long(100, 102))  # the per-trade sum, unchanged


def test_initial_capital_is_configurable(kit):
    bk.set_config(CC_INITIAL_CAPITAL=2_500)
    _three_trades(kit)
    trades = asyncio.run(bk.Backtest.get_trades(SYMBOL, kit.strategy_name))
    assert trades["quantity"].iloc[0] == pytest.approx(25.0)


@pytest.mark.parametrize("method, params, expected_first_qty", [
    # 1 % of 10,000 at risk over the 2-point stop distance: 50 units
    ("fixed-percentage", dict(risk_percentage=1), 10_000 * 1 / 100 / 2),
    # Kelly with even odds (fewer than 10 closed trades) and R = TP/SL distance = 1:
    # k = (0.5 * 1 - 0.5) / 1 = 0 -> no trade; R = 2 gives k = 0.25, x 0.25 multiplier
    ("kelly-criterion", dict(kelly_multiplier=0.25), 10_000 * 0.25 * 0.25 / 100),
    # ATR of flat candles with one 2-point candle in the 14 before: (2 + 13 x 0) / 14
    ("atr-based", dict(risk_percentage=0.1, atr_multiplier=2), 10_000 * 0.1 / 100 / (2 / 14 * 2)),
])
def test_each_sizing_method_sizes_the_trade_in_a_run(kit, method, params, expected_first_qty):
    bk.add_sizing(sizing_name="z", method=method, **params)
    kit.flat(-30, 120).candle(-5, h=101, l=99).candle(10, h=104.5)
    tp = 104 if method == "kelly-criterion" else 102
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=tp, sl=98)}, sizing_name="z")
    (r,) = kit.run()
    assert r.signal.quantity == pytest.approx(expected_first_qty, rel=1e-12)


def test_a_trade_the_account_cannot_fund_is_a_risk_rejection(kit):
    # Risking 1 % over a 0.6 % stop asks for 1.67x the equity in notional: refused
    bk.add_sizing(sizing_name="tight", method="fixed-percentage", risk_percentage=1)
    bk.set_config(CC_MIN_STOPLOSS_DISTANCE_PERCENT=0.1)
    kit.flat(-10, 120)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=99.4)}, sizing_name="tight")
    events = []
    bk.listen_risk(events.append)
    assert kit.run() == []
    assert [e.comment for e in events] == ["insufficient equity"]
    risk = asyncio.run(bk.Risk.get_data(SYMBOL, kit.strategy_name))
    assert risk.total_rejections == 1


def test_equity_statistics_agree_with_quantstats(kit):
    qs = pytest.importorskip("quantstats")
    import pandas as pd
    rng = np.random.default_rng(5)
    days = 40
    kit.flat(-10, days * 1440)
    signals = {}
    for d in range(days - 1):
        start = d * 1440 + 60
        up = bool(rng.random() < 0.55)
        kit.candle(start + 100, h=102.5) if up else kit.candle(start + 100, l=97.5)
        signals[start] = long_signal(tp=102, sl=98, minutes=600)
    kit.setup(frame=(0, days * 1440 - 1), signals=signals)
    kit.run()
    stats = kit.stats()
    equity = asyncio.run(bk.Backtest.get_equity(SYMBOL, kit.strategy_name, freq="1d"))
    returns = pd.concat([pd.Series([10_000.0]), equity.reset_index(drop=True)]).pct_change().dropna()
    returns.index = equity.index
    assert stats.sharpe == pytest.approx(qs.stats.sharpe(returns, periods=365), rel=1e-9)
    assert stats.sortino == pytest.approx(qs.stats.sortino(returns, periods=365), rel=1e-9)
    assert stats.volatility_ann_pct == pytest.approx(qs.stats.volatility(returns, periods=365) * 100, rel=1e-9)
    assert stats.total_return_pct == pytest.approx(qs.stats.comp(returns) * 100, rel=1e-9)
    # quantstats' max drawdown on daily closes; ours also sees intraday lows, so it is at least as deep
    assert stats.max_drawdown_pct >= -qs.stats.max_drawdown(returns) * 100 - 1e-9


def test_report_shows_the_account_block_first(kit):
    _three_trades(kit)
    report = asyncio.run(bk.Backtest.get_report(SYMBOL, kit.strategy_name))
    account, trades = report.index("## Account"), report.index("## Trades")
    assert account < trades < report.index("| Signal ID |")
    assert "**Equity:** 10,000.00 -> " in report and "compounded" in report
    assert "**Total PNL (sum of per-trade %):**" in report

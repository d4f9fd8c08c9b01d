"""Backtest statistics over closed trades (ENGINE.md "Statistics", D4, D13, D14)."""

from __future__ import annotations

import math

import pytest

import backtest_kit as bk
from backtest_kit._engine.stats import backtest_statistics
from conftest import SYMBOL, long_signal, ms, short_signal

pytestmark = pytest.mark.usefixtures("no_retry_delay")

REL = 1e-12


def approx(x):
    return pytest.approx(x, rel=REL)


def trade(pnl: float, minutes: int, *, opened_at: int = 0) -> bk.ClosedResult:
    """A closed trade with the given PnL % held for `minutes`."""
    row = bk.SignalRow(id=f"t{opened_at}", position="long", price_open=100.0, price_take_profit=110.0,
                       price_stop_loss=90.0, minute_estimated_time=minutes, note="", symbol=SYMBOL,
                       strategy_name="st", exchange_name="ex", scheduled_at=ms(opened_at),
                       pending_at=ms(opened_at))
    return bk.ClosedResult(signal=row, current_price=100.0, symbol=SYMBOL, strategy_name="st",
                           exchange_name="ex", backtest=True, close_reason="time_expired",
                           close_timestamp=ms(opened_at + minutes),
                           pnl=bk.PnL(pnl, 100.0, 100.0))


# pnls 2, -1, 3, -2 held 60, 120, 180, 240 minutes
MIXED = [trade(2.0, 60), trade(-1.0, 120, opened_at=100), trade(3.0, 180, opened_at=300),
         trade(-2.0, 240, opened_at=600)]


def test_counts_and_win_rate():
    s = backtest_statistics(MIXED)
    assert (s.total_signals, s.win_count, s.loss_count) == (4, 2, 2)
    assert s.win_rate == 50.0
    assert s.signal_list == MIXED


def test_avg_and_total_pnl():
    s = backtest_statistics(MIXED)
    assert s.total_pnl == approx(2.0)
    assert s.avg_pnl == approx(0.5)


def test_std_dev_is_population():
    # deviations 1.5, -1.5, 2.5, -2.5 -> squares sum 17 -> /4 -> sqrt(4.25)
    s = backtest_statistics(MIXED)
    assert s.std_dev == approx(math.sqrt(4.25))


def test_sharpe_and_annualized_sharpe():
    s = backtest_statistics(MIXED)
    assert s.sharpe_ratio == approx(0.5 / math.sqrt(4.25))
    assert s.annualized_sharpe_ratio == approx(0.5 / math.sqrt(4.25) * math.sqrt(365))


def test_certainty_ratio_is_avg_win_over_abs_avg_loss():
    # avg win 2.5, avg loss -1.5
    assert backtest_statistics(MIXED).certainty_ratio == approx(2.5 / 1.5)


def test_expected_yearly_returns():
    # avg duration 150 min = 150/1440 days; 0.5 * 365 / (150/1440) = 1752
    assert backtest_statistics(MIXED).expected_yearly_returns == approx(1752.0)


def test_avg_duration_minutes():
    assert backtest_statistics(MIXED).avg_duration_minutes == approx(150.0)


def test_max_drawdown_peak_to_trough():
    # equity 2, 1, 4, 2 -> falls 1 (2 -> 1) and 2 (4 -> 2)
    assert backtest_statistics(MIXED).max_drawdown == approx(2.0)


def test_max_drawdown_spanning_several_losses():
    trades = [trade(p, 10, opened_at=20 * i) for i, p in enumerate([1.0, 4.0, -2.0, -1.5, 0.5, -3.0, 6.0])]
    # equity 1, 5, 3, 1.5, 2, -1, 5: peak 5 -> trough -1 = 6
    assert backtest_statistics(trades).max_drawdown == approx(6.0)


def test_max_drawdown_from_the_starting_zero():
    trades = [trade(-1.0, 10), trade(-2.0, 10, opened_at=20), trade(3.0, 10, opened_at=40)]
    # equity 0 -> -1 -> -3 -> 0: largest fall 3
    assert backtest_statistics(trades).max_drawdown == approx(3.0)


def test_max_drawdown_zero_when_only_rising():
    trades = [trade(1.0, 10), trade(2.0, 10, opened_at=20)]
    assert backtest_statistics(trades).max_drawdown == 0.0


def test_profit_factor_gross_wins_over_gross_losses():
    assert backtest_statistics(MIXED).profit_factor == approx(5.0 / 3.0)


def test_profit_factor_none_and_certainty_zero_without_losses():
    s = backtest_statistics([trade(1.0, 10), trade(2.0, 20, opened_at=30)])
    assert s.profit_factor is None
    assert s.certainty_ratio == 0.0
    assert s.loss_count == 0 and s.win_rate == 100.0


def test_identical_pnls_give_zero_std_and_zero_sharpe():
    # 0.1 summed 7 times is not exactly 0.7: the naive std is ~1.4e-17, not 0 (D13)
    s = backtest_statistics([trade(0.1, 10, opened_at=20 * i) for i in range(7)])
    assert s.std_dev == 0.0
    assert s.sharpe_ratio == 0.0 and s.annualized_sharpe_ratio == 0.0


def test_zero_pnl_is_neither_win_nor_loss():
    s = backtest_statistics([trade(0.0, 10), trade(1.0, 10, opened_at=20), trade(-1.0, 10, opened_at=40)])
    assert (s.win_count, s.loss_count, s.total_signals) == (1, 1, 3)
    assert s.win_rate == approx(100 / 3)


def test_single_trade():
    s = backtest_statistics([trade(1.5, 1440)])
    assert s.std_dev == 0.0 and s.sharpe_ratio == 0.0
    assert s.expected_yearly_returns == approx(1.5 * 365)  # one day held
    assert s.avg_duration_minutes == 1440.0


def test_zero_duration_gives_zero_expected_yearly_returns():
    s = backtest_statistics([trade(1.0, 0)])
    assert s.expected_yearly_returns == 0.0


def test_no_trades_counts_zero_and_ratios_none():
    s = backtest_statistics([])
    assert (s.total_signals, s.win_count, s.loss_count) == (0, 0, 0)
    assert s.signal_list == []
    for name in ("win_rate", "avg_pnl", "total_pnl", "std_dev", "sharpe_ratio",
                 "annualized_sharpe_ratio", "certainty_ratio", "expected_yearly_returns",
                 "max_drawdown", "profit_factor", "avg_duration_minutes"):
        assert getattr(s, name) is None, name


def test_every_trade_counts_beyond_250():
    trades = [trade(1.0 if i % 3 else -0.5, 5, opened_at=10 * i) for i in range(400)]
    s = backtest_statistics(trades)
    assert s.total_signals == 400  # D4: no 250-trade window
    wins = sum(1 for i in range(400) if i % 3)
    assert s.win_count == wins and s.loss_count == 400 - wins


# --- through a run ------------------------------------------------------------------------------

def test_get_data_after_a_run(kit):
    kit.flat(-10, 200)
    kit.candle(10, h=102.5)   # trade 1 (long): TP at 10 -> held 10 min
    kit.candle(30, h=102.5)   # trade 2 (short, opened 20): SL at 30 -> held 10 min
    kit.setup(frame=(0, 100), signals={0: long_signal(), 20: short_signal(), 40: short_signal(minutes=20)})
    results = kit.run()
    assert [r.close_timestamp for r in results] == [ms(10), ms(30), ms(60)]
    s = kit.stats()
    p1 = 1.798 / 100.1 * 100 - 0.2          # long 100 -> 102
    p2 = -2.202 / 99.9 * 100 - 0.2          # short 100 -> 102
    p3 = -0.2 / 99.9 * 100 - 0.2            # short 100 -> 100 (expired)
    assert (s.total_signals, s.win_count, s.loss_count) == (3, 1, 2)
    assert s.total_pnl == approx(p1 + p2 + p3)
    assert s.avg_pnl == approx((p1 + p2 + p3) / 3)
    assert s.avg_duration_minutes == approx((10 + 10 + 20) / 3)
    assert s.profit_factor == approx(p1 / -(p2 + p3))
    assert s.max_drawdown == approx(-(p2 + p3))
    assert s.certainty_ratio == approx(p1 / abs((p2 + p3) / 2))
    assert [t.signal.id for t in s.signal_list] == [r.signal.id for r in results]


def test_get_data_before_any_trade_is_empty(kit):
    kit.flat(-10, 40)
    kit.setup(frame=(0, 10))
    kit.run()
    s = kit.stats()
    assert s.total_signals == 0 and s.sharpe_ratio is None


def test_cancelled_orders_are_not_counted(kit):
    kit.flat(-10, 200).candle(10, l=96.5)
    kit.setup(frame=(0, 20), signals={0: long_signal(tp=101, sl=97, price_open=99)})
    (r,) = kit.run()
    assert r.action == "cancelled"
    assert kit.stats().total_signals == 0

"""Mark-to-market equity and equity statistics: hand-computed cases, properties, quantstats cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest_kit._equity import (
    EquityStats,
    TradeArrays,
    daily_returns,
    equity_curve,
    equity_statistics,
    exposure_mask,
    resample_last,
)
from backtest_kit.errors import ValidationError

M = 60_000
H = 3_600_000
D = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def minutes(n: int, start: int = T0) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * M


def trade(side: int, qty: float, i_in: int, i_out: int, p_in: float, p_out: float,
          fee_in: float = 0.0, fee_out: float = 0.0) -> dict[str, float]:
    return {"side": side, "quantity": qty, "entry_ts": T0 + i_in * M, "exit_ts": T0 + i_out * M,
            "entry_price": p_in, "exit_price": p_out, "entry_fee": fee_in, "exit_fee": fee_out}


def daily_equity(returns: np.ndarray, initial: float = 10_000.0) -> pd.Series:
    idx = pd.date_range("2024-01-01", periods=len(returns), freq="D", tz="UTC")
    return pd.Series(initial * np.cumprod(1.0 + returns), index=idx)


# ---------------------------------------------------------------- equity curve


CLOSE = np.array([100.0, 102.0, 104.0, 103.0, 101.0, 99.0, 100.0, 105.0, 106.0, 107.0])
THREE = [
    trade(+1, 10, 0, 2, 99.5, 104.0),  # A: long win, candles 0..2
    trade(-1, 5, 1, 3, 102.0, 103.0),  # B: short loss, candles 1..3, overlaps A on 1..2
    trade(+1, 20, 4, 7, 101.0, 105.0, fee_in=2.02, fee_out=2.10),  # C: long, 0.1% fees each side
]


def test_hand_computed_three_trades() -> None:
    t = TradeArrays.from_records(THREE)
    # realised: A 10*(104-99.5)=45; B -5*(103-102)=-5; C 20*(105-101)-2.02-2.10=75.88
    assert t.realized_pnl.tolist() == pytest.approx([45.0, -5.0, 75.88], abs=1e-12)
    eq = equity_curve(minutes(10), CLOSE, t, 10_000.0)
    expected = [
        10_005.0,  # 0: A open 10*(100-99.5)=5
        10_025.0,  # 1: A 10*(102-99.5)=25, B -5*(102-102)=0
        10_035.0,  # 2: A closed +45, B open -5*(104-102)=-10
        10_040.0,  # 3: A 45 + B closed -5
        10_037.98,  # 4: 40 + C open 20*(101-101)-2.02
        9_997.98,  # 5: 40 + 20*(99-101)-2.02 = 40-42.02
        10_017.98,  # 6: 40 + 20*(100-101)-2.02 = 40-22.02
        10_115.88,  # 7: 40 + C closed 75.88
        10_115.88,  # 8: flat
        10_115.88,  # 9: flat
    ]
    assert eq.tolist() == pytest.approx(expected, abs=1e-9)
    assert exposure_mask(minutes(10), t).tolist() == [True] * 8 + [False] * 2


def test_flat_equity_is_exactly_initial_plus_realised() -> None:
    # Units opened and removed in a float cumsum can leave ulps behind; flat candles must not.
    t = TradeArrays.from_records([trade(+1, 0.1, 0, 1, 1.0, 1.3), trade(-1, 0.2, 1, 2, 1.1, 0.7),
                                  trade(+1, 0.3, 2, 3, 0.7, 0.9)])
    eq = equity_curve(minutes(6), np.array([1.0, 1.1, 0.7, 0.9, 3.3, 7.7]), t, 1.0)
    assert eq[4] == eq[5] == 1.0 + np.cumsum(t.realized_pnl)[-1]


def test_same_candle_round_trip_and_no_trades() -> None:
    ts = minutes(3)
    t = TradeArrays.from_records([trade(-1, 2, 1, 1, 50.0, 49.0, 0.5, 0.5)])
    # -2*(49-50) - 1 = +1 from candle 1's close on; never marked open
    assert equity_curve(ts, np.array([50.0, 60.0, 70.0]), t, 100.0).tolist() == [100.0, 101.0, 101.0]
    assert exposure_mask(ts, t).tolist() == [False, True, False]
    empty = TradeArrays.empty()
    assert len(empty) == 0
    assert equity_curve(ts, np.ones(3), empty, 5.0).tolist() == [5.0, 5.0, 5.0]
    assert not exposure_mask(ts, empty).any()


def test_compounding_equals_product_of_growth_factors() -> None:
    rng = np.random.default_rng(7)
    n_trades, f, initial = 300, 0.001, 1_000.0
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 2 * n_trades)))
    sides = rng.choice([-1, 1], n_trades)
    equity, growth, records = initial, [], []
    for k in range(n_trades):
        p_in, p_out, s = close[2 * k], close[2 * k + 1], int(sides[k])
        qty = equity / (p_in * (1 + f))  # all equity: notional plus entry fee
        records.append(trade(s, qty, 2 * k, 2 * k + 1, p_in, p_out, f * qty * p_in, f * qty * p_out))
        g = 1 + (s * (p_out - p_in) - f * p_in - f * p_out) / (p_in * (1 + f))
        growth.append(g)
        equity *= g
    eq = equity_curve(minutes(2 * n_trades), close, TradeArrays.from_records(records), initial)
    assert eq[-1] == pytest.approx(initial * np.prod(growth), rel=1e-9)
    # after each exit candle equity is the running product
    assert eq[1::2] == pytest.approx(initial * np.cumprod(growth), rel=1e-9)
    stats = equity_statistics(pd.Series(eq, index=pd.to_datetime(minutes(2 * n_trades), unit="ms", utc=True)),
                              initial_capital=initial)
    assert stats.total_return_pct == pytest.approx((np.prod(growth) - 1) * 100, rel=1e-9)


def reference_equity(close: list[float], trades: list[dict[str, float]], initial: float) -> list[float]:
    """Slow, obvious loop: each candle, each trade."""
    out = []
    for i in range(len(close)):
        ts = T0 + i * M
        e = initial
        for t in trades:
            sq = t["side"] * t["quantity"]
            if t["exit_ts"] <= ts:
                e += sq * (t["exit_price"] - t["entry_price"]) - t["entry_fee"] - t["exit_fee"]
            elif t["entry_ts"] <= ts:
                e += sq * (close[i] - t["entry_price"]) - t["entry_fee"]
        out.append(e)
    return out


@st.composite
def market(draw: st.DrawFn) -> tuple[list[float], list[dict[str, float]]]:
    n = draw(st.integers(1, 40))
    price = st.floats(1.0, 1_000.0, allow_nan=False)
    close = draw(st.lists(price, min_size=n, max_size=n))
    trades = []
    for _ in range(draw(st.integers(0, 8))):
        i_in = draw(st.integers(0, n - 1))
        i_out = draw(st.integers(i_in, n - 1))
        fee = st.floats(0.0, 10.0, allow_nan=False)
        trades.append(trade(draw(st.sampled_from([-1, 1])), draw(st.floats(0.01, 100.0)), i_in, i_out,
                            draw(price), draw(price), draw(fee), draw(fee)))
    return close, trades


# derandomized for reproducible CI; the autouse library-reset fixture of conftest is harmless here
@settings(derandomize=True, max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(market())
def test_property_vectorised_equals_reference(m: tuple[list[float], list[dict[str, float]]]) -> None:
    close, trades = m
    t = TradeArrays.from_records(trades)
    eq = equity_curve(minutes(len(close)), np.array(close), t, 10_000.0)
    ref = reference_equity(close, trades, 10_000.0)
    assert eq == pytest.approx(ref, rel=1e-9, abs=1e-7)
    # every trade closes inside the series, so the last candle holds only realised PnL
    assert eq[-1] == pytest.approx(10_000.0 + math.fsum(t.realized_pnl), rel=1e-12, abs=1e-8)


def test_validation_errors() -> None:
    ts = minutes(3)
    with pytest.raises(ValidationError, match="not a candle open time"):
        equity_curve(ts, np.ones(3), TradeArrays.from_records([trade(1, 1, 0, 5, 1.0, 1.0)]), 1.0)
    with pytest.raises(ValidationError, match="not a candle open time"):
        equity_curve(ts, np.ones(3), TradeArrays.from_records([{**trade(1, 1, 0, 1, 1.0, 1.0),
                                                                "entry_ts": T0 + 1}]), 1.0)
    with pytest.raises(ValidationError, match="strictly increasing"):
        equity_curve(ts[::-1], np.ones(3), TradeArrays.empty(), 1.0)
    with pytest.raises(ValidationError, match="shape"):
        equity_curve(ts, np.ones(2), TradeArrays.empty(), 1.0)
    for bad in ({"side": 0}, {"quantity": 0.0}, {"entry_price": -1.0}, {"exit_fee": -0.1},
                {"exit_ts": T0 - M}):
        with pytest.raises(ValidationError):
            TradeArrays.from_records([{**trade(1, 1, 0, 1, 1.0, 1.0), **bad}])
    with pytest.raises(ValidationError, match="lacks"):
        TradeArrays.from_records([{"side": 1}])
    t = TradeArrays.from_records([trade(1, 1, 0, 1, 1.0, 1.0)])
    with pytest.raises(ValueError):  # arrays are read-only copies
        t.quantity[0] = 2.0


# ---------------------------------------------------------------- resampling


def test_resample_last() -> None:
    # 1m samples at 00:00, 00:59, 01:00, 03:30 (hour 02 has none), then the next day
    ts = np.array([T0, T0 + 59 * M, T0 + H, T0 + 3 * H + 30 * M, T0 + D + 5 * M], dtype=np.int64)
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    hourly = resample_last(ts, vals, "1h")
    assert hourly.tolist() == [2.0, 3.0, 4.0, 5.0]
    assert list(hourly.index) == [pd.Timestamp(T0 + k, unit="ms", tz="UTC") for k in (0, H, 3 * H, D)]
    assert str(hourly.index.tz) == "UTC"
    daily = resample_last(ts, vals, "1d")
    assert daily.tolist() == [4.0, 5.0]
    assert daily.index[1] == pd.Timestamp("2024-01-02", tz="UTC")
    assert resample_last(ts, vals, "1m").tolist() == vals.tolist()
    with pytest.raises(ValidationError):
        resample_last(ts, vals, "5m")  # type: ignore[arg-type]


def test_daily_returns_carry_gap_days_forward() -> None:
    idx = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-01 23:59", "2024-01-04 00:00"], tz="UTC")
    r = daily_returns(pd.Series([90.0, 110.0, 121.0], index=idx), initial_capital=100.0)
    assert r.tolist() == pytest.approx([0.1, 0.0, 0.0, 0.1])
    assert r.index[-1] == pd.Timestamp("2024-01-04", tz="UTC")


# ---------------------------------------------------------------- statistics vs quantstats


def return_series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12345)
    up, down, back = rng.normal(0.004, 0.01, 100), rng.normal(-0.003, 0.01, 150), rng.normal(0.001, 0.01, 150)
    return {
        "random": rng.normal(0.0005, 0.02, 500),
        "trending": 0.001 + rng.normal(0.0, 0.002, 400),
        "long_drawdown": np.concatenate([up, down, back]),
        "first_day_loss": np.concatenate([[-0.05], rng.normal(0.0, 0.01, 60)]),
    }


@pytest.mark.parametrize("name", list(return_series()))
def test_statistics_match_quantstats(name: str) -> None:
    qs = pytest.importorskip("quantstats", reason="quantstats (dev-only cross-check) is not installed")
    r = return_series()[name]
    equity = daily_equity(r)
    s = equity_statistics(equity, initial_capital=10_000.0, annualization_days=365)
    ours = daily_returns(equity, initial_capital=10_000.0)
    assert ours.to_numpy() == pytest.approx(r, rel=1e-12, abs=1e-15)
    for rets in (ours, pd.Series(r, index=equity.index)):  # our returns and the generating ones
        q = qs.stats
        assert s.sharpe == pytest.approx(q.sharpe(rets, periods=365), rel=1e-9)
        assert s.sortino == pytest.approx(q.sortino(rets, periods=365), rel=1e-9)
        assert s.volatility_ann_pct == pytest.approx(q.volatility(rets, periods=365) * 100, rel=1e-9)
        # quantstats reports drawdown as a negative fraction; ours is a positive percentage
        assert s.max_drawdown_pct == pytest.approx(-q.max_drawdown(rets) * 100, rel=1e-9)
        # quantstats' CAGR years = number of returns / periods: equal to our elapsed days / 365 here
        assert s.cagr_pct == pytest.approx(q.cagr(rets, periods=365) * 100, rel=1e-9)
        assert s.calmar == pytest.approx(q.calmar(rets, periods=365), rel=1e-9)
        assert s.total_return_pct == pytest.approx(q.comp(rets) * 100, rel=1e-9)


def test_intraday_equity_uses_daily_returns_but_intraday_drawdown() -> None:
    qs = pytest.importorskip("quantstats", reason="quantstats (dev-only cross-check) is not installed")
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(10 * 24, dtype=np.int64) * H  # ten whole days of hourly closes
    eq = pd.Series(1_000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, ts.size))),
                   index=pd.to_datetime(ts, unit="ms", utc=True))
    s = equity_statistics(eq, initial_capital=1_000.0)
    r = daily_returns(eq, initial_capital=1_000.0)
    assert len(r) == 10
    assert s.sharpe == pytest.approx(qs.stats.sharpe(r, periods=365), rel=1e-9)
    assert s.cagr_pct == pytest.approx(qs.stats.cagr(r, periods=365) * 100, rel=1e-9)  # 240h = 10 days
    # drawdown is measured on every hourly close, so it is at least the daily-close figure
    assert s.max_drawdown_pct >= -qs.stats.max_drawdown(r) * 100 - 1e-12


# ---------------------------------------------------------------- edge cases


def test_flat_equity() -> None:
    ts = minutes(3 * 1440)
    s = equity_statistics(pd.Series(np.full(ts.size, 500.0), index=pd.to_datetime(ts, unit="ms", utc=True)),
                          initial_capital=500.0, exposure_pct=0.0)
    assert s == EquityStats(initial_capital=500.0, final_equity=500.0, total_return_pct=0.0, cagr_pct=0.0,
                            max_drawdown_pct=0.0, max_drawdown_duration_days=0.0, volatility_ann_pct=0.0,
                            sharpe=None, sortino=None, calmar=None, exposure_pct=0.0,
                            buy_and_hold_return_pct=None)


def test_constant_growth_has_no_sharpe_but_a_cagr() -> None:
    s = equity_statistics(daily_equity(np.full(30, 0.01)), initial_capital=10_000.0)
    assert s.sharpe is None and s.sortino is None and s.calmar is None  # std is rounding noise only
    assert s.cagr_pct == pytest.approx((1.01**365 - 1) * 100, rel=1e-9)


def test_one_day() -> None:
    ts = minutes(1440)
    eq = pd.Series(np.linspace(1_000.0, 990.0, ts.size), index=pd.to_datetime(ts, unit="ms", utc=True))
    s = equity_statistics(eq, initial_capital=1_000.0)
    assert s.total_return_pct == pytest.approx(-1.0)
    assert s.cagr_pct == pytest.approx((0.99**365 - 1) * 100)  # 1440 minutes = 1 day
    assert s.volatility_ann_pct is None and s.sharpe is None and s.calmar is not None
    # one return of -1%: mean -0.01 / downside sqrt(0.01^2 / 1) * sqrt(365)
    assert s.sortino == pytest.approx(-math.sqrt(365))
    assert s.max_drawdown_pct == pytest.approx(1.0)
    # the first close still equals the capital, so the spell runs from it to the last close
    assert s.max_drawdown_duration_days == pytest.approx(1439 / 1440)
    single = equity_statistics(pd.Series([1_010.0], index=pd.date_range("2024-01-01", periods=1, tz="UTC")),
                               initial_capital=1_000.0)
    assert single.cagr_pct == pytest.approx((1.01**365 - 1) * 100)
    assert single.sortino is None and single.sharpe is None and single.max_drawdown_pct == 0.0


def test_drawdown_duration_and_never_recovering() -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    s = equity_statistics(pd.Series([110.0, 99.0, 105.0, 111.0, 90.0, 95.0], index=idx), initial_capital=100.0)
    # spells: peak 110 (day 0) regained day 3 -> 3 days; peak 111 (day 3) not regained by day 5 -> 2 days
    assert s.max_drawdown_duration_days == 3.0
    assert s.max_drawdown_pct == pytest.approx((111 - 90) / 111 * 100)

    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    values = [120.0, 100.0, 90.0, 95.0, 100.0, 104.0, 108.0, 110.0, 112.0, 115.0]
    s = equity_statistics(pd.Series(values, index=idx), initial_capital=100.0)
    assert s.max_drawdown_duration_days == 9.0  # day 0 peak, still below it on the last day
    assert s.max_drawdown_pct == pytest.approx(25.0)
    assert s.calmar == pytest.approx(s.cagr_pct / 25.0)  # type: ignore[operator]


def test_loss_on_first_sample_is_a_drawdown_from_initial_capital() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    s = equity_statistics(pd.Series([80.0, 90.0, 100.0], index=idx), initial_capital=100.0)
    assert s.max_drawdown_pct == pytest.approx(20.0)
    assert s.max_drawdown_duration_days == 3.0  # from the start (one day before the first close) to day 2


def test_benchmark_exposure_and_bad_input() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    eq = pd.Series([100.0, 101.0, 102.0], index=idx)
    s = equity_statistics(eq, initial_capital=100.0, exposure_pct=42.5,
                          benchmark=pd.Series([20_000.0, 21_000.0, 25_000.0], index=idx))
    assert s.buy_and_hold_return_pct == pytest.approx(25.0)
    assert s.exposure_pct == 42.5
    s = equity_statistics(eq, initial_capital=100.0, exposure_pct=np.float64(10.0))  # e.g. 100 * mask.mean()
    assert type(s.exposure_pct) is float
    with pytest.raises(ValidationError):
        equity_statistics(eq, initial_capital=0.0)
    with pytest.raises(ValidationError):
        equity_statistics(pd.Series([1.0, np.nan, 2.0], index=idx), initial_capital=1.0)
    with pytest.raises(ValidationError):
        equity_statistics(pd.Series([1.0, 2.0]), initial_capital=1.0)
    with pytest.raises(ValidationError):
        equity_statistics(eq.iloc[::-1], initial_capital=1.0)


def test_negative_equity_gives_none_not_nan() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    s = equity_statistics(pd.Series([50.0, 0.0, -10.0], index=idx), initial_capital=100.0)
    assert s.cagr_pct is None and s.sharpe is None and s.sortino is None and s.volatility_ann_pct is None
    assert s.total_return_pct == pytest.approx(-110.0)
    assert s.max_drawdown_pct == pytest.approx(110.0)

"""PositionSize: the three sizing formulas, caps (reference order), errors and on_calculate."""

from __future__ import annotations

import asyncio
import math

import pytest

import backtest_kit as bk
from backtest_kit._sizing import PositionSize, SizingCalculateParams


def run(coro):
    return asyncio.run(coro)


def fixed(balance=10_000, open_=100, sl=98, name="fx", symbol="BTCUSDT"):
    return run(PositionSize.fixed_percentage(symbol, balance, open_, sl, sizing_name=name))


def kelly(balance=10_000, open_=100, win_rate=0.6, ratio=2, name="kc", symbol="BTCUSDT"):
    return run(PositionSize.kelly_criterion(symbol, balance, open_, win_rate, ratio, sizing_name=name))


def atr(balance=10_000, open_=100, atr_=5, name="atr", symbol="BTCUSDT"):
    return run(PositionSize.atr_based(symbol, balance, open_, atr_, sizing_name=name))


# --- formulas ---------------------------------------------------------------------------------


def test_fixed_percentage_long_and_short_stop():
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1)
    # risk = 10_000 * 1 % = 100; distance 2 -> 50
    assert fixed() == pytest.approx(50.0)
    assert fixed(sl=102) == pytest.approx(50.0)
    # 2.5 % of 4_000 = 100 over |200 - 190| = 10 -> 10
    bk.add_sizing("fx2", method="fixed-percentage", risk_percentage=2.5)
    assert fixed(balance=4_000, open_=200, sl=190, name="fx2") == pytest.approx(10.0)


def test_kelly_default_multiplier():
    bk.add_sizing("kc", method="kelly-criterion")
    # k = (0.6*2 - 0.4) / 2 = 0.4; qty = 10_000 * 0.4 * 0.25 / 100 = 10
    assert kelly() == pytest.approx(10.0)


def test_kelly_custom_multiplier():
    bk.add_sizing("kc", method="kelly-criterion", kelly_multiplier=0.5)
    # k = (0.5*3 - 0.5) / 3 = 1/3; qty = 9_000 * 1/3 * 0.5 / 50 = 30
    assert kelly(balance=9_000, open_=50, win_rate=0.5, ratio=3) == pytest.approx(30.0)


def test_kelly_negative_edge_is_zero():
    bk.add_sizing("kc", method="kelly-criterion")
    # k = (0.3*1 - 0.7) / 1 = -0.4 -> 0
    assert kelly(win_rate=0.3, ratio=1) == 0.0
    # break-even edge: k = (0.5*1 - 0.5) / 1 = 0
    assert kelly(win_rate=0.5, ratio=1) == 0.0


def test_atr_based_default_and_custom_multiplier():
    bk.add_sizing("atr", method="atr-based", risk_percentage=2)
    # 10_000 * 2 % = 200 over 5 * 2 -> 20 (price_open does not matter)
    assert atr() == pytest.approx(20.0)
    assert atr(open_=12_345) == pytest.approx(20.0)
    bk.add_sizing("atr4", method="atr-based", risk_percentage=2, atr_multiplier=4)
    assert atr(name="atr4") == pytest.approx(10.0)


# --- caps -------------------------------------------------------------------------------------


def test_max_position_percentage_caps_notional():
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, max_position_percentage=10)
    # uncapped 50 (notional 5_000); cap 10 % of 10_000 = 1_000 / 100 -> 10
    assert fixed() == pytest.approx(10.0)


def test_max_position_percentage_leaves_smaller_quantity():
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, max_position_percentage=60)
    # cap 60 % -> 60 units > 50
    assert fixed() == pytest.approx(50.0)


def test_min_position_size_raises_quantity():
    bk.add_sizing("kc", method="kelly-criterion", min_position_size=1.5)
    assert kelly(win_rate=0.3, ratio=1) == pytest.approx(1.5)
    assert kelly() == pytest.approx(10.0)  # above the minimum: unchanged


def test_max_position_size_lowers_quantity():
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, max_position_size=30)
    assert fixed() == pytest.approx(30.0)
    bk.add_sizing("fx2", method="fixed-percentage", risk_percentage=1, max_position_size=80)
    assert fixed(name="fx2") == pytest.approx(50.0)


def test_min_applies_after_percentage_cap():
    # pct cap 10 -> 10 units, then min 20 lifts it to 20 (reference order: pct, min, max)
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, max_position_percentage=10,
                  min_position_size=20)
    assert fixed() == pytest.approx(20.0)


def test_max_applies_after_min():
    # 0 (negative edge) -> min 5 -> max 5
    bk.add_sizing("kc", method="kelly-criterion", min_position_size=5, max_position_size=5)
    assert kelly(win_rate=0.2, ratio=1) == pytest.approx(5.0)
    # 10 -> min 5 keeps 10 -> max 5 lowers it
    assert kelly() == pytest.approx(5.0)


def test_all_caps_on_atr():
    # uncapped 20; pct 15 % of 10_000 at 100 -> 15; min 16 -> 16; max 18 keeps 16
    bk.add_sizing("atr", method="atr-based", risk_percentage=2, max_position_percentage=15,
                  min_position_size=16, max_position_size=18)
    assert atr() == pytest.approx(16.0)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("call, method", [
    (lambda: fixed(name="nope"), "PositionSize.fixed_percentage"),
    (lambda: kelly(name="nope"), "PositionSize.kelly_criterion"),
    (lambda: atr(name="nope"), "PositionSize.atr_based"),
])
def test_unknown_sizing_names_the_method(call, method):
    bk.add_sizing("other", method="kelly-criterion")
    with pytest.raises(bk.ValidationError) as info:
        call()
    text = str(info.value)
    assert "'nope'" in text and method in text and "other" in text


def test_wrong_method():
    bk.add_sizing("x", method="kelly-criterion")
    with pytest.raises(bk.ValidationError) as info:
        fixed(name="x")
    assert str(info.value) == ("sizing 'x' uses method 'kelly-criterion', not 'fixed-percentage' "
                               "(called from PositionSize.fixed_percentage)")
    bk.add_sizing("y", method="fixed-percentage", risk_percentage=1)
    with pytest.raises(bk.ValidationError, match="uses method 'fixed-percentage', not 'atr-based'"):
        atr(name="y")
    with pytest.raises(bk.ValidationError, match="not 'kelly-criterion'.*PositionSize.kelly_criterion"):
        kelly(name="y")


def test_zero_stop_distance():
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1)
    with pytest.raises(bk.ValidationError, match="stop-loss distance cannot be zero"):
        fixed(sl=100)


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5, 0.0, 1.0])
def test_bad_win_rate(rate):
    bk.add_sizing("kc", method="kelly-criterion")
    with pytest.raises(bk.ValidationError, match="win_rate must be between 0 and 1") as info:
        kelly(win_rate=rate)
    assert "PositionSize.kelly_criterion" in str(info.value) and repr(rate) in str(info.value)


@pytest.mark.parametrize("ratio", [0, -2])
def test_bad_win_loss_ratio(ratio):
    bk.add_sizing("kc", method="kelly-criterion")
    with pytest.raises(bk.ValidationError, match=f"win_loss_ratio must be positive, got {ratio}"):
        kelly(ratio=ratio)


@pytest.mark.parametrize("value", [0, -1.5])
def test_non_positive_atr(value):
    bk.add_sizing("atr", method="atr-based", risk_percentage=1)
    with pytest.raises(bk.ValidationError, match=f"atr must be positive, got {value}"):
        atr(atr_=value)


@pytest.mark.parametrize("kwargs, needle", [
    ({"balance": 0}, "account_balance must be positive, got 0"),
    ({"balance": -5}, "account_balance must be positive, got -5"),
    ({"balance": math.inf}, "account_balance must be a finite number, got inf"),
    ({"balance": "1000"}, "account_balance must be a finite number, got '1000' (str)"),
    ({"balance": True}, "account_balance must be a finite number, got True (bool)"),
    ({"open_": 0}, "price_open must be positive, got 0"),
    ({"open_": math.nan}, "price_open must be a finite number, got nan"),
    ({"sl": -1}, "price_stop_loss must be positive, got -1"),
    ({"sl": None}, "price_stop_loss must be a finite number, got None"),
    ({"symbol": ""}, "symbol must be a non-empty str"),
])
def test_bad_inputs(kwargs, needle):
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1)
    with pytest.raises(bk.ValidationError) as info:
        fixed(**kwargs)
    assert needle in str(info.value) and "PositionSize.fixed_percentage" in str(info.value)


def test_atr_nan_rejected():
    bk.add_sizing("atr", method="atr-based", risk_percentage=1)
    with pytest.raises(bk.ValidationError, match="atr must be a finite number"):
        atr(atr_=math.nan)


# --- on_calculate -----------------------------------------------------------------------------


def test_on_calculate_gets_final_quantity_and_params():
    seen = []
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, max_position_size=30,
                  callbacks={"on_calculate": lambda q, p: seen.append((q, p))})
    assert fixed() == pytest.approx(30.0)
    [(quantity, params)] = seen
    assert quantity == pytest.approx(30.0)
    assert isinstance(params, SizingCalculateParams)
    assert (params.symbol, params.account_balance, params.price_open, params.method,
            params.price_stop_loss) == ("BTCUSDT", 10_000, 100, "fixed-percentage", 98)
    assert params.win_rate is None and params.atr is None


def test_on_calculate_async_and_object_callbacks():
    seen = []

    class Callbacks:
        async def on_calculate(self, quantity, params):
            await asyncio.sleep(0)
            seen.append((quantity, params.method, params.win_rate, params.win_loss_ratio))

    bk.add_sizing("kc", method="kelly-criterion", callbacks=Callbacks())
    assert kelly() == pytest.approx(10.0)
    assert seen == [(pytest.approx(10.0), "kelly-criterion", 0.6, 2)]


def test_on_calculate_atr_params():
    seen = []
    bk.add_sizing("atr", method="atr-based", risk_percentage=2,
                  callbacks={"on_calculate": lambda q, p: seen.append((q, p.atr, p.method))})
    atr()
    assert seen == [(pytest.approx(20.0), 5, "atr-based")]


def test_on_calculate_error_is_reported_not_raised():
    errors = []
    bk.listen_error(errors.append)

    def boom(quantity, params):
        raise RuntimeError("callback failed")

    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1, callbacks={"on_calculate": boom})
    assert fixed() == pytest.approx(50.0)
    assert [str(e) for e in errors] == ["callback failed"]


def test_on_calculate_not_called_on_error():
    seen = []
    bk.add_sizing("fx", method="fixed-percentage", risk_percentage=1,
                  callbacks={"on_calculate": lambda q, p: seen.append(q)})
    with pytest.raises(bk.ValidationError):
        fixed(sl=100)
    assert seen == []

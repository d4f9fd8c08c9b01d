"""PnL: slippage on both fills, a flat 2*fee deduction, raw prices in the record (ENGINE.md PnL)."""

from __future__ import annotations

import pytest

import backtest_kit as bk
from backtest_kit._engine.pnl import compute_pnl, pnl_percentage
from conftest import long_signal, short_signal

REL = 1e-12


def approx(x):
    return pytest.approx(x, rel=REL, abs=1e-13)


# --- defaults (slippage 0.1 %, fee 0.1 %) -------------------------------------------------

def test_long_100_to_102_defaults_engine_md_example():
    # o = 100.1, c = 101.898, (1.798 / 100.1) * 100 = 1.7962037962..., minus 0.2
    assert pnl_percentage("long", 100, 102) == approx(1.596203796203796)


def test_long_50000_to_51000_reference_example():
    # o = 50050, c = 50949, 899 / 50050 * 100 = 1.796203796..., minus 0.2
    assert pnl_percentage("long", 50000, 51000) == approx(899 / 50050 * 100 - 0.2)
    assert round(pnl_percentage("long", 50000, 51000), 6) == 1.596204


def test_short_100_take_profit_98_reference_example():
    # o = 99.9, c = 98.098, 1.802 / 99.9 * 100 = 1.8038038..., minus 0.2
    assert pnl_percentage("short", 100, 98) == approx(1.802 / 99.9 * 100 - 0.2)
    assert round(pnl_percentage("short", 100, 98), 6) == 1.603804


def test_short_100_stop_loss_102_reference_example():
    # o = 99.9, c = 102.102, -2.202 / 99.9 * 100 = -2.2042042..., minus 0.2
    assert pnl_percentage("short", 100, 102) == approx(-2.202 / 99.9 * 100 - 0.2)
    assert round(pnl_percentage("short", 100, 102), 6) == -2.404204


def test_flat_long_loses_slippage_and_fees():
    assert pnl_percentage("long", 100, 100) == approx(-0.39980019980018844)


def test_flat_short_loses_slippage_and_fees():
    # o = 99.9, c = 100.1, -0.2 / 99.9 * 100 = -0.2002002..., minus 0.2
    assert pnl_percentage("short", 100, 100) == approx(-0.2 / 99.9 * 100 - 0.2)


def test_long_minimum_take_profit_distance_is_barely_profitable():
    # reference: LONG 100 -> 100.5 = +0.099201 %
    assert round(pnl_percentage("long", 100, 100.5), 6) == 0.099201


def test_scheduled_long_99_closed_at_100_reference_example():
    # reference: +0.608283 %
    assert round(pnl_percentage("long", 99, 100), 6) == 0.608283


def test_long_stop_loss_100_to_98():
    # o = 100.1, c = 97.902, -2.198 / 100.1 * 100, minus 0.2
    assert pnl_percentage("long", 100, 98) == approx(-2.198 / 100.1 * 100 - 0.2)


# --- zero fee / zero slippage -------------------------------------------------------------

def test_zero_fee_keeps_only_slippage():
    bk.set_config(CC_PERCENT_FEE=0)
    assert pnl_percentage("long", 100, 102) == approx(1.798 / 100.1 * 100)
    assert pnl_percentage("short", 100, 98) == approx(1.802 / 99.9 * 100)


def test_zero_slippage_keeps_only_fees():
    bk.set_config(CC_PERCENT_SLIPPAGE=0)
    assert pnl_percentage("long", 100, 102) == approx(2.0 - 0.2)
    assert pnl_percentage("short", 100, 98) == approx(2.0 - 0.2)
    assert pnl_percentage("long", 100, 100) == approx(-0.2)


def test_zero_fee_and_zero_slippage_is_the_raw_move():
    bk.set_config(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0)
    assert pnl_percentage("long", 100, 102) == approx(2.0)
    assert pnl_percentage("short", 100, 98) == approx(2.0)
    assert pnl_percentage("short", 100, 102) == approx(-2.0)
    assert pnl_percentage("long", 100, 100) == 0.0


def test_fee_is_a_flat_deduction_of_two_fees():
    bk.set_config(CC_PERCENT_SLIPPAGE=0, CC_PERCENT_FEE=0.25)
    assert pnl_percentage("long", 200, 210) == approx(5.0 - 0.5)


def test_custom_slippage_moves_both_fills_against_the_trade():
    bk.set_config(CC_PERCENT_SLIPPAGE=0.5, CC_PERCENT_FEE=0)
    # long: o = 100.5, c = 101.49 ; short: o = 99.5, c = 98.49
    assert pnl_percentage("long", 100, 102) == approx((101.49 - 100.5) / 100.5 * 100)
    assert pnl_percentage("short", 100, 98) == approx((99.5 - 98.49) / 99.5 * 100)


# --- the record ---------------------------------------------------------------------------

def test_pnl_record_holds_raw_prices():
    p = compute_pnl("long", 100, 102)
    assert isinstance(p, bk.PnL)
    assert p.price_open == 100 and p.price_close == 102
    assert p.pnl_percentage == approx(1.596203796203796)


def test_pnl_record_short_holds_raw_prices():
    p = compute_pnl("short", 100, 98)
    assert (p.price_open, p.price_close) == (100, 98)


# --- end to end through Backtest.run ----------------------------------------------------

def test_backtest_take_profit_pnl_uses_raw_prices_and_formula(kit):
    kit.flat(-10, 30).candle(5, h=102.5)
    kit.setup(frame=(0, 30), signals={0: long_signal(tp=102, sl=98, minutes=20)})
    (r,) = kit.run()
    assert r.close_reason == "take_profit"
    assert r.pnl.price_open == 100 and r.pnl.price_close == 102
    assert r.pnl.pnl_percentage == approx(1.596203796203796)


def test_backtest_short_stop_loss_pnl(kit):
    kit.flat(-10, 30).candle(5, h=102.5)
    kit.setup(frame=(0, 30), signals={0: short_signal(tp=98, sl=102, minutes=20)})
    (r,) = kit.run()
    assert r.close_reason == "stop_loss"
    assert (r.pnl.price_open, r.pnl.price_close) == (100, 102)
    assert r.pnl.pnl_percentage == approx(-2.202 / 99.9 * 100 - 0.2)


def test_backtest_pnl_reads_fee_config_at_close(kit):
    bk.set_config(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0)
    kit.flat(-10, 30).candle(5, l=97.5)
    kit.setup(frame=(0, 30), signals={0: long_signal(tp=102, sl=98, minutes=20)})
    (r,) = kit.run()
    assert r.close_reason == "stop_loss"
    assert r.pnl.pnl_percentage == approx(-2.0)

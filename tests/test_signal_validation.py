"""Signal validation (ENGINE.md "Getting a signal" step 5, reference §2).

Market: flat 1m candles at 100 (volume 1), so the current price (VWAP of the 5 closed
candles before `when`) is exactly 100 and an immediate signal opens at 100.
Every invalid signal goes to listen_error as a bk.ValidationError, the tick is idle and
the run goes on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backtest_kit as bk
from conftest import long_signal, ms, short_signal

pytestmark = pytest.mark.usefixtures("no_retry_delay")


def rejected(kit, signal, **config) -> str:
    """Run one frame with `signal` at minute 0; return the single error message."""
    if config:
        bk.set_config(**config)
    kit.flat(-10, 40)
    kit.setup(frame=(0, 0), signals={0: signal})
    assert kit.run() == []
    assert len(kit.errors) == 1, kit.error_texts()
    err = kit.errors[0]
    assert isinstance(err, bk.ValidationError)
    return str(err)


def accepted(kit, signal, **config):
    """Run with `signal` at minute 0; it must open (one yielded result, no error)."""
    if config:
        bk.set_config(**config)
    kit.flat(-10, 40)
    kit.setup(frame=(0, 0), signals={0: signal})
    results = kit.run()
    assert kit.errors == []
    assert len(results) == 1
    return results[0]


# --- message shape ------------------------------------------------------------------------

def test_message_starts_with_position_long(kit):
    msg = rejected(kit, long_signal(tp=99, sl=98))
    assert msg.startswith("Invalid signal for long position:\n")


def test_message_starts_with_position_short(kit):
    msg = rejected(kit, short_signal(tp=101, sl=102))
    assert msg.startswith("Invalid signal for short position:\n")


def test_all_failing_rules_are_collected(kit):
    # long, TP 99 < open 100: wrong side, immediate price >= TP, TP distance negative
    msg = rejected(kit, long_signal(tp=99, sl=98))
    lines = msg.split("\n")[1:]
    assert any("price_take_profit (99) must be > price_open (100)" in x for x in lines)
    assert any("current_price (100) >= price_take_profit (99)" in x for x in lines)
    assert any("TakeProfit too close" in x for x in lines)
    assert len(lines) == 3


# --- TP / SL on the right side --------------------------------------------------------------

def test_long_take_profit_must_be_above_open(kit):
    msg = rejected(kit, long_signal(tp=100, sl=98))
    assert "Long: price_take_profit (100) must be > price_open (100)" in msg


def test_long_stop_loss_must_be_below_open(kit):
    msg = rejected(kit, long_signal(tp=102, sl=101))
    assert "Long: price_stop_loss (101) must be < price_open (100)" in msg


def test_short_take_profit_must_be_below_open(kit):
    msg = rejected(kit, short_signal(tp=101, sl=102))
    assert "Short: price_take_profit (101) must be < price_open (100)" in msg


def test_short_stop_loss_must_be_above_open(kit):
    msg = rejected(kit, short_signal(tp=98, sl=99))
    assert "Short: price_stop_loss (99) must be > price_open (100)" in msg


# --- immediate: the current price must not already be through SL / TP ----------------------

def _cancelled_at_once(kit, signal) -> None:
    """D22: a valid limit order whose stop-loss the price already reached is scheduled and
    cancelled at the current price at once, never opened and never an error."""
    kit.flat(-10, 40)
    kit.setup(frame=(0, 0), signals={0: signal})
    events = []
    bk.listen_signal_backtest(lambda e: events.append(e.action) if e.action != "idle" else None)
    (r,) = kit.run()
    assert kit.errors == []
    assert (r.action, r.close_timestamp, r.current_price) == ("cancelled", ms(0), 100)
    assert r.signal.price_open == signal["price_open"]
    assert events == ["scheduled", "cancelled"]


def test_long_marketable_limit_through_its_stop_loss_is_cancelled_at_once(kit):
    # price_open 101 >= VWAP 100: marketable; SL 100 == current price 100 (D22)
    _cancelled_at_once(kit, long_signal(tp=102, sl=100, price_open=101))


def test_short_marketable_limit_through_its_stop_loss_is_cancelled_at_once(kit):
    # price_open 99 <= VWAP 100: marketable; SL 100 == current price 100 (D22)
    _cancelled_at_once(kit, short_signal(tp=98, sl=100, price_open=99))


def test_marketable_limit_is_validated_as_a_limit_order(kit):
    # D22: the rules are measured from its own price_open (101), not the current price
    msg = rejected(kit, long_signal(tp=100, sl=99, price_open=101))
    assert "Long: price_take_profit (100) must be > price_open (101)" in msg
    assert "immediate" not in msg


# --- scheduled: price_open strictly between SL and TP --------------------------------------

def test_long_scheduled_price_open_at_stop_loss(kit):
    # price_open 99 < VWAP 100 -> limit order; SL 99 == price_open
    msg = rejected(kit, long_signal(tp=101, sl=99, price_open=99))
    assert "Long scheduled: price_open (99) <= price_stop_loss (99)" in msg


def test_long_scheduled_price_open_at_take_profit(kit):
    msg = rejected(kit, long_signal(tp=99, sl=97, price_open=99))
    assert "Long scheduled: price_open (99) >= price_take_profit (99)" in msg


def test_short_scheduled_price_open_at_take_profit(kit):
    # price_open 101 > VWAP 100 -> limit order; TP 101 == price_open
    msg = rejected(kit, short_signal(tp=101, sl=103, price_open=101))
    assert "Short scheduled: price_open (101) <= price_take_profit (101)" in msg


def test_short_scheduled_price_open_at_stop_loss(kit):
    msg = rejected(kit, short_signal(tp=99, sl=101, price_open=101))
    assert "Short scheduled: price_open (101) >= price_stop_loss (101)" in msg


# --- distances and their boundaries --------------------------------------------------------

def test_long_take_profit_too_close(kit):
    msg = rejected(kit, long_signal(tp=100.4, sl=98))
    assert "TakeProfit too close to priceOpen (0.400%)" in msg
    assert "Minimum distance: 0.5%" in msg and "TP=100.4, Open=100" in msg


def test_long_take_profit_exactly_half_percent_accepted(kit):
    r = accepted(kit, long_signal(tp=100.5, sl=98))
    assert r.signal.price_take_profit == 100.5


def test_short_take_profit_too_close(kit):
    msg = rejected(kit, short_signal(tp=99.6, sl=102))
    assert "Short: TakeProfit too close to priceOpen (0.400%)" in msg


def test_short_take_profit_exactly_half_percent_accepted(kit):
    assert accepted(kit, short_signal(tp=99.5, sl=102)).signal.price_take_profit == 99.5


def test_long_stop_loss_too_close(kit):
    msg = rejected(kit, long_signal(tp=102, sl=99.6))
    assert "StopLoss too close to priceOpen (0.400%)" in msg and "SL=99.6, Open=100" in msg


def test_long_stop_loss_exactly_half_percent_accepted(kit):
    assert accepted(kit, long_signal(tp=102, sl=99.5)).signal.price_stop_loss == 99.5


def test_short_stop_loss_too_close(kit):
    msg = rejected(kit, short_signal(tp=98, sl=100.4))
    assert "Short: StopLoss too close to priceOpen (0.400%)" in msg


def test_short_stop_loss_exactly_half_percent_accepted(kit):
    assert accepted(kit, short_signal(tp=98, sl=100.5)).signal.price_stop_loss == 100.5


def test_long_stop_loss_too_far(kit):
    msg = rejected(kit, long_signal(tp=102, sl=79.9))
    assert "StopLoss too far from priceOpen (20.100%)" in msg
    assert "Maximum distance: 20%" in msg and "SL=79.9, Open=100" in msg


def test_long_stop_loss_exactly_twenty_percent_accepted(kit):
    assert accepted(kit, long_signal(tp=102, sl=80)).signal.price_stop_loss == 80


def test_short_stop_loss_too_far(kit):
    msg = rejected(kit, short_signal(tp=98, sl=120.1))
    assert "Short: StopLoss too far from priceOpen (20.100%)" in msg


def test_short_stop_loss_exactly_twenty_percent_accepted(kit):
    assert accepted(kit, short_signal(tp=98, sl=120)).signal.price_stop_loss == 120


def test_distance_rules_use_price_open_of_a_limit_order(kit):
    # limit at 99: TP 99.4 is 0.404 % away from 99 (< 0.5 %)
    msg = rejected(kit, long_signal(tp=99.4, sl=97, price_open=99))
    assert "TakeProfit too close to priceOpen (0.404%)" in msg and "Open=99" in msg


# --- rules disabled by a 0 config -------------------------------------------------------------

def test_min_take_profit_zero_disables_rule(kit):
    r = accepted(kit, long_signal(tp=100.1, sl=98), CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0)
    assert r.signal.price_take_profit == 100.1


def test_min_stop_loss_zero_disables_rule(kit):
    r = accepted(kit, long_signal(tp=102, sl=99.9), CC_MIN_STOPLOSS_DISTANCE_PERCENT=0)
    assert r.signal.price_stop_loss == 99.9


def test_max_stop_loss_zero_disables_rule(kit):
    r = accepted(kit, long_signal(tp=102, sl=50), CC_MAX_STOPLOSS_DISTANCE_PERCENT=0)
    assert r.signal.price_stop_loss == 50


def test_max_lifetime_zero_disables_rule(kit):
    r = accepted(kit, long_signal(minutes=5000), CC_MAX_SIGNAL_LIFETIME_MINUTES=0)
    assert r.signal.minute_estimated_time == 5000


def test_custom_min_take_profit_is_applied(kit):
    msg = rejected(kit, long_signal(tp=100.9, sl=98), CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=1)
    assert "Minimum distance: 1%" in msg


# --- prices must be finite and positive -------------------------------------------------------

@pytest.mark.parametrize("field, value, text", [
    ("price_take_profit", math.nan, "price_take_profit must be a finite number, got NaN"),
    ("price_take_profit", math.inf, "price_take_profit must be a finite number, got Infinity"),
    ("price_stop_loss", -math.inf, "price_stop_loss must be a finite number, got -Infinity"),
    ("price_stop_loss", -1, "price_stop_loss must be positive, got -1"),
    ("price_take_profit", 0, "price_take_profit must be positive, got 0"),
    ("price_open", math.nan, "price_open must be a finite number, got NaN"),
    ("price_open", -5, "price_open must be positive, got -5"),
])
def test_prices_must_be_finite_and_positive(kit, field, value, text):
    signal = long_signal()
    signal[field] = value
    msg = rejected(kit, signal)
    assert msg.startswith("Invalid signal for long position:\n")
    assert text in msg


def test_price_as_string_is_rejected(kit):
    msg = rejected(kit, long_signal(tp="102"))
    assert "price_take_profit must be a finite number, got '102'" in msg


# --- minute_estimated_time -------------------------------------------------------------------

def test_minutes_must_be_an_integer(kit):
    msg = rejected(kit, long_signal(minutes=1.5))
    assert "minute_estimated_time must be an integer (whole number), got 1.5" in msg


def test_minutes_zero_rejected(kit):
    assert "minute_estimated_time must be positive, got 0" in rejected(kit, long_signal(minutes=0))


def test_minutes_negative_rejected(kit):
    assert "minute_estimated_time must be positive, got -3" in rejected(kit, long_signal(minutes=-3))


def test_minutes_above_lifetime_rejected(kit):
    msg = rejected(kit, long_signal(minutes=1441))
    assert "minuteEstimatedTime too large (1441 minutes" in msg and "Maximum: 1440 minutes" in msg


def test_minutes_exactly_lifetime_accepted(kit):
    assert accepted(kit, long_signal(minutes=1440)).signal.minute_estimated_time == 1440


def test_minutes_whole_float_accepted_as_int(kit):
    r = accepted(kit, long_signal(minutes=10.0))
    assert r.signal.minute_estimated_time == 10 and type(r.signal.minute_estimated_time) is int


@pytest.mark.parametrize("value", ["10", True, [10]])
def test_minutes_non_number_rejected(kit, value):
    msg = rejected(kit, long_signal(minutes=value))
    assert "minute_estimated_time must be a positive integer" in msg


def test_numpy_scalars_are_accepted(kit):
    r = accepted(kit, long_signal(tp=np.float64(102), sl=np.int64(98), minutes=np.int64(20)))
    assert r.signal.price_stop_loss == 98 and r.signal.minute_estimated_time == 20
    assert type(r.signal.minute_estimated_time) is int


# --- position, shape and return type ----------------------------------------------------------

@pytest.mark.parametrize("position", ["sideways", "LONG", "buy"])
def test_unknown_position_rejected(kit, position):
    msg = rejected(kit, dict(long_signal(), position=position))
    assert msg.startswith(f"Invalid signal for {position} position:\n")
    assert f"position must be 'long' or 'short', got '{position}'" in msg


def test_camel_case_key_rejected_and_named(kit):
    signal = long_signal()
    signal["priceOpen"] = 99
    msg = rejected(kit, signal)
    assert msg.startswith("Invalid signal for long position:\n")
    assert "'priceOpen'" in msg and "unknown field" in msg


def test_missing_key_rejected_and_named(kit):
    signal = long_signal()
    del signal["price_stop_loss"]
    msg = rejected(kit, signal)
    assert msg.startswith("Invalid signal for long position:\n")
    assert "missing" in msg and "'price_stop_loss'" in msg


def test_missing_position_rejected(kit):
    signal = long_signal()
    del signal["position"]
    msg = rejected(kit, signal)
    assert "'position'" in msg


@pytest.mark.parametrize("value", [[1, 2, 3], "long", 42, (("position", "long"),)])
def test_wrong_return_type_rejected(kit, value):
    msg = rejected(kit, lambda s, w: value)
    assert "Invalid signal" in msg and type(value).__name__ in msg


def test_signal_dataclass_accepted(kit):
    r = accepted(kit, bk.Signal(position="short", price_take_profit=98, price_stop_loss=102,
                                minute_estimated_time=30, id="sig-1"))
    assert r.signal.position == "short" and r.signal.id == "sig-1"


def test_none_price_open_means_open_now(kit):
    r = accepted(kit, long_signal(price_open=None))
    assert r.signal.price_open == 100 and r.signal.scheduled_at == r.signal.pending_at == ms(0)


def test_id_kept_note_made_plain(kit):
    r = accepted(kit, long_signal(id="my-id", note="**Breakout** on `1m`\nsecond line"))
    assert r.signal.id == "my-id"
    assert r.signal.note == "Breakout on 1m second line"


def test_generated_id_is_a_uuid(kit):
    import uuid
    r = accepted(kit, long_signal())
    assert str(uuid.UUID(r.signal.id)) == r.signal.id


# --- the run continues ------------------------------------------------------------------------

def test_run_continues_after_invalid_signal_and_next_bucket_asks_again(kit):
    kit.flat(-10, 60)
    kit.setup(frame=(0, 30), signals={0: long_signal(tp=100.1), 1: long_signal(minutes=10)})
    (r,) = kit.run()
    assert len(kit.errors) == 1 and "TakeProfit too close" in str(kit.errors[0])
    assert kit.calls[:2] == [0, 1]
    assert r.signal.scheduled_at == ms(1) and r.close_reason == "time_expired"


def test_invalid_signal_consumes_the_bucket(kit):
    kit.flat(-10, 60)
    kit.setup(frame=(0, 12), interval="5m", signals={0: long_signal(tp=100.1)})
    assert kit.run() == []
    assert kit.calls == [0, 5, 10]
    assert len(kit.errors) == 1


def test_exception_in_get_signal_goes_to_listen_error_and_run_continues(kit):
    boom = RuntimeError("strategy exploded")
    kit.flat(-10, 60)
    kit.setup(frame=(0, 30), signals={0: boom, 1: long_signal(minutes=10)})
    (r,) = kit.run()
    assert kit.errors == [boom]
    assert kit.calls[:2] == [0, 1]
    assert r.signal.scheduled_at == ms(1)


def test_async_exception_in_get_signal_goes_to_listen_error(kit):
    async def failing(symbol, when):
        raise KeyError("missing indicator")

    kit.flat(-10, 60)
    kit.setup(frame=(0, 3), signals={0: failing})
    assert kit.run() == []
    assert len(kit.errors) == 1 and isinstance(kit.errors[0], KeyError)
    assert kit.calls == [0, 1, 2, 3]


def test_invalid_signal_leaves_tick_idle(kit):
    events = []
    kit.flat(-10, 60)
    kit.setup(frame=(0, 2), signals={0: long_signal(tp=99)})
    bk.listen_signal_backtest(events.append)
    assert kit.run() == []
    assert [e.action for e in events] == ["idle", "idle", "idle"]
    assert events[0].current_price == 100

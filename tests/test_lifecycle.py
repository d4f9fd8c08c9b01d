"""Backtest scenarios on hand-made 1m candles (ENGINE.md "Backtest fast path", D2-D6, D15-D16, D20).

Unless a test says otherwise the market is flat at 100 (o=h=l=c=100, volume 1), so the
current price (VWAP) is exactly 100 and a market signal opens at 100; individual candles are
then edited to touch TP / SL / the limit price at chosen minutes. Minutes are counted from
T0 = 2024-01-01 00:00 UTC.
"""

from __future__ import annotations

import asyncio

import pytest

import backtest_kit as bk
from conftest import SYMBOL, Kit, long_signal, ms, pnl_long, pnl_short, short_signal

pytestmark = pytest.mark.usefixtures("no_retry_delay")

REL = 1e-12


def approx(x):
    return pytest.approx(x, rel=REL)


def listen(kit=None):
    events = []
    bk.listen_signal_backtest(events.append)
    return events


def set_prices(kit, prices: dict, volumes: dict | None = None):
    """Candles with o = h = l = c = price (typical price == price)."""
    for m, p in prices.items():
        v = (volumes or {}).get(m, 1.0)
        kit.candle(m, o=p, h=p, l=p, c=p, v=v)
    return kit


# --- market signals: take profit, stop loss, expiry ------------------------------------------

def test_long_take_profit_closes_at_tp_on_the_candle_open_time(kit):
    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98, minutes=60)})
    (r,) = kit.run()
    assert isinstance(r, bk.ClosedResult) and r.action == "closed"
    assert r.close_reason == "take_profit"
    assert r.close_timestamp == ms(10)
    assert r.current_price == 102
    assert r.pnl.pnl_percentage == approx(1.596203796203796)
    assert (r.pnl.price_open, r.pnl.price_close) == (100, 102)
    s = r.signal
    assert (s.position, s.price_open, s.price_take_profit, s.price_stop_loss) == ("long", 100, 102, 98)
    assert s.scheduled_at == s.pending_at == ms(0)
    assert (r.symbol, r.strategy_name, r.exchange_name, r.backtest) == (SYMBOL, "st", "ex", True)
    assert (s.symbol, s.strategy_name, s.exchange_name) == (SYMBOL, "st", "ex")


def test_high_exactly_at_take_profit_closes(kit):
    kit.flat(-10, 100).candle(10, h=102)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(10))


def test_high_just_below_take_profit_does_not_close(kit):
    kit.flat(-10, 100).candle(10, h=101.99).candle(12, h=102.01)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert r.close_timestamp == ms(12)


def test_the_opening_candle_itself_is_checked(kit):
    kit.flat(-10, 100).candle(0, h=102.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(0))


def test_long_stop_loss_closes_at_sl(kit):
    kit.flat(-10, 100).candle(10, l=97.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("stop_loss", ms(10), 98)
    assert r.pnl.pnl_percentage == approx(-2.198 / 100.1 * 100 - 0.2)
    assert r.pnl.price_close == 98


def test_low_exactly_at_stop_loss_closes(kit):
    kit.flat(-10, 100).candle(10, l=98)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("stop_loss", ms(10))


def test_take_profit_wins_when_one_candle_reaches_both(kit):
    kit.flat(-10, 100).candle(10, h=102.5, l=97.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.current_price, r.close_timestamp) == ("take_profit", 102, ms(10))


def test_time_expired_after_exactly_the_lifetime_at_vwap_of_last_five(kit):
    kit.flat(-10, 100)
    # minute 15 is outside the window; 16..20 have VWAP (100+101+100+101+6*101)/10 = 100.8
    set_prices(kit, {15: 101.9, 16: 100, 17: 101, 18: 100, 19: 101, 20: 101, 21: 99},
               volumes={20: 6})
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98, minutes=20)})
    (r,) = kit.run()
    assert r.close_reason == "time_expired"
    assert r.close_timestamp == ms(20)  # pending_at + 20 minutes (D15)
    assert r.current_price == approx(100.8)
    assert r.pnl.price_close == approx(100.8)
    assert r.pnl.pnl_percentage == approx(pnl_long(100, 100.8))


def test_expiry_is_checked_before_take_profit(kit):
    kit.flat(-10, 100).candle(20, h=102.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98, minutes=20)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("time_expired", ms(20))
    # window 16..20: four typical 100 and one (100 + 102.5 + 100) / 3
    assert r.current_price == approx((400 + 302.5 / 3) / 5)


def test_position_one_minute_before_expiry_still_takes_profit(kit):
    kit.flat(-10, 100).candle(19, h=102.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98, minutes=20)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(19))


def test_short_take_profit(kit):
    kit.flat(-10, 100).candle(10, l=97.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(tp=98, sl=102)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("take_profit", ms(10), 98)
    assert r.pnl.pnl_percentage == approx(1.802 / 99.9 * 100 - 0.2)


def test_short_stop_loss(kit):
    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(tp=98, sl=102)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("stop_loss", ms(10), 102)
    assert r.pnl.pnl_percentage == approx(-2.202 / 99.9 * 100 - 0.2)


def test_short_take_profit_wins_when_one_candle_reaches_both(kit):
    kit.flat(-10, 100).candle(10, h=102.5, l=97.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(tp=98, sl=102)})
    (r,) = kit.run()
    assert (r.close_reason, r.current_price) == ("take_profit", 98)


def test_short_time_expired(kit):
    kit.flat(-10, 100)
    kit.setup(frame=(0, 60), signals={0: short_signal(tp=98, sl=102, minutes=15)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("time_expired", ms(15), 100)
    assert r.pnl.pnl_percentage == approx(pnl_short(100, 100))


def test_signal_opens_at_vwap_of_closed_candles(kit):
    kit.flat(-10, 100)
    set_prices(kit, {-5: 99, -4: 99.5, -3: 100, -2: 100.5, -1: 101}, volumes={-1: 5})
    kit.candle(0, h=150, l=150, c=150, v=100)  # forming at `when`: not in the price
    kit.candle(1, h=100, l=100, c=100)
    kit.setup(frame=(0, 0), signals={0: long_signal(tp=103, sl=98, minutes=5)})
    (r,) = kit.run()
    assert r.signal.price_open == approx((99 + 99.5 + 100 + 100.5 + 5 * 101) / 9)


# --- limit orders -------------------------------------------------------------------------------

LIMIT_LONG = dict(tp=101, sl=97, minutes=30, price_open=99)
LIMIT_SHORT = dict(tp=99, sl=103, minutes=30, price_open=101)


def test_limit_long_fills_later_and_checks_tp_from_the_next_candle(kit):
    kit.flat(-10, 200)
    kit.candle(10, l=98.9, h=101.5)  # fill; its TP-level high is not checked (D2)
    kit.candle(11, h=101.2)          # the first checked candle (1.5.27 skipped 4 more)
    kit.setup(frame=(0, 60), signals={0: long_signal(**LIMIT_LONG)})
    events = listen()
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("take_profit", ms(11), 101)
    assert r.signal.price_open == 99
    assert r.signal.scheduled_at == ms(0) and r.signal.pending_at == ms(10)
    assert r.pnl.pnl_percentage == approx(pnl_long(99, 101))
    actions = [e.action for e in events]
    assert actions[:3] == ["scheduled", "opened", "closed"]
    scheduled, opened = events[0], events[1]
    assert scheduled.current_price == 100 and scheduled.signal.pending_at == ms(0)
    assert opened.current_price == 99  # D5: opened at the fill, at price_open
    assert opened.signal.pending_at == ms(10) and opened.signal.scheduled_at == ms(0)
    assert set(actions[3:]) == {"idle"}


def test_limit_fill_then_stop_loss_on_the_next_candle(kit):
    kit.flat(-10, 200).candle(10, l=98.9).candle(11, l=96.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("stop_loss", ms(11), 97)
    assert r.pnl.pnl_percentage == approx(pnl_long(99, 97))


def test_limit_fill_lifetime_counts_from_the_fill(kit):
    kit.flat(-10, 200).candle(10, l=98.9)
    kit.setup(frame=(0, 60), signals={0: long_signal(**dict(LIMIT_LONG, minutes=5))})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("time_expired", ms(15))
    assert r.current_price == 100  # candles 11..15
    assert round(r.pnl.pnl_percentage, 6) == 0.608283  # reference example


def test_limit_cancelled_when_stop_and_fill_on_the_same_candle(kit):
    kit.flat(-10, 200).candle(10, h=100, l=96.5, c=99.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(**LIMIT_LONG)})
    events = listen()
    (r,) = kit.run()
    assert isinstance(r, bk.CancelledResult) and r.action == "cancelled"
    assert r.close_timestamp == ms(10)
    assert r.current_price == approx((400 + (100 + 96.5 + 99.5) / 3) / 5)  # VWAP of 6..10
    assert r.signal.price_open == 99 and r.signal.scheduled_at == ms(0)
    assert "opened" not in [e.action for e in events]
    assert [e.action for e in events][:2] == ["scheduled", "cancelled"]


def test_limit_short_fills_and_takes_profit(kit):
    kit.flat(-10, 200).candle(10, h=101.1).candle(12, l=98.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(**LIMIT_SHORT)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("take_profit", ms(12), 99)
    assert r.signal.pending_at == ms(10)
    assert r.pnl.pnl_percentage == approx(pnl_short(101, 99))


def test_limit_short_cancelled_by_stop(kit):
    kit.flat(-10, 200).candle(10, h=103.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(**LIMIT_SHORT)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(10))


def test_limit_short_fill_candle_high_at_tp_side_is_not_checked(kit):
    kit.flat(-10, 200).candle(10, h=101.1, l=98.5).candle(11, l=98.9)
    kit.setup(frame=(0, 60), signals={0: short_signal(**LIMIT_SHORT)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(11))


def test_limit_cancelled_on_timeout_at_scheduled_at_plus_await(kit):
    kit.flat(-10, 300)
    kit.setup(frame=(0, 200), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp, r.current_price) == ("cancelled", ms(120), 100)
    assert kit.calls[:2] == [0, 121]


def test_limit_timeout_beats_a_fill_on_the_timeout_candle(kit):
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=30)
    kit.flat(-10, 200).candle(30, l=98.9)
    kit.setup(frame=(0, 60), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(30))


def test_limit_fill_one_minute_before_timeout(kit):
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=30)
    kit.flat(-10, 200).candle(29, l=98.9).candle(33, h=101)
    kit.setup(frame=(0, 60), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_reason, r.close_timestamp) == ("closed", "take_profit", ms(33))
    assert r.signal.pending_at == ms(29)


def test_marketable_limit_opens_at_the_current_price(kit):
    # D22: price_open 101 is above the VWAP 100, so it fills at 100, as an exchange would
    kit.flat(-10, 100).candle(5, h=103)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=103, sl=99.5, price_open=101)})
    events = listen()
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(5))
    assert r.signal.price_open == 100
    assert r.signal.scheduled_at == r.signal.pending_at == ms(0)
    assert r.pnl.pnl_percentage == approx(pnl_long(100, 103))
    assert [e.action for e in events][:2] == ["opened", "closed"]
    assert events[0].current_price == 100


def test_short_marketable_limit_opens_at_the_current_price(kit):
    kit.flat(-10, 100).candle(5, l=97)
    kit.setup(frame=(0, 60), signals={0: short_signal(tp=97, sl=100.5, price_open=99)})
    (r,) = kit.run()
    assert (r.close_reason, r.signal.price_open, r.signal.pending_at) == ("take_profit", 100, ms(0))
    assert r.pnl.pnl_percentage == approx(pnl_short(100, 97))


def test_limit_at_exactly_the_current_price_opens_immediately(kit):
    kit.flat(-10, 100)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98, price_open=100, minutes=10)})
    (r,) = kit.run()
    assert r.signal.pending_at == r.signal.scheduled_at == ms(0)
    assert r.close_timestamp == ms(10)


# --- data running out (D6, D15) ------------------------------------------------------------------

def test_data_ending_with_an_open_position_closes_as_end_of_data_at_the_last_candle(kit):
    kit.flat(-10, 20)
    set_prices(kit, {16: 100, 17: 101, 18: 100, 19: 101, 20: 101}, volumes={20: 6})
    kit.setup(frame=(0, 20), signals={0: long_signal(tp=102, sl=98, minutes=60)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("end_of_data", ms(20))  # D21
    assert r.current_price == approx(100.8)
    assert kit.errors == []


def test_position_whose_lifetime_elapsed_just_at_the_data_end_is_time_expired(kit):
    kit.flat(-10, 80)
    kit.setup(frame=(0, 20), signals={0: long_signal(tp=102, sl=98, minutes=60)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("time_expired", ms(60))


def test_data_ending_while_a_limit_order_waits_yields_nothing(kit):
    kit.flat(-10, 20)
    kit.setup(frame=(0, 20), signals={0: long_signal(**LIMIT_LONG)})
    events = listen()
    assert kit.run() == []
    assert kit.errors == []
    actions = [e.action for e in events]
    assert actions[0] == "scheduled"
    assert set(actions[1:]) == {"waiting"} and len(actions) == 21  # D17: one per later frame
    assert kit.calls == [0]


def test_data_ending_while_a_limit_order_waits_yields_nothing_without_listener(kit):
    kit.flat(-10, 20)
    kit.setup(frame=(0, 20), signals={0: long_signal(**LIMIT_LONG)})
    assert kit.run() == []
    assert kit.errors == []


def test_trade_closed_tick_by_tick_is_yielded(kit):
    """D20: the fast-path fetch finds no candle after `when`; later ticks close the trade."""
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1)
    kit.flat(-10, -1).flat(10, 40)
    kit.setup(frame=(0, 30), signals={0: long_signal(minutes=5)})
    (r,) = kit.run()
    # D23: the tick at 11 applies the candle rules to candle 10, the first candle at or after the
    # expiry (minute 5), so it closes at that candle's time, as the fast path would have
    assert (r.close_reason, r.close_timestamp, r.current_price) == ("time_expired", ms(10), 100)
    # frames 1..10 cannot be priced (no candle in [when - 1m, when))
    assert len(kit.errors) == 10


# --- the frame loop: resume after a close (D3), throttle (D16) -------------------------------

@pytest.mark.parametrize("close_minute, next_frame", [(10, 15), (14, 15), (15, 30), (29, 30), (30, 45)])
def test_resume_at_first_frame_at_or_after_close_plus_one_minute(kit, close_minute, next_frame):
    kit.flat(-10, 200).candle(close_minute, h=102.5)
    kit.setup(frame=(0, 90), frame_interval="15m", signals={0: long_signal(minutes=60)})
    (r,) = kit.run()
    assert r.close_timestamp == ms(close_minute)
    assert kit.calls == [0] + list(range(next_frame, 91, 15))


def test_resume_on_1m_frames_is_the_minute_after_close(kit):
    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 15), signals={0: long_signal()})
    kit.run()
    assert kit.calls == [0, 11, 12, 13, 14, 15]


def test_resume_after_cancel(kit):
    kit.flat(-10, 100).candle(10, l=96.5)
    kit.setup(frame=(0, 14), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert r.action == "cancelled" and kit.calls == [0, 11, 12, 13, 14]


@pytest.mark.parametrize("observe", [False, True])
def test_throttle_one_call_per_aligned_5m_bucket(kit, observe):
    kit.flat(-10, 100)
    kit.setup(frame=(0, 30), interval="5m")
    if observe:
        listen()
    kit.run()
    assert kit.calls == [0, 5, 10, 15, 20, 25, 30]


@pytest.mark.parametrize("observe", [False, True])
def test_throttle_buckets_are_aligned_not_relative_to_the_first_frame(kit, observe):
    kit.flat(-10, 100)
    kit.setup(frame=(2, 31), interval="5m")
    if observe:
        listen()
    kit.run()
    assert kit.calls == [2, 5, 10, 15, 20, 25, 30]


@pytest.mark.parametrize("observe", [False, True])
def test_throttle_after_a_close_asks_in_the_next_unused_bucket(kit, observe):
    kit.flat(-10, 100).candle(7, h=102.5)
    kit.setup(frame=(0, 20), interval="5m", signals={0: long_signal()})
    if observe:
        listen()
    (r,) = kit.run()
    assert r.close_timestamp == ms(7)
    assert kit.calls == [0, 8, 10, 15, 20]


def test_throttle_1h_strategy_on_15m_frames(kit):
    kit.flat(-10, 200)
    kit.setup(frame=(0, 180), frame_interval="15m", interval="1h")
    kit.run()
    assert kit.calls == [0, 60, 120, 180]


def test_get_signal_not_called_while_a_position_is_open(kit):
    kit.flat(-10, 100).candle(30, h=102.5)
    kit.setup(frame=(0, 40), signals={0: long_signal()})
    kit.run()
    assert kit.calls == [0] + list(range(31, 41))


# --- events, progress, listeners ---------------------------------------------------------------

def test_idle_event_for_every_frame_when_listening(kit):
    kit.flat(-10, 100)
    kit.setup(frame=(0, 30), interval="5m")
    events = listen()
    assert kit.run() == []
    assert len(events) == 31
    assert all(isinstance(e, bk.IdleResult) for e in events)
    assert all(e.current_price == 100 and e.signal is None and e.backtest for e in events)
    assert {(e.symbol, e.strategy_name, e.exchange_name) for e in events} == {(SYMBOL, "st", "ex")}


def test_event_sequence_around_a_trade(kit):
    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 30), signals={3: long_signal()})
    events = listen()
    kit.run()
    assert [e.action for e in events] == ["idle"] * 3 + ["opened", "closed"] + ["idle"] * 20


def test_listen_signal_receives_the_same_events(kit):
    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 30), signals={3: long_signal()})
    both, generic = listen(), []
    bk.listen_signal(generic.append)
    kit.run()
    assert [e.action for e in generic] == [e.action for e in both]


SCENARIO = {
    0: long_signal(tp=102, sl=98, id="a"),
    20: short_signal(tp=98, sl=102, id="b"),
    30: long_signal(tp=101, sl=97, minutes=30, price_open=99, id="c"),
    50: long_signal(tp=101, sl=97, minutes=30, price_open=99, id="d"),
    60: short_signal(tp=99, sl=103, minutes=30, price_open=101, id="e"),
    190: long_signal(tp=102, sl=98, minutes=30, id="f"),
}


def run_scenario(observe=False, raising=False):
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    kit = Kit().flat(-10, 300)
    kit.candle(10, h=102.5).candle(25, h=102.5)         # a: TP at 10, b: SL at 25
    kit.candle(40, l=98.9).candle(45, h=101.2)          # c: fill at 40, TP at 45
    kit.candle(55, l=96.5)                               # d: cancelled at 55
    kit.setup(frame=(0, 200), signals=SCENARIO)          # e: timeout at 180; f: data ends
    progress, events = [], []
    if observe:
        bk.listen_signal_backtest(events.append)
        bk.listen_backtest_progress(progress.append)
    if raising:
        def boom(event):
            raise RuntimeError("listener failed")
        bk.listen_signal_backtest(boom)
        bk.listen_backtest_progress(boom)
        bk.listen_signal(boom)
    results = kit.run()
    return results, kit, events, progress


def test_scenario_yields_in_time_order():
    results, kit, _, _ = run_scenario()
    got = [(r.signal.id, r.action, getattr(r, "close_reason", None), r.close_timestamp) for r in results]
    assert got == [("a", "closed", "take_profit", ms(10)),
                   ("b", "closed", "stop_loss", ms(25)),
                   ("c", "closed", "take_profit", ms(45)),
                   ("d", "cancelled", None, ms(55)),
                   ("e", "cancelled", None, ms(180)),
                   ("f", "closed", "time_expired", ms(220))]
    assert kit.errors == []
    assert results[2].signal.pending_at == ms(40)


def test_results_identical_with_and_without_listeners():
    plain, kit1, _, _ = run_scenario()
    observed, kit2, events, progress = run_scenario(observe=True)
    assert observed == plain
    assert kit1.calls == kit2.calls
    assert len(events) > len(plain)


def test_raising_listeners_go_to_listen_error_and_change_nothing():
    plain, _, _, _ = run_scenario()
    results, kit, _, _ = run_scenario(raising=True)
    assert results == plain
    assert kit.errors and all(isinstance(e, RuntimeError) and str(e) == "listener failed"
                              for e in kit.errors)


def test_raising_error_listener_does_not_break_the_run():
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    kit = Kit().flat(-10, 100)
    kit.setup(frame=(0, 5), signals={0: RuntimeError("strategy failed")}, listen_errors=False)

    def bad(error):
        raise ValueError("error listener failed")
    bk.listen_error(bad)
    assert kit.run() == []
    assert kit.calls == [0, 1, 2, 3, 4, 5]


def test_progress_ends_at_one():
    _, _, _, progress = run_scenario(observe=True)
    assert progress[0].progress == 0 and progress[0].processed_frames == 0
    last = progress[-1]
    assert last.progress == 1.0 and last.processed_frames == last.total_frames == 201
    values = [p.progress for p in progress]
    assert values == sorted(values)
    assert all(p.symbol == SYMBOL and p.strategy_name == "st" for p in progress)


def test_progress_without_signals(kit):
    kit.flat(-10, 100)
    kit.setup(frame=(0, 30), interval="15m")
    progress = []
    bk.listen_backtest_progress(progress.append)
    kit.run()
    assert progress[-1].progress == 1.0 and progress[-1].total_frames == 31
    assert len(progress) <= 101


# --- callbacks and partial levels ------------------------------------------------------------------

def test_callbacks_of_a_filled_limit_order(kit):
    log = []
    callbacks = {
        "on_schedule": lambda symbol, row, price, backtest: log.append(("schedule", row.id, price, backtest)),
        "on_open": lambda symbol, row, price, backtest: log.append(("open", row.id, price, row.pending_at)),
        "on_close": lambda symbol, row, price, backtest: log.append(("close", row.id, price)),
        "on_cancel": lambda symbol, row, price, backtest: log.append(("cancel", row.id, price)),
    }
    kit.flat(-10, 200).candle(10, l=98.9).candle(11, h=101.2)
    kit.setup(frame=(0, 20), callbacks=callbacks, signals={0: long_signal(**LIMIT_LONG, id="x")})
    kit.run()
    assert log == [("schedule", "x", 100, True), ("open", "x", 99, ms(10)), ("close", "x", 101)]


def test_callbacks_of_a_cancelled_limit_order(kit):
    log = []

    async def on_cancel(symbol, row, price, backtest):
        log.append(("cancel", row.id, price))

    kit.flat(-10, 200).candle(10, l=96.5)
    kit.setup(frame=(0, 20), callbacks={"on_cancel": on_cancel,
                                        "on_open": lambda *a: log.append("open")},
              signals={0: long_signal(**LIMIT_LONG, id="x")})
    kit.run()
    assert log == [("cancel", "x", approx((400 + (100 + 96.5 + 100) / 3) / 5))]


def test_raising_callback_is_reported_and_trade_still_closes(kit):
    def on_open(*args):
        raise RuntimeError("callback failed")

    kit.flat(-10, 100).candle(10, h=102.5)
    kit.setup(frame=(0, 20), callbacks={"on_open": on_open}, signals={0: long_signal()})
    (r,) = kit.run()
    assert r.close_reason == "take_profit"
    assert [str(e) for e in kit.errors] == ["callback failed"]


def test_partial_profit_levels_fire_once_in_order(kit):
    kit.flat(-10, 100)
    set_prices(kit, {m: 103.5 for m in range(1, 101)})
    # VWAP at candles 1..5: 100.7, 101.4, 102.1, 102.8, 103.5 -> 7, 14, 21, 28, 35 % of the way to 110
    kit.setup(frame=(0, 0), signals={0: long_signal(tp=110, sl=95, minutes=60)})
    profit, loss = [], []
    bk.listen_partial_profit(profit.append)
    bk.listen_partial_loss(loss.append)
    (r,) = kit.run()
    assert (r.close_reason, r.current_price) == ("time_expired", 103.5)
    assert [(e.level, e.timestamp) for e in profit] == [(10, ms(2)), (20, ms(3)), (30, ms(5))]
    assert [e.current_price for e in profit] == [approx(101.4), approx(102.1), approx(103.5)]
    assert all(e.signal.id == r.signal.id and e.backtest and e.symbol == SYMBOL for e in profit)
    assert loss == []


def test_partial_loss_levels(kit):
    kit.flat(-10, 100)
    set_prices(kit, {m: 98.1 for m in range(1, 101)})
    # VWAP: 99.62, 99.24, 98.86, 98.48, 98.1 -> 7.6, 15.2, 22.8, 30.4, 38 % of the way to 95
    kit.setup(frame=(0, 0), signals={0: long_signal(tp=110, sl=95, minutes=60)})
    loss = []
    bk.listen_partial_loss(loss.append)
    kit.run()
    assert [(e.level, e.timestamp) for e in loss] == [(10, ms(2)), (20, ms(3)), (30, ms(4))]


def test_statistics_of_the_run(kit):
    results, kit, _, _ = run_scenario()
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "st"))
    closed = [r for r in results if r.action == "closed"]
    assert stats.total_signals == 4  # cancelled orders are not trades
    assert stats.win_count == 2 and stats.loss_count == 2  # a, c win; b loses, f expires flat
    assert stats.total_pnl == approx(sum(r.pnl.pnl_percentage for r in closed))


# --- more edges ------------------------------------------------------------------------------

@pytest.mark.parametrize("frame_start", [0, -15])
def test_fast_path_vwap_uses_only_candles_of_its_window_across_a_data_gap(kit, frame_start):
    """Candles -4 and -3 are missing. A short limit placed at 00:00 is cancelled by the stop on
    the 00:00 candle; its price is the VWAP of candles k-4..k *of the window fetched from
    when - 4 min*, i.e. of candles -2, -1, 0 -- whatever was fetched earlier in the run."""
    kit.flat(-30, -5, price=50.0).flat(-2, 60).candle(0, h=104)
    kit.setup(frame=(frame_start, 0),
              signals={0: short_signal(tp=99, sl=103, minutes=30, price_open=101)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(0))
    assert r.current_price == approx((100 + 100 + (100 + 104 + 100) / 3) / 3)


def test_trade_opened_at_the_last_frame_runs_past_the_frame_end(kit):
    kit.flat(-10, 100).candle(40, h=102.5)
    kit.setup(frame=(0, 30), signals={30: long_signal(minutes=60)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(40))


def test_several_partial_levels_in_one_candle_fire_in_ascending_order(kit):
    kit.flat(-10, 100)
    kit.candle(1, o=115, h=115, l=115, c=115, v=16)
    # VWAP at candle 1: (4 * 100 + 16 * 115) / 20 = 112 -> 60 % of the way to 120
    kit.setup(frame=(0, 0), signals={0: long_signal(tp=120, sl=95, minutes=3)})
    profit = []
    bk.listen_partial_profit(profit.append)
    kit.run()
    assert [(e.level, e.timestamp) for e in profit[:6]] == [(lvl, ms(1)) for lvl in (10, 20, 30, 40, 50, 60)]
    assert all(e.current_price == approx(112.0) for e in profit[:6])


def test_same_backtest_twice_gives_the_same_results():
    first, kit1, _, _ = run_scenario()
    again = asyncio.run(kit1.arun())
    assert again == first
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "st"))
    assert stats.total_signals == 4  # the second run replaces the first, it does not add to it


def test_results_independent_of_the_strategy_interval_grid_when_signal_times_align(kit):
    """A 5m strategy on 1m frames asked at 00:00 and 00:05 behaves like a 1m one."""
    kit.flat(-10, 100).candle(3, h=102.5)
    kit.setup(frame=(0, 10), interval="5m", signals={0: long_signal(), 5: short_signal(minutes=3)})
    results = kit.run()
    assert [(r.signal.position, r.close_reason, r.close_timestamp) for r in results] == [
        ("long", "take_profit", ms(3)), ("short", "time_expired", ms(8))]
    assert kit.calls == [0, 5, 10]


def test_limit_order_cancelled_tick_by_tick_is_yielded(kit):
    """D20/D18: no candle in the fast-path window; a later tick cancels the order on timeout."""
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1, CC_SCHEDULE_AWAIT_MINUTES=10)
    # The fast-path window is the first 41 candles opening in [0, 41] (inclusive end, as the
    # exchange answers since=0, limit=41): none exist, so the order is left to the ticks.
    kit.flat(-10, -1).flat(42, 60)
    kit.setup(frame=(0, 50), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    # D23: the tick at 43 applies the candle rules to candle 42, past the 10-minute timeout
    assert (r.action, r.close_timestamp, r.current_price) == ("cancelled", ms(42), 100)
    assert len(kit.errors) == 42  # frames 1..42 cannot be priced
    assert kit.calls == [0] + list(range(43, 51))


def test_fast_path_window_includes_the_candle_at_its_inclusive_end(kit):
    """A gap shortens the window by time, like the exchange's since/limit answer filtered to
    since + limit minutes inclusive: the candle at minute 41 is in, so the timeout fires there."""
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1, CC_SCHEDULE_AWAIT_MINUTES=10)
    kit.flat(-10, -1).flat(41, 60)
    kit.setup(frame=(0, 50), signals={0: long_signal(**LIMIT_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(41))


def test_on_idle_and_on_tick_callbacks_see_every_frame(kit):
    idle, ticks = [], []
    callbacks = {"on_idle": lambda symbol, price, backtest: idle.append((symbol, price, backtest)),
                 "on_tick": lambda symbol, result, backtest: ticks.append(result.action)}
    kit.flat(-10, 100)
    kit.setup(frame=(0, 30), interval="15m", callbacks=callbacks, signals={3: long_signal()})
    assert kit.run() == []  # minute 3 is not a bucket start of a 15m strategy: never asked
    assert kit.calls == [0, 15, 30]
    assert len(idle) == 31 and set(idle) == {(SYMBOL, 100, True)}
    assert ticks == ["idle"] * 31


# --- same-candle TP and SL: CC_INTRABAR_POLICY ----------------------------------------------------

@pytest.mark.parametrize("policy, candle_open, reason", [
    ("take_profit", 99.0, "take_profit"),    # 1.5.27: TP wins whatever the candle did
    ("stop_loss", 101.0, "stop_loss"),       # pessimistic
    ("open_distance", 101.0, "take_profit"),  # open 101: TP 102 is 1 away, SL 98 is 3 away
    ("open_distance", 99.0, "stop_loss"),     # open 99: SL 98 is 1 away, TP 102 is 3 away
])
def test_intrabar_policy_decides_a_candle_that_reaches_both_levels(kit, policy, candle_open, reason):
    bk.set_config(CC_INTRABAR_POLICY=policy)
    kit.flat(-10, 100).candle(7, o=candle_open, h=103, l=97)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.close_timestamp, r.ambiguous_exit) == (reason, ms(7), True)
    assert r.current_price == (102 if reason == "take_profit" else 98)
    stats = kit.stats()
    assert stats.ambiguous_exit_count == 1
    report = asyncio.run(bk.Backtest.get_report(SYMBOL, kit.strategy_name))
    assert f"**Ambiguous exits:** 1 (exit candle reached both TP and SL; CC_INTRABAR_POLICY={policy})" in report


def test_a_candle_reaching_one_level_is_not_ambiguous(kit):
    bk.set_config(CC_INTRABAR_POLICY="stop_loss")
    kit.flat(-10, 100).candle(7, h=103)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=102, sl=98)})
    (r,) = kit.run()
    assert (r.close_reason, r.ambiguous_exit) == ("take_profit", False)
    assert kit.stats().ambiguous_exit_count == 0


# --- stop entries (breakouts) ---------------------------------------------------------------------

STOP_LONG = dict(tp=104, sl=99, minutes=30, price_open=101, order_type="stop")
STOP_SHORT = dict(tp=96, sl=101, minutes=30, price_open=99, order_type="stop")


def test_long_stop_waits_below_its_trigger_and_fills_at_price_open(kit):
    kit.flat(-10, 100).candle(5, h=101.5).flat(6, 100, price=101.2).candle(9, h=104.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(**STOP_LONG)})
    events = listen()
    (r,) = kit.run()
    assert [e.action for e in events][:2] == ["scheduled", "opened"]
    assert (r.signal.price_open, r.signal.pending_at, r.signal.scheduled_at) == (101, ms(5), ms(0))
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(9))
    assert r.pnl.pnl_percentage == approx(pnl_long(101, 104))


def test_long_stop_gapping_through_its_trigger_fills_at_the_candle_open(kit):
    kit.flat(-10, 100).candle(5, o=102, h=102.5, l=101.8, c=102).flat(6, 100, price=102).candle(9, h=104.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(**STOP_LONG)})
    (r,) = kit.run()
    assert (r.signal.price_open, r.signal.pending_at) == (102, ms(5))
    assert r.pnl.pnl_percentage == approx(pnl_long(102, 104))


def test_short_stop_fills_when_the_price_falls_to_it(kit):
    kit.flat(-10, 100).candle(4, l=98.5).flat(5, 100, price=98.8).candle(8, l=95.5)
    kit.setup(frame=(0, 60), signals={0: short_signal(**STOP_SHORT)})
    (r,) = kit.run()
    assert (r.signal.price_open, r.signal.pending_at) == (99, ms(4))
    assert (r.close_reason, r.close_timestamp) == ("take_profit", ms(8))


def test_stop_is_cancelled_when_the_stop_loss_comes_first(kit):
    kit.flat(-10, 100).candle(3, l=98.5).candle(6, h=102)
    kit.setup(frame=(0, 60), signals={0: long_signal(**STOP_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(3))


def test_stop_that_never_triggers_is_cancelled_at_the_schedule_timeout(kit):
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=20)
    kit.flat(-10, 100)
    kit.setup(frame=(0, 60), signals={0: long_signal(**STOP_LONG)})
    (r,) = kit.run()
    assert (r.action, r.close_timestamp) == ("cancelled", ms(20))


def test_stop_already_triggered_opens_at_the_current_price(kit):
    kit.flat(-10, 100).candle(5, h=104.5)
    kit.setup(frame=(0, 60), signals={0: long_signal(tp=104, sl=98, price_open=99.5, order_type="stop")})
    (r,) = kit.run()
    assert (r.signal.price_open, r.signal.pending_at, r.close_reason) == (100, ms(0), "take_profit")


@pytest.mark.parametrize("extra", [dict(order_type="stop"), dict(order_type="market", price_open=101)])
def test_bad_order_type_is_a_validation_error(kit, extra):
    kit.flat(-10, 40)
    kit.setup(frame=(0, 0), signals={0: long_signal(**extra)})
    assert kit.run() == []
    (err,) = kit.errors
    assert isinstance(err, bk.ValidationError) and "order_type must be 'limit' or 'stop'" in str(err)


def test_live_stop_fills_when_the_price_rises_through_it(tmp_path):
    bk.use_persist_adapter(bk.FileBackend(tmp_path))
    kit = Kit()
    kit.flat(-10, 100).flat(5, 100, price=101.5)
    kit.setup(frame=(0, 0), signals={0: long_signal(**STOP_LONG)})

    async def main():
        out = []
        clock = bk.VirtualClock(ms(0), ms(12))
        async for r in bk.Live.run(SYMBOL, strategy_name=kit.strategy_name, exchange_name=kit.exchange_name,
                                   clock=clock):
            out.append(r)
        return out

    (opened,) = asyncio.run(main())
    # D23: live applies the backtest's candle rules: candle 5 opened at 101.5, beyond the
    # trigger, so the stop fills at that open, at that candle's time
    assert opened.action == "opened" and opened.signal.price_open == 101.5
    assert opened.signal.pending_at == ms(5)


def test_no_signal_opens_after_the_last_candle_and_the_run_ends_there(kit):
    """D21: the frame runs past the data; a trade opened after the last candle could only close
    before it opened, so none is, and the run ends at the data's end."""
    kit.flat(-10, 30)
    kit.setup(frame=(0, 90), signals={m: long_signal(minutes=60) for m in (31, 32, 45)})
    assert kit.run() == []
    assert kit.calls == list(range(0, 32))  # asked until the first signal past the data, then done
    assert kit.errors == []


def test_a_trade_open_at_the_data_end_closes_at_the_last_candle_after_it_opened(kit):
    kit.flat(-10, 30)
    kit.setup(frame=(0, 90), signals={25: long_signal(minutes=60)})
    (r,) = kit.run()
    assert (r.close_reason, r.signal.pending_at, r.close_timestamp) == ("end_of_data", ms(25), ms(30))
    assert r.close_timestamp >= r.signal.pending_at

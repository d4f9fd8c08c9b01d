"""Vectorised strategies: add_strategy(..., get_signals=fn) trades exactly as the get_signal strategy
that computes the same rule one bar at a time; the arrays are read from the bar's close on; bad
arrays are refused naming the key and the strategy."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, synthetic_candles
from helpers.market import T0, M, flat_market

DAY = 1440
FAST, SLOW, TP, SL, LIFETIME = 10, 50, 1.0, 0.6, 240


# --- one moving-average cross, written both ways --------------------------------------------------

def _sum(xs) -> float:
    total = 0.0
    for x in xs:  # left to right, like the windowed numpy sums below
        total += x
    return total


def event_rule(shorts: bool = True, offset_pct: float | None = None, order_type: str = "limit"):
    """get_signal: the fast/slow mean cross of the last SLOW + 1 closed 1m candles, via get_candles."""

    async def get_signal(symbol, when):
        c = await bk.get_candles(symbol, "1m", SLOW + 1)
        if len(c) < SLOW + 1:
            return None
        closes = [float(x) for x in c.close]
        now, prev = closes[1:], closes[:-1]
        fast_now, slow_now = _sum(now[-FAST:]) / FAST, _sum(now) / SLOW
        fast_prev, slow_prev = _sum(prev[-FAST:]) / FAST, _sum(prev) / SLOW
        if fast_prev <= slow_prev and fast_now > slow_now:
            k = 1
        elif shorts and fast_prev >= slow_prev and fast_now < slow_now:
            k = -1
        else:
            return None
        base = closes[-1] if offset_pct is None else closes[-1] * (1 - k * offset_pct / 100)
        signal = {"position": "long" if k == 1 else "short", "price_take_profit": base * (1 + k * TP / 100),
                  "price_stop_loss": base * (1 - k * SL / 100), "minute_estimated_time": LIFETIME}
        if offset_pct is not None:
            signal["price_open"] = base
            signal["order_type"] = order_type
        return signal

    return get_signal


def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of x[k-w+1 .. k] at each k (NaN before w values), summed left to right."""
    out = np.full(len(x), np.nan)
    m = len(x) - w + 1
    if m > 0:
        total = x[0:m].copy()
        for j in range(1, w):
            total += x[j:j + m]
        out[w - 1:] = total / w
    return out


def vector_rule(shorts: bool = True, offset_pct: float | None = None, order_type: str = "limit", calls=None):
    """get_signals: the same cross for every bar at once."""

    def get_signals(c):
        if calls is not None:
            calls.append(c)
        close = c.close
        fast, slow = window_mean(close, FAST), window_mean(close, SLOW)
        fast_prev, slow_prev = np.r_[np.nan, fast[:-1]], np.r_[np.nan, slow[:-1]]
        up = (fast_prev <= slow_prev) & (fast > slow)
        down = (fast_prev >= slow_prev) & (fast < slow) if shorts else np.zeros(len(close), dtype=bool)
        position = np.where(up, 1, np.where(down, -1, 0))
        base = close if offset_pct is None else close * (1 - position * offset_pct / 100)
        out = {"position": position, "price_take_profit": base * (1 + position * TP / 100),
               "price_stop_loss": base * (1 - position * SL / 100), "minute_estimated_time": LIFETIME}
        if offset_pct is not None:
            out["price_open"] = np.where(position != 0, base, np.nan)
            out["order_type"] = order_type
        return out

    return get_signals


def market(days: int = 4, warmup: int = DAY) -> np.ndarray:
    return synthetic_candles(days * DAY + warmup, start_ms=T0 - warmup * M, seed=11)


def register(candles: np.ndarray, frame_interval: str = "1m", days: int = 4, offset_ms: int = 0) -> None:
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval=frame_interval, start_date=T0 + offset_ms,
                 end_date=T0 + (days * DAY - 1) * M)


def run(strategy: str, strict: bool = False) -> list:
    async def go() -> list:
        return [r async for r in bk.Backtest.run("BTCUSDT", strategy_name=strategy, exchange_name="ex",
                                                 frame_name="fr", strict=strict)]
    return asyncio.run(go())


def trades(results: list) -> list[tuple]:
    out = []
    for r in results:
        s = r.signal
        row = (r.action, s.position, s.scheduled_at, s.pending_at, s.price_open, s.price_take_profit,
               s.price_stop_loss, s.minute_estimated_time, s.order_type, getattr(r, "close_timestamp", None),
               r.current_price)
        if r.action == "closed":
            row += (r.close_reason, r.pnl.pnl_percentage, r.pnl.price_open, r.pnl.price_close)
        out.append(row)
    return out


@pytest.mark.parametrize("interval, frame_interval, offset_ms, least", [
    ("5m", "1m", 0, 5), ("1m", "1m", 0, 5), ("15m", "1m", 0, 2), ("5m", "3m", 0, 5), ("30m", "1h", 0, 2),
    ("5m", "1m", 90_500, 5),  # frames at 01:30.5, 02:30.5, ...: off the minute and the bucket grid
])
def test_the_same_trades_as_the_get_signal_strategy(interval, frame_interval, offset_ms, least):
    register(market(days=8), frame_interval, days=8, offset_ms=offset_ms)
    errors: list = []
    bk.listen_error(errors.append)
    bk.add_strategy(strategy_name="event", interval=interval, get_signal=event_rule())
    bk.add_strategy(strategy_name="vector", interval=interval, get_signals=vector_rule())
    event = run("event")
    event_errors = len(errors)
    vector = run("vector")
    assert len(event) >= least  # something to compare
    if least >= 5:
        assert {r.signal.position for r in event} == {"long", "short"}
    assert trades(vector) == trades(event)
    assert len(errors) - event_errors == event_errors  # the same signals refused by the same rules
    stats_e = asyncio.run(bk.Backtest.get_data("BTCUSDT", "event"))
    stats_v = asyncio.run(bk.Backtest.get_data("BTCUSDT", "vector"))
    assert (stats_v.total_signals, stats_v.total_pnl) == (stats_e.total_signals, stats_e.total_pnl)


@pytest.mark.parametrize("order_type, offset", [("limit", 0.3), ("stop", -0.3)])
def test_the_same_limit_and_stop_orders(order_type, offset):
    # A limit long rests below the close; a stop long above it (negative offset).
    register(market())
    bk.add_strategy(strategy_name="event", interval="5m", get_signal=event_rule(True, offset, order_type))
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=vector_rule(True, offset, order_type))
    event, vector = run("event"), run("vector")
    assert {r.action for r in event} == {"closed", "cancelled"}
    assert {r.signal.order_type for r in event} == {order_type}
    assert trades(vector) == trades(event)


def test_the_same_ticks_when_every_frame_is_observed():
    # An on_idle callback: no frame is skipped, and each idle tick is seen; both ways see the same ones.
    register(market(days=1), days=1)
    idles = {"event": 0, "vector": 0}

    def counter(name):
        def on_idle(*args):
            idles[name] += 1
        return {"on_idle": on_idle}

    bk.add_strategy(strategy_name="event", interval="5m", get_signal=event_rule(), callbacks=counter("event"))
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=vector_rule(), callbacks=counter("vector"))
    event, vector = run("event"), run("vector")
    assert trades(vector) == trades(event) and len(event) >= 2
    assert idles["vector"] == idles["event"] > DAY // 2


def test_get_signals_is_called_once_on_the_frame_history_with_its_warmup():
    register(market(days=2, warmup=3 * DAY), days=2)
    calls: list = []
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=vector_rule(calls=calls), warmup_minutes=600)
    assert run("vector")
    assert len(calls) == 1
    ts = calls[0].timestamp
    # 600 minutes before the frame, up to the last bar that has closed by the frame's last minute.
    assert (int(ts[0]), int(ts[-1]), len(ts)) == (T0 - 600 * M, T0 + (2 * DAY - 2) * M, 600 + 2 * DAY - 1)
    with pytest.raises(ValueError):
        calls[0].close[0] = 1.0  # the candles are the shared cache: read-only


def one_bar(bars: dict[int, int], minutes: int = 200, interval: str = "1m", frame: tuple[int, int] = (5, 150),
            prices: dict[int, float] | None = None, **extra):
    """A flat market at 100 and a get_signals strategy whose position is bars[minute] (else 0)."""
    candles = flat_market(minutes, prices)
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + frame[0] * M, end_date=T0 + frame[1] * M)

    def get_signals(c):
        minute = (c.timestamp - T0) // M
        position = np.array([bars.get(int(m), 0) for m in minute])
        out = {"position": position, "price_take_profit": np.where(position >= 0, 102.0, 98.0),
               "price_stop_loss": np.where(position >= 0, 98.0, 102.0), "minute_estimated_time": 30}
        out.update({k: v(c) if callable(v) else v for k, v in extra.items()})
        return out

    bk.add_strategy(strategy_name="v", interval=interval, get_signals=get_signals)


def test_the_signal_of_a_bar_is_used_from_its_close_on():
    one_bar({20: 1, 100: -1})
    results = run("v")
    # Bar 20 opens at minute 20 and closes at 21: the long opens at minute 21 at 100 and times out 30 minutes later.
    assert [(r.signal.position, r.signal.pending_at, r.close_reason, r.close_timestamp) for r in results] == [
        ("long", T0 + 21 * M, "time_expired", T0 + 51 * M),
        ("short", T0 + 101 * M, "time_expired", T0 + 131 * M)]


def test_only_the_bar_read_at_an_ask_counts_once_per_bucket():
    # A 5m strategy asks at minutes 0, 5, 10, ... and reads the bar that closed then (4, 9, ...):
    # bars 22 and 60 are never read; bar 24 is read at minute 25, bar 64 at minute 65.
    one_bar({22: 1, 24: 1, 60: 1, 64: 1}, interval="5m")
    results = run("v")
    assert [r.signal.pending_at for r in results] == [T0 + 25 * M, T0 + 65 * M]


def test_a_signal_while_a_position_is_open_is_not_taken_and_resume_reads_the_bar_then():
    # Long from minute 11 to 41 (time out); bar 40's long is read at minute 42, the first frame after the close.
    one_bar({10: 1, 20: 1, 41: 1})
    results = run("v")
    assert [(r.signal.pending_at, r.close_timestamp) for r in results] == [(T0 + 11 * M, T0 + 41 * M),
                                                                          (T0 + 42 * M, T0 + 72 * M)]


def test_take_profit_is_scanned_on_the_candles_as_for_get_signal():
    one_bar({30: 1}, prices={40: 102.5})
    (closed,) = run("v")
    assert (closed.close_reason, closed.close_timestamp, closed.current_price) == ("take_profit", T0 + 40 * M, 102.0)
    o, c = 100 * 1.001, 102 * 0.999  # slippage 0.1 % each side, fee 0.1 % each side
    assert closed.pnl.pnl_percentage == pytest.approx((c - o) / o * 100 - 0.2)


def test_scalars_and_a_market_price_open():
    one_bar({10: 1}, price_open=np.nan, order_type="limit", minute_estimated_time=np.int64(15))
    (closed,) = run("v")
    assert (closed.signal.price_open, closed.signal.minute_estimated_time, closed.close_timestamp) == \
        (100.0, 15, T0 + 26 * M)


def test_a_signal_the_rules_refuse_is_reported_and_the_run_goes_on():
    # TP below the open of a long at bar 10; a valid long at bar 60.
    one_bar({10: 1, 60: 1}, price_take_profit=lambda c: np.where((c.timestamp - T0) // M == 10, 99.0, 102.0))
    errors: list = []
    bk.listen_error(errors.append)
    results = run("v")
    assert [r.signal.pending_at for r in results] == [T0 + 61 * M]
    assert len(errors) == 1 and "price_take_profit (99) must be > price_open (100)" in str(errors[0])


@pytest.mark.parametrize("change, words", [
    ({"position": None}, ["'position'", "required"]),
    ({"minute_estimated_time": None}, ["'minute_estimated_time'"]),
    ({"take_profit": 1.0}, ["unknown key", "'take_profit'"]),
    ({"position": lambda c: np.zeros(len(c) - 1)}, ["'position'", "one value per 1m candle (150)"]),
    ({"position": lambda c: np.where((c.timestamp - T0) // M == 7, 2, 0)}, ["'position'", "+1", "got 2", "bar 7"]),
    ({"position": lambda c: np.where((c.timestamp - T0) // M == 7, np.nan, 0)}, ["'position'", "got nan",
                                                                             "np.nan_to_num"]),
    ({"position": 1}, ["'position'", "one value per 1m candle"]),
    ({"price_take_profit": lambda c: np.where((c.timestamp - T0) // M == 10, np.nan, 102.0)},
     ["'price_take_profit'", "finite where position is not 0", "bar 10", "2024-01-01T00:10:00.000Z"]),
    ({"price_stop_loss": np.inf}, ["'price_stop_loss'", "finite"]),
    ({"minute_estimated_time": np.nan}, ["'minute_estimated_time'", "finite"]),
    ({"price_open": np.inf}, ["'price_open'", "NaN"]),
    ({"price_open": "x"}, ["'price_open'", "numeric"]),
    ({"order_type": "market"}, ["'order_type'", "'limit' or 'stop'", "market"]),
    ({"price_take_profit": lambda c: ["a"] * len(c)}, ["'price_take_profit'", "numeric"]),
])
def test_bad_arrays_are_refused_naming_the_key_and_the_strategy(change, words):
    one_bar({10: 1}, **change)
    with pytest.raises(bk.ValidationError) as e:
        run("v")
    for w in ["get_signals of strategy 'v'", *words]:
        assert w in str(e.value)


@pytest.mark.parametrize("value, words", [(None, ["dict of arrays", "NoneType"]), ([1, 2], ["dict", "list"])])
def test_get_signals_must_return_a_dict(value, words):
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(100)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 50 * M)
    bk.add_strategy(strategy_name="v", interval="1m", get_signals=lambda c: value)
    with pytest.raises(bk.ValidationError) as e:
        run("v")
    assert all(w in str(e.value) for w in ["get_signals of strategy 'v'", *words])


def test_an_exception_in_get_signals_fails_the_run_and_says_where():
    def get_signals(c):
        return {"position": np.zeros(len(c)), "oops": len(c) // 0}

    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(100)).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 50 * M)
    bk.add_strategy(strategy_name="v", interval="1m", get_signals=get_signals)
    with pytest.raises(ZeroDivisionError) as e:
        run("v")  # not a run without signals that looks like a quiet market
    assert e.value.__notes__ == ["raised by get_signals of strategy 'v' on 50 1m candles "
                                 "(2024-01-01T00:00:00.000Z .. 2024-01-01T00:49:00.000Z)"]


def test_add_strategy_takes_exactly_one_of_get_signal_and_get_signals():
    with pytest.raises(bk.ValidationError, match="exactly one of 'get_signal'.*'get_signals'.*got neither"):
        bk.add_strategy(strategy_name="s", interval="5m")
    with pytest.raises(bk.ValidationError, match="got both"):
        bk.add_strategy(strategy_name="s", interval="5m", get_signal=lambda s, w: None, get_signals=lambda c: {})
    with pytest.raises(bk.ValidationError, match="'get_signals' must be callable"):
        bk.add_strategy(strategy_name="s", interval="5m", get_signals=3)
    with pytest.raises(bk.ValidationError, match=r"get_signals\(candles\)"):
        bk.add_strategy(strategy_name="s", interval="5m", get_signals=lambda: {})
    for bad in (-1, 1.5, True, "60"):
        with pytest.raises(bk.ValidationError, match="'warmup_minutes' must be an int"):
            bk.add_strategy(strategy_name="s", interval="5m", get_signals=lambda c: {}, warmup_minutes=bad)
    assert bk.list_strategies() == []  # nothing was registered by the refused calls
    bk.add_strategy(strategy_name="s", interval="5m", get_signals=lambda c: {}, warmup_minutes=0)
    (schema,) = bk.list_strategies()
    assert (schema.get_signal, schema.warmup_minutes) == (None, 0)


def test_async_get_signals_and_walker_runs():
    one_bar({10: 1})
    vector = bk.list_strategies()[0]

    async def get_signals(c):
        return vector.get_signals(c)

    bk.add_strategy(strategy_name="a", interval="1m", get_signals=get_signals)
    bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr", strategies=["v", "a"])

    async def walk() -> list:
        return [p async for p in bk.Walker.run("BTCUSDT", walker_name="w")]

    progress = asyncio.run(walk())
    assert [p.stats.total_signals for p in progress] == [1, 1]
    assert trades(run("a")) == trades(run("v"))


# --- live ---------------------------------------------------------------------------------------

def live(strategy: str, start: int, end: int) -> list:
    async def go() -> list:
        clock = bk.VirtualClock(T0 + start * M + 1, T0 + end * M)
        return [r async for r in bk.Live.run("BTCUSDT", strategy_name=strategy, exchange_name="ex", clock=clock)]
    return asyncio.run(go())


def test_live_recomputes_on_the_recent_history_and_trades_as_get_signal(in_tmp_dir):
    candles = market(days=1, warmup=DAY)
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    calls: list = []
    bk.add_strategy(strategy_name="event", interval="5m", get_signal=event_rule())
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=vector_rule(calls=calls), warmup_minutes=120)
    event, vector = live("event", 0, 600), live("vector", 0, 600)
    assert len(event) >= 2 and {r.action for r in event} >= {"opened", "closed"}
    assert trades(vector) == trades(event)
    # One call per ask (a 5m bucket while flat), each on the 120 closed candles before its minute.
    assert len(calls) >= 20
    for c in calls:
        assert len(c) == 120 and int(c.timestamp[-1]) - int(c.timestamp[0]) == 119 * M


def test_a_bad_array_in_live_is_reported_each_ask_and_nothing_trades(in_tmp_dir):
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(flat_market(100)).get_candles)
    bk.add_strategy(strategy_name="v", interval="1m", get_signals=lambda c: {"position": np.ones(len(c))})
    errors: list = []
    bk.listen_error(errors.append)
    assert live("v", 30, 35) == []
    assert len(errors) == 5  # the ticks at minutes 30 .. 34 and all("'price_take_profit'" in str(e) for e in errors)


def test_the_signal_payload_is_a_plain_signal():
    # What risk validations receive from a vectorised strategy: a bk.Signal like get_signal's.
    seen: list = []
    bk.add_risk(risk_name="r", validations=[lambda args: seen.append(args.pending_signal)])
    one_bar({10: -1})
    schema = bk.list_strategies()[0]
    bk.add_strategy(strategy_name="w", interval="1m", get_signals=schema.get_signals, risk_name="r")
    (result,) = run("w")
    assert seen and isinstance(seen[0], bk.Signal)
    assert dataclasses.asdict(seen[0]) | {"id": None} == {
        "position": "short", "price_take_profit": 98.0, "price_stop_loss": 102.0, "minute_estimated_time": 30,
        "price_open": None, "note": None, "id": None, "order_type": "limit"}
    assert type(seen[0].minute_estimated_time) is int and type(seen[0].price_take_profit) is float


def test_a_portfolio_of_two_symbols_trades_as_its_get_signal_twin():
    # One account, two symbols (the same candles under two names), each trade sized at 0.1 % risk
    # of the equity: the sizes follow the account's equity the same way in both modes.
    register(market(days=2), days=2)
    bk.add_sizing(sizing_name="small", method="fixed-percentage", risk_percentage=0.1)
    bk.add_strategy(strategy_name="event", interval="5m", get_signal=event_rule(), sizing_name="small")
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=vector_rule(), sizing_name="small")

    async def walk(name: str) -> list:
        return [r async for r in bk.Portfolio.run(["BTCUSDT", "ETHUSDT"], strategies=name, exchange_name="ex",
                                                  frame_name="fr")]

    event = asyncio.run(walk("event"))
    vector = asyncio.run(walk("vector"))
    assert len(event) >= 4 and {r.symbol for r in event} == {"BTCUSDT", "ETHUSDT"}
    assert [(r.symbol, r.signal.quantity, *t) for r, t in zip(vector, trades(vector))] == \
        [(r.symbol, r.signal.quantity, *t) for r, t in zip(event, trades(event))]

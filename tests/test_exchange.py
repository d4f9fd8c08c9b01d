"""Candle windows seen by strategy code (D1) and candle-request retries."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit import _registry as registry
from backtest_kit._exchange import ExchangeClient
from backtest_kit._time import to_ms
from backtest_kit.demo import ArrayExchange
from conftest import SYMBOL, T0, M, long_signal, ms

pytestmark = pytest.mark.usefixtures("no_retry_delay")

STEP = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240}


def distinct(kit, first, last):
    """1m candles with distinct prices p = 100 + m/100, h = p + 0.5, l = p - 0.5, v = 1 + m mod 4."""
    for m in range(first, last + 1):
        p = 100 + m / 100
        kit.candle(m, o=p, h=p + 0.5, l=p - 0.5, c=p, v=1 + m % 4)
    return kit


def window_probe(interval, limit, store):
    async def probe(symbol, when):
        c = await bk.get_candles(symbol, interval, limit)
        store.append([x.timestamp for x in c])
        return None
    return probe


# --- D1: only closed candles, window [aligned - limit*step, aligned) -------------------------

def test_1m_window_is_the_three_candles_before_when(kit):
    got = []
    distinct(kit, -30, 30).setup(frame=(10, 10), signals={10: window_probe("1m", 3, got)})
    kit.run()
    assert got == [[ms(7), ms(8), ms(9)]]


def test_limit_one_is_the_last_closed_candle(kit):
    got = []
    distinct(kit, -30, 30).setup(frame=(10, 10), signals={10: window_probe("1m", 1, got)})
    kit.run()
    assert got == [[ms(9)]]


def test_1m_window_values_are_the_exchange_candles(kit):
    seen = []

    async def probe(symbol, when):
        seen.extend(await bk.get_candles(symbol, "1m", 2))

    distinct(kit, -30, 30).setup(frame=(10, 10), signals={10: probe})
    kit.run()
    p8, p9 = 100.08, 100.09
    assert seen == [bk.Candle(ms(8), p8, p8 + 0.5, p8 - 0.5, p8, 1.0),
                    bk.Candle(ms(9), p9, p9 + 0.5, p9 - 0.5, p9, 2.0)]


def test_5m_window_with_unaligned_when(kit):
    # when 00:07 -> aligned 00:05 -> [23:50, 00:05): 23:50, 23:55, 00:00 (00:05 is still forming)
    got = []
    distinct(kit, -60, 30).setup(frame=(7, 7), signals={7: window_probe("5m", 3, got)})
    kit.run()
    assert got == [[ms(-10), ms(-5), ms(0)]]


def test_5m_window_candle_values_aggregate_closed_minutes(kit):
    seen = []

    async def probe(symbol, when):
        seen.extend(await bk.get_candles(symbol, "5m", 1))

    distinct(kit, -60, 30).setup(frame=(7, 7), signals={7: probe})
    kit.run()
    # the 5m candle at 00:00 = minutes 0..4: open p0, high p4 + .5, low p0 - .5, close p4
    (c,) = seen
    assert c.timestamp == ms(0)
    assert c.open == 100.0 and c.close == 100.04
    assert c.high == 100.04 + 0.5 and c.low == 100.0 - 0.5
    assert c.volume == 1 + 2 + 3 + 4 + 1


def test_5m_window_with_aligned_when(kit):
    got = []
    distinct(kit, -60, 30).setup(frame=(10, 10), signals={10: window_probe("5m", 3, got)})
    kit.run()
    assert got == [[ms(-5), ms(0), ms(5)]]


def test_1h_window_with_unaligned_when(kit):
    # when 01:30 -> aligned 01:00 -> [23:00, 01:00): 23:00, 00:00
    got = []
    distinct(kit, -130, 100).setup(frame=(90, 90), signals={90: window_probe("1h", 2, got)})
    kit.run()
    assert got == [[ms(-60), ms(0)]]


def test_window_at_start_of_data_returns_fewer_without_error(kit):
    got = []
    distinct(kit, -2, 30).setup(frame=(0, 0), signals={0: window_probe("1m", 5, got)})
    kit.run()
    assert got == [[ms(-2), ms(-1)]]
    assert kit.errors == []


def test_unknown_interval_and_bad_limit_are_rejected(kit):
    caught = []

    async def probe(symbol, when):
        for interval, limit in (("2m", 3), ("1w", 3), ("1m", 0), ("1m", -1), ("1m", 2.5)):
            try:
                await bk.get_candles(symbol, interval, limit)
            except bk.ValidationError as e:
                caught.append(str(e))

    distinct(kit, -30, 30).setup(frame=(0, 0), signals={0: probe})
    kit.run()
    assert len(caught) == 5
    assert "'2m'" in caught[0] and "'1w'" in caught[1] and "limit" in caught[2]


def test_numpy_integer_limit_accepted(kit):
    got = []
    distinct(kit, -30, 30).setup(frame=(10, 10), signals={10: window_probe("1m", np.int64(2), got)})
    kit.run()
    assert got == [[ms(8), ms(9)]] and kit.errors == []


def test_average_price_is_vwap_of_the_five_closed_minutes(kit):
    got = []

    async def probe(symbol, when):
        got.append(await bk.get_average_price(symbol))

    distinct(kit, -30, 30)
    kit.candle(10, h=900, l=800, c=850, v=1000)  # the candle opening at `when`: invisible
    kit.setup(frame=(10, 10), signals={10: probe})
    kit.run()
    num = vol = 0.0
    for m in range(5, 10):  # typical = p (h and l symmetric around p = c)
        num += (100 + m / 100) * (1 + m % 4)
        vol += 1 + m % 4
    assert got == [pytest.approx(num / vol, rel=1e-12)]


def test_current_price_of_an_immediate_signal_is_that_vwap(kit):
    distinct(kit, -30, 60)
    kit.setup(frame=(10, 10), signals={10: long_signal(tp=103, sl=97, minutes=5)})
    (r,) = kit.run()
    num = sum((100 + m / 100) * (1 + m % 4) for m in range(5, 10))
    vol = sum(1 + m % 4 for m in range(5, 10))
    assert r.signal.price_open == pytest.approx(num / vol, rel=1e-12)


@pytest.mark.parametrize("listen", [False, True])
def test_nothing_at_or_after_when_is_ever_visible_over_a_run(kit, listen):
    """Every window of every get_signal call, over a run with trades, ends before `when`."""
    violations, checked = [], []

    async def get_signal(symbol, when):
        t = to_ms(when)
        for interval, limit in (("1m", 1), ("1m", 7), ("3m", 4), ("5m", 3), ("15m", 2), ("1h", 1)):
            step = STEP[interval] * M
            aligned = t // step * step
            c = await bk.get_candles(symbol, interval, limit)
            ts = [x.timestamp for x in c]
            checked.append(len(ts))
            want = [aligned - (limit - k) * step for k in range(limit)]
            if ts != want or any(x + step > t for x in ts):
                violations.append((when, interval, limit, ts))
        m = (t - T0) // M
        if m % 37 == 0:
            return long_signal(tp=100 + m / 100 + 1, sl=100 + m / 100 - 1, minutes=9)
        return None

    distinct(kit, -200, 400)
    kit.setup(frame=(0, 300), signals={m: get_signal for m in range(0, 301)})
    if listen:
        bk.listen_signal_backtest(lambda e: None)
    results = kit.run()
    assert kit.errors == []
    assert len(results) >= 5
    assert violations == []
    assert len(checked) > 200


# --- retries --------------------------------------------------------------------------------

def flaky(data, failures, calls):
    """An exchange whose first `failures` calls raise, then serves `data`."""
    source = ArrayExchange(np.array(data, dtype=np.float64))

    async def get_candles(symbol, interval, since, limit):
        calls.append((interval, to_ms(since), limit))
        if len(calls) <= failures:
            raise ConnectionError(f"boom #{len(calls)}")
        return await source.get_candles(symbol, interval, since, limit)
    return get_candles


def flat_rows(first=-30, last=30):
    return [[ms(m), 100.0, 100.0, 100.0, 100.0, 1.0] for m in range(first, last + 1)]


def test_exchange_failing_twice_succeeds_with_three_attempts(kit):
    calls = []
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3)
    kit.setup(frame=(0, 0), get_candles=flaky(flat_rows(), 2, calls))
    assert kit.run() == []
    assert kit.errors == []
    assert len(calls) == 4
    assert calls[0] == calls[1] == calls[2]  # the same request, repeated
    assert calls[3][1] == ms(31)  # the page was short: asked again from after its last candle
    assert kit.calls == [0]  # the frame was priced and get_signal asked


def test_exchange_failing_twice_fails_with_two_attempts(kit):
    calls = []
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=2)
    kit.setup(frame=(0, 0), get_candles=flaky(flat_rows(), 2, calls))
    with pytest.raises(bk.CandleError) as failed:  # issue 11: the run fails, it is not skipped
        kit.run()
    assert len(calls) == 2
    assert kit.calls == []  # the frame could not be priced
    err = failed.value
    msg = str(err)
    assert "get_candles(" in msg and f"symbol={SYMBOL!r}" in msg and "interval='1m'" in msg
    assert "since=2023-12-31T23:55:00.000Z" in msg  # the window start of the price at 00:00
    assert "failed after 2 attempt(s)" in msg and "boom #2" in msg
    assert "exchange 'ex'" in msg and "window 2023-12-31T23:55:00.000Z .. " in msg
    assert isinstance(err.__cause__, ConnectionError)


def test_default_retry_count_is_three(kit):
    calls = []
    kit.setup(frame=(0, 0), get_candles=flaky(flat_rows(), 5, calls))
    with pytest.raises(bk.CandleError, match=r"failed after 3 attempt\(s\)"):
        kit.run()
    assert len(calls) == 3


def test_invalid_batch_is_retried(kit):
    calls = []
    good = flat_rows()
    bad = [list(r) for r in good]
    bad[28][4] = float("nan")  # minute -2

    async def get_candles(symbol, interval, since, limit):
        calls.append(1)
        data = bad if len(calls) == 1 else good
        return [r for r in data if r[0] >= to_ms(since)][:limit]

    kit.setup(frame=(0, 0), get_candles=get_candles)
    kit.run()
    assert kit.errors == [] and len(calls) == 3 and kit.calls == [0]  # bad, good, the page after


def test_failure_inside_get_signal_window_fails_the_run(kit):
    calls = []
    data = flat_rows()

    async def get_candles(symbol, interval, since, limit):
        calls.append(interval)
        if interval == "5m":
            raise TimeoutError("5m feed down")
        return [r for r in data if r[0] >= to_ms(since)][:limit]

    async def probe(symbol, when):
        await bk.get_candles(symbol, "5m", 2)

    kit.setup(frame=(0, 1), get_candles=get_candles, signals={0: probe})
    with pytest.raises(bk.CandleError) as failed:  # even though strategy code met it first
        kit.run()
    assert calls.count("5m") == 3
    (err,) = kit.errors  # get_signal's own error, reported once
    assert err is failed.value
    assert "interval='5m'" in str(err) and "5m feed down" in str(err)
    assert kit.calls == [0]  # the run stopped there


def client(get_candles, sleeps, jitter=lambda: 1.0):
    bk.add_exchange(exchange_name="direct", get_candles=get_candles)

    async def fake_sleep(seconds):
        sleeps.append(seconds)

    return ExchangeClient(registry.get_exchange("direct"), backtest=False, sleep=fake_sleep, jitter=jitter)


def test_retry_pauses_between_attempts_only_and_back_off():
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=250, CC_GET_CANDLES_RETRY_COUNT=3)
    calls, sleeps = [], []
    c = client(flaky(flat_rows(), 10, calls), sleeps)
    with pytest.raises(bk.BacktestKitError, match="failed after 3 attempt"):
        asyncio.run(c.fetch(SYMBOL, "1m", ms(0), 5))
    assert len(calls) == 3
    assert sleeps == [0.25, 0.5]  # exponential (the jitter factor is 1.0 here)


def test_fetch_passes_since_as_utc_datetime_and_limit():
    seen, sleeps = [], []

    async def get_candles(symbol, interval, since, limit):
        seen.append((symbol, interval, since, limit))
        return []

    c = client(get_candles, sleeps)
    asyncio.run(c.fetch(SYMBOL, "15m", ms(30), 7))
    ((symbol, interval, since, limit),) = seen
    assert (symbol, interval, limit) == (SYMBOL, "15m", 7)
    assert since.utcoffset().total_seconds() == 0 and to_ms(since) == ms(30)


def test_fetch_drops_candles_before_since():
    sleeps = []

    async def get_candles(symbol, interval, since, limit):
        return flat_rows(-5, 5)

    c = client(get_candles, sleeps)
    got = asyncio.run(c.fetch(SYMBOL, "1m", ms(0), 3))
    assert got.timestamp.tolist()[0] == ms(0)


def test_on_candle_data_callback_receives_each_batch(kit):
    seen = []

    async def get_candles(symbol, interval, since, limit):
        return [r for r in flat_rows() if r[0] >= to_ms(since)][:limit]

    bk.add_exchange(exchange_name="cb", get_candles=get_candles,
                    callbacks={"on_candle_data": lambda *a: seen.append(a)})
    c = ExchangeClient(registry.get_exchange("cb"), backtest=False)
    asyncio.run(c.fetch(SYMBOL, "1m", ms(0), 3))
    ((symbol, interval, since, limit, data),) = seen
    assert (symbol, interval, limit, to_ms(since)) == (SYMBOL, "1m", 3, ms(0))
    assert [x.timestamp for x in data] == [ms(0), ms(1), ms(2)]


def test_live_window_matches_backtest_window():
    """The non-cached (live) client uses the same D1 window."""
    sleeps = []

    async def get_candles(symbol, interval, since, limit):
        return [r for r in flat_rows(-30, 30) if r[0] >= to_ms(since)][:limit]

    c = client(get_candles, sleeps)
    got = asyncio.run(c.window(SYMBOL, "1m", ms(10) + 25_000, 3))  # 00:10:25
    assert got.timestamp.tolist() == [ms(7), ms(8), ms(9)]
    price = asyncio.run(c.average_price(SYMBOL, ms(10) + 25_000))
    assert price == 100.0


# --- fetch strategy does not change what strategies see --------------------------------------

def varied_rows(first, last, gaps=()):
    out = []
    for m in range(first, last + 1):
        if m in gaps:
            continue
        p = 100 + ((m * 7919) % 61 - 30) / 40
        out.append([ms(m), p, p + 0.3, p - 0.3, p, 1.0 + m % 5])
    return np.array(out, dtype=np.float64)


def capped_run(cap, gaps=()):
    """A run whose exchange returns at most `cap` candles per call (None: no cap)."""
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    source = ArrayExchange(varied_rows(-300, 400, gaps))

    async def get_candles(symbol, interval, since, limit):
        return await source.get_candles(symbol, interval, since, min(limit, cap or limit))

    seen = []

    async def get_signal(symbol, when):
        m = (to_ms(when) - T0) // M
        one = await bk.get_candles(symbol, "1m", 10)
        five = await bk.get_candles(symbol, "5m", 4)
        seen.append((m, list(one), list(five), await bk.get_average_price(symbol)))
        if m % 23 == 0:
            return long_signal(tp=103, sl=97, minutes=40, id=f"L{m}")
        if m % 31 == 0:
            return {"position": "short", "price_take_profit": 98, "price_stop_loss": 102,
                    "minute_estimated_time": 40, "price_open": 100.5, "id": f"S{m}"}
        return None

    from conftest import Kit
    kit = Kit()
    kit.setup(frame=(0, 300), get_candles=get_candles, signals={m: get_signal for m in range(301)})
    results = kit.run()
    return results, seen, kit.errors


@pytest.mark.parametrize("gaps", [(), (50, 51, 52, 53, 120)])
def test_exchange_page_cap_changes_nothing(gaps):
    full, seen_full, errors = capped_run(None, gaps)
    assert errors == [] and len(full) >= 5
    for cap in (3, 17):
        results, seen, errors = capped_run(cap, gaps)
        assert errors == []
        assert results == full
        assert seen == seen_full

"""Candle shapes, batch validation and the VWAP (ENGINE.md "Candles and price")."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

import backtest_kit as bk
from backtest_kit._candles import Candles, to_candles, vwap
from backtest_kit._time import to_ms
from conftest import SYMBOL, ms

pytestmark = pytest.mark.usefixtures("no_retry_delay")

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def rows(first=-10, last=10):
    """Distinct 1m candles: price 100 + m/10, high +0.5, low -0.5, volume 1 + (m mod 3)."""
    out = []
    for m in range(first, last + 1):
        p = 100 + m / 10
        out.append([ms(m), p, p + 0.5, p - 0.5, p + 0.05, 1.0 + m % 3])
    return out


def shaped(sel, shape):
    if shape == "candle":
        return [bk.Candle(int(r[0]), *r[1:]) for r in sel]
    if shape == "dict":
        return [dict(zip(COLUMNS, r)) for r in sel]
    if shape == "tuple":
        return [tuple(r) for r in sel]
    if shape == "list":
        return [list(r) for r in sel]
    if shape == "dataframe":
        return pd.DataFrame(sel, columns=COLUMNS)
    if shape == "dataframe_extra_columns":
        df = pd.DataFrame(sel, columns=COLUMNS)
        df["trades"] = 7
        return df[["volume", "trades", "close", "low", "high", "open", "timestamp"]]
    if shape == "ndarray":
        return np.array(sel, dtype=np.float64).reshape(-1, 6)
    if shape == "structured":
        dtype = [("timestamp", "i8")] + [(c, "f8") for c in COLUMNS[1:]]
        return np.array([(int(r[0]), *r[1:]) for r in sel], dtype=dtype)
    if shape == "generator":
        return (tuple(r) for r in sel)
    raise AssertionError(shape)


SHAPES = ["candle", "dict", "tuple", "list", "dataframe", "dataframe_extra_columns", "ndarray",
          "structured", "generator"]


def probe_run(get_candles, probe, frame=(0, 0), **config):
    """Backtest one frame with `get_candles`; run `probe(symbol)` inside get_signal; return
    (probe results, errors)."""
    if config:
        bk.set_config(**config)
    out, errors = [], []
    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=ms(frame[0]), end_date=ms(frame[1]))

    async def get_signal(symbol, when):
        out.append(await probe(symbol))
        return None

    bk.add_strategy(strategy_name="st", interval="1m", get_signal=get_signal)
    bk.listen_error(errors.append)

    async def go():
        return [r async for r in bk.Backtest.run(SYMBOL, strategy_name="st", exchange_name="ex",
                                                 frame_name="fr")]
    assert asyncio.run(go()) == []
    return out, errors


def serving(data, shape="list", sync=False):
    """An exchange over `data` rows returning `shape`."""
    def select(since, limit):
        t = to_ms(since)
        return [r for r in data if r[0] >= t][:limit]

    if sync:
        def get_candles(symbol, interval, since, limit):
            return shaped(select(since, limit), shape)
    else:
        async def get_candles(symbol, interval, since, limit):
            return shaped(select(since, limit), shape)
    return get_candles


async def window_and_price(symbol):
    c = await bk.get_candles(symbol, "1m", 3)
    return list(c), await bk.get_average_price(symbol)


# --- shapes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_every_accepted_shape_returns_the_same_candles(shape):
    data = rows()
    out, errors = probe_run(serving(data, shape), window_and_price)
    assert errors == []
    (candles, price), = out
    want = [bk.Candle(int(r[0]), *r[1:]) for r in data if ms(-3) <= r[0] < ms(0)]
    assert candles == want
    assert all(type(c.timestamp) is int for c in candles)
    # hand VWAP of minutes -5..-1: typical = p + 0.05/3, weights 1 + (m mod 3)
    num = vol = 0.0
    for m in range(-5, 0):
        p = 100 + m / 10
        typical = ((p + 0.5) + (p - 0.5) + (p + 0.05)) / 3
        w = 1.0 + m % 3
        num += typical * w
        vol += w
    assert price == pytest.approx(num / vol, rel=1e-12)


def test_sync_get_candles_is_accepted():
    out, errors = probe_run(serving(rows(), "tuple", sync=True), window_and_price)
    assert errors == []
    assert [c.timestamp for c in out[0][0]] == [ms(-3), ms(-2), ms(-1)]


@pytest.mark.parametrize("shape", ["list", "dataframe", "ndarray"])
def test_empty_batch_is_valid_but_leaves_nothing_to_price(shape):
    out, errors = probe_run(serving([], shape), window_and_price)
    assert out == []  # no price at the frame: get_signal is never reached
    assert errors == []  # an exchange with no candles at all: the end of its data, found by probing


def test_empty_dataframe_without_columns_means_no_candles():
    out, errors = probe_run(lambda *a: pd.DataFrame(), window_and_price)
    assert out == [] and errors == []  # not a shape error: no candles, the data has ended


def test_empty_batch_in_a_gap_leaves_that_frame_unpriced():
    data = [[ms(m), 100.0, 100.0, 100.0, 100.0, 1.0] for m in list(range(-10, -6)) + list(range(0, 5))]
    out, errors = probe_run(serving(data), window_and_price, frame=(-1, -1))
    assert out == []  # [-6, -1) holds no candle, later data exists: a gap, reported, not the end
    assert len(errors) == 1 and "no closed 1m candles" in str(errors[0])


def test_unsorted_batch_is_sorted():
    data = rows()
    shuffled = data[::2] + data[1::2]

    async def get_candles(symbol, interval, since, limit):
        t = to_ms(since)
        return [r for r in shuffled if r[0] >= t][:limit]

    out, errors = probe_run(get_candles, window_and_price)
    assert errors == []
    assert [c.timestamp for c in out[0][0]] == [ms(-3), ms(-2), ms(-1)]


def test_to_candles_shapes_agree():
    data = rows(0, 4)
    ref = to_candles(data)
    for shape in SHAPES:
        got = to_candles(shaped(data, shape))
        for col in COLUMNS:
            assert np.array_equal(getattr(got, col), getattr(ref, col)), (shape, col)


def test_to_candles_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="shape"):
        to_candles(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expected 6"):
        to_candles([(1, 2, 3)])
    with pytest.raises(ValueError, match="lacks"):
        to_candles([{"timestamp": 1, "open": 1}])
    with pytest.raises(ValueError, match="lacks"):
        to_candles(pd.DataFrame({"timestamp": [1], "open": [1.0]}))


def test_candles_sequence_protocol():
    c = to_candles(rows(0, 4))
    assert len(c) == 5
    assert c[0] == bk.Candle(ms(0), 100.0, 100.5, 99.5, 100.05, 1.0)
    assert c[-1].timestamp == ms(4)
    assert isinstance(c[1:3], Candles) and [x.timestamp for x in c[1:3]] == [ms(1), ms(2)]
    assert list(c)[2] == c[2]
    assert c.to_dicts()[0]["close"] == 100.05
    assert c.close.tolist() == [r[4] for r in rows(0, 4)]


# --- validation -----------------------------------------------------------------------------

def bad_batch_error(data, **config):
    """The CandleError that fails the run when the batch served at frame 0 is invalid (issue 11:
    an invalid candle the exchange serves twice the same way fails the backtest, loudly)."""
    with pytest.raises(bk.CandleError) as err:
        probe_run(serving(data), window_and_price, **config)
    return str(err.value)


def with_candle(minute, **fields):
    data = [[ms(m), 100.0, 100.0, 100.0, 100.0, 1.0] for m in range(-10, 5)]
    row = data[minute + 10]
    for name, value in fields.items():
        row[COLUMNS.index(name)] = value
    return data


@pytest.mark.parametrize("field, value, words", [
    ("close", math.nan, "non-finite close"),
    ("high", math.inf, "non-finite high"),
    ("volume", math.nan, "non-finite volume"),
    ("open", 0.0, "zero or negative"),
    ("low", -1.0, "zero or negative"),
    ("volume", -0.5, "zero or negative"),
])
def test_invalid_candle_rejected_with_symbol_interval_time_and_candle(field, value, words):
    msg = bad_batch_error(with_candle(-2, **{field: value}))
    assert words in msg
    assert SYMBOL in msg and "'1m'" in msg
    assert "2023-12-31T23:58:00.000Z" in msg  # the bad candle's open time
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    assert f"{field}={shown}" in msg  # the candle's values are shown


def test_zero_volume_is_valid():
    out, errors = probe_run(serving(with_candle(-2, volume=0.0)), window_and_price)
    assert errors == [] and out[0][1] == 100.0


def test_anomalously_low_price_against_median():
    # 15 candles (>= 5: median reference); 60 values: 56 x 100 and 4 x 0.05 -> median 100
    msg = bad_batch_error(with_candle(-2, open=0.05, high=0.05, low=0.05, close=0.05))
    assert "anomalously low price" in msg
    assert "reference price 100.0" in msg and "threshold 0.1" in msg
    assert SYMBOL in msg and "2023-12-31T23:58:00.000Z" in msg


def test_price_exactly_at_anomaly_threshold_is_valid():
    # reference 100, factor 1000 -> threshold 0.1; a low of exactly 0.1 passes
    out, errors = probe_run(serving(with_candle(-8, low=0.1)), window_and_price)
    assert errors == []


def test_anomaly_factor_is_configurable():
    msg = bad_batch_error(with_candle(-2, low=5.0), CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR=10)
    assert "anomalously low price" in msg and "threshold 10.0" in msg


def four_low_one_high(n_low):
    """n_low candles with all prices 1.0 then one with all prices 10000 (minutes -n_low-1..-1)."""
    data = [[ms(m), 1.0, 1.0, 1.0, 1.0, 1.0] for m in range(-n_low - 1, -1)]
    data.append([ms(-1), 10000.0, 10000.0, 10000.0, 10000.0, 1.0])
    return data


def test_fewer_candles_than_median_minimum_use_the_mean():
    # 4 candles < 5: mean of 16 values = (12 * 1 + 4 * 10000) / 16 = 2500.75 -> threshold 2.50075
    msg = bad_batch_error(four_low_one_high(3))
    assert "anomalously low price" in msg and "reference price 2500.75" in msg


def test_median_minimum_lowered_uses_the_median():
    # same 4 candles with the minimum at 4: median = sorted[8] = 1.0 -> threshold 0.001, valid
    out, errors = probe_run(serving(four_low_one_high(3)), window_and_price,
                            CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN=4)
    assert errors == []


def test_exactly_median_minimum_candles_use_the_median():
    # 5 candles == 5: median of [1 x 16, 10000 x 4] = sorted[10] = 1.0 -> valid
    out, errors = probe_run(serving(four_low_one_high(4)), window_and_price)
    assert errors == []


def test_median_minimum_raised_uses_the_mean():
    # same 5 candles with the minimum at 6: mean = (16 + 40000) / 20 = 2000.8 -> 1.0 is anomalous
    msg = bad_batch_error(four_low_one_high(4), CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN=6)
    assert "anomalously low price" in msg and "reference price 2000.8" in msg


# --- VWAP -------------------------------------------------------------------------------------

def test_vwap_formula():
    c = to_candles([
        [ms(0), 1, 103, 97, 100, 2],   # typical 100
        [ms(1), 1, 104, 98, 101, 1],   # typical 101
        [ms(2), 1, 106, 99, 102, 3],   # typical 307/3
        [ms(3), 1, 101, 95, 99, 4],    # typical 295/3
        [ms(4), 1, 102, 100, 101, 0],  # no weight
    ])
    # (200 + 101 + 307 + 1180/3) / 10 = 3004 / 30
    assert vwap(c) == pytest.approx(3004 / 30, rel=1e-12)


def test_vwap_zero_volume_falls_back_to_mean_close():
    c = to_candles([[ms(m), 1, 200, 50, 100 + m, 0] for m in range(5)])
    assert vwap(c) == pytest.approx(102.0, rel=1e-15)


def test_vwap_single_candle():
    c = to_candles([[ms(0), 1, 12, 6, 9, 5]])
    assert vwap(c) == pytest.approx(9.0)


def test_vwap_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        vwap(Candles.empty())


def test_average_price_is_vwap_of_the_five_closed_candles_before_when():
    data = [[ms(m), 100.0, 100.0, 100.0, 100.0, 1.0] for m in range(-10, 5)]
    hand = {-5: (103, 97, 100, 2), -4: (104, 98, 101, 1), -3: (106, 99, 102, 3),
            -2: (101, 95, 99, 4), -1: (102, 100, 101, 0), 0: (500, 400, 450, 100)}
    for m, (h, l, c, v) in hand.items():
        data[m + 10] = [ms(m), 100.0, float(h), float(l), float(c), float(v)]
    out, errors = probe_run(serving(data), lambda s: bk.get_average_price(s))
    assert errors == []
    assert out == [pytest.approx(3004 / 30, rel=1e-12)]


def test_average_price_zero_volume_window_is_mean_close():
    data = [[ms(m), 100.0, 100.0, 100.0, 100.0, 1.0] for m in range(-10, 5)]
    for m, close in zip(range(-5, 0), (100, 101, 102, 103, 104)):
        data[m + 10] = [ms(m), float(close), close + 5.0, close - 1.0, float(close), 0.0]
    out, errors = probe_run(serving(data), lambda s: bk.get_average_price(s))
    assert out == [pytest.approx(102.0, rel=1e-15)]


def test_average_price_count_is_configurable():
    data = [[ms(m), 100.0, 100.0, 100.0, 100.0 + m, 1.0] for m in range(-10, 5)]
    for row in data:
        row[1] = row[2] = row[3] = row[4]  # o = h = l = c
    out, errors = probe_run(serving(data), lambda s: bk.get_average_price(s),
                            CC_AVG_PRICE_CANDLES_COUNT=2)
    assert out == [pytest.approx((98.0 + 99.0) / 2, rel=1e-15)]


def test_average_price_with_fewer_candles_at_start_of_data():
    data = [[ms(m), *[10.0 * (m + 4)] * 4, 1.0] for m in (-2, -1)]
    data += [[ms(m), 99.0, 99.0, 99.0, 99.0, 1.0] for m in range(0, 5)]
    out, errors = probe_run(serving(data), lambda s: bk.get_average_price(s))
    assert errors == []
    assert out == [pytest.approx((20.0 + 30.0) / 2, rel=1e-15)]

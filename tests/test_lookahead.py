"""bk.check_lookahead: a vectorised strategy recomputed on histories cut at sampled moments; every
bar whose values change when later candles are removed is reported."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pandas as pd
import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, synthetic_candles
from helpers.market import T0, M

WARMUP = 60  # minutes of history before the frame
FRAME = 200  # frame minutes 0 .. 199
H = 3  # half-width of the centred window (7 bars)
# The history: 1m bars opening from T0 - 60 min to T0 + 198 min (the last that closes by the frame's end).
N = WARMUP + FRAME - 1
TS = [T0 + (i - WARMUP) * M for i in range(N)]
# Cuts can end at every bar that closes within the frame (T0 - 1 min .. ), except the last one.
ALL_CUTS = list(range(WARMUP - 1, N - 1))


def centred(c) -> dict:
    m = pd.Series(c.close).rolling(2 * H + 1, center=True).mean().to_numpy()
    position = np.where(c.close > m, 1, 0)  # NaN compares False: no signal where the mean is unknown
    return {"position": position, "price_take_profit": m * 1.01, "price_stop_loss": m * 0.99,
            "minute_estimated_time": 60}


def trailing(c) -> dict:
    m = pd.Series(c.close).rolling(2 * H + 1).mean().to_numpy()
    position = np.where(c.close > m, 1, np.where(c.close < m, -1, 0))
    return {"position": position, "price_take_profit": c.close * (1 + position / 100),
            "price_stop_loss": c.close * (1 - position / 100), "minute_estimated_time": 60,
            "price_open": np.full(len(c), np.nan), "order_type": "limit"}


def convolved(c) -> dict:
    m = np.convolve(c.close, np.ones(5) / 5, mode="same")  # zero-padded at both ends: the last 2 bars read ahead
    position = np.sign(c.close - m).astype(int)
    return {"position": position, "price_take_profit": c.close * (1 + position / 100),
            "price_stop_loss": m, "minute_estimated_time": 60}


def normalised(c) -> dict:
    scale = c.close / c.close.max()  # the whole series' maximum: every bar reads the future
    return {"position": np.zeros(len(c)), "price_take_profit": scale, "price_stop_loss": scale,
            "minute_estimated_time": 60}


@pytest.fixture
def market():
    candles = synthetic_candles(WARMUP + FRAME + 100, start_ms=T0 - WARMUP * M, seed=3)
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0, end_date=T0 + (FRAME - 1) * M)
    for name, fn in (("centred", centred), ("trailing", trailing), ("convolved", convolved),
                     ("normalised", normalised)):
        bk.add_strategy(strategy_name=name, interval="5m", get_signals=fn, warmup_minutes=WARMUP)


def flagged(cuts: list[int], reads_ahead: int, defined) -> list[int]:
    """Bars b that some cut c keeps (b <= c) while b's value needs bars up to b + reads_ahead > c,
    among the bars whose full-history value is defined."""
    out = {b for c in cuts for b in range(c - reads_ahead + 1, c + 1) if defined(b)}
    return [TS[b] for b in sorted(out)]


def test_a_centred_rolling_mean_is_flagged_at_every_bar_that_reads_ahead(market):
    report = bk.check_lookahead("centred", "ex", "fr", "BTCUSDT", samples=10_000)
    assert report.cuts == [TS[c] + M for c in ALL_CUTS]  # every bar that closes in the frame
    # The mean at b needs bars b-3 .. b+3: cut before b+3 it is NaN; with the full history it is
    # defined for 3 <= b <= N-4.
    expected = flagged(ALL_CUTS, H, lambda b: H <= b <= N - 1 - H)
    assert report.biased == expected
    assert (report.biased[0], report.biased[-1], len(report.biased)) == (TS[WARMUP - H], TS[N - 1 - H],
                                                                          N - 1 - H - (WARMUP - H) + 1)
    assert report.ok is False
    assert set(report.keys) <= {"position", "price_take_profit", "price_stop_loss"}
    assert "price_take_profit" in report.keys
    assert report.checked == sum(c + 1 for c in ALL_CUTS)


def test_a_trailing_rolling_mean_is_clean(market):
    report = bk.check_lookahead("trailing", "ex", "fr", "BTCUSDT", samples=10_000)
    assert (report.ok, report.biased, report.keys) == (True, [], [])
    assert report.checked == sum(c + 1 for c in ALL_CUTS) == (60 + 258) * 199 // 2
    assert (report.strategy_name, report.symbol) == ("trailing", "BTCUSDT")


def test_a_same_mode_convolution_reads_two_bars_ahead(market):
    report = bk.check_lookahead("convolved", "ex", "fr", "BTCUSDT", samples=10_000)
    assert report.biased == flagged(ALL_CUTS, 2, lambda b: True)
    # The stop is the mean itself; the position (and the TP that follows it) only where the mean's change flips it.
    assert report.keys in (["price_stop_loss"], ["position", "price_take_profit", "price_stop_loss"])


def test_a_few_evenly_spaced_cuts(market):
    report = bk.check_lookahead("centred", "ex", "fr", "BTCUSDT", samples=4)
    # The 199 candidate bars (index 59 .. 257) cut at the first, the last and two evenly between.
    cuts = [59, 59 + 66, 59 + 132, 257]
    assert report.cuts == [T0, T0 + 66 * M, T0 + 132 * M, T0 + 198 * M] == [TS[c] + M for c in cuts]
    assert report.biased == flagged(cuts, H, lambda b: H <= b <= N - 1 - H)
    assert len(report.biased) == 3 * 3 + 1  # the last cut's bars 256 and 257 need a bar the full history lacks
    assert report.checked == sum(c + 1 for c in cuts)


def test_the_default_samples_and_a_full_series_statistic(market):
    report = bk.check_lookahead("normalised", "ex", "fr", "BTCUSDT")
    assert len(report.cuts) == 50
    assert report.keys == ["price_take_profit", "price_stop_loss"]
    # Each cut's maximum is below the whole series' (a later bar is higher) or equal to it; every
    # bar a cut with a lower maximum keeps is flagged.
    close = synthetic_candles(WARMUP + FRAME + 100, start_ms=T0 - WARMUP * M, seed=3)[:N, 4]
    cut_bars = [int((t - M - TS[0]) // M) for t in report.cuts]
    lower = [c for c in cut_bars if close[: c + 1].max() < close.max()]
    assert lower  # the series rises after some cut
    assert report.biased == TS[: max(lower) + 1]


def test_a_get_signal_strategy_cannot_be_checked(market):
    bk.add_strategy(strategy_name="event", interval="5m", get_signal=lambda symbol, when: None)
    with pytest.raises(bk.ValidationError, match="check_lookahead: strategy 'event' is registered with get_signal"):
        bk.check_lookahead("event", "ex", "fr", "BTCUSDT")


@pytest.mark.parametrize("args, words", [
    (("nope", "ex", "fr", "BTCUSDT"), ["strategy 'nope' not found", "check_lookahead"]),
    (("centred", "nope", "fr", "BTCUSDT"), ["exchange 'nope' not found", "check_lookahead"]),
    (("centred", "ex", "nope", "BTCUSDT"), ["frame 'nope' not found", "check_lookahead"]),
    (("centred", "ex", "fr", ""), ["check_lookahead", "symbol"]),
])
def test_unknown_names_are_refused_naming_the_schema_and_the_call(market, args, words):
    with pytest.raises(bk.ValidationError) as e:
        bk.check_lookahead(*args)
    assert all(w in str(e.value) for w in words)


@pytest.mark.parametrize("samples", [0, -3, 2.5, True, "50"])
def test_samples_must_be_a_positive_int(market, samples):
    with pytest.raises(bk.ValidationError, match="samples must be an int >= 1"):
        bk.check_lookahead("centred", "ex", "fr", "BTCUSDT", samples=samples)


def test_bad_arrays_on_the_full_history_are_refused(market):
    bk.add_strategy(strategy_name="bad", interval="5m", get_signals=lambda c: {"position": np.ones(len(c))})
    with pytest.raises(bk.ValidationError, match="get_signals of strategy 'bad' returned no 'price_take_profit'"):
        bk.check_lookahead("bad", "ex", "fr", "BTCUSDT")


def test_no_candles_to_cut_is_an_error_not_a_clean_report():
    bk.add_exchange(exchange_name="empty", get_candles=lambda *a: [])
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0, end_date=T0 + 10 * M)
    bk.add_strategy(strategy_name="trailing", interval="5m", get_signals=trailing)
    with pytest.raises(bk.ValidationError, match="too few closed 1m candles.*nothing to check"):
        bk.check_lookahead("trailing", "empty", "fr", "BTCUSDT")


def test_works_inside_a_running_event_loop_and_the_report_is_frozen(market):
    async def notebook_cell():
        return bk.check_lookahead("centred", "ex", "fr", "BTCUSDT", samples=4)

    report = asyncio.run(notebook_cell())
    assert report == bk.check_lookahead("centred", "ex", "fr", "BTCUSDT", samples=4)
    assert isinstance(report, bk.LookaheadReport) and not report.ok
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.ok = True  # type: ignore[misc]

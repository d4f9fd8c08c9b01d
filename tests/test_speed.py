"""What the engine's fast paths must keep: light import, and the same results as the slow paths."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit import _candles, _exchange
from backtest_kit._candles import Candles, rolling_vwap, vwap, window_vwap
from backtest_kit._engine.machine import _Resumed, _timed
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

M = 60_000
T0 = 1_704_067_200_000


def test_import_does_not_load_pandas():
    # pandas costs ~0.2 s and ~65 MB; it loads only when a DataFrame or Series is asked for.
    code = ("import sys, backtest_kit, backtest_kit.exchanges, backtest_kit.demo; "
            "print('pandas' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- the engine's fast paths give exactly what the plain computations give ----------------------------


def _candles_from(arr: np.ndarray) -> Candles:
    return Candles(arr[:, 0].astype(np.int64), *(np.ascontiguousarray(arr[:, i]) for i in range(1, 6)))


def _naive_vwap(h, lo, cl, v) -> float:
    """The VWAP formula written out with Python floats, summed left to right."""
    num = vol = 0.0
    for a, b, c, d in zip(h, lo, cl, v):
        num += (a + b + c) / 3 * d
        vol += d
    return num / vol if vol != 0 else sum(cl) / len(cl)


def test_rolling_and_window_vwap_match_the_formula_with_zero_volume_windows():
    arr = synthetic_candles(200, start_ms=T0)
    arr[20:27, 5] = 0.0  # a stretch without volume: windows inside it fall back to the mean close
    arr[0:2, 5] = 0.0
    c = _candles_from(arr)
    n = 5
    h, lo, cl, v = (x.tolist() for x in (c.high, c.low, c.close, c.volume))
    rolled = rolling_vwap(c, n)
    assert all(math.isnan(x) for x in rolled[: n - 1])
    for k in range(n - 1, len(c)):
        assert rolled[k] == _naive_vwap(h[k - n + 1:k + 1], lo[k - n + 1:k + 1], cl[k - n + 1:k + 1],
                                        v[k - n + 1:k + 1]), k
    windowed = window_vwap(c, n)
    for k in range(n - 1):  # the first n - 1 are over this window's own candles only
        assert windowed[k] == _naive_vwap(h[:k + 1], lo[:k + 1], cl[:k + 1], v[:k + 1]) == vwap(c[:k + 1])
    assert windowed[30] == rolled[30]  # past the first n - 1: the rolling values
    assert rolled[24] == sum(cl[20:25]) / 5  # five candles without volume


@pytest.mark.parametrize("key", [slice(3, 9), slice(-4, None), slice(None, 2), slice(7, 3), slice(0, 100),
                                 slice(1, 9, 2), slice(None, None, -1)])
def test_candle_slices_read_like_numpy_slices(key):
    arr = synthetic_candles(12, start_ms=T0)
    c = _candles_from(arr)
    got = c[key]
    assert len(got) == len(arr[key])
    for i, f in enumerate(Candles.__slots__):
        assert getattr(got, f).tolist() == arr[key][:, i].tolist(), f
    inner = c[2:10][1:-1][::1]  # a window of a window of a window
    assert inner.close.tolist() == arr[3:9, 4].tolist() and list(inner) == list(c[3:9])
    with pytest.raises(AttributeError):
        _ = c[1:3].nope


def _fill_in_pieces(c: Candles, cuts: list[int]) -> _exchange._Series:
    s = _exchange._Series(M)
    s.chunk = 3  # tiny room: most fills outgrow the buffers
    bounds = [0, *cuts, len(c)]
    for a, b in zip(bounds, bounds[1:]):
        s.add(c[a:b], int(c.timestamp[a]), int(c.timestamp[b - 1]) + M)
    return s


@pytest.mark.parametrize("cuts", [[], [1], [4, 5, 6, 50], list(range(2, 150, 7))])
def test_a_series_filled_in_pieces_holds_what_one_fill_holds(cuts):
    c = _candles_from(synthetic_candles(160, start_ms=T0))
    s = _fill_in_pieces(c, cuts)
    whole = rolling_vwap(c, 5)
    for f in Candles.__slots__:
        assert getattr(s.c, f).tolist() == getattr(c, f).tolist(), f
    assert np.array_equal(s.vwap_array(5)[4:], whole[4:])
    # price(): the VWAP of the 5 candles before `aligned`, or None when they are not all cached
    for k in range(0, 163):
        aligned = T0 + k * M
        expected = vwap(c[k - 5:k]) if 5 <= k <= 160 else None
        assert s.price(aligned, 5) == expected, k
    # A fill before the first one (a window reaching back) rebuilds the buffers and the VWAP.
    s2 = _fill_in_pieces(c[50:], [30])
    assert s2.price(T0 + 100 * M, 5) == vwap(c[95:100])  # the rolling VWAP is built ...
    s2.add(c[:50], T0, T0 + 50 * M)  # ... and must be rebuilt: every candle moved
    assert [s2.price(T0 + k * M, 5) for k in range(5, 161)] == [vwap(c[k - 5:k]) for k in range(5, 161)]
    assert s2.c.close.tolist() == c.close.tolist() and np.array_equal(s2.vwap_array(5)[4:], whole[4:])


def test_price_leaves_gaps_and_invalid_candles_to_average_price():
    c = _candles_from(synthetic_candles(40, start_ms=T0))
    s = _exchange._Series(M)
    keep = np.r_[0:20, 21:40]  # one minute missing
    s.add(Candles(*(getattr(c, f)[keep] for f in Candles.__slots__)), T0, T0 + 40 * M)
    assert s.price(T0 + 10 * M, 5) is None
    s = _exchange._Series(M)
    s.add(c, T0, T0 + 40 * M, {int(c.timestamp[30]): "bad"})
    assert s.price(T0 + 10 * M, 5) is None


def test_plainly_valid_batches_skip_nothing_the_full_checks_would_find(monkeypatch):
    rng = np.random.default_rng(3)
    base = synthetic_candles(300, start_ms=T0)
    faults = [(1, np.nan), (2, np.inf), (3, -1.0), (4, 0.0), (5, -0.5), (2, 1e-3), (1, 1e9), (5, np.nan)]
    for trial in range(60):
        arr = base.copy()
        for _ in range(int(rng.integers(0, 3))):
            col, value = faults[int(rng.integers(len(faults)))]
            arr[int(rng.integers(len(arr))), col] = value
        c = Candles(*(np.ascontiguousarray(arr[:, i]) for i in range(6)))
        fast = _candles._problems(c, 5, 1000)
        with monkeypatch.context() as mp:
            mp.setattr(_candles, "_plainly_valid", lambda *_: False)
            full = _candles._problems(c, 5, 1000)
        assert fast[0].tolist() == full[0].tolist() and fast[1] == full[1], trial


def _year_like(minutes: int, *, suspend: bool, observe: bool) -> tuple[list, object]:
    bk.reset()
    exchange = ArrayExchange(synthetic_candles(minutes + 1440, start_ms=T0 - 1440 * M))
    bk.add_exchange(exchange_name="x", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="f", interval="1m", start_date=T0, end_date=T0 + (minutes - 1) * M)
    rule = rule_strategy(10, 50, 1.0, 0.6, 120, anchor="price")

    async def get_signal(symbol, when):
        if suspend:
            await asyncio.sleep(0)  # suspends once: the engine resumes it under the timeout
        return await rule(symbol, when)

    bk.add_strategy(strategy_name="s", interval="5m", get_signal=get_signal)
    ticks = []
    if observe:  # someone sees every tick: no frame is skipped, every idle tick is published
        bk.listen_signal_backtest(lambda r: ticks.append(r.action))

    async def go():
        return [r async for r in bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="x", frame_name="f")]

    results = asyncio.run(go())
    return [(r.action, r.signal.pending_at, r.close_timestamp, r.current_price) for r in results], ticks


def test_quiet_suspending_and_observed_runs_trade_alike():
    quiet, _ = _year_like(3000, suspend=False, observe=False)
    suspended, _ = _year_like(3000, suspend=True, observe=False)
    observed, ticks = _year_like(3000, suspend=False, observe=True)
    assert len(quiet) > 5
    assert quiet == suspended == observed
    assert ticks.count("idle") > 2000 and ticks.count("closed") == len(quiet)


def test_a_suspended_get_signal_still_times_out():
    async def never() -> None:
        await asyncio.get_running_loop().create_future()

    async def go() -> None:
        coro = never()
        first = coro.send(None)  # as the engine does: it suspended, so only now the timer starts
        await _timed(_Resumed(coro, first), 0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(go())

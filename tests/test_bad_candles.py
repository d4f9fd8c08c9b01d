"""One bad candle in a large cached chunk: windows before it are served; the first that holds it fails the run."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit._time import iso
from backtest_kit.demo import ArrayExchange, synthetic_candles

T0 = 1_704_067_200_000
M = 60_000


def test_persistent_bad_candle_fails_the_run_at_the_first_window_holding_it():
    """Issue 11: an invalid candle served the same way twice cannot become valid; the first window
    that holds it fails the backtest with a CandleError naming it (no silently skipped frames)."""
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    data = synthetic_candles(3000, start_ms=T0)
    bad_minute = 1500
    data[bad_minute, 4] = np.nan  # the exchange keeps serving a NaN close there
    exchange = ArrayExchange(data)
    fetches = []

    async def get_candles(symbol, interval, since, limit):
        fetches.append(limit)
        return await exchange.get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 100 * M, end_date=T0 + 2900 * M)
    calls = []

    async def get_signal(symbol, when):
        calls.append(int(when.timestamp() * 1000))
        await bk.get_candles(symbol, "1m", 3)
        return None

    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal)
    errors = []
    bk.listen_error(errors.append)

    async def main():
        return [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")]

    with pytest.raises(bk.CandleError) as failed:
        asyncio.run(main())
    bad_time = T0 + bad_minute * M
    assert iso(bad_time) in str(failed.value) and "non-finite close" in str(failed.value)
    assert "exchange 'ex'" in str(failed.value) and "symbol='BTC'" in str(failed.value)
    # The price window [t-5m, t) holds the bad candle first at t = bad + 1: the run stops there.
    assert calls == list(range(T0 + 100 * M, bad_time + M, M))
    assert errors == []
    assert len(fetches) < 10  # chunked: the bad candle did not force per-window fetches

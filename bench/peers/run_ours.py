"""Ours: the rule through Backtest.run, as get_signal (event mode) or get_signals (vectorised mode)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rule import (
    AVG_PRICE_CANDLES,
    FAST,
    INTERVAL_MIN,
    LIFETIME_MIN,
    SL_PCT,
    SLOW,
    START,
    TP_PCT,
    crosses,
    frame_end,
    trailing_mean,
    trailing_vwap,
)

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy

# Rejected signals are counted below; keep the library's per-error warnings off the figures.
logging.getLogger("backtest_kit").setLevel(logging.ERROR)


def has_get_signals() -> bool:
    """This build's add_strategy takes get_signals (the vectorised mode)."""
    return "get_signals" in inspect.signature(bk.add_strategy).parameters


def vector_rule(fast: int, slow: int, tp_pct: float, sl_pct: float,
                minutes: int) -> Callable[[Any], dict[str, Any]]:
    """get_signals of rule_strategy(fast, slow, tp_pct, sl_pct, minutes, anchor="price") on numpy arrays.

    The signal of candle k is the cross of the means over candles k-slow+1 .. k against the window one
    candle earlier, priced at the VWAP of candles k-4 .. k: what get_signal computes at the open of k + 1.
    """

    def get_signals(candles: Any) -> dict[str, Any]:
        close = np.asarray(candles.close, dtype=np.float64)
        position = crosses(trailing_mean(close, fast), trailing_mean(close, slow))
        price = trailing_vwap(np.asarray(candles.high, dtype=np.float64), np.asarray(candles.low, dtype=np.float64),
                              close, np.asarray(candles.volume, dtype=np.float64), AVG_PRICE_CANDLES)
        k = position.astype(np.float64)
        on = position != 0
        tp = np.where(on, price * (1 + k * tp_pct / 100), np.nan)
        sl = np.where(on, price * (1 - k * sl_pct / 100), np.nan)
        return {"position": position, "price_take_profit": tp, "price_stop_loss": sl,
                "minute_estimated_time": minutes}

    return get_signals


async def _run(candles: np.ndarray, minutes: int, vectorised: bool) -> dict[str, Any]:
    exchange = ArrayExchange(candles)
    bk.add_exchange(exchange_name="synthetic", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=frame_end(minutes))
    if vectorised:
        fn = vector_rule(FAST, SLOW, TP_PCT, SL_PCT, LIFETIME_MIN)
        bk.add_strategy(strategy_name="rule", interval=f"{INTERVAL_MIN}m", get_signals=fn)
    else:
        bk.add_strategy(strategy_name="rule", interval=f"{INTERVAL_MIN}m",
                        get_signal=rule_strategy(FAST, SLOW, TP_PCT, SL_PCT, LIFETIME_MIN, shorts=True,
                                                 anchor="price"))
    errors: list[object] = []
    bk.listen_error(errors.append)
    t0 = time.perf_counter()
    trades = 0
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="rule", exchange_name="synthetic", frame_name="year"):
        trades += 1
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {"seconds": seconds, "trades": trades, "version": _version()}
    if errors:
        result["note"] = f"{len(errors)} errors (first: {errors[0]})"
    return result


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("backtest-kit")
    except PackageNotFoundError:
        return "src"


def run(mode: str, candles: np.ndarray, minutes: int) -> dict[str, Any]:
    if mode == "vectorised" and not has_get_signals():
        return {"status": "needs get_signals (not in this build)"}
    return asyncio.run(_run(candles, minutes, vectorised=mode == "vectorised"))

"""vectorbt: Portfolio.from_signals with a numba signal function (one position at a time, the 5-minute
ask bucket and the lifetime are path-dependent) and its own stop-loss / take-profit.

"cold": the first call in a fresh process with an empty numba cache (JIT compilation included);
"warm": the same call again in that process, timed alone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rule import (
    FAST,
    FEE_PCT,
    INTERVAL_MIN,
    LIFETIME_MIN,
    MINUTE,
    SL_PCT,
    SLIPPAGE_PCT,
    SLOW,
    START,
    TP_PCT,
    frame_end,
)

PACKAGE = "vectorbt"


def _signal_func() -> Any:
    from numba import njit

    @njit  # type: ignore[misc]
    def signal_func(c: Any, cross: np.ndarray, ask: np.ndarray, bucket: np.ndarray, state: np.ndarray,
                    lifetime: int) -> tuple[bool, bool, bool, bool]:
        # state[0]: the bar the open position entered at; state[1]: the last bucket asked.
        i = c.i
        if c.position_now != 0:
            expired = i - state[0] >= lifetime
            return False, expired and c.position_now > 0, False, expired and c.position_now < 0
        if i == 0 or not ask[i] or bucket[i] == state[1]:
            return False, False, False, False
        state[1] = bucket[i]
        k = cross[i - 1]  # the bar that closed at this bar's open
        if k != 0:
            state[0] = i
        return k > 0, False, k < 0, False

    return signal_func


def _once(candles: np.ndarray, minutes: int, signal_func: Any) -> tuple[float, int]:
    import vectorbt as vbt

    t0 = time.perf_counter()
    ts = candles[:, 0].astype(np.int64)
    o, h, l, c = (np.ascontiguousarray(candles[:, j]) for j in (1, 2, 3, 4))
    fast = vbt.MA.run(c, FAST).ma.to_numpy()
    slow = vbt.MA.run(c, SLOW).ma.to_numpy()
    fp, sp, fn, sn = fast[:-1], slow[:-1], fast[1:], slow[1:]
    cross = np.zeros(len(c), dtype=np.int64)
    cross[1:][(fp <= sp) & (fn > sn)] = 1
    cross[1:][(fp >= sp) & (fn < sn)] = -1
    ask = (ts >= START) & (ts <= frame_end(minutes))
    bucket = ts // (INTERVAL_MIN * MINUTE)
    state = np.array([-1, -1], dtype=np.int64)
    pf = vbt.Portfolio.from_signals(
        c, open=o, high=h, low=l, price=o,  # orders fill at the bar's open (the previous bar closed)
        signal_func_nb=signal_func, signal_args=(cross, ask, bucket, state, LIFETIME_MIN),
        sl_stop=SL_PCT / 100, tp_stop=TP_PCT / 100, fees=FEE_PCT / 100, slippage=SLIPPAGE_PCT / 100,
        init_cash=10_000.0, freq="1min")
    trades = int(pf.trades.count())
    return time.perf_counter() - t0, trades


def run(mode: str, candles: np.ndarray, minutes: int) -> dict[str, Any]:
    import vectorbt as vbt

    signal_func = _signal_func()
    seconds, trades = _once(candles, minutes, signal_func)
    if mode == "warm":
        seconds, trades = _once(candles, minutes, signal_func)
    return {"seconds": seconds, "trades": trades, "version": vbt.__version__}

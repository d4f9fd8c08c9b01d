"""The moving-average rule of bench/year.py as every engine of bench/peers.py runs it: its parameters, the
candle file, and the numpy pieces ours' vectorised mode uses.

The rule: when flat, at most once per 5-minute bucket (the first minute of the bucket, or the minute after
a close), compare the 10- and 50-candle means of 1m closes over the last closed candle and the one before;
a cross up opens a long, a cross down a short, at the current price; take-profit 1 % and stop-loss 0.6 %
from that price; closed after 360 minutes at the latest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FAST, SLOW = 10, 50
TP_PCT, SL_PCT = 1.0, 0.6
LIFETIME_MIN = 360
INTERVAL_MIN = 5
AVG_PRICE_CANDLES = 5            # CC_AVG_PRICE_CANDLES_COUNT: the "current price" is this VWAP
FEE_PCT, SLIPPAGE_PCT = 0.1, 0.1  # ours' defaults, per side; the peers get the same costs
START = 1_704_067_200_000        # 2024-01-01T00:00:00Z, as bench/year.py
WARMUP_MIN = 24 * 60             # one day of candles before the frame, as bench/year.py
# Candles after the frame, so a trade opened at its last minute runs its whole lifetime in every engine (the
# TypeScript backtest-kit stops the run when the candles for a lifetime are missing).
TAIL_MIN = LIFETIME_MIN + 60
MINUTE = 60_000


def frame_end(minutes: int) -> int:
    """Open time of the frame's last minute (the frame is START .. START + minutes - 1 min)."""
    return START + (minutes - 1) * MINUTE


def write_candles(candles: np.ndarray, path: Path) -> None:
    """The (n, 6) candle array as raw little-endian float64 rows: exact values, read without parsing."""
    np.ascontiguousarray(candles, dtype="<f8").tofile(path)


def read_candles(path: str | Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f8").reshape(-1, 6)


def trailing_mean(x: np.ndarray, n: int) -> np.ndarray:
    """out[k] = mean(x[k-n+1 .. k]) (NaN before), each window summed left to right as ours' rule sums it,
    so the vectorised rule sees bit-identical means."""
    out = np.full(len(x), np.nan)
    m = len(x) - n + 1
    if m <= 0:
        return out
    s = x[0:m].copy()
    for j in range(1, n):
        s += x[j:j + m]
    out[n - 1:] = s / n
    return out


def trailing_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                  n: int) -> np.ndarray:
    """out[k] = sum(((h+l+c)/3)*v) / sum(v) over candles k-n+1 .. k, summed left to right (the mean close
    when the volume is 0): ours' current price for a tick at the open of candle k + 1."""
    out = np.full(len(close), np.nan)
    m = len(close) - n + 1
    if m <= 0:
        return out
    tv = (high + low + close) / 3 * volume
    num, vol, cls = tv[0:m].copy(), volume[0:m].copy(), close[0:m].copy()
    for j in range(1, n):
        num += tv[j:j + m]
        vol += volume[j:j + m]
        cls += close[j:j + m]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n - 1:] = np.where(vol == 0, cls / n, num / vol)
    return out


def crosses(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """+1 where the fast mean crosses above the slow one at candle k (from k-1), -1 below, else 0."""
    out = np.zeros(len(fast), dtype=np.int64)
    fp, sp, fn, sn = fast[:-1], slow[:-1], fast[1:], slow[1:]
    out[1:][(fp <= sp) & (fn > sn)] = 1
    out[1:][(fp >= sp) & (fn < sn)] = -1
    return out

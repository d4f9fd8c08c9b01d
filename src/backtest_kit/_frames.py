"""Timeframe generation: start, start+step, ... up to and including end (at most MAX_FRAMES)."""

from __future__ import annotations

import numpy as np

from ._schema import check_frame_count
from ._time import interval_ms


def timeframes(start_ms: int, end_ms: int, interval: str) -> np.ndarray:
    """Frame timestamps (epoch ms, int64) of a frame schema; empty when end < start."""
    check_frame_count(start_ms, end_ms, interval, "timeframes")
    step = interval_ms(interval)
    if end_ms < start_ms:
        return np.empty(0, dtype=np.int64)
    return np.arange(start_ms, end_ms + 1, step, dtype=np.int64)

"""Hand-made 1m markets for tests: flat at 100 from 2024-01-01T00:00Z, with chosen minutes changed."""

from __future__ import annotations

import numpy as np

T0 = 1_704_067_200_000
M = 60_000


def flat_market(minutes: int, prices: dict[int, float] | None = None,
                wicks: dict[int, tuple[float, float]] | None = None) -> np.ndarray:
    """`minutes` candles; `prices` moves a whole candle to a price, `wicks` sets (high, low)."""
    rows = [[T0 + i * M, 100.0, 100.0, 100.0, 100.0, 1.0] for i in range(minutes)]
    for i, p in (prices or {}).items():
        rows[i][1:5] = [p, p, p, p]
    for i, (high, low) in (wicks or {}).items():
        rows[i][2], rows[i][3] = high, low
    return np.array(rows)

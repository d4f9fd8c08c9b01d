"""Interval tables and datetime <-> epoch-millisecond conversion."""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE_MS = 60_000

_MINUTES = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30,
    "1h": 60, "2h": 120, "4h": 240, "6h": 360, "8h": 480,
    "12h": 720, "1d": 1440, "3d": 4320,
}

CANDLE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
STRATEGY_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h")
FRAME_INTERVALS = tuple(_MINUTES)


def interval_ms(interval: str) -> int:
    """Length of an interval in milliseconds (KeyError for an unknown one)."""
    return _MINUTES[interval] * MINUTE_MS


def to_ms(value: datetime | int | float) -> int:
    """Epoch milliseconds of a datetime (naive = UTC) or of a number already in ms."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(round(value.timestamp() * 1000))
    return int(value)


def to_datetime(ms: int) -> datetime:
    """Timezone-aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso(ms: int) -> str:
    """ISO-8601 text of epoch milliseconds, as JavaScript's Date.toISOString()."""
    d = to_datetime(ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"

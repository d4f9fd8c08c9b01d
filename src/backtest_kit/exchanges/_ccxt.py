"""Candles and formatting from a ccxt exchange (`pip install 'backtest-kit[ccxt]'`).

Works with both `ccxt` (sync) and `ccxt.async_support` exchange objects: `fetch_ohlcv`
rows are `[timestamp, open, high, low, close, volume]`, exactly the engine's candle tuple.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypedDict

from .._exchange import maybe_await
from .._registry import add_exchange
from .._time import to_ms


class CcxtFunctions(TypedDict):
    """What ccxt_adapter returns: add_exchange's functions over one ccxt exchange object."""

    get_candles: Callable[[str, str, datetime | int, int], Awaitable[list[list[float]]]]
    format_price: Callable[[str, float], Awaitable[str]]
    format_quantity: Callable[[str, float], Awaitable[str]]


def ccxt_adapter(exchange: Any) -> CcxtFunctions:
    """get_candles / format_price / format_quantity functions over a ccxt exchange object."""
    markets_loaded: list[bool] = []

    async def ensure_markets() -> None:
        if not markets_loaded:
            await maybe_await(exchange.load_markets())
            markets_loaded.append(True)

    async def get_candles(symbol: str, interval: str, since: datetime | int, limit: int) -> list[list[float]]:
        # ccxt caps `limit` per request on most venues; the engine asks again for the rest.
        rows: list[list[float]] = await maybe_await(exchange.fetch_ohlcv(symbol, interval, to_ms(since), limit))
        return rows

    async def format_price(symbol: str, price: float) -> str:
        await ensure_markets()
        return str(exchange.price_to_precision(symbol, price))

    async def format_quantity(symbol: str, quantity: float) -> str:
        await ensure_markets()
        return str(exchange.amount_to_precision(symbol, quantity))

    return {"get_candles": get_candles, "format_price": format_price, "format_quantity": format_quantity}


def add_ccxt_exchange(exchange_name: str, exchange: Any, note: str | None = None) -> None:
    """Register a ccxt exchange object under `exchange_name`."""
    add_exchange(exchange_name=exchange_name, note=note, **ccxt_adapter(exchange))

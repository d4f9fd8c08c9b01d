"""Candles and formatting from a ccxt exchange (`pip install 'backtest-kit[ccxt]'`).

Works with both `ccxt` (sync, called in a worker thread) and `ccxt.async_support` exchange
objects: `fetch_ohlcv` rows are `[timestamp, open, high, low, close, volume]`, exactly the
engine's candle tuple. Symbols go through `exchange.market()`, so `BTCUSDT` and `BTC/USDT` are one
market; a failed request carries the venue's Retry-After and HTTP status for the retry policy.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TypedDict

from .._exchange import RetryableError, http_status
from .._registry import add_exchange
from .._time import to_ms


class CcxtFunctions(TypedDict):
    """What ccxt_adapter returns: add_exchange's functions over one ccxt exchange object."""

    get_candles: Callable[[str, str, datetime | int, int], Awaitable[list[list[float]]]]
    format_price: Callable[[str, float], Awaitable[str]]
    format_quantity: Callable[[str, float], Awaitable[str]]


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async_support method; run a sync one in a worker thread (the loop keeps running)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    return await result if inspect.isawaitable(result) else result


class CcxtExchange:
    """One ccxt exchange object as a backtest-kit exchange. `async with` (or `with` for a sync client)
    loads its markets on entry and closes the client on exit."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._markets = False

    # --- markets ---------------------------------------------------------------------

    async def load_markets(self) -> None:
        """Load the venue's markets once (symbols then resolve to one name, prices to its precision)."""
        if not self._markets:
            if callable(getattr(self.client, "load_markets", None)):
                await _call(self.client.load_markets)
            self._markets = True

    def resolve_symbol(self, symbol: str) -> str:
        """The market's unified ccxt symbol ("BTCUSDT" -> "BTC/USDT"); `symbol` itself when the
        market is unknown or the markets of an async client are not loaded yet."""
        market = getattr(self.client, "market", None)
        if not callable(market):
            return symbol
        if not getattr(self.client, "markets", None):
            load = getattr(self.client, "load_markets", None)
            if not callable(load) or inspect.iscoroutinefunction(load):
                return symbol  # async: `async with` or `await load_markets()` first
            load()
            self._markets = True
        try:
            name = market(symbol).get("symbol")
        except Exception:  # noqa: BLE001 - unknown here: the fetch reports it (BadSymbol)
            return symbol
        return name if isinstance(name, str) and name else symbol

    # --- the exchange functions ------------------------------------------------------

    async def get_candles(self, symbol: str, interval: str, since: datetime | int, limit: int) -> list[list[float]]:
        # ccxt caps `limit` per request on most venues; the engine asks again for the rest.
        await self.load_markets()
        client = self.client
        for attr in ("last_response_headers", "last_http_response"):
            if hasattr(client, attr):
                setattr(client, attr, None)  # so a failure never reads a previous response's headers
        try:
            rows: list[list[float]] = await _call(client.fetch_ohlcv, self.resolve_symbol(symbol), interval,
                                                  to_ms(since), limit)
        except Exception as e:
            _annotate(e, getattr(client, "last_response_headers", None))
            raise
        if not rows:
            body = getattr(client, "last_http_response", None)
            if isinstance(body, str | bytes) and not _is_json_list(body):
                # ccxt parses a non-JSON 200 into [] when `since` is given: it is not "no candles".
                raise RetryableError(f"{getattr(client, 'id', 'exchange')} answered a page that is not a JSON "
                                     f"list: {body[:80]!r}")
        return rows

    async def format_price(self, symbol: str, price: float) -> str:
        await self.load_markets()
        return str(self.client.price_to_precision(self.resolve_symbol(symbol), price))

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        await self.load_markets()
        return str(self.client.amount_to_precision(self.resolve_symbol(symbol), quantity))

    def functions(self) -> CcxtFunctions:
        return {"get_candles": self.get_candles, "format_price": self.format_price,
                "format_quantity": self.format_quantity}

    # --- lifetime --------------------------------------------------------------------

    async def close(self) -> None:
        """Close the client's connections (async_support needs it; a sync client closes its session)."""
        close = getattr(self.client, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result

    async def __aenter__(self) -> CcxtExchange:
        await self.load_markets()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __enter__(self) -> CcxtExchange:
        load = getattr(self.client, "load_markets", None)
        if callable(load) and not inspect.iscoroutinefunction(load):
            load()
            self._markets = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        close = getattr(self.client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()


def _annotate(e: Exception, headers: Any) -> None:
    """Give the retry policy what ccxt knows: the Retry-After header and the HTTP status."""
    items = getattr(headers, "items", None)
    if callable(items) and getattr(e, "retry_after", None) is None:
        value = next((v for k, v in items() if str(k).lower() == "retry-after"), None)
        if value is not None:
            try:
                e.retry_after = float(value)  # type: ignore[attr-defined]
            except (TypeError, ValueError):
                pass
    status = http_status(e)
    if status is not None:
        try:
            e.http_status = status  # type: ignore[attr-defined]
        except AttributeError:
            pass


def _is_json_list(body: str | bytes) -> bool:
    try:
        return isinstance(json.loads(body), list)
    except ValueError:
        return False


def ccxt_adapter(exchange: Any) -> CcxtFunctions:
    """get_candles / format_price / format_quantity functions over a ccxt exchange object."""
    return CcxtExchange(exchange).functions()


def add_ccxt_exchange(exchange_name: str, client: Any, store: Any = None, note: str | None = None) -> CcxtExchange:
    """Register a ccxt exchange object under `exchange_name` (with an optional bk.CandleStore in front).

    Returns the adapter: `async with add_ccxt_exchange(...)` loads the markets and closes the client.
    """
    adapter = CcxtExchange(client)
    add_exchange(exchange_name=exchange_name, note=note, store=store, resolve_symbol=adapter.resolve_symbol,
                 **adapter.functions())
    return adapter

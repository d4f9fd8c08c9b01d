"""Loopback fake of Binance's spot REST API for offline tests driven by the real ccxt library.

Serves `GET /api/v3/klines`, `/api/v3/exchangeInfo`, `/api/v3/time` and `/api/v3/ping` from 1m candles
held in memory, on 127.0.0.1 only, with scripted faults per path (429/418 with Retry-After, 5xx, slow,
garbage, empty page, invalid symbol), data-level shapes (gaps, listing date, "now", window mode), a hard
cap on requests served and a thread-safe request log.

    with FakeBinance({"BTCUSDT": synthetic_candles(3000)}) as server:
        exchange = make_client(server)
        server.fail_next(KLINES, status=429, times=1, retry_after=2)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt

Candles = npt.NDArray[np.float64]

HOST = "127.0.0.1"
MINUTE_MS = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z

KLINES = "/api/v3/klines"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TIME = "/api/v3/time"
PING = "/api/v3/ping"
ANY_PATH = "*"

INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}

# Binance's own error bodies, copied from its docs / real responses.
TOO_MANY_REQUESTS: dict[str, Any] = {"code": -1003, "msg": "Too many requests"}
IP_BANNED: dict[str, Any] = {
    "code": -1003,
    "msg": "Way too much request weight used; IP banned until 1704067200000. "
    "Please use WebSocket Streams for live updates to avoid bans.",
}
INVALID_SYMBOL: dict[str, Any] = {"code": -1121, "msg": "Invalid symbol."}
INVALID_INTERVAL: dict[str, Any] = {"code": -1120, "msg": "Invalid interval."}
UNKNOWN_ERROR: dict[str, Any] = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
GARBAGE_BODY = b"<html><body>upstream hiccup</body></html>"

# Quote assets tried (longest first) to split a market id such as BTCUSDT into BTC / USDT.
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def synthetic_candles(n: int, start_ms: int = T0, seed: int = 0, start_price: float = 100.0,
                      step_ms: int = MINUTE_MS, volatility: float = 0.001) -> Candles:
    """`n` deterministic candles `[ts_ms, o, h, l, c, v]` from a seeded random walk.

    Prices are rounded to cents and volumes to 3 decimals, so they survive Binance's "%.8f" strings exactly;
    low <= open, close <= high and every value is positive.
    """
    rng = np.random.default_rng(seed)
    close = np.maximum(np.round(start_price * np.exp(np.cumsum(rng.normal(0.0, volatility, n))), 2), 0.01)
    open_ = np.concatenate([[round(start_price, 2)], close[:-1]])
    up = np.round(np.abs(rng.normal(0.0, volatility, n)) * close, 2)
    down = np.round(np.abs(rng.normal(0.0, volatility, n)) * close, 2)
    high = np.round(np.maximum(open_, close) + up, 2)  # re-round: a sum of cents is not always a cent in binary
    low = np.maximum(np.round(np.minimum(open_, close) - down, 2), 0.01)
    volume = np.round(rng.uniform(0.1, 10.0, n), 3)
    ts = start_ms + step_ms * np.arange(n, dtype=np.int64)
    return np.column_stack([ts.astype(np.float64), open_, high, low, close, volume])


@dataclass(frozen=True)
class MarketSpec:
    """Static market info served by exchangeInfo (strings as Binance sends them)."""

    base: str
    quote: str
    tick_size: str = "0.01"
    step_size: str = "0.00001"
    min_qty: str = "0.00001"
    max_qty: str = "9000.00000000"
    min_notional: str = "5.00000000"


def market_spec_for(market_id: str) -> MarketSpec:
    """Default spec for an id like BTCUSDT: split on a known quote asset."""
    for quote in KNOWN_QUOTES:
        if market_id.endswith(quote) and len(market_id) > len(quote):
            return MarketSpec(base=market_id[: -len(quote)], quote=quote)
    raise ValueError(f"cannot split market id {market_id!r}; pass a MarketSpec")


@dataclass(frozen=True)
class Scripted:
    """One scripted answer. `body is None` means: serve the normal answer (after `delay_s`)."""

    kind: str
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json;charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True)
class LoggedRequest:
    """A request as the server saw it; `at` is time.monotonic() on arrival; `fault` names what answered it.

    `fault` is a scripted kind ("429", "418", "5xx", "slow", "garbage", "empty", "invalid_symbol", "status"),
    "cap" (over max_requests), "unknown" (404 path) or None (normal answer).
    """

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float
    fault: str | None = None


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    fault: str | None = None


@dataclass
class _Gap:
    start_ms: int
    end_ms: int


@dataclass
class _SymbolData:
    candles: Candles
    gaps: list[_Gap] = field(default_factory=list)
    listing_ms: int | None = None


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(status: int, payload: Mapping[str, Any], fault: str | None = None) -> _Reply:
    return _Reply(status=status, body=_json(dict(payload)), fault=fault)


class _BadParam(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload["msg"])
        self.payload = payload


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _BadParam({"code": -1100, "msg": f"Illegal characters found in parameter '{name}'; "
                                               "legal range is '^[0-9]{1,20}$'."}) from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBinance


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as ccxt's pooled sessions expect
    timeout = 5  # an idle keep-alive connection must not pin a handler thread forever
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle + delayed ACK adds 40 ms

    def _serve(self) -> None:
        reply = self.server.fake._handle(self.command, self.path)
        if reply.delay_s > 0:
            # Event.wait, not sleep: stop() cuts the delay short.
            self.server.fake._stopping.wait(reply.delay_s)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (timeout fault); nothing left to tell it.
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the FakeBinance request log is the record."""


class FakeBinance:
    """Binance-spot-shaped REST server on 127.0.0.1 (OS-assigned port) for ccxt tests.

    candles: market id -> (n, 6) 1m array [ts_ms, o, h, l, c, v] (sorted or not; duplicates not allowed).
    markets: optional MarketSpec per market id (default: split the id on a known quote asset).
    max_requests: hard cap on requests served; later ones get 503 and are logged with fault="cap".
    page_cap: the most candles one klines page holds (Binance spot: 1000); default_limit when limit is absent.
    now_ms: candles opening after it are not served; None = serve everything.
    serve_unclosed: with now_ms, serve the still-forming candle (as Binance does) or drop it.
    listings: market id -> listing time; 1m candles before it do not exist.
    window_mode: read startTime+limit as a window [startTime, startTime + limit*interval) when endTime is
        absent, so a page before listing is [] (Binance itself returns candles from the listing on).
    max_delay_s: upper bound for slow-response faults.
    """

    def __init__(self, candles: Mapping[str, npt.ArrayLike], *, markets: Mapping[str, MarketSpec] | None = None,
                 max_requests: int = 10_000, page_cap: int = 1000, default_limit: int = 500,
                 now_ms: int | None = None, serve_unclosed: bool = True, listings: Mapping[str, int] | None = None,
                 window_mode: bool = False, max_delay_s: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, _SymbolData] = {}
        for market_id, rows in candles.items():
            arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
            arr = arr[np.argsort(arr[:, 0], kind="stable")]
            if len(arr) > 1 and bool(np.any(np.diff(arr[:, 0]) <= 0)):
                raise ValueError(f"{market_id}: duplicate candle timestamps")
            self._data[market_id] = _SymbolData(candles=arr)
        self._markets: dict[str, MarketSpec] = {
            market_id: (markets or {}).get(market_id) or market_spec_for(market_id) for market_id in self._data
        }
        for market_id, listing_ms in (listings or {}).items():
            self._data[market_id].listing_ms = listing_ms
        self.max_requests = max_requests
        self.page_cap = page_cap
        self.default_limit = default_limit
        self._now_ms = now_ms
        self.serve_unclosed = serve_unclosed
        self.window_mode = window_mode
        self.max_delay_s = max_delay_s
        self._faults: list[tuple[str, Scripted]] = []
        self._log: list[LoggedRequest] = []
        self._served = 0
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        """Bind 127.0.0.1:0 and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        httpd = _Server((HOST, 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down, close the socket and join the serving thread (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The OS-assigned port."""
        if self._httpd is None:
            raise RuntimeError("not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port> (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    # ----- data shapes ---------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int | None:
        """The venue's clock for klines; None = no clock (everything is served)."""
        with self._lock:
            return self._now_ms

    @now_ms.setter
    def now_ms(self, value: int | None) -> None:
        with self._lock:
            self._now_ms = value

    def add_gap(self, market_id: str, start_ms: int, end_ms: int) -> None:
        """Drop the 1m candles opening in [start_ms, end_ms): the venue has no data there."""
        with self._lock:
            self._data[market_id].gaps.append(_Gap(start_ms, end_ms))

    def set_listing(self, market_id: str, listing_ms: int | None) -> None:
        """1m candles opening before `listing_ms` do not exist (None: no listing date)."""
        with self._lock:
            self._data[market_id].listing_ms = listing_ms

    def candles_1m(self, market_id: str) -> Candles:
        """The 1m candles the venue currently holds (after listing, gaps and now), a copy."""
        with self._lock:
            return self._visible_1m(market_id).copy()

    # ----- faults --------------------------------------------------------------------------------------

    def script(self, path: str, answer: Scripted, times: int = 1) -> None:
        """Answer the next `times` requests to `path` (exact path, or ANY_PATH) with `answer`, in FIFO order."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if not 0 <= answer.delay_s <= self.max_delay_s:
            raise ValueError(f"delay {answer.delay_s}s outside [0, {self.max_delay_s}]")
        with self._lock:
            self._faults.extend((path, answer) for _ in range(times))

    def fail_next(self, path: str, status: int, *, times: int = 1, retry_after: int | None = None,
                  body: bytes | Mapping[str, Any] | None = None, content_type: str | None = None) -> None:
        """Answer the next `times` requests to `path` with `status`.

        Default bodies: 429 -> {"code":-1003,"msg":"Too many requests"}; 418 -> Binance's IP-ban -1003;
        400 -> {"code":-1121,"msg":"Invalid symbol."}; 5xx -> a non-JSON HTML page (as a gateway sends);
        other -> {"code":-1000,...}. `retry_after` adds a Retry-After header (seconds).
        """
        kind = {429: "429", 418: "418", 400: "invalid_symbol"}.get(status, "5xx" if status >= 500 else "status")
        if body is None:
            if status == 429:
                body = TOO_MANY_REQUESTS
            elif status == 418:
                body = IP_BANNED
            elif status == 400:
                body = INVALID_SYMBOL
            elif status >= 500:
                body = f"<html><body><h1>{status}</h1></body></html>".encode()
            else:
                body = UNKNOWN_ERROR
        if isinstance(body, bytes):
            raw = body
            ctype = content_type or ("application/json;charset=UTF-8" if raw[:1] in (b"{", b"[") else "text/html")
        else:
            raw, ctype = _json(dict(body)), content_type or "application/json;charset=UTF-8"
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        self.script(path, Scripted(kind=kind, status=status, body=raw, content_type=ctype, headers=headers), times)

    def rate_limit_next(self, path: str = KLINES, *, times: int = 1, retry_after: int = 2) -> None:
        """429 + Retry-After + {"code":-1003,"msg":"Too many requests"}."""
        self.fail_next(path, 429, times=times, retry_after=retry_after)

    def ban_next(self, path: str = KLINES, *, times: int = 1, retry_after: int = 120) -> None:
        """418 (IP banned) + Retry-After."""
        self.fail_next(path, 418, times=times, retry_after=retry_after)

    def server_error_next(self, path: str = KLINES, status: int = 502, *, times: int = 1,
                          body: bytes | Mapping[str, Any] | None = None) -> None:
        """A 5xx answer (HTML body unless `body` is given)."""
        if not 500 <= status <= 599:
            raise ValueError("status must be 5xx")
        self.fail_next(path, status, times=times, body=body)

    def slow_next(self, path: str = KLINES, *, times: int = 1, delay_s: float = 0.3) -> None:
        """Wait `delay_s` (<= max_delay_s), then send the normal answer: trips a shorter client timeout."""
        self.script(path, Scripted(kind="slow", delay_s=delay_s), times)

    def garbage_next(self, path: str = KLINES, *, times: int = 1, body: bytes = GARBAGE_BODY) -> None:
        """200 with a non-JSON body."""
        self.script(path, Scripted(kind="garbage", body=body, content_type="text/html"), times)

    def empty_next(self, path: str = KLINES, *, times: int = 1) -> None:
        """200 with `[]`."""
        self.script(path, Scripted(kind="empty", body=b"[]"), times)

    def invalid_symbol_next(self, path: str = KLINES, *, times: int = 1) -> None:
        """400 {"code":-1121,"msg":"Invalid symbol."}."""
        self.fail_next(path, 400, times=times)

    def pending_faults(self, path: str | None = None) -> int:
        """Scripted answers not yet used (for `path`, or all)."""
        with self._lock:
            return sum(1 for p, _ in self._faults if path is None or p == path)

    def clear_faults(self) -> None:
        """Drop every scripted answer not yet used."""
        with self._lock:
            self._faults.clear()

    # ----- request log ---------------------------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests (to `path`, or all), oldest first."""
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        """How many requests reached `path` (or any path)."""
        return len(self.requests(path))

    def statuses(self, path: str | None = None) -> list[int]:
        """HTTP statuses answered, oldest first."""
        return [r.status for r in self.requests(path)]

    def unknown_paths(self) -> list[str]:
        """Paths answered 404 because the fake does not serve them."""
        return [r.path for r in self.requests() if r.fault == "unknown"]

    @property
    def capped(self) -> int:
        """Requests refused because max_requests was reached."""
        return sum(1 for r in self.requests() if r.fault == "cap")

    def reset_log(self) -> None:
        """Forget logged requests (the max_requests budget is not refilled)."""
        with self._lock:
            self._log.clear()

    # ----- request handling ----------------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str) -> _Reply:
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self._served += 1
            if self._served > self.max_requests:
                reply = _error(503, {"code": -1, "msg": f"fake exchange: request cap {self.max_requests} reached"},
                               fault="cap")
            else:
                reply = self._answer(method, path, query)
            self._log.append(LoggedRequest(method, path, query, reply.status, time.monotonic(), reply.fault))
        return reply

    def _answer(self, method: str, path: str, query: dict[str, str]) -> _Reply:
        scripted = self._pop_fault(path)
        if scripted is not None and scripted.body is not None:
            return _Reply(scripted.status, scripted.body, scripted.content_type, scripted.headers, fault=scripted.kind)
        reply = self._route(method, path, query)
        if scripted is not None:
            reply.delay_s, reply.fault = scripted.delay_s, scripted.kind
        return reply

    def _pop_fault(self, path: str) -> Scripted | None:
        for i, (p, answer) in enumerate(self._faults):
            if p == path or p == ANY_PATH:
                del self._faults[i]
                return answer
        return None

    def _route(self, method: str, path: str, query: dict[str, str]) -> _Reply:
        known = {KLINES, EXCHANGE_INFO, TIME, PING}
        if path not in known:
            return _error(404, {"code": -1, "msg": f"fake exchange: unknown path {path}"}, fault="unknown")
        if method != "GET":
            return _error(405, {"code": -1, "msg": f"fake exchange: {method} not allowed on {path}"})
        try:
            if path == KLINES:
                return self._klines(query)
            if path == EXCHANGE_INFO:
                return self._exchange_info(query)
        except _BadParam as bad:
            return _error(400, bad.payload)
        if path == TIME:
            return _Reply(200, _json({"serverTime": self._server_time()}))
        return _Reply(200, b"{}")

    def _server_time(self) -> int:
        return self._now_ms if self._now_ms is not None else int(time.time() * 1000)

    def _exchange_info(self, query: dict[str, str]) -> _Reply:
        wanted: list[str] = list(self._markets)
        if "symbol" in query:
            wanted = [query["symbol"]]
        elif "symbols" in query:
            try:
                wanted = [str(s) for s in json.loads(query["symbols"])]
            except (ValueError, TypeError):
                raise _BadParam({"code": -1100, "msg": "Illegal characters found in parameter 'symbols'"}) from None
        if any(s not in self._markets for s in wanted):
            return _error(400, INVALID_SYMBOL)
        return _Reply(200, _json({
            "timezone": "UTC",
            "serverTime": self._server_time(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(s) for s in wanted],
        }))

    def _symbol_info(self, market_id: str) -> dict[str, Any]:
        spec = self._markets[market_id]
        return {
            "symbol": market_id,
            "status": "TRADING",
            "baseAsset": spec.base,
            "baseAssetPrecision": 8,
            "quoteAsset": spec.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": spec.tick_size, "maxPrice": "1000000.00000000",
                 "tickSize": spec.tick_size},
                {"filterType": "LOT_SIZE", "minQty": spec.min_qty, "maxQty": spec.max_qty,
                 "stepSize": spec.step_size},
                {"filterType": "NOTIONAL", "minNotional": spec.min_notional, "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _visible_1m(self, market_id: str) -> Candles:
        data = self._data[market_id]
        arr = data.candles
        ts = arr[:, 0]
        keep = np.ones(len(arr), dtype=bool)
        if data.listing_ms is not None:
            keep &= ts >= data.listing_ms
        for gap in data.gaps:
            keep &= ~((ts >= gap.start_ms) & (ts < gap.end_ms))
        if self._now_ms is not None:
            keep &= ts <= self._now_ms
        return arr[keep]

    def _aggregate(self, market_id: str, step: int) -> tuple[Candles, npt.NDArray[np.int64]]:
        """(m, 6) candles at `step` from the visible 1m ones, and how many 1m candles each holds."""
        base = self._visible_1m(market_id)
        if step == MINUTE_MS or len(base) == 0:
            return base, np.ones(len(base), dtype=np.int64)
        buckets = (base[:, 0].astype(np.int64) // step) * step
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        ends = np.r_[starts[1:], len(base)] - 1
        out = np.column_stack([
            buckets[starts].astype(np.float64),
            base[starts, 1],
            np.maximum.reduceat(base[:, 2], starts),
            np.minimum.reduceat(base[:, 3], starts),
            base[ends, 4],
            np.add.reduceat(base[:, 5], starts),
        ])
        return out, (ends - starts + 1).astype(np.int64)

    def _klines(self, query: dict[str, str]) -> _Reply:
        market_id = query.get("symbol", "")
        if not market_id:
            raise _BadParam({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                                   "or malformed."})
        interval = query.get("interval", "")
        if not interval:
            raise _BadParam({"code": -1102, "msg": "Mandatory parameter 'interval' was not sent, was empty/null, "
                                                   "or malformed."})
        if market_id not in self._data:
            return _error(400, INVALID_SYMBOL)
        step = INTERVAL_MS.get(interval)
        if step is None:
            return _error(400, INVALID_INTERVAL)
        start, end, limit = _int_param(query, "startTime"), _int_param(query, "endTime"), _int_param(query, "limit")
        # Binance spot clamps an oversized limit to its max instead of rejecting it.
        limit = self.default_limit if limit is None else max(1, min(limit, self.page_cap))
        if self.window_mode and start is not None and end is None:
            end = start + limit * step - 1
        rows, counts = self._aggregate(market_id, step)
        open_ts = rows[:, 0]
        if start is not None:
            lo = int(np.searchsorted(open_ts, start, side="left"))
            hi = len(rows) if end is None else int(np.searchsorted(open_ts, end, side="right"))
            idx = np.arange(lo, max(lo, hi))[:limit]
        else:
            hi = len(rows) if end is None else int(np.searchsorted(open_ts, end, side="right"))
            idx = np.arange(max(0, hi - limit), hi)
        if self._now_ms is not None and not self.serve_unclosed:
            idx = idx[open_ts[idx] + step - 1 <= self._now_ms]
        return _Reply(200, _json([self._kline_row(rows[i], int(counts[i]), step) for i in idx]))

    @staticmethod
    def _kline_row(row: Candles, n_1m: int, step: int) -> list[Any]:
        open_ms = int(row[0])
        o, h, low, c, v = (float(x) for x in row[1:6])
        quote = v * (o + c) / 2  # no trade tape here; a plausible quote volume
        return [open_ms, f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.8f}", open_ms + step - 1,
                f"{quote:.8f}", 10 * n_1m, f"{v / 2:.8f}", f"{quote / 2:.8f}", "0"]


def make_client(server: FakeBinance, async_: bool = False, **config: Any) -> Any:
    """A real ccxt binance (sync, or ccxt.async_support when `async_`) pointed at `server`.

    Every `urls['api']` / 'test' / 'demo' entry is rewritten to the loopback base URL (so a stray endpoint
    hits the fake and is logged as unknown, never the internet); markets load from spot only; no rate
    limiter; 2 s timeout. `config` overrides ccxt constructor keys; `config['options']` is merged into
    the defaults. The async client must be built inside a running loop and closed with `await close()`.
    """
    import ccxt
    import ccxt.async_support

    options: dict[str, Any] = {
        "fetchMarkets": {"types": ["spot"]},  # no fapi/dapi exchangeInfo
        "fetchMargins": False,  # no sapi margin-pairs calls
        "fetchCurrencies": False,  # sapi capital/config/getall needs keys anyway
        "adjustForTimeDifference": False,  # no /time round trip
    }
    options.update(config.pop("options", {}))
    settings: dict[str, Any] = {"enableRateLimit": False, "timeout": 2000, "options": options}
    settings.update(config)
    cls = ccxt.async_support.binance if async_ else ccxt.binance
    exchange = cls(settings)
    base = server.base_url

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):
            scheme, _, rest = value.partition("://")
            _, slash, tail = rest.partition("/")
            return base + slash + tail if scheme in ("http", "https") else value
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        return value

    for key in ("api", "test", "demo"):
        if key in exchange.urls:
            exchange.urls[key] = rewrite(exchange.urls[key])
    return exchange

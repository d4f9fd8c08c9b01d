"""The loopback Binance fake, driven by the real ccxt (sync and async_support).

The expected exception classes are what ccxt 4.5 really raises against these answers (observed, then
pinned here), so a change in ccxt's error mapping shows up as a failure in this file.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.async_support
import numpy as np
import pytest

from helpers.fake_exchange_api import (
    ANY_PATH,
    EXCHANGE_INFO,
    GARBAGE_BODY,
    KLINES,
    MINUTE_MS,
    T0,
    FakeBinance,
    make_client,
    synthetic_candles,
)

N = 3000  # 50 hours of 1m candles from T0 (an hour boundary)
DATA = synthetic_candles(N, start_ms=T0, seed=7)
ETH = synthetic_candles(120, start_ms=T0, seed=8, start_price=0.05)
H = 60 * MINUTE_MS


def ms(minute: int) -> int:
    return T0 + minute * MINUTE_MS


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    with FakeBinance({"BTCUSDT": DATA, "ETHBTC": ETH}) as fake:
        yield fake


@pytest.fixture
def client(server: FakeBinance) -> Iterator[Any]:
    exchange = make_client(server, timeout=1000)
    exchange.load_markets()
    server.reset_log()
    yield exchange
    exchange.session.close()


def raw_get(server: FakeBinance, path: str, **query: Any) -> tuple[int, Any, dict[str, str]]:
    """GET through urllib (no proxies): status, decoded JSON (or text) and headers."""
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{server.base_url}{path}?{qs}", timeout=2) as resp:
            status, body, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, body, headers = err.code, err.read(), dict(err.headers)
    try:
        return status, json.loads(body), headers
    except ValueError:
        return status, body.decode(), headers


def aggregate(rows: np.ndarray, step_ms: int) -> list[list[float]]:
    """Independent bucket aggregation: a plain loop over floor(ts/step)*step."""
    out: dict[int, list[float]] = {}
    for ts, o, h, low, c, v in rows.tolist():
        key = int(ts) // step_ms * step_ms
        if key not in out:
            out[key] = [float(key), o, h, low, c, v]
        else:
            bar = out[key]
            bar[2], bar[3], bar[4], bar[5] = max(bar[2], h), min(bar[3], low), c, bar[5] + v
    return [out[k] for k in sorted(out)]


def assert_candles(got: list[list[float]], want: list[list[float]]) -> None:
    assert [r[0] for r in got] == [int(r[0]) for r in want]
    np.testing.assert_array_equal(np.array(got)[:, 1:5], np.array(want)[:, 1:5])  # prices survive "%.8f"
    np.testing.assert_allclose(np.array(got)[:, 5], np.array(want)[:, 5], rtol=0, atol=1e-8)


# ----- lifecycle, markets ----------------------------------------------------------------------------


def test_server_binds_loopback_only_and_stops_cleanly() -> None:
    fake = FakeBinance({"BTCUSDT": DATA}).start()
    host, port = fake._httpd.server_address[:2]  # type: ignore[union-attr]
    thread = fake._thread
    assert host == "127.0.0.1" and port > 0 and fake.base_url == f"http://127.0.0.1:{port}"
    assert raw_get(fake, "/api/v3/ping")[:2] == (200, {})
    fake.stop()
    fake.stop()  # idempotent
    assert thread is not None and not thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass


def test_make_client_points_every_url_at_the_fake(server: FakeBinance) -> None:
    exchange = make_client(server)
    for key in ("api", "test", "demo"):
        assert all(url.startswith(server.base_url + "/") for url in exchange.urls[key].values())
    assert exchange.urls["api"]["public"] == server.base_url + "/api/v3"
    assert exchange.enableRateLimit is False


def test_load_markets_hits_only_spot_exchange_info(server: FakeBinance) -> None:
    exchange = make_client(server)
    markets = exchange.load_markets()
    assert [(r.method, r.path, r.query, r.status) for r in server.requests()] == [("GET", EXCHANGE_INFO, {}, 200)]
    assert set(markets) == {"BTC/USDT", "ETH/BTC"}
    by_symbol, by_id = exchange.market("BTC/USDT"), exchange.market("BTCUSDT")
    # one market either way (ccxt keeps two dicts: markets_by_id's copy lacks the fee-side keys)
    assert by_symbol["symbol"] == by_id["symbol"] == "BTC/USDT" and by_symbol["id"] == by_id["id"] == "BTCUSDT"
    assert by_symbol["spot"] and by_symbol["active"] and by_symbol["type"] == "spot"
    assert by_symbol["precision"]["price"] == 0.01 and by_symbol["precision"]["amount"] == 0.00001
    assert by_symbol["limits"]["amount"]["min"] == 0.00001 and by_symbol["limits"]["cost"]["min"] == 5.0
    assert exchange.price_to_precision("BTC/USDT", 123.456) == "123.46"
    assert exchange.amount_to_precision("BTC/USDT", 0.1234567) == "0.12345"


def test_futures_market_types_reach_unknown_paths_which_are_logged(server: FakeBinance) -> None:
    exchange = make_client(server, options={"fetchMarkets": {"types": ["spot", "linear"]}})
    with pytest.raises(ccxt.ExchangeError) as err:
        exchange.load_markets()
    assert type(err.value) is ccxt.ExchangeError  # 404 + {"code":-1,...}: no specific mapping
    assert server.unknown_paths() == ["/fapi/v1/exchangeInfo"]
    assert server.statuses() == [200, 404]


# ----- klines: shape, paging, aggregation ------------------------------------------------------------


def test_raw_kline_rows_have_binance_shape(server: FakeBinance) -> None:
    status, rows, headers = raw_get(server, KLINES, symbol="BTCUSDT", interval="1h", startTime=T0, limit=2)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    first = rows[0]
    assert len(first) == 12 and first[0] == T0 and first[6] == T0 + H - 1
    assert all(isinstance(first[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11)) and first[11] == "0"
    assert first[1] == f"{DATA[0, 1]:.8f}" and first[4] == f"{DATA[59, 4]:.8f}" and first[8] == 600
    assert rows[1][0] == T0 + H


def test_raw_limit_default_cap_and_latest_page(server: FakeBinance) -> None:
    assert len(raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", startTime=T0)[1]) == 500
    assert len(raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", startTime=T0, limit=5000)[1]) == 1000
    latest = raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", limit=3)[1]
    assert [r[0] for r in latest] == [ms(N - 3), ms(N - 2), ms(N - 1)]
    until = raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", endTime=ms(10), limit=2)[1]
    assert [r[0] for r in until] == [ms(9), ms(10)]
    window = raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", startTime=ms(5), endTime=ms(7))[1]
    assert [r[0] for r in window] == [ms(5), ms(6), ms(7)]
    assert raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", startTime=ms(N))[1] == []


def test_raw_parameter_errors_are_binance_errors(server: FakeBinance) -> None:
    assert raw_get(server, KLINES, symbol="NOPE", interval="1m")[:2] == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert raw_get(server, KLINES, symbol="BTCUSDT", interval="7m")[:2] == (
        400, {"code": -1120, "msg": "Invalid interval."})
    assert raw_get(server, KLINES, interval="1m")[1]["code"] == -1102
    assert raw_get(server, KLINES, symbol="BTCUSDT", interval="1m", limit="x")[1]["code"] == -1100
    assert raw_get(server, "/api/v3/depth", symbol="BTCUSDT")[0] == 404
    assert server.unknown_paths() == ["/api/v3/depth"]
    server.now_ms = ms(5)
    assert raw_get(server, "/api/v3/time")[1] == {"serverTime": ms(5)}


def test_fetch_ohlcv_returns_the_stored_candles(server: FakeBinance, client: Any) -> None:
    got = client.fetch_ohlcv("BTC/USDT", "1m", ms(10), 5)
    assert_candles(got, DATA[10:15].tolist())
    (req,) = server.requests(KLINES)
    assert req.query == {"symbol": "BTCUSDT", "interval": "1m", "startTime": str(ms(10)), "limit": "5"}


def test_paging_respects_the_page_cap() -> None:
    with FakeBinance({"BTCUSDT": DATA}, page_cap=250) as fake:
        exchange = make_client(fake)
        exchange.load_markets()
        fake.reset_log()
        rows: list[list[float]] = []
        since = T0
        while page := exchange.fetch_ohlcv("BTC/USDT", "1m", since, 1000):
            assert len(page) <= 250
            rows += page
            since = int(page[-1][0]) + MINUTE_MS
        assert_candles(rows, DATA.tolist())
        assert fake.count(KLINES) == N // 250 + 1  # the last, empty page ends the loop
        assert {r.query["limit"] for r in fake.requests(KLINES)} == {"1000"}


@pytest.mark.parametrize(("timeframe", "step"), [("5m", 5 * MINUTE_MS), ("1h", H), ("4h", 4 * H), ("1d", 24 * H)])
def test_aggregation_matches_1m_data(client: Any, timeframe: str, step: int) -> None:
    got = client.fetch_ohlcv("BTC/USDT", timeframe, T0, 1000)
    assert_candles(got, aggregate(DATA, step))


def test_aggregated_page_starts_at_the_first_bucket_opening_at_or_after_since(client: Any) -> None:
    got = client.fetch_ohlcv("BTC/USDT", "5m", T0 + 90_000, 2)
    assert [r[0] for r in got] == [ms(5), ms(10)]


# ----- data shapes -----------------------------------------------------------------------------------


def test_gaps_stay_gaps_in_1m_and_aggregates(server: FakeBinance, client: Any) -> None:
    server.add_gap("BTCUSDT", ms(100), ms(160))  # hour 1 keeps minutes 60-99, hour 2 keeps 160-179
    server.add_gap("BTCUSDT", ms(180), ms(240))  # hour 3 is gone
    kept = DATA[(DATA[:, 0] < ms(100)) | ((DATA[:, 0] >= ms(160)) & (DATA[:, 0] < ms(180))) | (DATA[:, 0] >= ms(240))]
    one_minute = client.fetch_ohlcv("BTC/USDT", "1m", ms(95), 10)
    assert [r[0] for r in one_minute] == [ms(m) for m in (95, 96, 97, 98, 99, 160, 161, 162, 163, 164)]
    hourly = client.fetch_ohlcv("BTC/USDT", "1h", T0, 6)
    assert [r[0] for r in hourly] == [T0, T0 + H, T0 + 2 * H, T0 + 4 * H, T0 + 5 * H, T0 + 6 * H]
    assert_candles(hourly, aggregate(kept, H)[:6])
    np.testing.assert_array_equal(server.candles_1m("BTCUSDT"), kept)


def test_listing_date_binance_answers_from_the_listing_on(server: FakeBinance, client: Any) -> None:
    server.set_listing("BTCUSDT", ms(1000))
    got = client.fetch_ohlcv("BTC/USDT", "1m", T0, 3)
    assert [r[0] for r in got] == [ms(1000), ms(1001), ms(1002)]
    assert client.fetch_ohlcv("BTC/USDT", "1h", T0, 1)[0][0] == T0 + 16 * H  # 16:40 listing -> hour 16 from 16:40
    assert client.fetch_ohlcv("BTC/USDT", "1h", T0, 1)[0][1] == DATA[1000, 1]


def test_listing_date_in_window_mode_answers_empty_before_listing(server: FakeBinance, client: Any) -> None:
    server.set_listing("BTCUSDT", ms(1000))
    server.window_mode = True
    assert client.fetch_ohlcv("BTC/USDT", "1m", T0, 500) == []
    got = client.fetch_ohlcv("BTC/USDT", "1m", ms(600), 500)  # window [600, 1100): only 1000..1099 exist
    assert [r[0] for r in got] == [ms(m) for m in range(1000, 1100)]


def test_now_hides_the_future_and_the_forming_candle_is_configurable(server: FakeBinance, client: Any) -> None:
    server.now_ms = ms(125) + 30_000
    hourly = client.fetch_ohlcv("BTC/USDT", "1h", T0, 10)
    assert [r[0] for r in hourly] == [T0, T0 + H, T0 + 2 * H]
    assert hourly[-1][4] == DATA[125, 4]  # the forming hour closes at the last minute so far
    assert client.fetch_ohlcv("BTC/USDT", "1m", ms(120), 10)[-1][0] == ms(125)
    server.serve_unclosed = False
    assert [r[0] for r in client.fetch_ohlcv("BTC/USDT", "1h", T0, 10)] == [T0, T0 + H]
    assert client.fetch_ohlcv("BTC/USDT", "1m", ms(120), 10)[-1][0] == ms(124)


# ----- faults, as ccxt sees them ---------------------------------------------------------------------


def test_429_is_ddos_protection_with_retry_after_then_recovers(server: FakeBinance, client: Any) -> None:
    server.fail_next(KLINES, status=429, times=3, retry_after=2)
    for _ in range(3):
        with pytest.raises(ccxt.DDoSProtection) as err:
            client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
        # binance.handle_errors raises DDoSProtection for 418/429 before the -1003 -> RateLimitExceeded map
        assert type(err.value) is ccxt.DDoSProtection and isinstance(err.value, ccxt.NetworkError)
        assert '{"code":-1003,"msg":"Too many requests"}' in str(err.value)
        assert client.last_response_headers["Retry-After"] == "2"
    assert len(client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)) == 2
    assert server.statuses(KLINES) == [429, 429, 429, 200]
    assert [r.fault for r in server.requests(KLINES)] == ["429", "429", "429", None]
    assert server.pending_faults() == 0


def test_418_ban_is_ddos_protection_with_retry_after(server: FakeBinance, client: Any) -> None:
    server.ban_next(retry_after=120)
    with pytest.raises(ccxt.DDoSProtection) as err:
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert type(err.value) is ccxt.DDoSProtection and "IP banned" in str(err.value)
    assert client.last_response_headers["Retry-After"] == "120"
    assert server.statuses() == [418]


@pytest.mark.parametrize(("status", "expected"), [
    (500, ccxt.ExchangeNotAvailable), (502, ccxt.ExchangeNotAvailable),
    (503, ccxt.ExchangeNotAvailable), (504, ccxt.RequestTimeout),
])
def test_5xx_with_a_gateway_page_is_a_network_error(server: FakeBinance, client: Any, status: int,
                                                    expected: type[Exception]) -> None:
    server.server_error_next(status=status)
    with pytest.raises(ccxt.NetworkError) as err:
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert type(err.value) is expected
    assert server.statuses() == [status] and server.requests()[0].fault == "5xx"


def test_500_with_binance_json_is_operation_failed_not_a_network_error(server: FakeBinance, client: Any) -> None:
    server.server_error_next(status=500, body={"code": -1001, "msg": "Internal error; unable to process your "
                                                                    "request. Please try again."})
    with pytest.raises(ccxt.OperationFailed) as err:
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert type(err.value) is ccxt.OperationFailed and not isinstance(err.value, ccxt.NetworkError)


def test_slow_response_trips_the_client_timeout(server: FakeBinance) -> None:
    exchange = make_client(server)
    exchange.load_markets()
    exchange.timeout = 100  # ms, read per request; only this call needs to be impatient
    server.slow_next(delay_s=0.3)
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout) as err:
        exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert type(err.value) is ccxt.RequestTimeout and time.monotonic() - started < 0.3
    assert [(r.status, r.fault) for r in server.requests(KLINES)] == [(200, "slow")]
    assert len(exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)) == 2  # the next request is served at once


def test_slow_response_under_the_timeout_is_the_normal_answer(server: FakeBinance, client: Any) -> None:
    server.slow_next(delay_s=0.05)
    assert_candles(client.fetch_ohlcv("BTC/USDT", "1m", T0, 2), DATA[:2].tolist())
    with pytest.raises(ValueError):
        server.slow_next(delay_s=5.0)  # over max_delay_s


def test_garbage_200_body_is_swallowed_by_fetch_ohlcv(server: FakeBinance, client: Any) -> None:
    # ccxt returns the raw text; binance.fetch_ohlcv parses it char by char into all-None rows, which the
    # since filter drops: with `since` a garbage page looks exactly like an empty page.
    server.garbage_next(times=3)
    assert client.fetch_ohlcv("BTC/USDT", "1m", T0, 2) == []
    assert client.last_http_response == GARBAGE_BODY.decode()
    assert client.fetch_ohlcv("BTC/USDT", "1m", None, 2) == [[None] * 6] * 2
    assert client.fetch_ohlcv("BTC/USDT", "1m") == [[None] * 6] * len(GARBAGE_BODY)
    assert server.statuses() == [200, 200, 200] and {r.fault for r in server.requests()} == {"garbage"}


def test_empty_page_is_an_empty_list(server: FakeBinance, client: Any) -> None:
    server.empty_next()
    assert client.fetch_ohlcv("BTC/USDT", "1m", T0, 2) == []
    assert client.last_http_response == "[]"
    assert len(client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)) == 2


def test_invalid_symbol_is_bad_symbol(server: FakeBinance, client: Any) -> None:
    server.invalid_symbol_next()
    with pytest.raises(ccxt.BadSymbol) as err:
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert '{"code":-1121,"msg":"Invalid symbol."}' in str(err.value)
    with pytest.raises(ccxt.BadSymbol):
        client.fetch_ohlcv("XRP/USDT", "1m", T0, 2)  # unknown to ccxt's markets: raised before any request
    assert server.statuses() == [400]


def test_faults_are_fifo_per_path_and_any_path_matches_all(server: FakeBinance, client: Any) -> None:
    server.rate_limit_next()
    server.server_error_next(status=503)
    server.empty_next(EXCHANGE_INFO)
    assert server.pending_faults(KLINES) == 2 and server.pending_faults() == 3
    with pytest.raises(ccxt.DDoSProtection):
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    assert server.pending_faults() == 1
    server.clear_faults()
    server.fail_next(ANY_PATH, status=429, retry_after=1)
    with pytest.raises(ccxt.DDoSProtection):
        client.load_markets(reload=True)
    assert [(r.path, r.status) for r in server.requests()] == [(KLINES, 429), (KLINES, 503), (EXCHANGE_INFO, 429)]


def test_request_cap_ends_a_runaway_retry_loop() -> None:
    with FakeBinance({"BTCUSDT": DATA}, max_requests=20) as fake:
        exchange = make_client(fake)
        exchange.load_markets()
        fake.server_error_next(status=502, times=1000)
        retries = 0
        with pytest.raises(ccxt.ExchangeError) as err:
            while retries < 1000:  # a client that retries every NetworkError forever
                try:
                    exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
                except ccxt.NetworkError:
                    retries += 1
        # the cap's 503 carries {"code":-1,...}: a plain ExchangeError, which retry-on-NetworkError lets through
        assert type(err.value) is ccxt.ExchangeError and "request cap 20" in str(err.value)
        assert retries == 19 and fake.count() == 21 and fake.capped == 1
        assert fake.statuses()[-1] == 503 and fake.requests()[-1].fault == "cap"


def test_request_log_helpers(server: FakeBinance, client: Any) -> None:
    client.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
    client.fetch_ohlcv("ETH/BTC", "5m", T0, 2)
    logged = server.requests(KLINES)
    assert server.count(KLINES) == 2 and server.count(EXCHANGE_INFO) == 0 and server.count() == 2
    assert [r.query["symbol"] for r in logged] == ["BTCUSDT", "ETHBTC"] and logged[0].at <= logged[1].at
    server.reset_log()
    assert server.count() == 0 and server.requests() == []


# ----- async client ----------------------------------------------------------------------------------


def test_async_client_markets_paging_aggregation_and_faults() -> None:
    async def scenario(fake: FakeBinance) -> None:
        exchange = make_client(fake, async_=True)
        try:
            await exchange.load_markets()
            assert exchange.market("BTCUSDT")["symbol"] == "BTC/USDT"
            assert fake.unknown_paths() == [] and fake.count(EXCHANGE_INFO) == 1
            rows: list[list[float]] = []
            since = T0
            while page := await exchange.fetch_ohlcv("BTC/USDT", "1m", since, 1000):
                rows += page
                since = int(page[-1][0]) + MINUTE_MS
            assert_candles(rows, DATA.tolist())
            assert fake.count(KLINES) == -(-N // 400) + 1  # 8 pages (the last one partial) + the empty one
            assert_candles(await exchange.fetch_ohlcv("BTC/USDT", "1h", T0, 1000), aggregate(DATA, H))

            fake.rate_limit_next(retry_after=3)
            with pytest.raises(ccxt.DDoSProtection) as err:
                await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
            assert type(err.value) is ccxt.DDoSProtection
            assert exchange.last_response_headers["Retry-After"] == "3"
            fake.ban_next(retry_after=60)
            with pytest.raises(ccxt.DDoSProtection):
                await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
            assert exchange.last_response_headers["Retry-After"] == "60"
            for status, expected in ((502, ccxt.ExchangeNotAvailable), (504, ccxt.RequestTimeout)):
                fake.server_error_next(status=status)
                with pytest.raises(ccxt.NetworkError) as net:
                    await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
                assert type(net.value) is expected
            fake.slow_next(delay_s=0.3)
            exchange.timeout = 100
            with pytest.raises(ccxt.RequestTimeout) as slow:
                await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
            assert type(slow.value) is ccxt.RequestTimeout
            exchange.timeout = 2000
            fake.garbage_next()
            assert await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2) == []
            fake.empty_next()
            assert await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2) == []
            fake.invalid_symbol_next()
            with pytest.raises(ccxt.BadSymbol):
                await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)
            assert len(await exchange.fetch_ohlcv("BTC/USDT", "1m", T0, 2)) == 2
        finally:
            await exchange.close()

    with FakeBinance({"BTCUSDT": DATA}, page_cap=400) as fake:
        asyncio.run(scenario(fake))
        assert fake.pending_faults() == 0


# ----- synthetic data --------------------------------------------------------------------------------


def test_synthetic_candles_are_deterministic_and_valid() -> None:
    a, b = synthetic_candles(5000, seed=3), synthetic_candles(5000, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synthetic_candles(5000, seed=4))
    _, o, h, low, c, v = a.T
    assert np.all(np.diff(a[:, 0]) == MINUTE_MS) and a[0, 0] == T0
    assert np.all(low <= np.minimum(o, c)) and np.all(np.maximum(o, c) <= h)
    assert np.all(low > 0) and np.all(v > 0)
    np.testing.assert_array_equal(o[1:], c[:-1])

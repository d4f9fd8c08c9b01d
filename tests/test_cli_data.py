"""`backtest-kit data download|check|list` and `backtest --store` (offline), the ccxt client pointed at
the loopback FakeBinance; retry pauses recorded, never slept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import backtest_kit as bk
from backtest_kit import _cli_data, _exchange
from backtest_kit.cli import app
from helpers.fake_exchange_api import KLINES, MINUTE_MS, T0, FakeBinance, make_client, synthetic_candles

M = MINUTE_MS
N = 5000
DATA = synthetic_candles(N, seed=5, volatility=0.002)
runner = CliRunner(env={"COLUMNS": "200"})
SINCE, UNTIL = str(T0), str(T0 + N * M)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(_exchange, "default_sleep", fake_sleep)


@pytest.fixture
def server(monkeypatch) -> Iterator[FakeBinance]:
    with FakeBinance({"BTCUSDT": DATA}) as fake:
        monkeypatch.setattr(_cli_data, "ccxt_client", lambda exchange_id: make_client(fake, async_=True))
        yield fake


def download(store: Path, *extra: str, symbol: str = "BTCUSDT", since: str = SINCE, until: str = UNTIL):
    return runner.invoke(app, ["data", "download", "--exchange", "binance", "--symbol", symbol, "--interval", "1m",
                               "--since", since, "--until", until, "--store", str(store), *extra])


def test_download_stores_every_candle_under_the_unified_symbol_and_is_resumable(tmp_path, server):
    result = download(tmp_path)
    assert result.exit_code == 0, result.output
    assert "candles/s" in result.output and f"{N:,} candles" in result.output
    store = bk.CandleStore(tmp_path)
    cols = store.read("binance", "BTC/USDT", "1m", T0, T0 + N * M)
    assert cols["timestamp"].tolist() == DATA[:, 0].astype(np.int64).tolist()
    np.testing.assert_allclose(np.column_stack([cols[c] for c in ("open", "high", "low", "close")]), DATA[:, 1:5])
    server.reset_log()
    again = download(tmp_path, symbol="BTC/USDT")  # the other spelling: the same market, already stored
    assert again.exit_code == 0 and "already stored" in again.output
    assert server.count(KLINES) == 0


def test_an_interrupted_download_resumes_after_what_it_kept(tmp_path, monkeypatch):
    with FakeBinance({"BTCUSDT": DATA}, max_requests=4) as capped:  # exchangeInfo + 3 pages, then refused
        monkeypatch.setattr(_cli_data, "ccxt_client", lambda exchange_id: make_client(capped, async_=True))
        failed = download(tmp_path)
    assert failed.exit_code == 1 and "request cap" in failed.output
    kept = bk.CandleStore(tmp_path).read("binance", "BTC/USDT", "1m", T0, T0 + N * M)["timestamp"]
    assert len(kept) == 3000
    with FakeBinance({"BTCUSDT": DATA}) as fresh:
        monkeypatch.setattr(_cli_data, "ccxt_client", lambda exchange_id: make_client(fresh, async_=True))
        resumed = download(tmp_path)
        assert resumed.exit_code == 0, resumed.output
        first_asked = int(fresh.requests(KLINES)[0].query["startTime"])
        assert first_asked == T0 + 3000 * M and fresh.count(KLINES) == 2
    assert len(bk.CandleStore(tmp_path).read("binance", "BTC/USDT", "1m", T0, T0 + N * M)["timestamp"]) == N


def test_download_of_an_unknown_market_fails_clearly(tmp_path, server):
    result = download(tmp_path, symbol="NOPE/USDT")
    assert result.exit_code == 1 and "BadSymbol" in result.output


def test_check_prints_a_table_and_fails_on_errors_only(tmp_path, server):
    server.add_gap("BTCUSDT", T0 + 100 * M, T0 + 110 * M)
    assert download(tmp_path).exit_code == 0
    ok = runner.invoke(app, ["data", "check", "--store", str(tmp_path)])
    assert ok.exit_code == 0, ok.output  # a gap is a warning
    assert "binance" in ok.output and "BTC/USDT" in ok.output and "gap 10" in ok.output
    store = bk.CandleStore(tmp_path)
    t = T0 + 2000 * M
    store.write("binance", "BTC/USDT", "1m", np.array([[t, 100.0, 99.0, 101.0, 100.0, 1.0]]), now_ms=T0 + N * M)
    bad = runner.invoke(app, ["data", "check", "--store", str(tmp_path), "--exchange", "binance",
                              "--symbol", "BTCUSDT", "--interval", "1m"])
    assert bad.exit_code == 1
    assert "high_below_low 1" in bad.output and "first: high_below_low at" in bad.output
    assert "2024-01-02T09:20" in bad.output and "3 error(s) found" in bad.output
    nothing = runner.invoke(app, ["data", "check", "--store", str(tmp_path), "--exchange", "kraken"])
    assert nothing.exit_code == 1 and "No stored series matches" in nothing.output


def test_list_shows_each_stored_series(tmp_path, server):
    assert download(tmp_path).exit_code == 0
    assert download(tmp_path, "--interval", "1h").exit_code == 0
    result = runner.invoke(app, ["data", "list", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "BTC/USDT" in line]
    assert len(rows) == 2 and f"{N:,}" in rows[0] and "2024-01-01T00:00" in rows[0]
    assert f"{-(-N // 60):,}" in rows[1]


def _summary(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"Trades|PnL|Win rate|Sharpe", line)]


def test_backtest_offline_on_the_store_equals_the_backtest_on_the_file(tmp_path, server, monkeypatch):
    assert download(tmp_path / "store").exit_code == 0

    def no_network(exchange_id):
        raise AssertionError("an offline backtest must not build an exchange client")

    monkeypatch.setattr(_cli_data, "ccxt_client", no_network)
    server.reset_log()
    common = ["--symbol", "BTCUSDT", "--interval", "5m", "--tp", "1.0", "--sl", "0.6", "--minutes", "120"]
    offline = runner.invoke(app, ["backtest", "--store", str(tmp_path / "store"), "--exchange", "binance", *common,
                                  "--out", str(tmp_path / "a")])
    assert offline.exit_code == 0, offline.output
    assert server.count() == 0
    bk.reset()  # a new command, as in a new process
    csv = tmp_path / "c.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(
        f"{int(r[0])},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}" for r in DATA) + "\n")
    from_file = runner.invoke(app, ["backtest", "--candles", str(csv), *common, "--out", str(tmp_path / "b")])
    assert from_file.exit_code == 0, from_file.output
    assert _summary(offline.output) == _summary(from_file.output) and len(_summary(offline.output)) == 6
    assert "Backtest ma-crossover on BTC/USDT" in offline.output


def test_backtest_needs_a_file_or_a_store(tmp_path):
    neither = runner.invoke(app, ["backtest", "--symbol", "X"])
    assert neither.exit_code == 2 and "--candles FILE or --store DIR" in neither.output
    (tmp_path / "s").mkdir()
    empty = runner.invoke(app, ["backtest", "--store", str(tmp_path / "s"), "--exchange", "binance", "--symbol", "X"])
    assert empty.exit_code == 2 and "data download" in empty.output

"""`backtest-kit data`: download candles from a ccxt exchange into a CandleStore, check and list them;
and the offline exchange `backtest-kit backtest --store` runs on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

import backtest_kit as bk

from . import _quality
from ._exchange import ExchangeClient
from ._schema import ExchangeSchema
from ._store import INTERVAL_MS, SeriesInfo, subtract
from ._time import CANDLE_INTERVALS, iso, to_ms
from .exchanges import CcxtExchange

data_app = typer.Typer(help="Candles on disk: download from an exchange (ccxt), check, list.",
                       no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def ccxt_client(exchange_id: str) -> Any:
    """A ccxt.async_support client for `exchange_id` with its rate limiter on (tests point it elsewhere)."""
    try:
        import ccxt.async_support as ccxt
    except ImportError:
        raise typer.BadParameter("downloading needs ccxt: pip install 'backtest-kit[ccxt]'",
                                 param_hint="--exchange") from None
    cls = getattr(ccxt, exchange_id, None)
    if exchange_id not in getattr(ccxt, "exchanges", []) or cls is None:
        raise typer.BadParameter(f"{exchange_id!r} is not a ccxt exchange id (such as binance, kraken, okx)",
                                 param_hint="--exchange")
    return cls({"enableRateLimit": True})


def _date(text: str, option: str) -> int:
    try:
        return int(text) if text.strip().isdigit() else to_ms(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 date such as 2024-01-05", param_hint=option) from None


def _store(path: Path, read_only: bool = False) -> bk.CandleStore:
    try:
        return bk.CandleStore(path, read_only=read_only)
    except bk.BacktestKitError as e:
        raise typer.BadParameter(str(e), param_hint="--store") from None


class _Rate(ProgressColumn):
    """Candles per second (the task's `candles` field over its elapsed time)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.fields.get("candles", 0) / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} candles/s", style="progress.data.speed")


# ---------------------------------------------------------------- download


async def _download(exchange_id: str, symbol: str, interval: str, since: int, until: int, store: bk.CandleStore,
                    console: Console) -> tuple[str, int, float, int]:
    adapter = CcxtExchange(ccxt_client(exchange_id))
    try:
        await adapter.load_markets()
        name = adapter.resolve_symbol(symbol)
        schema = ExchangeSchema(exchange_id, adapter.get_candles, store=store, resolve_symbol=adapter.resolve_symbol)
        client = ExchangeClient(schema, backtest=False)
        step = INTERVAL_MS[interval]
        todo = sum((b - a) // step for a, b in store.missing(exchange_id, name, interval, since, until))
        started = time.perf_counter()
        columns: list[str | ProgressColumn] = [
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[candles]:,} candles"), _Rate(), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{exchange_id} {name} {interval}", total=max(todo, 1), candles=0)

            def report(steps: int, candles: int) -> None:
                progress.update(task, completed=steps, candles=candles)

            fetched = await client.download(name, interval, since, until, report)
            progress.update(task, completed=max(todo, 1))
        return name, fetched, time.perf_counter() - started, todo
    finally:
        await adapter.close()


@data_app.command()
def download(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, such as binance; also the name stored under.")],
    symbol: Annotated[str, typer.Option(help="Market, such as BTC/USDT or BTCUSDT (stored under the unified name).")],
    since: Annotated[str, typer.Option(help="First open time, ISO-8601 (naive = UTC) or epoch ms.")],
    store: Annotated[Path, typer.Option(help="CandleStore directory (created if absent).")],
    interval: Annotated[str, typer.Option(help=f"Candle interval: {', '.join(CANDLE_INTERVALS)}.")] = "1m",
    until: Annotated[str | None, typer.Option(help="End (exclusive), ISO-8601 or epoch ms (default: now).")] = None,
) -> None:
    """Download candles into the store; resumable: what is stored is not fetched again."""
    if interval not in CANDLE_INTERVALS:
        raise typer.BadParameter(f"{interval!r} is not one of {', '.join(CANDLE_INTERVALS)}", param_hint="--interval")
    start = _date(since, "--since")
    end = _date(until, "--until") if until is not None else int(time.time() * 1000)
    if end <= start:
        raise typer.BadParameter(f"{iso(end)} is not after --since {iso(start)}", param_hint="--until")
    console = Console()
    candle_store = _store(store)
    try:
        name, fetched, seconds, todo = asyncio.run(_download(exchange, symbol, interval, start, end, candle_store,
                                                             console))
    except bk.BacktestKitError as e:
        console.print(f"[red]Error:[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    if not todo:
        console.print(f"{exchange} {name} {interval}: {iso(start)[:16]} .. {iso(end)[:16]} is already stored",
                      highlight=False)
        return
    rate = fetched / seconds if seconds > 0 else 0.0
    console.print(f"{exchange} {name} {interval}: {fetched:,} candles in {seconds:.2f} s ({rate:,.0f} candles/s) "
                  f"into {candle_store.root}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- check and list


def _series(store: bk.CandleStore, exchange: str | None, symbol: str | None, interval: str | None) -> list[SeriesInfo]:
    try:
        entries = store.entries()
    except bk.BacktestKitError as e:
        raise typer.BadParameter(str(e), param_hint="--store") from None
    return [e for e in entries if (exchange is None or e.exchange == exchange)
            and (symbol is None or _same_symbol(e.symbol, symbol)) and (interval is None or e.interval == interval)]


def _same_symbol(stored: str, given: str) -> bool:
    """BTC/USDT matches BTC/USDT, BTCUSDT and btc/usdt (without a ccxt market table offline)."""
    def plain(s: str) -> str:
        return s.split(":")[0].replace("/", "").replace("-", "").upper()
    return stored == given or plain(stored) == plain(given)


def _when(ms: int | None) -> str:
    return "-" if ms is None else iso(ms)[:16]


@data_app.command()
def check(
    store: Annotated[Path, typer.Option(exists=True, file_okay=False, help="CandleStore directory.")],
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    interval: Annotated[str | None, typer.Option(help="Only this interval.")] = None,
    zero_volume_run: Annotated[int, typer.Option(min=1, help="Zero-volume candles in a row worth a warning.")] = 10,
) -> None:
    """Check stored candles: gaps, duplicates, high < low, open/close outside \\[low, high], non-positive
    prices, zero-volume runs. Exits 1 when any error is found (gaps and zero-volume runs are warnings)."""
    candle_store = _store(store, read_only=True)
    console = Console()
    found = _series(candle_store, exchange, symbol, interval)
    if not found:
        console.print("No stored series matches.")
        raise typer.Exit(1)
    table = Table(title=f"Candle check of {candle_store.root}")
    for col in ("Exchange", "Symbol", "Interval", "Candles", "First", "Last", "Errors", "Warnings", "Findings"):
        table.add_column(col, justify="right" if col in ("Candles", "Errors", "Warnings") else "left")
    errors = 0
    for e in found:
        step = INTERVAL_MS[e.interval]
        try:
            cols = candle_store.read(e.exchange, e.symbol, e.interval, 0, (e.last_ts or 0) + step)
        except bk.BacktestKitError as err:
            table.add_row(e.exchange, e.symbol, e.interval, str(e.count), _when(e.first_ts), _when(e.last_ts),
                          "1", "0", escape(str(err)))
            errors += 1
            continue
        issues = _quality.check_candles(cols["timestamp"], cols["open"], cols["high"], cols["low"], cols["close"],
                                        cols["volume"], interval_ms=step, zero_volume_run=zero_volume_run)
        # A gap the venue answered for (covered, no candles) is still a gap in the data: reported the same.
        bad = [i for i in issues if _quality.is_error(i)]
        warn = [i for i in issues if not _quality.is_error(i)]
        errors += len(bad)
        text = ", ".join(f"{kind} {n:,}" for kind, n in _quality.summary(issues).items()) or "ok"
        if bad:
            text += f"; first: {bad[0].kind} at {iso(bad[0].timestamp_ms)[:16]}"
        holes = subtract(e.first_ts, (e.last_ts or 0) + step, list(e.covered)) if e.first_ts is not None else []
        if holes:
            text += f"; {len(holes)} range(s) never downloaded"
        table.add_row(e.exchange, e.symbol, e.interval, f"{e.count:,}", _when(e.first_ts), _when(e.last_ts),
                      str(len(bad)), str(len(warn)), text)
    console.print(table)
    if errors:
        console.print(f"[red]{errors} error(s) found[/red]")
        raise typer.Exit(1)


@data_app.command(name="list")
def list_(store: Annotated[Path, typer.Option(exists=True, file_okay=False, help="CandleStore directory.")]) -> None:
    """List the stored series: candles, first and last open time, covered ranges."""
    candle_store = _store(store, read_only=True)
    console = Console()
    found = _series(candle_store, None, None, None)
    if not found:
        console.print(f"No candles stored in {candle_store.root}")
        return
    table = Table(title=f"Candles in {candle_store.root}")
    for col in ("Exchange", "Symbol", "Interval", "Candles", "First", "Last", "Covered ranges", "Data end"):
        table.add_column(col, justify="right" if col in ("Candles", "Covered ranges") else "left")
    for e in found:
        end = candle_store.data_end(e.exchange, e.symbol, e.interval)
        table.add_row(e.exchange, e.symbol, e.interval, f"{e.count:,}", _when(e.first_ts), _when(e.last_ts),
                      str(len(e.covered)), _when(end))
    console.print(table)


# ---------------------------------------------------------------- offline backtests


def offline_exchange(store_dir: Path, exchange: str, symbol: str) -> tuple[str, int, int, Callable[[], str]]:
    """(stored symbol, first and last 1m open time, register()) for `backtest --store`: an exchange that
    reads the store only. Past the stored range it answers "no candles"; a hole inside it is an error
    naming the download that fills it."""
    store = _store(store_dir, read_only=True)
    found = [e for e in _series(store, exchange, symbol, "1m") if e.count]
    if not found:
        raise typer.BadParameter(f"no 1m candles of {exchange} {symbol} in {store.root}; run backtest-kit data "
                                 f"download --exchange {exchange} --symbol {symbol} --store {store_dir} first",
                                 param_hint="--store")
    info = found[0]
    covered_end = max(hi for _, hi in info.covered)

    async def get_candles(sym: str, interval: str, since: datetime, limit: int) -> list[list[float]]:
        t = to_ms(since)
        if t >= covered_end:
            return []
        raise bk.ValidationError(f"offline: {exchange} {sym} {interval} from {iso(t)} is not in {store.root}; "
                                 f"backtest-kit data download --exchange {exchange} --symbol {sym} --interval "
                                 f"{interval} --since {iso(t)[:16]} --store {store_dir}")

    def register() -> str:
        bk.add_exchange(exchange_name=exchange, get_candles=get_candles, store=store)
        return exchange

    assert info.first_ts is not None and info.last_ts is not None
    return info.symbol, info.first_ts, info.last_ts, register

"""The `backtest-kit` console script: `demo` (bundled candles, no network) and `backtest`
(your own 1m candles from CSV, NPZ or Parquet, or a CandleStore offline), both with the
moving-average rule strategy; `data` (download, check, list a CandleStore) is in _cli_data."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import backtest_kit as bk

from ._cli_data import data_app, offline_exchange
from ._files import CandleFileError, demo_candles, load_candles
from ._report.backtest import fmt_value, headline
from ._target import strategy_from
from ._time import FRAME_INTERVALS, MINUTE_MS, STRATEGY_INTERVALS, interval_ms, iso, to_ms
from .demo import ArrayExchange, GetSignal, rule_strategy

app = typer.Typer(help="Backtest signal-based trading strategies.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
app.add_typer(data_app, name="data")

DAY_MS = 1440 * MINUTE_MS
_QUIET = logging.NullHandler()  # keeps the library's per-error warnings off stderr


# ---------------------------------------------------------------- dates and frames


def parse_date(text: str | None, option: str) -> int | None:
    """Epoch ms of ISO-8601 text (naive = UTC) or of epoch-ms digits; None stays None."""
    if text is None:
        return None
    try:
        return int(text) if text.strip().isdigit() else to_ms(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 date such as 2024-01-05 or "
                                 f"2024-01-05T12:00:00Z", param_hint=option) from None


def frame_bounds(candles: np.ndarray, start: int | None, end: int | None,
                 warmup_min: int) -> tuple[int, int]:
    """The frame's first and last time: defaults leave `warmup_min` of history, end at the data."""
    return span_bounds(int(candles[0, 0]), int(candles[-1, 0]), start, end, warmup_min)


def span_bounds(first: int, last: int, start: int | None, end: int | None, warmup_min: int) -> tuple[int, int]:
    """frame_bounds over candles opening first .. last."""
    span = f"the candles cover {iso(first)} .. {iso(last)}"
    start = first + warmup_min * MINUTE_MS if start is None else start
    end = last if end is None else end
    if not first <= start <= last:
        raise typer.BadParameter(f"{iso(start)} is outside the data ({span})", param_hint="--start")
    if not start < end <= last:
        raise typer.BadParameter(f"{iso(end)} must be after the start {iso(start)} and not after "
                                 f"the last candle ({span})", param_hint="--end")
    return start, end


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


# ---------------------------------------------------------------- running


@dataclass(slots=True)
class RunSpec:
    """Everything one CLI backtest needs."""

    symbol: str
    candles: np.ndarray
    start_ms: int
    end_ms: int
    frame_interval: str
    strategy_interval: str
    get_signal: GetSignal
    strategy_name: str
    out: str
    register_exchange: Callable[[], str] | None = None  # registers the exchange, returns its name
    html: bool = False





async def _run_backtest(spec: RunSpec, on_progress: Callable[[bk.ProgressEvent], None],
                        on_error: Callable[[BaseException], None]
                        ) -> tuple[bk.BacktestStatistics, str]:
    """Register exchange, frame and strategy, run the backtest, dump the report."""
    if spec.register_exchange is not None:
        exchange_name = spec.register_exchange()
    else:
        exchange_name = "cli-candles"
        bk.add_exchange(exchange_name=exchange_name, get_candles=ArrayExchange(spec.candles).get_candles)
    bk.add_frame(frame_name="cli-frame", interval=spec.frame_interval,
                 start_date=spec.start_ms, end_date=spec.end_ms)
    bk.add_strategy(strategy_name=spec.strategy_name, interval=spec.strategy_interval,
                    get_signal=spec.get_signal)
    unsubscribe = [bk.listen_backtest_progress(on_progress), bk.listen_error(on_error)]
    try:
        async for _ in bk.Backtest.run(spec.symbol, strategy_name=spec.strategy_name,
                                       exchange_name=exchange_name, frame_name="cli-frame"):
            pass
    finally:
        for fn in unsubscribe:
            fn()
    stats = await bk.Backtest.get_data(spec.symbol, spec.strategy_name)
    path = await bk.Backtest.dump(spec.symbol, spec.strategy_name, path=spec.out)
    if spec.html:  # beside the markdown: <name>.html in the same folder
        folder = spec.out[:-3] + ".html" if spec.out.endswith(".md") else spec.out
        path += "\n" + await bk.Backtest.dump(spec.symbol, spec.strategy_name, path=folder, format="html")
    return stats, path


def _progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)


def _set_verbose(verbose: bool) -> None:
    """Without --verbose the library logs nothing to stderr; errors are summarised instead."""
    logger = logging.getLogger("backtest_kit")
    if verbose:
        logger.removeHandler(_QUIET)
    elif _QUIET not in logger.handlers:
        logger.addHandler(_QUIET)


def run_and_print(spec: RunSpec, verbose: bool = False) -> None:
    """Run the backtest with a progress bar, then print the summary and the report path."""
    _set_verbose(verbose)
    console = Console()
    errors: list[BaseException] = []
    title = f"{spec.strategy_name} {spec.symbol}"
    started = time.perf_counter()
    with _progress_bar(console) as progress:
        task = progress.add_task(title, total=None)

        def on_progress(e: bk.ProgressEvent) -> None:
            progress.update(task, total=e.total_frames, completed=e.processed_frames)

        try:
            stats, path = asyncio.run(_run_backtest(spec, on_progress, errors.append))
        except bk.BacktestKitError as e:
            console.print(f"[red]Error:[/red] {escape(str(e))}")
            raise typer.Exit(1) from None
    seconds = time.perf_counter() - started
    frames = (spec.end_ms - spec.start_ms) // interval_ms(spec.frame_interval) + 1
    console.print(summary_table(stats, spec))
    console.print(f"{iso(spec.start_ms)[:16]} .. {iso(spec.end_ms)[:16]}: {frames:,} "
                  f"{spec.frame_interval} frames in {seconds:.2f} s", highlight=False)
    if errors:
        first = " ".join(str(errors[0]).split())
        console.print(f"[yellow]{len(errors)} errors reported (rejected signals included; "
                      f"--verbose lists them), the first:[/yellow] {escape(first[:300])}", highlight=False)
    for line in path.split("\n"):
        console.print(f"Report: {line}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- summary


def summary_table(s: bk.BacktestStatistics, spec: RunSpec) -> Table:
    table = Table(title=f"Backtest {spec.strategy_name} on {spec.symbol}")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for label, text in headline(s):
        table.add_row(label, text)
    return table


# ---------------------------------------------------------------- commands


@app.command()
def demo(
    symbol: str = typer.Option("BTCUSDT", help="Symbol name shown in the report."),
    days: int = typer.Option(30, min=1, help="Backtest the last DAYS days of the bundled data."),
    out: Path = typer.Option(Path("./dump/backtest"), help="Directory (or .md file) for the report."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every reported error to stderr."),
) -> None:
    """Backtest the moving-average rule on 45 days of bundled synthetic 1m candles (no network)."""
    candles = demo_candles()
    end_excl = int(candles[-1, 0]) + MINUTE_MS
    available = (end_excl - int(candles[0, 0])) // DAY_MS - 1  # the first day is warm-up
    if days > available:
        raise typer.BadParameter(f"the bundled data holds {available} days after warm-up", param_hint="--days")
    # TP and SL from the price each trade opens at: every signal passes validation.
    run_and_print(RunSpec(
        symbol, candles, end_excl - days * DAY_MS, end_excl - MINUTE_MS, "1m", "5m",
        rule_strategy(10, 50, 1.0, 0.6, 360, shorts=True, anchor="price"), "ma-crossover", str(out), html=True),
        verbose)


@app.command()
def backtest(
    target: str | None = typer.Argument(None, help="Your strategy: FILE.py:get_signal or MODULE:NAME "
                                                    "(default: the moving-average rule)."),
    param: list[str] = typer.Option([], "--param", help="name=value passed to TARGET when it is a factory."),
    candles: Path | None = typer.Option(None, exists=True, dir_okay=False, readable=True,
                                        help="1m candles: .csv with header timestamp,open,high,low,close,volume "
                                             "(epoch ms or ISO time), .npz or .parquet."),
    store: Path | None = typer.Option(None, exists=True, file_okay=False,
                                      help="Or a CandleStore directory (backtest-kit data download): offline."),
    exchange: str | None = typer.Option(None, help="With --store: the exchange the candles were stored under."),
    symbol: str = typer.Option(..., help="Symbol name shown in the report (with --store: the stored market)."),
    interval: str = typer.Option("5m", help=f"Strategy interval: {', '.join(STRATEGY_INTERVALS)}."),
    fast: int = typer.Option(10, min=1, help="Fast moving average length (1m closes)."),
    slow: int = typer.Option(50, min=2, help="Slow moving average length (1m closes)."),
    tp: float = typer.Option(1.0, help="Take profit, % from the entry."),
    sl: float = typer.Option(0.6, help="Stop loss, % from the entry."),
    minutes: int = typer.Option(360, min=1, help="Signal lifetime in minutes."),
    shorts: bool = typer.Option(True, "--shorts/--no-shorts", help="Also trade short crossovers."),
    start: str | None = typer.Option(None, help="Frame start, ISO-8601 (default: after warm-up)."),
    end: str | None = typer.Option(None, help="Frame end, ISO-8601 (default: the last candle)."),
    frame_interval: str = typer.Option("1m", help=f"Frame step: {', '.join(FRAME_INTERVALS)}."),
    name: str = typer.Option("ma-crossover", help="Strategy name (and report file name)."),
    out: Path = typer.Option(Path("./dump/backtest"), help="Directory (or .md file) for the report."),
    html: bool = typer.Option(False, "--html", help="Also write the HTML report (chart, equity, trades)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every reported error to stderr."),
) -> None:
    """Backtest the moving-average rule on your own 1m candles (a file, or a CandleStore offline)."""
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    _check_choice(frame_interval, FRAME_INTERVALS, "--frame-interval")
    if tp <= 0 or sl <= 0:
        raise typer.BadParameter("--tp and --sl must be > 0", param_hint="--tp/--sl")
    if fast >= slow:
        raise typer.BadParameter(f"--fast ({fast}) must be smaller than --slow ({slow})", param_hint="--fast")
    if (candles is None) == (store is None):
        raise typer.BadParameter("give either --candles FILE or --store DIR --exchange ID", param_hint="--candles")
    warmup = max(slow + 1, bk.get_config()["CC_AVG_PRICE_CANDLES_COUNT"])
    get_signal = _strategy(target, param, rule_strategy(fast, slow, tp, sl, minutes, shorts=shorts))
    if store is not None:
        if exchange is None:
            raise typer.BadParameter("--store needs --exchange (the name the candles are stored under)",
                                     param_hint="--exchange")
        stored, first, last, register = offline_exchange(store, exchange, symbol)
        start_ms, end_ms = span_bounds(first, last, parse_date(start, "--start"), parse_date(end, "--end"), warmup)
        run_and_print(RunSpec(stored, np.empty((0, 6)), start_ms, end_ms, frame_interval, interval, get_signal,
                              name, str(out), register, html=html), verbose)
        return
    assert candles is not None
    try:
        data = load_candles(candles)
    except CandleFileError as e:
        raise typer.BadParameter(str(e), param_hint="--candles") from None
    start_ms, end_ms = frame_bounds(data, parse_date(start, "--start"), parse_date(end, "--end"), warmup)
    run_and_print(RunSpec(
        symbol, data, start_ms, end_ms, frame_interval, interval, get_signal, name, str(out), html=html), verbose)


async def _run_paper(symbol: str, data: np.ndarray, start_ms: int, end_ms: int, interval: str,
                     get_signal: GetSignal, name: str, backend: bk.PersistBackend, out: str,
                     console: Console, fingerprint: dict[str, object]) -> tuple[bk.LiveStatistics, str]:
    """Drive Live over the candles with a virtual clock; restarts resume from the saved state."""
    bk.use_persist_adapter(backend)
    bk.add_exchange(exchange_name="cli-replay", get_candles=ArrayExchange(data).get_candles)
    bk.add_strategy(strategy_name=name, interval=interval, get_signal=get_signal)
    clock = bk.VirtualClock(start_ms, end_ms)
    async for r in bk.Live.run(symbol, strategy_name=name, exchange_name="cli-replay", clock=clock,
                               fingerprint=fingerprint):
        extra = f" {r.close_reason} {r.pnl.pnl_percentage:+.2f}%" if r.action == "closed" else ""
        console.print(f"{iso(clock.now_ms())[:16]} {r.action.upper():9} {r.signal.position:5} "
                      f"@ {r.current_price:.2f}{extra}", highlight=False)
    stats = await bk.Live.get_data(symbol, name)
    return stats, await bk.Live.dump(symbol, name, path=out)


def _strategy(target: str | None, param: list[str], default: GetSignal) -> GetSignal:
    """The TARGET's get_signal (a factory is called with the --param values), or the default rule."""
    if target is None:
        if param:
            raise typer.BadParameter("--param needs a TARGET strategy", param_hint="--param")
        return default
    try:
        return strategy_from(target, param)
    except bk.ValidationError as e:
        raise typer.BadParameter(str(e), param_hint="TARGET") from None


def _move_state_aside(state: Path, console: Console) -> None:
    """--fresh: keep the old state (it may hold an open position) under a dated name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for path in [state, *(state.with_name(state.name + s) for s in ("-wal", "-shm"))]:
        if path.exists():
            target = path.with_name(f"{path.name}.{stamp}.bak")
            path.rename(target)
            console.print(f"Moved the previous state {path} to {target}", highlight=False, soft_wrap=True)


@app.command()
def live(
    target: str | None = typer.Argument(None, help="Your strategy: FILE.py:get_signal or MODULE:NAME "
                                                    "(default: the moving-average rule)."),
    param: list[str] = typer.Option([], "--param", help="name=value passed to TARGET when it is a factory."),
    paper: bool = typer.Option(False, "--paper", help="Paper-trade: replay candles on a virtual clock."),
    candles: Path | None = typer.Option(None, exists=True, dir_okay=False, readable=True,
                                           help="1m candles to replay (default: the bundled demo data)."),
    symbol: str = typer.Option("BTCUSDT", help="Symbol name."),
    interval: str = typer.Option("5m", help=f"Strategy interval: {', '.join(STRATEGY_INTERVALS)}."),
    fast: int = typer.Option(10, min=1), slow: int = typer.Option(50, min=2),
    tp: float = typer.Option(1.0), sl: float = typer.Option(0.6), minutes: int = typer.Option(360, min=1),
    shorts: bool = typer.Option(True, "--shorts/--no-shorts"),
    start: str | None = typer.Option(None, help="Replay start, ISO-8601 (default: after warm-up)."),
    end: str | None = typer.Option(None, help="Replay end, ISO-8601 (default: the last candle)."),
    state: Path = typer.Option(Path("./dump/data"), help="Directory (file backend) or .sqlite file for state."),
    name: str = typer.Option("ma-crossover", help="Strategy name."),
    out: Path = typer.Option(Path("./dump/live"), help="Directory (or .md file) for the report."),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new state: the old one is moved aside, not deleted."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the moving-average rule live. Only --paper is available from the command line: real
    trading needs your own exchange adapter registered with bk.add_exchange (see README)."""
    if not paper:
        raise typer.BadParameter("only --paper trading is available from the CLI; for a real exchange "
                                 "register it in Python and call bk.Live.run", param_hint="--paper")
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    try:
        data = load_candles(candles) if candles else demo_candles()
    except CandleFileError as e:
        raise typer.BadParameter(str(e), param_hint="--candles") from None
    warmup = max(slow + 1, bk.get_config()["CC_AVG_PRICE_CANDLES_COUNT"])
    start_ms, end_ms = frame_bounds(data, parse_date(start, "--start"), parse_date(end, "--end"), warmup)
    if fresh:
        _move_state_aside(state, Console())
    backend = bk.SqliteBackend(state) if state.suffix in (".sqlite", ".db") else bk.FileBackend(state)
    # What this paper run is: a state saved by another file or other parameters is refused.
    fingerprint: dict[str, object] = {
        "candles": {"file": str(candles.resolve()) if candles else "bundled demo data", "rows": len(data),
                    "first": int(data[0, 0]), "last": int(data[-1, 0]),
                    "sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()},
        "params": {"symbol": symbol, "interval": interval, "fast": fast, "slow": slow, "tp": tp, "sl": sl,
                   "minutes": minutes, "shorts": shorts},
        "strategy": {"target": target, "param": list(param)}}
    get_signal = _strategy(target, param, rule_strategy(fast, slow, tp, sl, minutes, shorts=shorts))
    _set_verbose(verbose)
    console = Console()
    started = time.perf_counter()
    try:
        stats, path = asyncio.run(_run_paper(symbol, data, start_ms + 1, end_ms, interval, get_signal,
                                             name, backend, str(out), console, fingerprint))
    except bk.BacktestKitError as e:
        console.print(f"[red]Error:[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    console.print(f"{stats.total_closed} closed trades, total PnL "
                  f"{fmt_value(stats.total_pnl, '+.2f', '%')} in {time.perf_counter() - started:.2f} s; "
                  f"state in {state}", highlight=False)
    for line in path.split("\n"):
        console.print(f"Report: {line}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()

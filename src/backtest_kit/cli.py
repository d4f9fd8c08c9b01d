"""The `backtest-kit` console script: `demo` (bundled candles, no network); `backtest` (one strategy)
and `walker` (several, ranked by a metric) on your own 1m candles (CSV, NPZ or Parquet, or a
CandleStore offline); `live --paper`. The strategy is the moving-average rule or your own TARGET
(see _target.py); `data` (download, check, list a CandleStore) is in _cli_data."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from ._files import COLUMNS, CandleFileError, demo_candles, load_candles
from ._report.backtest import fmt_value, headline
from ._report.walker import ranked
from ._schema import EXECUTORS, WALKER_METRICS
from ._space import label as params_label
from ._space import parse_space
from ._target import load_target, make_strategy, parse_params, strategies_from, strategy_from, target_name
from ._time import FRAME_INTERVALS, MINUTE_MS, STRATEGY_INTERVALS, interval_ms, iso, to_ms
from .demo import ArrayExchange, GetSignal, rule_strategy

app = typer.Typer(help="Backtest signal-based trading strategies.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
app.add_typer(data_app, name="data")

DAY_MS = 1440 * MINUTE_MS
_QUIET = logging.NullHandler()  # keeps the library's per-error warnings off stderr
T = TypeVar("T")

# The default walk: the moving-average rule at two fast lengths. One slow length, so every
# strategy has backtest's warm-up and `walker`'s ma-10-50 row equals `backtest`'s default run.
DEFAULT_WALK = ((10, 50), (20, 50))


# ---------------------------------------------------------------- options shared by the commands

TARGET_HELP = "Your strategy: FILE.py:get_signal or MODULE:NAME (default: the moving-average rule)."
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", help="name=value passed to TARGET when it is a factory (repeatable).")]
CandlesOption = Annotated[Path | None, typer.Option(
    exists=True, dir_okay=False, readable=True,
    help="1m candles: .csv with header timestamp,open,high,low,close,volume (epoch ms or ISO time), "
         ".npz or .parquet.")]
StoreOption = Annotated[Path | None, typer.Option(
    exists=True, file_okay=False, help="Or a CandleStore directory (backtest-kit data download): offline.")]
ExchangeOption = Annotated[str | None, typer.Option(help="With --store: the exchange the candles were stored under.")]
SymbolOption = Annotated[str | None, typer.Option(
    help="Symbol name shown in the report (default BTCUSDT); with --store: the stored market (required).")]
IntervalOption = Annotated[str, typer.Option(help=f"Strategy interval: {', '.join(STRATEGY_INTERVALS)}.")]
StartOption = Annotated[str | None, typer.Option(help="Frame start, ISO-8601 (default: after warm-up).")]
EndOption = Annotated[str | None, typer.Option(help="Frame end, ISO-8601 (default: the last candle).")]
FrameIntervalOption = Annotated[str, typer.Option(help=f"Frame step: {', '.join(FRAME_INTERVALS)}.")]
HtmlOption = Annotated[bool, typer.Option("--html", help="Also write the HTML report beside the markdown one.")]
ExecutorOption = Annotated[str, typer.Option(
    help="Where trials run: sequential, process (every core) or ray (a local Ray, or RAY_ADDRESS).")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log every reported error to stderr.")]


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


def _warmup(slow: int) -> int:
    """Minutes of history before the frame's default start."""
    return max(slow + 1, int(bk.get_config()["CC_AVG_PRICE_CANDLES_COUNT"]))


# ---------------------------------------------------------------- the candles of a run


@dataclass(slots=True)
class Source:
    """The candles one CLI run reads and its frame: an array in memory, or a CandleStore offline."""

    symbol: str
    candles: np.ndarray
    start_ms: int
    end_ms: int
    register_exchange: Callable[[], str] | None = None  # a store's exchange: registers it, returns its name

    def add_exchange(self) -> str:
        """Register the exchange serving these candles; its name."""
        if self.register_exchange is not None:
            return self.register_exchange()
        bk.add_exchange(exchange_name="cli-candles", get_candles=ArrayExchange(self.candles).get_candles)
        return "cli-candles"

    def add_frame(self, frame_interval: str) -> str:
        bk.add_frame(frame_name="cli-frame", interval=frame_interval, start_date=self.start_ms, end_date=self.end_ms)
        return "cli-frame"


def candle_source(candles: Path | None, store: Path | None, exchange: str | None, symbol: str | None,
                  start: str | None, end: str | None, warmup_min: int) -> Source:
    """The Source of `--candles FILE` or `--store DIR --exchange ID --symbol S`, with --start/--end."""
    if (candles is None) == (store is None):
        raise typer.BadParameter("give either --candles FILE or --store DIR --exchange ID --symbol S",
                                 param_hint="--candles")
    start_ms, end_ms = parse_date(start, "--start"), parse_date(end, "--end")
    if store is not None:
        if exchange is None:
            raise typer.BadParameter("--store needs --exchange (the name the candles are stored under)",
                                     param_hint="--exchange")
        if symbol is None:
            raise typer.BadParameter("--store needs --symbol (the market stored, such as BTC/USDT)",
                                     param_hint="--symbol")
        stored, first, last, register = offline_exchange(store, exchange, symbol)
        return Source(stored, np.empty((0, 6)), *span_bounds(first, last, start_ms, end_ms, warmup_min), register)
    assert candles is not None
    if exchange is not None:
        raise typer.BadParameter("--exchange goes with --store; --candles are served as they are",
                                 param_hint="--exchange")
    try:
        data = load_candles(candles)
    except CandleFileError as e:
        raise typer.BadParameter(str(e), param_hint="--candles") from None
    return Source(symbol or "BTCUSDT", data, *frame_bounds(data, start_ms, end_ms, warmup_min))


def _strategy(target: str | None, param: list[str], default: GetSignal) -> GetSignal:
    """The TARGET's get_signal (a factory is called with the --param values), or the default rule."""
    if target is None:
        if param:
            raise typer.BadParameter("--param needs a TARGET strategy", param_hint="--param")
        return default
    try:
        return strategy_from(target, param)
    except bk.ValidationError as e:
        raise typer.BadParameter(str(e), param_hint=_hint(e)) from None


def _default_name(target: str | None) -> str:
    """A run's strategy name without --name: the TARGET's (my_strategy:get_signal), or the rule's."""
    return target_name(target, {}) if target else "ma-crossover"


def _hint(error: bk.ValidationError) -> str:
    """The option a TARGET error is about: a malformed --param, or else the TARGET."""
    return "--param" if str(error).startswith("--param") else "TARGET"


# ---------------------------------------------------------------- running and printing


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


Update = Callable[..., None]  # Progress.update of the run's task: total=, completed=, description=
OnError = Callable[[BaseException], None]


def _execute(console: Console, title: str, main: Callable[[Update, OnError], Coroutine[Any, Any, T]]
             ) -> tuple[T, list[BaseException], float]:
    """Run `main(update, on_error)` under a progress bar: (its result, the errors reported, seconds).
    A library error ends the command with exit 1 and one line."""
    errors: list[BaseException] = []
    started = time.perf_counter()
    with _progress_bar(console) as progress:
        task = progress.add_task(title, total=None)

        def update(**fields: Any) -> None:
            progress.update(task, **fields)

        try:
            result = asyncio.run(main(update, errors.append))
        except bk.BacktestKitError as e:
            console.print(f"[red]Error:[/red] {escape(str(e))}")
            raise typer.Exit(1) from None
    return result, errors, time.perf_counter() - started


async def _dump_reports(dump: Callable[[str, str], Awaitable[str]], out: str, html: bool) -> list[str]:
    """The markdown report at `out` (a folder or a .md file) and, with html, the HTML one beside it."""
    paths = [await dump(out, "md")]
    if html:
        paths.append(await dump(out[:-3] + ".html" if out.endswith(".md") else out, "html"))
    return paths


def _print_footer(console: Console, source: Source, frame_interval: str, seconds: float,
                  errors: list[BaseException], paths: list[str], runs: int = 1, noun: str = "strategies") -> None:
    """The frames run and the time taken, the reported errors, the report paths."""
    frames = (source.end_ms - source.start_ms) // interval_ms(frame_interval) + 1
    times = f" x {runs} {noun}" if runs > 1 else ""
    console.print(f"{iso(source.start_ms)[:16]} .. {iso(source.end_ms)[:16]}: {frames:,} "
                  f"{frame_interval} frames{times} in {seconds:.2f} s", highlight=False)
    if errors:
        first = " ".join(str(errors[0]).split())
        console.print(f"[yellow]{len(errors)} errors reported (rejected signals included; "
                      f"--verbose lists them), the first:[/yellow] {escape(first[:300])}", highlight=False)
    for path in paths:
        console.print(f"Report: {path}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- one backtest


@dataclass(slots=True)
class RunSpec:
    """Everything one CLI backtest needs."""

    source: Source
    frame_interval: str
    strategy_interval: str
    get_signal: GetSignal
    strategy_name: str
    out: str
    html: bool = False


async def _run_backtest(spec: RunSpec, update: Update, on_error: OnError) -> tuple[bk.BacktestStatistics, list[str]]:
    """Register exchange, frame and strategy, run the backtest, dump the report(s)."""
    symbol, name = spec.source.symbol, spec.strategy_name
    exchange_name = spec.source.add_exchange()
    frame_name = spec.source.add_frame(spec.frame_interval)
    bk.add_strategy(strategy_name=name, interval=spec.strategy_interval, get_signal=spec.get_signal)

    def on_progress(e: bk.ProgressEvent) -> None:
        update(total=e.total_frames, completed=e.processed_frames)

    unsubscribe = [bk.listen_backtest_progress(on_progress), bk.listen_error(on_error)]
    try:
        async for _ in bk.Backtest.run(symbol, strategy_name=name, exchange_name=exchange_name,
                                       frame_name=frame_name):
            pass
    finally:
        for fn in unsubscribe:
            fn()
    stats = await bk.Backtest.get_data(symbol, name)
    paths = await _dump_reports(lambda path, fmt: bk.Backtest.dump(symbol, name, path=path, format=fmt),
                                spec.out, spec.html)
    return stats, paths


def run_and_print(spec: RunSpec, verbose: bool = False) -> None:
    """Run the backtest with a progress bar, then print the summary and the report paths."""
    _set_verbose(verbose)
    console = Console()
    (stats, paths), errors, seconds = _execute(
        console, f"{spec.strategy_name} {spec.source.symbol}",
        lambda update, on_error: _run_backtest(spec, update, on_error))
    console.print(summary_table(stats, spec))
    _print_footer(console, spec.source, spec.frame_interval, seconds, errors, paths)


def summary_table(s: bk.BacktestStatistics, spec: RunSpec) -> Table:
    table = Table(title=f"Backtest {escape(spec.strategy_name)} on {escape(spec.source.symbol)}")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for label, text in headline(s):
        table.add_row(label, text)
    return table


# ---------------------------------------------------------------- a walk over several strategies


@dataclass(slots=True)
class WalkSpec:
    """Everything one CLI walk needs."""

    source: Source
    frame_interval: str
    strategy_interval: str
    strategies: list[tuple[str, GetSignal]]  # (name, get_signal), in walk order
    metric: str
    walker_name: str
    out: str
    html: bool = False
    executor: str = "sequential"


async def _run_walker(spec: WalkSpec, update: Update, on_error: OnError
                      ) -> tuple[bk.WalkerStatistics, dict[str, BaseException], list[str]]:
    """Register exchange, frame, strategies and walker, walk, dump the report(s); also the
    strategies whose backtest failed (the walk goes on without them) with their error."""
    symbol, walker_name = spec.source.symbol, spec.walker_name
    names = [name for name, _ in spec.strategies]
    exchange_name = spec.source.add_exchange()
    frame_name = spec.source.add_frame(spec.frame_interval)
    for name, get_signal in spec.strategies:
        bk.add_strategy(strategy_name=name, interval=spec.strategy_interval, get_signal=get_signal)
    failed: dict[str, BaseException] = {}

    def on_strategy_error(name: str, _symbol: str, error: BaseException) -> None:
        failed.setdefault(name, error)

    bk.add_walker(walker_name=walker_name, exchange_name=exchange_name, frame_name=frame_name,
                  strategies=names, metric=spec.metric, callbacks={"on_strategy_error": on_strategy_error},
                  executor=spec.executor)

    def on_progress(e: bk.ProgressEvent) -> None:  # one bar over the strategies, filled frame by frame
        if e.strategy_name in names:
            update(description=f"{e.strategy_name} {symbol}", total=len(names),
                   completed=names.index(e.strategy_name) + e.processed_frames / max(e.total_frames, 1))

    unsubscribe = [bk.listen_backtest_progress(on_progress), bk.listen_error(on_error)]
    try:
        async for _ in bk.Walker.run(symbol, walker_name=walker_name):
            pass
    finally:
        for fn in unsubscribe:
            fn()
    data = await bk.Walker.get_data(symbol, walker_name)
    paths = await _dump_reports(lambda path, fmt: bk.Walker.dump(symbol, walker_name, path=path, format=fmt),
                                spec.out, spec.html)
    return data, failed, paths


def ranking(data: bk.WalkerStatistics) -> list[bk.StrategyResult]:
    """The walked strategies best first, by the Walker's rule: higher metric first (drawdowns, spreads
    and error counts: lower), an undefined metric last, ties in walk order (the first is best_strategy)."""
    return ranked(data.strategy_results, data.metric)


def ranking_table(data: bk.WalkerStatistics, failed: dict[str, BaseException]) -> Table:
    table = Table(title=f"Walker {escape(data.walker_name)} on {escape(data.symbol)}: "
                        f"{data.total_strategies} strategies by {data.metric}")
    table.add_column("#", justify="right")
    table.add_column("Strategy")
    for label in (data.metric, "Trades", "Win rate", "Return", "Max drawdown", "Sharpe (daily)"):
        table.add_column(label, justify="right")
    for rank, r in enumerate(ranking(data), start=1):
        s = r.stats
        table.add_row(str(rank), escape(r.strategy_name), fmt_value(r.metric_value, ".4f"), str(s.total_signals),
                      fmt_value(s.win_rate, ".2f", "%"), fmt_value(s.total_return_pct, "+.2f", "%"),
                      fmt_value(s.max_drawdown_pct, ".2f", "%"), fmt_value(s.sharpe, ".3f"))
    for name in failed:
        table.add_row("-", escape(name), "failed", "", "", "", "", "")
    return table


def walk_and_print(spec: WalkSpec, verbose: bool = False) -> None:
    """Walk with a progress bar, print the ranking and the report paths; exit 1 if a strategy failed."""
    _set_verbose(verbose)
    console = Console()
    (data, failed, paths), errors, seconds = _execute(
        console, f"{spec.walker_name} {spec.source.symbol}",
        lambda update, on_error: _run_walker(spec, update, on_error))
    console.print(ranking_table(data, failed))
    if data.best_strategy is not None:
        console.print(f"Best by {data.metric}: {escape(data.best_strategy)} "
                      f"({fmt_value(data.best_metric, '.4f')})", highlight=False)
    else:
        console.print(f"No strategy has a defined {data.metric}.", highlight=False)
    _print_footer(console, spec.source, spec.frame_interval, seconds, errors, paths, len(spec.strategies))
    for name, error in failed.items():
        console.print(f"[red]Error:[/red] strategy {escape(name)} failed: {escape(' '.join(str(error).split()))}",
                      highlight=False)
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- commands


def _write_candles(path: Path, candles: np.ndarray) -> None:
    """.csv (header timestamp,open,high,low,close,volume; epoch ms) or .npz (one array per column)."""
    if path.suffix.lower() == ".npz":
        np.savez(path, **{c: candles[:, i] for i, c in enumerate(COLUMNS)})  # type: ignore[arg-type]
        return
    if path.suffix.lower() != ".csv":
        raise typer.BadParameter(f"{path}: write a .csv or a .npz file", param_hint="--save-candles")
    # repr() of a float is the shortest text that reads back as the same float.
    rows = (f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}" for r in candles.tolist())
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


@app.command()
def demo(
    symbol: str = typer.Option("BTCUSDT", help="Symbol name shown in the report."),
    days: int = typer.Option(30, min=1, help="Backtest the last DAYS days of the bundled data."),
    out: Path = typer.Option(Path("./dump/backtest"), help="Directory (or .md file) for the report."),
    save_candles: Path | None = typer.Option(
        None, dir_okay=False, help="Instead: write the bundled candles to this .csv or .npz file, to try "
                                   "backtest and walker on them."),
    verbose: VerboseOption = False,
) -> None:
    """Backtest the moving-average rule on 45 days of bundled synthetic 1m candles (no network)."""
    candles = demo_candles()
    if save_candles is not None:
        _write_candles(save_candles, candles)
        Console().print(f"Wrote {len(candles):,} 1m candles ({iso(int(candles[0, 0]))[:16]} .. "
                        f"{iso(int(candles[-1, 0]))[:16]}) to {save_candles}", highlight=False, soft_wrap=True)
        return
    end_excl = int(candles[-1, 0]) + MINUTE_MS
    available = (end_excl - int(candles[0, 0])) // DAY_MS - 1  # the first day is warm-up
    if days > available:
        raise typer.BadParameter(f"the bundled data holds {available} days after warm-up", param_hint="--days")
    # TP and SL from the price each trade opens at: every signal passes validation.
    source = Source(symbol, candles, end_excl - days * DAY_MS, end_excl - MINUTE_MS)
    run_and_print(RunSpec(source, "1m", "5m", rule_strategy(10, 50, 1.0, 0.6, 360, shorts=True, anchor="price"),
                          "ma-crossover", str(out), html=True), verbose)


@app.command()
def backtest(
    target: str | None = typer.Argument(None, help=TARGET_HELP),
    param: ParamOption = None,
    candles: CandlesOption = None,
    store: StoreOption = None,
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = "5m",
    fast: int = typer.Option(10, min=1, help="Fast moving average length (1m closes)."),
    slow: int = typer.Option(50, min=2, help="Slow moving average length (1m closes)."),
    tp: float = typer.Option(1.0, help="Take profit, % from the entry."),
    sl: float = typer.Option(0.6, help="Stop loss, % from the entry."),
    minutes: int = typer.Option(360, min=1, help="Signal lifetime in minutes."),
    shorts: bool = typer.Option(True, "--shorts/--no-shorts", help="Also trade short crossovers."),
    start: StartOption = None,
    end: EndOption = None,
    frame_interval: FrameIntervalOption = "1m",
    name: str | None = typer.Option(None, help="Strategy name (and report file name); default ma-crossover, or "
                                               "the TARGET's name, such as my_strategy:get_signal."),
    out: Path = typer.Option(Path("./dump/backtest"), help="Directory (or .md file) for the report."),
    html: HtmlOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Backtest the moving-average rule, or your TARGET, on your own 1m candles (a file, or a
    CandleStore offline)."""
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    _check_choice(frame_interval, FRAME_INTERVALS, "--frame-interval")
    if tp <= 0 or sl <= 0:
        raise typer.BadParameter("--tp and --sl must be > 0", param_hint="--tp/--sl")
    if fast >= slow:
        raise typer.BadParameter(f"--fast ({fast}) must be smaller than --slow ({slow})", param_hint="--fast")
    source = candle_source(candles, store, exchange, symbol, start, end, _warmup(slow))
    get_signal = _strategy(target, param or [], rule_strategy(fast, slow, tp, sl, minutes, shorts=shorts))
    name = name or _default_name(target)
    run_and_print(RunSpec(source, frame_interval, interval, get_signal, name, str(out), html=html), verbose)


@app.command()
def walker(
    targets: list[str] | None = typer.Argument(
        None, metavar="TARGET",
        help="Strategies to compare, each FILE.py:NAME or MODULE:NAME and named after it (such as "
             "my_strategy:get_signal). Default: the moving-average rule with fast 10 and fast 20 (slow 50)."),
    param: list[str] | None = typer.Option(
        None, "--param",
        help="name=value passed to every TARGET (each a factory); N.name=value to the N-th TARGET only "
             "(from 1), which then shows it in its name: walker f.py:make f.py:make --param 2.fast=20."),
    candles: CandlesOption = None,
    store: StoreOption = None,
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = "5m",
    metric: str = typer.Option("sharpe_ratio", help="Rank by this statistic, highest first (drawdowns, "
                                                    "spreads, error counts: lowest): "
                                                    f"{', '.join(WALKER_METRICS)}."),
    start: StartOption = None,
    end: EndOption = None,
    frame_interval: FrameIntervalOption = "1m",
    name: str = typer.Option("walker", help="Walker name (and report file name)."),
    out: Path = typer.Option(Path("./dump/walker"), help="Directory (or .md file) for the report."),
    html: HtmlOption = False,
    executor: ExecutorOption = "sequential",
    verbose: VerboseOption = False,
) -> None:
    """Backtest several strategies on the same candles and rank them by a metric (bk.Walker)."""
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    _check_choice(frame_interval, FRAME_INTERVALS, "--frame-interval")
    _check_choice(metric, WALKER_METRICS, "--metric")
    source = candle_source(candles, store, exchange, symbol, start, end, _warmup(max(s for _, s in DEFAULT_WALK)))
    if targets:
        try:
            strategies = strategies_from(targets, param or [])
        except bk.ValidationError as e:
            raise typer.BadParameter(str(e), param_hint=_hint(e)) from None
    elif param:
        raise typer.BadParameter("--param needs a TARGET strategy", param_hint="--param")
    else:
        # backtest's defaults for the rest: TP 1 %, SL 0.6 %, 360 minutes, shorts too
        strategies = [(f"ma-{fast}-{slow}", rule_strategy(fast, slow, 1.0, 0.6, 360)) for fast, slow in DEFAULT_WALK]
    _check_choice(executor, EXECUTORS, "--executor")
    walk_and_print(WalkSpec(source, frame_interval, interval, strategies, metric, name, str(out), html, executor),
                   verbose)


# ---------------------------------------------------------------- sweeps and walk-forward


SpaceOption = Annotated[list[str] | None, typer.Option(
    "--space", help="name=start:stop:step (inclusive) or name=v1,v2,... (repeatable); with --optuna, "
                    "name=low:high is a range.")]
DEFAULT_SPACE = ["fast=5:20:5", "slow=40,60"]  # the moving-average rule's, with no TARGET


def _default_factory(fast: int = 10, slow: int = 50) -> GetSignal:
    """The moving-average rule at (fast, slow), TP/SL from the price each trade opens at."""
    return rule_strategy(fast, slow, 1.0, 0.6, 360, shorts=True, anchor="price")


def _factory(target: str | None, param: list[str]) -> Callable[..., GetSignal]:
    """TARGET as a factory called with --param values and each trial's parameters; or the rule."""
    if target is None:
        if param:
            raise typer.BadParameter("--param needs a TARGET strategy", param_hint="--param")
        return _default_factory
    try:
        fn = load_target(target)
        fixed = parse_params(param)
    except bk.ValidationError as e:
        raise typer.BadParameter(str(e), param_hint=_hint(e)) from None

    def factory(**params: Any) -> GetSignal:
        return make_strategy(target, fn, {**fixed, **params})

    return factory


@dataclass(slots=True)
class SweepSpec:
    """Everything one CLI sweep or walk-forward needs."""

    source: Source
    frame_interval: str
    strategy_interval: str
    factory: Callable[..., GetSignal]
    space: dict[str, Any]
    metric: str
    executor: str
    trials: int | None
    storage: str | None
    name: str
    out: str
    html: bool = False
    walk: dict[str, Any] | None = None  # train, test, step, anchored of a walk-forward


def _register_sweep(spec: SweepSpec) -> str:
    exchange_name = spec.source.add_exchange()
    frame_name = spec.source.add_frame(spec.frame_interval)
    bk.add_sweep(spec.name, spec.factory, spec.space, exchange_name=exchange_name, frame_name=frame_name,
                 interval=spec.strategy_interval, metric=spec.metric,
                 search="optuna" if spec.trials else "grid", trials=spec.trials, storage=spec.storage,
                 executor=spec.executor)
    return spec.name


async def _run_sweep(spec: SweepSpec, update: Update, on_error: OnError) -> tuple[bk.SweepStatistics, list[str]]:
    symbol = spec.source.symbol
    _register_sweep(spec)
    unsubscribe = bk.listen_error(on_error)
    try:
        async for p in bk.Sweep.run(symbol, sweep_name=spec.name):
            best = "" if p.best_params is None else \
                f" best {spec.metric} {fmt_value(p.best_metric, '.4f')} at {params_label(p.best_params)}"
            update(total=p.total_trials, completed=p.trials_done, description=f"{spec.name}{best}")
    finally:
        unsubscribe()
    data = await bk.Sweep.get_data(symbol, spec.name)
    paths = await _dump_reports(lambda path, fmt: bk.Sweep.dump(symbol, spec.name, path=path, format=fmt),
                                spec.out, spec.html)
    return data, paths


def trials_table(data: bk.SweepStatistics, top: int = 15) -> Table:
    table = Table(title=f"Sweep {escape(data.sweep_name)} on {escape(data.symbol)}: {len(data.trials)} trials "
                        f"by {data.metric}")
    table.add_column("#", justify="right")
    table.add_column("Parameters")
    for name in (data.metric, "Trades", "Return", "Max drawdown", "Sharpe (daily)"):
        table.add_column(name, justify="right")
    for rank, t in enumerate(data.trials[:top], start=1):
        s = t.stats
        table.add_row(str(rank), escape(params_label(t.params)),
                      "failed" if t.error else fmt_value(t.metric_value, ".4f"), str(s.total_signals),
                      fmt_value(s.total_return_pct, "+.2f", "%"), fmt_value(s.max_drawdown_pct, ".2f", "%"),
                      fmt_value(s.sharpe, ".3f"))
    return table


def _sweep_spec(target: str | None, param: list[str] | None, space: list[str] | None, candles: Path | None,
                store: Path | None, exchange: str | None, symbol: str | None, interval: str, metric: str,
                executor: str, optuna: bool, trials: int | None, storage: str | None, start: str | None,
                end: str | None, frame_interval: str, name: str, out: Path, html: bool) -> SweepSpec:
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    _check_choice(frame_interval, FRAME_INTERVALS, "--frame-interval")
    _check_choice(metric, WALKER_METRICS, "--metric")
    _check_choice(executor, EXECUTORS, "--executor")
    if not optuna and (trials is not None or storage is not None):
        raise typer.BadParameter("--trials and --storage go with --optuna", param_hint="--optuna")
    if optuna and trials is None:
        raise typer.BadParameter("--optuna needs --trials N", param_hint="--trials")
    if target is not None and not space:
        raise typer.BadParameter("a TARGET factory needs --space name=values (one per parameter)",
                                 param_hint="--space")
    try:
        parsed = parse_space(space or DEFAULT_SPACE, "optuna" if optuna else "grid")
    except bk.ValidationError as e:
        raise typer.BadParameter(str(e), param_hint="--space") from None
    slow = max([v for v in (parsed.get("slow") or []) if isinstance(v, int)] or [60]) if target is None else 60
    source = candle_source(candles, store, exchange, symbol, start, end, _warmup(slow))
    return SweepSpec(source, frame_interval, interval, _factory(target, param or []), parsed, metric, executor,
                     trials if optuna else None, storage, name, str(out), html)


def _sweep_error(e: bk.ValidationError) -> typer.BadParameter:
    text = str(e)
    hint = next((f"--{k}" for k in ("space", "trials", "storage", "executor", "metric") if f"'{k}'" in text
                 or "space[" in text and k == "space"), "--space")
    return typer.BadParameter(text, param_hint=hint)


@app.command()
def sweep(
    target: str | None = typer.Argument(None, help="A factory FILE.py:make or MODULE:make; make(**params) returns a "
                                                   "get_signal. Default: the moving-average rule (fast, slow)."),
    space: SpaceOption = None,
    param: ParamOption = None,
    candles: CandlesOption = None,
    store: StoreOption = None,
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = "5m",
    metric: str = typer.Option("sharpe_ratio", help=f"Rank by this statistic: {', '.join(WALKER_METRICS)} "
                                                    "(drawdowns, spreads and error counts: lowest first)."),
    executor: ExecutorOption = "sequential",
    optuna: bool = typer.Option(False, "--optuna", help="Search with Optuna (TPE) instead of the whole grid."),
    trials: int | None = typer.Option(None, min=1, help="With --optuna: trials in the study."),
    storage: str | None = typer.Option(None, help="With --optuna: a journal file or an Optuna storage URL; "
                                                  "a study there resumes without redoing finished trials."),
    start: StartOption = None,
    end: EndOption = None,
    frame_interval: FrameIntervalOption = "1m",
    name: str = typer.Option("sweep", help="Sweep name (and report file name)."),
    out: Path = typer.Option(Path("./dump/sweep"), help="Directory (or .md file) for the report."),
    html: HtmlOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Backtest a strategy factory at every point of a parameter grid (or an Optuna study) and rank them."""
    spec = _sweep_spec(target, param, space, candles, store, exchange, symbol, interval, metric, executor, optuna,
                       trials, storage, start, end, frame_interval, name, out, html)
    _set_verbose(verbose)
    console = Console()
    try:
        (data, paths), errors, seconds = _execute(console, spec.name,
                                                  lambda update, on_error: _run_sweep(spec, update, on_error))
    except bk.ValidationError as e:
        raise _sweep_error(e) from None
    console.print(trials_table(data))
    if data.best is not None:
        console.print(f"Best by {data.metric}: {escape(params_label(data.best.params))} "
                      f"({fmt_value(data.best.metric_value, '.4f')})", highlight=False)
    _print_footer(console, spec.source, spec.frame_interval, seconds, errors, paths, len(data.trials), "trials")
    for t in data.failed:
        last = t.error.strip().splitlines()[-1] if t.error and t.error.strip() else "failed"
        console.print(f"[red]Trial {t.number} ({escape(params_label(t.params))}) failed:[/red] {escape(last)}",
                      highlight=False)
    if data.failed:
        raise typer.Exit(1)


async def _run_walk(spec: SweepSpec, update: Update, on_error: OnError
                    ) -> tuple[bk.WalkForwardStatistics, list[str]]:
    symbol = spec.source.symbol
    _register_sweep(spec)
    assert spec.walk is not None
    bk.add_walk_forward(spec.name, spec.name, **spec.walk)
    unsubscribe = bk.listen_error(on_error)
    try:
        async for p in bk.WalkForward.run(symbol, walk_name=spec.name):
            update(total=p.total_windows, completed=p.windows_done,
                   description=f"{spec.name} window {p.windows_done}: {params_label(p.window.params or {})}")
    finally:
        unsubscribe()
    data = await bk.WalkForward.get_data(symbol, spec.name)
    paths = await _dump_reports(lambda path, fmt: bk.WalkForward.dump(symbol, spec.name, path=path, format=fmt),
                                spec.out, spec.html)
    return data, paths


def windows_table(data: bk.WalkForwardStatistics) -> Table:
    table = Table(title=f"Walk-forward {escape(data.walk_name)} on {escape(data.symbol)} by {data.metric}")
    for name in ("#", "Train", "Test", "Parameters", "In-sample", "Out-of-sample", "OOS median"):
        table.add_column(name, justify="left" if name in ("Train", "Test", "Parameters") else "right")
    for w in data.windows:
        table.add_row(str(w.index + 1), f"{iso(w.train_start)[:10]} .. {iso(w.train_end - 1)[:10]}",
                      f"{iso(w.test_start)[:10]} .. {iso(w.test_end - 1)[:10]}", escape(params_label(w.params or {})),
                      fmt_value(w.in_sample_metric, ".4f"), fmt_value(w.out_of_sample_metric, ".4f"),
                      fmt_value(w.out_of_sample_median, ".4f"))
    return table


@app.command("walk-forward")
def walk_forward(
    target: str | None = typer.Argument(None, help="A factory FILE.py:make or MODULE:make (as for sweep)."),
    train: str = typer.Option(..., help="Train window, such as 90d, 12h, 4w."),
    test: str = typer.Option(..., help="Test window that follows each train window, such as 30d."),
    step: str | None = typer.Option(None, help="How far windows move (default: --test)."),
    anchored: bool = typer.Option(False, "--anchored", help="Every train window starts at the frame's start."),
    space: SpaceOption = None,
    param: ParamOption = None,
    candles: CandlesOption = None,
    store: StoreOption = None,
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = "5m",
    metric: str = typer.Option("sharpe_ratio", help="Optimise this statistic in each train window."),
    executor: ExecutorOption = "sequential",
    optuna: bool = typer.Option(False, "--optuna", help="Search each train window with Optuna."),
    trials: int | None = typer.Option(None, min=1, help="With --optuna: trials per window."),
    storage: str | None = typer.Option(None, help="With --optuna: a journal file or Optuna storage URL."),
    start: StartOption = None,
    end: EndOption = None,
    frame_interval: FrameIntervalOption = "1m",
    name: str = typer.Option("walk", help="Walk-forward name (and report file name)."),
    out: Path = typer.Option(Path("./dump/walk_forward"), help="Directory (or .md file) for the report."),
    html: HtmlOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Optimise on each train window, trade the winner on the next test window, report out of sample."""
    spec = _sweep_spec(target, param, space, candles, store, exchange, symbol, interval, metric, executor, optuna,
                       trials, storage, start, end, frame_interval, name, out, html)
    spec.walk = {"train": train, "test": test, "step": step, "anchored": anchored}
    _set_verbose(verbose)
    console = Console()
    try:
        (data, paths), errors, seconds = _execute(console, spec.name,
                                                  lambda update, on_error: _run_walk(spec, update, on_error))
    except bk.ValidationError as e:
        text = str(e)
        hint = next((f"--{k}" for k in ("train", "test", "step") if f"'{k}'" in text), "--train")
        raise typer.BadParameter(text, param_hint=hint) from None
    console.print(windows_table(data))
    oos = data.out_of_sample
    console.print(f"Out of sample: {oos.total_signals} trades, return {fmt_value(oos.total_return_pct, '+.2f', '%')}, "
                  f"max drawdown {fmt_value(oos.max_drawdown_pct, '.2f', '%')}, sharpe {fmt_value(oos.sharpe, '.3f')}",
                  highlight=False)
    stability = ", ".join(f"{k} {v:.0%}" for k, v in data.param_stability.items()) or "N/A"
    console.print(f"Overfitting signs: OOS/IS {fmt_value(data.efficiency, '.3f')}, winners below the OOS median "
                  f"{'N/A' if data.below_median_share is None else f'{data.below_median_share:.0%}'}, "
                  f"parameter stability {stability}", highlight=False)
    _print_footer(console, spec.source, spec.frame_interval, seconds, errors, paths)


# ---------------------------------------------------------------- paper trading


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
    target: str | None = typer.Argument(None, help=TARGET_HELP),
    param: ParamOption = None,
    paper: bool = typer.Option(False, "--paper", help="Paper-trade: replay candles on a virtual clock."),
    candles: Path | None = typer.Option(None, exists=True, dir_okay=False, readable=True,
                                        help="1m candles to replay (default: the bundled demo data)."),
    symbol: str = typer.Option("BTCUSDT", help="Symbol name."),
    interval: IntervalOption = "5m",
    fast: int = typer.Option(10, min=1), slow: int = typer.Option(50, min=2),
    tp: float = typer.Option(1.0), sl: float = typer.Option(0.6), minutes: int = typer.Option(360, min=1),
    shorts: bool = typer.Option(True, "--shorts/--no-shorts"),
    start: str | None = typer.Option(None, help="Replay start, ISO-8601 (default: after warm-up)."),
    end: str | None = typer.Option(None, help="Replay end, ISO-8601 (default: the last candle)."),
    state: Path = typer.Option(Path("./dump/data"), help="Directory (file backend) or .sqlite file for state."),
    name: str | None = typer.Option(None, help="Strategy name (and report file name); default ma-crossover, or "
                                               "the TARGET's name, such as my_strategy:get_signal."),
    out: Path = typer.Option(Path("./dump/live"), help="Directory (or .md file) for the report."),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new state: the old one is moved aside, not deleted."),
    verbose: VerboseOption = False,
) -> None:
    """Run the moving-average rule, or your TARGET, live. Only --paper is available from the command
    line: real trading needs your own exchange adapter registered with bk.add_exchange (see README)."""
    if not paper:
        raise typer.BadParameter("only --paper trading is available from the CLI; for a real exchange "
                                 "register it in Python and call bk.Live.run", param_hint="--paper")
    _check_choice(interval, STRATEGY_INTERVALS, "--interval")
    try:
        data = load_candles(candles) if candles else demo_candles()
    except CandleFileError as e:
        raise typer.BadParameter(str(e), param_hint="--candles") from None
    start_ms, end_ms = frame_bounds(data, parse_date(start, "--start"), parse_date(end, "--end"), _warmup(slow))
    if fresh:
        _move_state_aside(state, Console())
    backend = bk.SqliteBackend(state) if state.suffix in (".sqlite", ".db") else bk.FileBackend(state)
    param = param or []
    # What this paper run is: a state saved by another file or other parameters is refused.
    fingerprint: dict[str, object] = {
        "candles": {"file": str(candles.resolve()) if candles else "bundled demo data", "rows": len(data),
                    "first": int(data[0, 0]), "last": int(data[-1, 0]),
                    "sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()},
        "params": {"symbol": symbol, "interval": interval, "fast": fast, "slow": slow, "tp": tp, "sl": sl,
                   "minutes": minutes, "shorts": shorts},
        "strategy": {"target": target, "param": list(param)}}
    get_signal = _strategy(target, param, rule_strategy(fast, slow, tp, sl, minutes, shorts=shorts))
    name = name or _default_name(target)
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

"""Sweep: backtest a strategy factory at every point of a parameter grid, or at the points an Optuna
study asks for, on one symbol; rank the trials by a metric (maximised)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from .. import _registry as registry
from .._engine.runs import Run
from .._engine.stats import BacktestStatistics, backtest_statistics
from .._exchange import ExchangeClient
from .._hub import hub
from .._report.backtest import headline
from .._report.html import comparison_page, equity_curve_of, sweep_heatmap
from .._report.sweep import render_sweep_report
from .._schema import LOWER_IS_BETTER, SweepSchema, score
from .._space import distributions, grid, label
from ..errors import BacktestKitError
from ..events import DoneEvent, SweepProgress, SweepStatistics, SweepTrial
from .backtest import attach_marks
from .base import BackgroundRun, Facade, Instance, check_format
from .executors import Executor, Scope, executor
from .trial import TrialOutcome, TrialSpec

OPTUNA_SEED = 0  # the study's first seed: the same sweep asks the same points, whatever the executor
OPTUNA_BATCH = 8  # points asked before any is told: the same for every executor, so the same study


def metric_of(stats: BacktestStatistics | None, metric: str) -> float | None:
    value = getattr(stats, metric) if stats is not None else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def rank(trials: Sequence[SweepTrial], metric: str) -> list[SweepTrial]:
    """Best metric first (see score); undefined metrics last; ties by trial number."""
    return sorted(trials, key=lambda t: (t.metric_value is None, -(score(metric, t.metric_value) or 0.0), t.number))


def _trial(outcome: TrialOutcome, metric: str) -> SweepTrial:
    stats = outcome.stats if outcome.stats is not None else backtest_statistics([])
    return SweepTrial(outcome.number, dict(outcome.params), metric_of(outcome.stats, metric), stats, outcome.error)


class Trials:
    """Every trial of one sweep (or one walk-forward window) as it runs: the ranking and the runs."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.all: list[SweepTrial] = []
        self.runs: dict[int, Run] = {}
        self.best: SweepTrial | None = None

    def add(self, trial: SweepTrial, run: Run | None = None) -> None:
        self.all.append(trial)
        if run is not None:
            self.runs[trial.number] = run
        best = self.best
        new = score(self.metric, trial.metric_value)
        old = score(self.metric, best.metric_value) if best is not None else None
        if new is not None and (best is None or old is None or new > old
                                or (new == old and trial.number < best.number)):
            self.best = trial

    def ranked(self) -> list[SweepTrial]:
        return rank(self.all, self.metric)


async def run_trials(schema: SweepSchema, symbol: str, ex: Executor, stopped: Callable[[], bool], trials: Trials,
                     window: tuple[int, int] | None = None, study_name: str | None = None,
                     where: str = "Sweep") -> AsyncIterator[SweepTrial]:
    """Run the sweep's points (the grid, or the study's missing trials) on `ex`; yields each new trial.
    Trials found in the study's storage are added to `trials` first, without running again."""
    base = {"symbol": symbol, "exchange_name": schema.exchange_name, "frame_name": schema.frame_name,
            "sweep_name": schema.sweep_name, "window": window}
    if schema.search == "grid":
        specs = [TrialSpec(i, params=p, **base) for i, p in enumerate(grid(schema.space))]  # type: ignore[arg-type]
        async for outcome in ex.map(specs, stopped):
            trial = _trial(outcome, schema.metric)
            await _report_failure(trial, schema, where)
            trials.add(trial, outcome.run)
            yield trial
        return
    async for trial in _optuna_trials(schema, base, ex, stopped, trials, study_name or f"{schema.sweep_name}:{symbol}",
                                      where):
        yield trial


async def _report_failure(trial: SweepTrial, schema: SweepSchema, where: str) -> None:
    if trial.error is not None:
        last = trial.error.strip().splitlines()[-1] if trial.error.strip() else "failed"
        await hub.report(BacktestKitError(f"trial {trial.number} ({label(trial.params)}) failed: {last}"),
                         f"{where} {schema.sweep_name}")


def _storage(url: str) -> Any:
    """An Optuna storage: a URL ("sqlite:///study.db", "postgresql://...") or a journal file path."""
    import optuna

    if "://" in url:
        return url
    try:
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    except ImportError:  # Optuna < 4
        return optuna.storages.JournalStorage(optuna.storages.JournalFileStorage(url))


def _stats_attr(stats: BacktestStatistics) -> dict[str, Any]:
    return {k: v for k, v in stats.to_dict().items() if k != "signal_list"}


def _resumed(ft: Any, metric: str) -> SweepTrial:
    known = set(BacktestStatistics.__dataclass_fields__)
    stats = BacktestStatistics(**{k: v for k, v in ft.user_attrs.get("stats", {}).items() if k in known})
    return SweepTrial(ft.number, dict(ft.params), metric_of(stats, metric), stats, ft.user_attrs.get("error"), True)


async def _optuna_trials(schema: SweepSchema, base: dict[str, Any], ex: Executor, stopped: Callable[[], bool],
                         trials: Trials, study_name: str, where: str) -> AsyncIterator[SweepTrial]:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would drown the progress bar
    storage = _storage(schema.storage) if schema.storage else None
    direction: Literal["minimize", "maximize"] = "minimize" if schema.metric in LOWER_IS_BETTER else "maximize"
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=OPTUNA_SEED))
    def done() -> list[Any]:
        """The study's finished trials (its own and other machines'), not those a stop left unrun."""
        return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
                if not t.user_attrs.get("stopped")]

    finished = done()
    for ft in finished:
        trials.add(_resumed(ft, schema.metric))
    if finished and storage is not None:  # resumed: a new seed, so the random start repeats no point it has
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=OPTUNA_SEED + len(study.trials)))
    dists = distributions(f"add_sweep(sweep_name={schema.sweep_name!r})", schema.space)
    # Counted again before each batch: machines sharing the study split its trials between them
    # (they overshoot by at most the trials in flight elsewhere).
    while (remaining := (schema.trials or 0) - len(done())) > 0 and not stopped():
        asked = [study.ask(dists) for _ in range(min(OPTUNA_BATCH, remaining))]
        by_number = {t.number: t for t in asked}
        specs = [TrialSpec(t.number, params=dict(t.params), **base) for t in asked]
        async for outcome in ex.map(specs, stopped):
            trial = _trial(outcome, schema.metric)
            ot = by_number.pop(outcome.number)
            ot.set_user_attr("stats", _stats_attr(trial.stats))
            if trial.error is not None:
                ot.set_user_attr("error", trial.error)
            if trial.metric_value is None:  # failed, or the metric is undefined (no trades): nothing to learn
                study.tell(ot, state=TrialState.FAIL)
            else:
                study.tell(ot, trial.metric_value)
            await _report_failure(trial, schema, where)
            trials.add(trial, outcome.run)
            yield trial
        for ot in by_number.values():  # stopped before they ran: not counted, a resume runs them anew
            ot.set_user_attr("stopped", True)
            study.tell(ot, state=TrialState.FAIL)


class SweepInstance(Instance):
    def __init__(self, symbol: str, name: str):
        super().__init__(symbol, name)
        self.data: SweepStatistics | None = None
        self.runs: dict[int, Run] = {}


class SweepUtils(Facade[SweepInstance]):
    """`bk.Sweep`: optimise a strategy factory's parameters on one symbol."""

    kind, done_topic, folder = "Sweep", "done_sweep", "sweep"

    def __init__(self) -> None:
        super().__init__(SweepInstance)

    def _open(self, symbol: str, sweep_name: str, method: str) -> tuple[SweepInstance, str, SweepSchema]:
        registry.validate_symbol(symbol, method)
        schema = registry.validate_sweep_refs(sweep_name, method)
        symbol = registry.canonical_symbol(symbol, schema.exchange_name)
        return self._registry.get(symbol, sweep_name), symbol, schema

    def run(self, symbol: str, *, sweep_name: str) -> AsyncIterator[SweepProgress]:
        """Run every trial; yields a SweepProgress after each (trials done, total, best so far)."""
        inst, symbol, schema = self._open(symbol, sweep_name, "Sweep.run")
        return self._guarded(inst, lambda: self._sweep(inst, symbol, schema))

    def background(self, symbol: str, *, sweep_name: str) -> BackgroundRun:
        """Run the sweep without yielding; returns cancel() at once (finished trials are kept)."""
        inst, symbol, schema = self._open(symbol, sweep_name, "Sweep.background")
        return self._background(inst, lambda: self._sweep(inst, symbol, schema),
                                DoneEvent(schema.exchange_name, sweep_name, True, symbol))

    async def _sweep(self, inst: SweepInstance, symbol: str, schema: SweepSchema) -> AsyncIterator[SweepProgress]:
        total = math.prod(map(len, schema.space.values())) if schema.search == "grid" else int(schema.trials or 0)
        trials = Trials(schema.metric)
        inst.runs = trials.runs
        inst.data = SweepStatistics(schema.sweep_name, symbol, schema.metric, None, [])
        ex = executor(schema.executor)
        await ex.start(Scope(symbol, schema.exchange_name, schema.frame_name, sweep_name=schema.sweep_name))
        try:
            async for trial in run_trials(schema, symbol, ex, lambda: inst.stopped, trials):
                best = trials.best
                inst.data = SweepStatistics(schema.sweep_name, symbol, schema.metric, best, trials.ranked())
                progress = SweepProgress(schema.sweep_name, symbol, schema.exchange_name, schema.frame_name,
                                         schema.metric, trial, len(trials.all), total,
                                         best.params if best else None, best.metric_value if best else None)
                await hub.emit("sweep", progress)
                yield progress
        finally:
            await ex.close()
            inst.data = SweepStatistics(schema.sweep_name, symbol, schema.metric, trials.best, trials.ranked())

    async def stop(self, symbol: str, sweep_name: str) -> None:
        """No new trials; the running ones finish (sequential: the running trial opens no new signal)."""
        registry.get_sweep(sweep_name, "Sweep.stop")
        self._stop(symbol, sweep_name)

    async def get_data(self, symbol: str, sweep_name: str) -> SweepStatistics:
        registry.get_sweep(sweep_name, "Sweep.get_data")
        data: SweepStatistics = self._results(symbol, sweep_name, "sweep")
        return data

    async def get_report(self, symbol: str, sweep_name: str) -> str:
        return await render_sweep_report(await self.get_data(symbol, sweep_name))

    async def dump(self, symbol: str, sweep_name: str, path: str | None = None, format: str = "md") -> str:
        """Write the report; `path` is a directory (default ./dump/sweep) or a .md / .html file.
        `format="html"`: the best trials' equity curves, the metric per trial and their statistics."""
        ext = check_format(format, "Sweep.dump")
        data = await self.get_data(symbol, sweep_name)
        if ext == ".md":
            return await self._dump(await render_sweep_report(data), path, sweep_name)
        inst = self._registry.get(registry.canonical_symbol(symbol), sweep_name)
        page = await comparison_of(f"Sweep {sweep_name} on {data.symbol}", data.metric, data.trials, inst.runs,
                                   registry.get_sweep(sweep_name, "Sweep.dump"))
        return await self._dump(page, path, sweep_name, ext)


async def comparison_of(title: str, metric: str, trials: Sequence[SweepTrial], runs: dict[int, Run],
                        schema: SweepSchema, curves_of: int = 10) -> str:
    """The comparison page of ranked trials: equity curves of the best `curves_of`, every trial's row."""
    exchange = ExchangeClient(registry.get_exchange(schema.exchange_name, "Sweep.dump"), backtest=True)
    frame = registry.get_frame(schema.frame_name, "Sweep.dump")
    curves: dict[str, Any] = {}
    metrics: dict[str, float | None] = {}
    rows: list[dict[str, str]] = []
    for trial in trials:
        name = label(trial.params)
        run = runs.get(trial.number)
        if run is not None and len(curves) < curves_of:
            if run.mark_source is None:  # ran in another process: its candles are here too
                attach_marks(run, exchange, frame.start_ms, frame.end_ms)
            curve = await equity_curve_of(run)
            if curve is not None:
                curves[name] = curve
        metrics[name] = trial.metric_value
        rows.append({"trial": str(trial.number), **{k: str(v) for k, v in trial.params.items()},
                     **{lbl: text for lbl, text in headline(trial.stats)},
                     **({"error": trial.error.strip().splitlines()[-1]} if trial.error else {})})
    return comparison_page(title, curves, metric, metrics, rows, sweep_heatmap(trials, metric))


Sweep = SweepUtils()

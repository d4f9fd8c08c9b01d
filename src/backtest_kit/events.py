"""Every payload the engine hands out, as frozen dataclasses, and the listen_* functions.

Signals and signal rows, tick results, risk, partial, progress, performance, done and walker
events all live here, so one file answers "what does a listener receive?".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from ._hub import listen, listen_once
from ._tabular import Tabular

if TYPE_CHECKING:
    from ._engine.stats import BacktestStatistics

Position = Literal["long", "short"]
Action = Literal["idle", "scheduled", "waiting", "opened", "active", "closed", "cancelled"]
CloseReason = Literal["take_profit", "stop_loss", "time_expired", "end_of_data"]
PartialAction = Literal["profit", "loss"]
OrderType = Literal["limit", "stop"]
Mode = Literal["backtest", "live"]


# --- signals ----------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Signal:
    """What a strategy's get_signal returns. No price_open: open now; price_open: a limit order."""

    position: str
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: int
    price_open: float | None = None
    note: str | None = None
    id: str | None = None
    order_type: OrderType = "limit"  # with price_open: "limit" waits for a better price, "stop" for a breakout


@dataclass(slots=True, frozen=True)
class SignalRow:
    """A signal the engine owns: an open position or a resting limit order."""

    id: str
    position: Position
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: int
    note: str
    symbol: str
    strategy_name: str
    exchange_name: str
    scheduled_at: int
    pending_at: int
    is_scheduled: bool = False
    order_type: OrderType = "limit"
    quantity: float | None = None  # units bought or sold short, set when the position opens

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True, frozen=True)
class PnL:
    pnl_percentage: float
    price_open: float
    price_close: float


# --- tick results -----------------------------------------------------------------------

@dataclass(slots=True, frozen=True, kw_only=True)
class _Result:
    signal: SignalRow | None
    current_price: float
    symbol: str
    strategy_name: str
    exchange_name: str
    backtest: bool


@dataclass(slots=True, frozen=True, kw_only=True)
class IdleResult(_Result):
    action: Literal["idle"] = "idle"
    signal: None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class ScheduledResult(_Result):
    signal: SignalRow
    action: Literal["scheduled"] = "scheduled"


@dataclass(slots=True, frozen=True, kw_only=True)
class WaitingResult(_Result):
    """A resting limit order that neither filled nor was cancelled at this tick (D17)."""

    signal: SignalRow
    action: Literal["waiting"] = "waiting"


@dataclass(slots=True, frozen=True, kw_only=True)
class OpenedResult(_Result):
    signal: SignalRow
    action: Literal["opened"] = "opened"


@dataclass(slots=True, frozen=True, kw_only=True)
class ActiveResult(_Result):
    signal: SignalRow
    action: Literal["active"] = "active"
    percent_tp: float = 0.0
    percent_sl: float = 0.0


@dataclass(slots=True, frozen=True, kw_only=True)
class ClosedResult(_Result):
    signal: SignalRow
    action: Literal["closed"] = "closed"
    close_reason: CloseReason
    close_timestamp: int
    pnl: PnL
    ambiguous_exit: bool = False  # the exit candle reached both TP and SL (CC_INTRABAR_POLICY decided)


@dataclass(slots=True, frozen=True, kw_only=True)
class CancelledResult(_Result):
    signal: SignalRow
    action: Literal["cancelled"] = "cancelled"
    close_timestamp: int


TickResult = (IdleResult | ScheduledResult | WaitingResult | OpenedResult | ActiveResult | ClosedResult
              | CancelledResult)
Outcome = ClosedResult | CancelledResult


# --- risk and partials ------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class ActivePosition:
    strategy_name: str
    symbol: str
    signal: SignalRow | None
    open_timestamp: int
    close_timestamp: int | None = None  # backtest: when the position closed


@dataclass(slots=True, frozen=True)
class RiskCheckArgs:
    """What each risk validation receives."""

    pending_signal: Signal
    symbol: str
    strategy_name: str
    exchange_name: str
    current_price: float
    timestamp: int
    active_position_count: int
    active_positions: list[ActivePosition]


@dataclass(slots=True, frozen=True, kw_only=True)
class RiskEvent:
    """Payload of listen_risk: a signal a risk profile rejected."""

    symbol: str
    pending_signal: Signal
    strategy_name: str
    exchange_name: str
    current_price: float
    active_position_count: int
    comment: str
    timestamp: int
    backtest: bool
    risk_name: str = ""
    error: BaseException | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class PartialEvent:
    """Payload of listen_partial_profit / listen_partial_loss."""

    symbol: str
    strategy_name: str
    exchange_name: str
    signal: SignalRow
    current_price: float
    level: int
    backtest: bool
    timestamp: int
    action: PartialAction = "profit"


# --- runs -------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class ProgressEvent:
    """Payload of listen_backtest_progress (coalesced to at most one per percent + the final)."""

    exchange_name: str
    strategy_name: str
    symbol: str
    total_frames: int
    processed_frames: int
    progress: float


@dataclass(slots=True, frozen=True)
class PerformanceEvent:
    """Payload of listen_performance: one timing sample."""

    timestamp: float
    previous_timestamp: float | None
    metric_type: str
    duration: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool


@dataclass(slots=True, frozen=True)
class DoneEvent:
    """Payload of listen_done_*: a background run finished (walkers: strategy_name = walker)."""

    exchange_name: str
    strategy_name: str
    backtest: bool
    symbol: str


# --- walker -----------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class WalkerProgress:
    """Yielded by Walker.run after each strategy (also the listen_walker payload)."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    strategy_name: str
    stats: BacktestStatistics
    metric: str
    metric_value: float | None
    best_strategy: str | None
    best_metric: float | None
    strategies_tested: int
    total_strategies: int


@dataclass(slots=True, frozen=True)
class WalkerProgressEvent:
    """Payload of listen_walker_progress."""

    walker_name: str
    exchange_name: str
    frame_name: str
    symbol: str
    total_strategies: int
    processed_strategies: int
    progress: float


@dataclass(slots=True, frozen=True)
class StrategyResult(Tabular):
    strategy_name: str
    stats: BacktestStatistics
    metric_value: float | None


@dataclass(slots=True, frozen=True)
class WalkerComplete:
    """Payload of listen_walker_complete and the walker schema's on_complete."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    metric: str
    total_strategies: int
    best_strategy: str | None
    best_metric: float | None
    best_stats: BacktestStatistics | None


@dataclass(slots=True, frozen=True)
class WalkerStatistics(WalkerComplete, Tabular):
    """Walker.get_data: the comparison of one walk on one symbol (D11)."""

    strategy_results: list[StrategyResult] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class SweepTrial(Tabular):
    """One point of a sweep: its parameters, the metric and the backtest statistics. A failed trial has
    `metric_value` None and `error` (its traceback); a trial read back from an Optuna storage
    (`resumed`) keeps its numeric statistics but not its signal list."""

    number: int
    params: dict[str, Any]
    metric_value: float | None
    stats: BacktestStatistics
    error: str | None = None
    resumed: bool = False


@dataclass(slots=True, frozen=True)
class SweepProgress:
    """What Sweep.run yields after each trial."""

    sweep_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    metric: str
    trial: SweepTrial
    trials_done: int
    total_trials: int
    best_params: dict[str, Any] | None
    best_metric: float | None

    @property
    def params(self) -> dict[str, Any]:
        return self.trial.params

    @property
    def metric_value(self) -> float | None:
        return self.trial.metric_value


@dataclass(slots=True, frozen=True)
class SweepStatistics(Tabular):
    """Sweep.get_data: every trial, best first (None metrics last, ties by trial number)."""

    sweep_name: str
    symbol: str
    metric: str
    best: SweepTrial | None
    trials: list[SweepTrial] = field(default_factory=list)

    @property
    def failed(self) -> list[SweepTrial]:
        return [t for t in self.trials if t.error is not None]


@dataclass(slots=True, frozen=True)
class WalkForwardWindow(Tabular):
    """One walk-forward step: the train window's winner traded on the test window (times in ms, half-open)."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    params: dict[str, Any] | None
    in_sample_metric: float | None
    out_of_sample_metric: float | None
    out_of_sample_median: float | None  # of every trial's parameters on the test window
    stats: BacktestStatistics | None = None  # the winner on the test window


@dataclass(slots=True, frozen=True)
class WalkForwardProgress:
    """What WalkForward.run yields after each window."""

    walk_name: str
    symbol: str
    window: WalkForwardWindow
    windows_done: int
    total_windows: int


@dataclass(slots=True, frozen=True)
class WalkForwardStatistics(Tabular):
    """WalkForward.get_data: per-window metrics, the stitched out-of-sample statistics and overfitting signs.

    `efficiency`: mean out-of-sample metric / mean in-sample metric. `below_median_share`: share of windows
    whose in-sample winner lands below the median of all parameter sets out of sample. `param_stability`:
    per parameter, the share of windows that chose its most frequent value (1.0: always the same)."""

    walk_name: str
    sweep_name: str
    symbol: str
    metric: str
    windows: list[WalkForwardWindow]
    out_of_sample: BacktestStatistics
    efficiency: float | None
    below_median_share: float | None
    param_stability: dict[str, float] = field(default_factory=dict)
# --- checks -----------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class LookaheadReport:
    """check_lookahead: bars whose get_signals values changed when later candles were removed.

    `checked`: bar comparisons made (each cut compares every bar it keeps); `biased`: open
    times (epoch ms, sorted) of the bars that differed in some cut; `ok`: none did; `keys`: the
    returned keys that differed; `cuts`: the moments the histories were cut at (epoch ms: only
    candles closed by then were kept).
    """

    checked: int
    biased: list[int]
    ok: bool
    strategy_name: str = ""
    symbol: str = ""
    keys: list[str] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)


# --- listen_* ---------------------------------------------------------------------------

listen_signal = listen("signal")
listen_signal_once = listen_once("signal")
listen_signal_live = listen("signal_live")
listen_signal_live_once = listen_once("signal_live")
listen_signal_backtest = listen("signal_backtest")
listen_signal_backtest_once = listen_once("signal_backtest")
listen_done_backtest = listen("done_backtest")
listen_done_backtest_once = listen_once("done_backtest")
listen_done_live = listen("done_live")
listen_done_live_once = listen_once("done_live")
listen_done_walker = listen("done_walker")
listen_done_walker_once = listen_once("done_walker")
listen_error = listen("error")
listen_exit = listen("exit")
listen_backtest_progress = listen("backtest_progress")
listen_walker = listen("walker")
listen_walker_once = listen_once("walker")
listen_walker_progress = listen("walker_progress")
listen_walker_complete = listen("walker_complete")
listen_performance = listen("performance")
listen_partial_profit = listen("partial_profit")
listen_partial_profit_once = listen_once("partial_profit")
listen_partial_loss = listen("partial_loss")
listen_partial_loss_once = listen_once("partial_loss")
listen_risk = listen("risk")
listen_risk_once = listen_once("risk")
listen_validation = listen("validation")
listen_sweep = listen("sweep")
listen_done_sweep = listen("done_sweep")
listen_walk_forward = listen("walk_forward")
listen_done_walk_forward = listen("done_walk_forward")

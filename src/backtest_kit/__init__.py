"""backtest-kit: one get_signal, backtested, run live and compared.

>>> import backtest_kit as bk
>>> bk.get_default_config()["CC_AVG_PRICE_CANDLES_COUNT"]
5
"""

from . import _state
from ._candles import Candle, Candles
from ._clock import Clock, SystemClock, VirtualClock
from ._config import get_config, get_default_config, set_config
from ._constant import Constant
from ._context import format_price, format_quantity, get_average_price, get_candles, get_date, get_mode
from ._engine.stats import BacktestStatistics, LiveStatistics
from ._execution.backtest import Backtest
from ._execution.base import BackgroundRun, InstanceStatus
from ._execution.live import Live
from ._execution.portfolio import Portfolio, PortfolioRow, PortfolioStatistics
from ._execution.sweep import Sweep
from ._execution.walk_forward import WalkForward
from ._execution.walker import Walker
from ._logging import set_logger
from ._lookahead import check_lookahead
from ._persist import (
    FileBackend,
    PersistBackend,
    SqliteBackend,
    use_persist_adapter,
    use_persist_partial_adapter,
    use_persist_risk_adapter,
    use_persist_schedule_adapter,
    use_persist_signal_adapter,
)
from ._quick import BacktestResult, backtest
from ._registry import (
    add_exchange,
    add_frame,
    add_risk,
    add_sizing,
    add_strategy,
    add_sweep,
    add_walk_forward,
    add_walker,
    list_exchanges,
    list_frames,
    list_risks,
    list_sizings,
    list_strategies,
    list_walkers,
)
from ._report.heat import Heat, HeatmapRow, HeatmapStatistics
from ._report.partial import Partial, PartialStatistics
from ._report.performance import MetricStats, Performance, PerformanceStatistics
from ._report.risk import Risk, RiskStatistics
from ._report.schedule import Schedule, ScheduledEvent, ScheduleStatistics
from ._report.table import Column
from ._sizing import PositionSize, SizingCalculateParams
from ._store import CandleStore
from .errors import BacktestKitError, CandleError, ConfigError, ContextError, PersistError, ValidationError
from .events import (
    ActivePosition,
    ActiveResult,
    CancelledResult,
    ClosedResult,
    DoneEvent,
    IdleResult,
    LookaheadReport,
    OpenedResult,
    PartialEvent,
    PerformanceEvent,
    PnL,
    ProgressEvent,
    RiskCheckArgs,
    RiskEvent,
    ScheduledResult,
    Signal,
    SignalRow,
    StrategyResult,
    SweepProgress,
    SweepStatistics,
    SweepTrial,
    TickResult,
    WaitingResult,
    WalkerComplete,
    WalkerProgress,
    WalkerProgressEvent,
    WalkerStatistics,
    WalkForwardProgress,
    WalkForwardStatistics,
    WalkForwardWindow,
    listen_backtest_progress,
    listen_done_backtest,
    listen_done_backtest_once,
    listen_done_live,
    listen_done_live_once,
    listen_done_sweep,
    listen_done_walk_forward,
    listen_done_walker,
    listen_done_walker_once,
    listen_error,
    listen_exit,
    listen_partial_loss,
    listen_partial_loss_once,
    listen_partial_profit,
    listen_partial_profit_once,
    listen_performance,
    listen_risk,
    listen_risk_once,
    listen_signal,
    listen_signal_backtest,
    listen_signal_backtest_once,
    listen_signal_live,
    listen_signal_live_once,
    listen_signal_once,
    listen_sweep,
    listen_validation,
    listen_walk_forward,
    listen_walker,
    listen_walker_complete,
    listen_walker_once,
    listen_walker_progress,
)


def reset() -> None:
    """Forget every schema, listener, run, instance, backend, risk book, logger and config
    override: the library as freshly imported (for tests and notebooks)."""
    _state.reset_all()


__all__ = [
    # registration
    "add_exchange", "add_frame", "add_strategy", "add_risk", "add_sizing", "add_walker",
    "add_sweep", "add_walk_forward",
    "list_exchanges", "list_frames", "list_strategies", "list_risks", "list_sizings", "list_walkers",
    # configuration, logging, context helpers
    "set_config", "get_config", "get_default_config", "set_logger", "reset",
    "get_candles", "get_average_price", "format_price", "format_quantity", "get_date", "get_mode",
    # data
    "Candle", "Candles", "CandleStore",
    # signals and results
    "Signal", "SignalRow", "PnL", "TickResult", "IdleResult", "ScheduledResult", "WaitingResult", "OpenedResult",
    "ActiveResult", "ClosedResult", "CancelledResult",
    # one call
    "backtest", "BacktestResult",
    # vectorised strategies
    "check_lookahead", "LookaheadReport",
    # execution
    "Backtest", "Live", "Walker", "Portfolio", "PortfolioStatistics", "PortfolioRow", "BackgroundRun",
    "InstanceStatus", "BacktestStatistics", "LiveStatistics",
    "Sweep", "SweepProgress", "SweepStatistics", "SweepTrial",
    "WalkForward", "WalkForwardProgress", "WalkForwardStatistics", "WalkForwardWindow",
    "Clock", "SystemClock", "VirtualClock",
    # events
    "DoneEvent", "ProgressEvent", "PerformanceEvent", "RiskEvent", "PartialEvent", "WalkerProgress",
    "WalkerProgressEvent", "WalkerComplete", "WalkerStatistics", "StrategyResult",
    "listen_signal", "listen_signal_once", "listen_signal_live", "listen_signal_live_once",
    "listen_signal_backtest", "listen_signal_backtest_once", "listen_done_backtest", "listen_done_backtest_once",
    "listen_done_live", "listen_done_live_once", "listen_done_walker", "listen_done_walker_once",
    "listen_error", "listen_exit", "listen_backtest_progress", "listen_walker", "listen_walker_once",
    "listen_walker_progress", "listen_walker_complete", "listen_performance", "listen_partial_profit",
    "listen_partial_profit_once", "listen_partial_loss", "listen_partial_loss_once", "listen_risk",
    "listen_risk_once", "listen_validation", "listen_sweep", "listen_done_sweep", "listen_walk_forward",
    "listen_done_walk_forward",
    # risk, sizing, partials
    "ActivePosition", "RiskCheckArgs", "PositionSize", "SizingCalculateParams", "Constant",
    # reports
    "Column", "Heat", "HeatmapRow", "HeatmapStatistics", "Partial", "PartialStatistics", "Performance",
    "PerformanceStatistics", "MetricStats", "Risk", "RiskStatistics", "Schedule", "ScheduleStatistics",
    "ScheduledEvent",
    # persistence
    "PersistBackend", "FileBackend", "SqliteBackend", "use_persist_adapter", "use_persist_signal_adapter",
    "use_persist_schedule_adapter", "use_persist_partial_adapter", "use_persist_risk_adapter",
    # errors
    "BacktestKitError", "ValidationError", "ConfigError", "ContextError", "CandleError", "PersistError",
]

# Public classes and functions present themselves as backtest_kit.X (reprs, docs, pickling).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj) and hasattr(_obj, "__qualname__"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
del _name, _obj

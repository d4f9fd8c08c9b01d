"""backtest-kit: one async get_signal, backtested, run live and compared."""

from ._candles import Candle, Candles
from ._config import get_config, get_default_config, set_config
from ._context import (format_price, format_quantity, get_average_price, get_candles, get_date,
                      get_mode)
from .errors import BacktestKitError, ConfigError, ContextError, ValidationError
from ._hub import (listen_backtest_progress, listen_done_backtest, listen_done_backtest_once,
                     listen_done_live, listen_done_live_once, listen_done_walker,
                     listen_done_walker_once, listen_error, listen_exit, listen_partial_loss,
                     listen_partial_loss_once, listen_partial_profit, listen_partial_profit_once,
                     listen_performance, listen_risk, listen_risk_once, listen_signal,
                     listen_signal_backtest, listen_signal_backtest_once, listen_signal_live,
                     listen_signal_live_once, listen_signal_once, listen_validation,
                     listen_walker, listen_walker_complete, listen_walker_once,
                     listen_walker_progress)
from ._execution.backtest import Backtest
from ._clock import SystemClock, VirtualClock
from ._execution.base import DoneEvent, InstanceStatus
from ._execution.live import Live, LiveStatistics
from ._persist import (FileBackend, PersistBackend, PersistError, SqliteBackend, use_persist_adapter,
                      use_persist_partial_adapter, use_persist_risk_adapter,
                      use_persist_schedule_adapter, use_persist_signal_adapter)
from ._execution.walker import (StrategyResult, Walker, WalkerComplete, WalkerProgress,
                               WalkerProgressEvent, WalkerStatistics)
from ._engine.machine import PartialEvent
from ._engine.risk import ActivePosition, RiskCheckArgs, RiskEvent
from ._registry import (add_exchange, add_frame, add_risk, add_sizing, add_strategy, add_walker,
                       list_exchanges, list_frames, list_risks, list_sizings, list_strategies,
                       list_walkers)
from ._constant import Constant
from ._report.partial import Partial, PartialStatistics
from ._report.risk import Risk, RiskStatistics
from ._report.heat import Heat, HeatmapRow, HeatmapStatistics
from ._report.performance import MetricStats, Performance, PerformanceStatistics
from ._report.schedule import Schedule, ScheduledEvent, ScheduleStatistics
from ._report.table import Column
from ._sizing import PositionSize, SizingCalculateParams
from ._signal import (ActiveResult, CancelledResult, ClosedResult, IdleResult, OpenedResult, PnL,
                     ScheduledResult, Signal, SignalRow, WaitingResult)
from ._engine.stats import BacktestStatistics
from ._logging import set_logger


def reset() -> None:
    """Forget every schema, listener, instance and config override (for tests and notebooks)."""
    from . import _config as config
    from . import _hub as events
    from . import _persist as persist
    from . import _registry as registry
    from ._engine import risk
    registry.reset()
    events.reset()
    config.reset_config()
    Backtest._reset()
    Walker._reset()
    Live._reset()
    persist.reset()
    risk.reset()


__all__ = [name for name in dir() if not name.startswith("_")]

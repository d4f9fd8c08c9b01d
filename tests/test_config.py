"""set_config / get_config: defaults, validation, atomicity."""

import math
from fractions import Fraction

import pytest

from backtest_kit import _config as config
from backtest_kit._config import DEFAULTS, cfg, get_config, get_default_config, set_config
from backtest_kit.errors import BacktestKitError, ConfigError

EXPECTED_DEFAULTS = {
    "CC_SCHEDULE_AWAIT_MINUTES": 120,
    "CC_AVG_PRICE_CANDLES_COUNT": 5,
    "CC_PERCENT_SLIPPAGE": 0.1,
    "CC_PERCENT_FEE": 0.1,
    "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 0.5,
    "CC_MIN_STOPLOSS_DISTANCE_PERCENT": 0.5,
    "CC_MAX_STOPLOSS_DISTANCE_PERCENT": 20,
    "CC_MAX_SIGNAL_LIFETIME_MINUTES": 1440,
    "CC_MAX_SIGNAL_GENERATION_SECONDS": 180,
    "CC_GET_CANDLES_RETRY_COUNT": 3,
    "CC_GET_CANDLES_RETRY_DELAY_MS": 5000,
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR": 1000,
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN": 5,
    "CC_REPORT_SHOW_SIGNAL_NOTE": False,
    "CC_TICK_TTL_MS": 60001,
    "CC_INTRABAR_POLICY": "take_profit",
    "CC_INITIAL_CAPITAL": 10_000,
    "CC_ANNUALIZATION_DAYS": 365,
}


def test_defaults():
    assert get_config() == EXPECTED_DEFAULTS
    assert get_default_config() == EXPECTED_DEFAULTS
    assert dict(DEFAULTS) == EXPECTED_DEFAULTS
    assert cfg.CC_PERCENT_FEE == 0.1 and cfg.CC_TICK_TTL_MS == 60001
    with pytest.raises(TypeError):
        DEFAULTS["CC_PERCENT_FEE"] = 1  # type: ignore[index]


def test_set_get_round_trip_and_cfg_updated_in_place():
    same_object = config.cfg
    set_config(CC_PERCENT_FEE=0.2, CC_REPORT_SHOW_SIGNAL_NOTE=True, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    assert get_config() == {**EXPECTED_DEFAULTS, "CC_PERCENT_FEE": 0.2,
                            "CC_REPORT_SHOW_SIGNAL_NOTE": True, "CC_GET_CANDLES_RETRY_DELAY_MS": 0}
    assert config.cfg is same_object
    assert cfg.CC_PERCENT_FEE == 0.2 and cfg.CC_REPORT_SHOW_SIGNAL_NOTE is True


def test_mapping_argument_accepted():
    set_config({"CC_PERCENT_SLIPPAGE": 0}, CC_PERCENT_FEE=0)
    assert cfg.CC_PERCENT_SLIPPAGE == 0 and cfg.CC_PERCENT_FEE == 0


def test_get_config_returns_a_copy():
    snapshot = get_config()
    snapshot["CC_PERCENT_FEE"] = 99
    assert cfg.CC_PERCENT_FEE == 0.1
    defaults = get_default_config()
    defaults["CC_PERCENT_FEE"] = 99
    assert get_default_config()["CC_PERCENT_FEE"] == 0.1


def test_integral_float_stored_as_int():
    set_config(CC_SCHEDULE_AWAIT_MINUTES=60.0, CC_AVG_PRICE_CANDLES_COUNT=Fraction(3))
    assert cfg.CC_SCHEDULE_AWAIT_MINUTES == 60 and type(cfg.CC_SCHEDULE_AWAIT_MINUTES) is int
    assert type(cfg.CC_AVG_PRICE_CANDLES_COUNT) is int


def test_zero_disables_distance_and_lifetime_rules():
    set_config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0, CC_MIN_STOPLOSS_DISTANCE_PERCENT=0,
               CC_MAX_STOPLOSS_DISTANCE_PERCENT=0, CC_MAX_SIGNAL_LIFETIME_MINUTES=0)
    assert cfg.CC_MAX_STOPLOSS_DISTANCE_PERCENT == 0
    # Either side zero: the min < max cross rule does not apply.
    set_config(CC_MIN_STOPLOSS_DISTANCE_PERCENT=50)
    assert cfg.CC_MIN_STOPLOSS_DISTANCE_PERCENT == 50


def test_unknown_key_rejected_and_nothing_changed():
    with pytest.raises(ConfigError) as info:
        set_config(CC_PERCENT_FEE=0.3, CC_PERCNT_SLIPPAGE=0.2)
    message = str(info.value)
    assert "CC_PERCNT_SLIPPAGE" in message
    assert "CC_PERCENT_SLIPPAGE" in message  # the valid keys are listed
    assert "CC_TICK_TTL_MS" in message
    assert get_config() == EXPECTED_DEFAULTS
    assert isinstance(info.value, BacktestKitError)


@pytest.mark.parametrize("key, value, words", [
    ("CC_PERCENT_FEE", -0.1, ">= 0"),
    ("CC_PERCENT_SLIPPAGE", math.nan, "finite"),
    ("CC_MAX_STOPLOSS_DISTANCE_PERCENT", math.inf, "finite"),
    ("CC_MIN_TAKEPROFIT_DISTANCE_PERCENT", -math.inf, "finite"),
    ("CC_SCHEDULE_AWAIT_MINUTES", 1.5, "integer"),
    ("CC_GET_CANDLES_RETRY_DELAY_MS", 10.25, "integer"),
    ("CC_PERCENT_FEE", True, "number"),
    ("CC_TICK_TTL_MS", False, "number"),
    ("CC_PERCENT_FEE", "0.1", "number"),
    ("CC_AVG_PRICE_CANDLES_COUNT", None, "number"),
    ("CC_REPORT_SHOW_SIGNAL_NOTE", 1, "bool"),
    ("CC_REPORT_SHOW_SIGNAL_NOTE", "yes", "bool"),
    ("CC_AVG_PRICE_CANDLES_COUNT", 0, "> 0"),
    ("CC_SCHEDULE_AWAIT_MINUTES", 0, "> 0"),
    ("CC_GET_CANDLES_RETRY_COUNT", 0, "> 0"),
    ("CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR", 0, "> 0"),
    ("CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN", 0, "> 0"),
    ("CC_MAX_SIGNAL_GENERATION_SECONDS", 0, "> 0"),
    ("CC_TICK_TTL_MS", 0, "> 0"),
    ("CC_MAX_SIGNAL_LIFETIME_MINUTES", -1, ">= 0"),
    ("CC_GET_CANDLES_RETRY_DELAY_MS", -5, ">= 0"),
])
def test_invalid_value_rejected_with_nothing_changed(key, value, words):
    # Combined with a valid override in the same call: the valid one must not be applied either.
    valid_key = "CC_PERCENT_FEE" if key == "CC_PERCENT_SLIPPAGE" else "CC_PERCENT_SLIPPAGE"
    with pytest.raises(ConfigError) as info:
        set_config(**{valid_key: 0.05, key: value})
    message = str(info.value)
    assert key in message and words in message
    assert repr(value) in message
    assert get_config() == EXPECTED_DEFAULTS


def test_all_errors_collected_in_one_message():
    with pytest.raises(ConfigError) as info:
        set_config(CC_PERCENT_FEE=-1, CC_AVG_PRICE_CANDLES_COUNT=2.5, CC_NOPE=1)
    message = str(info.value)
    assert "CC_PERCENT_FEE" in message and "CC_AVG_PRICE_CANDLES_COUNT" in message and "CC_NOPE" in message
    assert get_config() == EXPECTED_DEFAULTS


def test_min_stoploss_must_be_below_max_stoploss():
    with pytest.raises(ConfigError) as info:
        set_config(CC_MIN_STOPLOSS_DISTANCE_PERCENT=20)
    assert "CC_MIN_STOPLOSS_DISTANCE_PERCENT" in str(info.value)
    assert "CC_MAX_STOPLOSS_DISTANCE_PERCENT" in str(info.value)
    with pytest.raises(ConfigError):
        set_config(CC_MIN_STOPLOSS_DISTANCE_PERCENT=5, CC_MAX_STOPLOSS_DISTANCE_PERCENT=4, CC_PERCENT_FEE=0.2)
    assert get_config() == EXPECTED_DEFAULTS
    set_config(CC_MIN_STOPLOSS_DISTANCE_PERCENT=5, CC_MAX_STOPLOSS_DISTANCE_PERCENT=6)
    assert (cfg.CC_MIN_STOPLOSS_DISTANCE_PERCENT, cfg.CC_MAX_STOPLOSS_DISTANCE_PERCENT) == (5, 6)


def test_min_takeprofit_not_tied_to_costs():
    # 1.5.27 required MIN_TP >= 2*slip + 2*fee; the project keeps only ENGINE.md rules.
    set_config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.1, CC_PERCENT_FEE=1, CC_PERCENT_SLIPPAGE=1)
    assert cfg.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT == 0.1


def test_default_config_unaffected_by_set_config_and_reset_restores():
    set_config(CC_PERCENT_FEE=0.5, CC_TICK_TTL_MS=1000)
    assert get_default_config() == EXPECTED_DEFAULTS
    cfg.clear()
    assert get_config() == EXPECTED_DEFAULTS


def test_intrabar_policy_takes_only_its_three_values():
    set_config(CC_INTRABAR_POLICY="open_distance")
    assert cfg.CC_INTRABAR_POLICY == "open_distance"
    with pytest.raises(ConfigError, match="CC_INTRABAR_POLICY must be one of 'take_profit', 'stop_loss', "
                                          "'open_distance', got 'pessimistic'"):
        set_config(CC_INTRABAR_POLICY="pessimistic")
    with pytest.raises(ConfigError, match="CC_INTRABAR_POLICY"):
        set_config(CC_INTRABAR_POLICY=1)
    assert cfg.CC_INTRABAR_POLICY == "open_distance"

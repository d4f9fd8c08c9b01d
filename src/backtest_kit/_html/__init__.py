"""Self-contained HTML reports (charts by the vendored TradingView lightweight-charts) over plain data."""

from backtest_kit._html.render import render_backtest_html, render_comparison_html

__all__ = ["render_backtest_html", "render_comparison_html"]

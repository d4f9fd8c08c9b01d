"""Execution classes: Backtest (and later Live and Walker) over the shared Instance machinery."""

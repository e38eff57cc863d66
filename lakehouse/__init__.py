"""Concepts shared by every runtime: settings, lake locations, the trading calendar."""

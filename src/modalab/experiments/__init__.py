"""Configs, the runner, sweeps, the results store and reports."""

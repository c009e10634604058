"""``modalab methods``: the training methods, one line each, with their hyperparameters."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["add_methods_args", "cmd_methods"]


def add_methods_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab methods``."""
    parser.add_argument("pattern", nargs="?", default="*", help="glob over method names")


def cmd_methods(args: argparse.Namespace) -> int:
    """Print every registered method with its description and config keys."""
    from modalab.experiments.config import group_options, register_configs
    from modalab.methods import METHODS

    register_configs()
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo.get("method", {})
    table = Table(title=escape("methods (modalab run method=NAME [method.KEY=VALUE ...])"))
    table.add_column("name")
    table.add_column("description")
    table.add_column("config keys")
    options = set(group_options("method"))
    for entry in METHODS.entries(args.pattern):
        keys = ""
        if entry.name in options:
            node = repo[f"{entry.name}.yaml"].node
            keys = ", ".join(k for k in node if k != "name")
        table.add_row(entry.name, entry.description, keys)
    Console().print(table)
    return 0

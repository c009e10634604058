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
    from fnmatch import fnmatch

    from modalab.catalog import static_catalog

    catalog = static_catalog()  # a snapshot kept equal to the registries by a test: no imports
    table = Table(title=escape("methods (modalab run method=NAME [method.KEY=VALUE ...])"))
    table.add_column("name")
    table.add_column("description")
    table.add_column("config keys")
    method_keys = catalog["method_keys"]
    for name, description in catalog["kinds"]["methods"]:
        if not fnmatch(name, args.pattern):
            continue
        keys = ", ".join(method_keys.get(name, []))
        table.add_row(name, description, keys)
    Console().print(table)
    return 0

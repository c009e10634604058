"""The command line starts without the heavy stack; its static catalog equals the registries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modalab.catalog import live_catalog, static_catalog

HEAVY = ("torch", "lightning", "monai", "sklearn", "pandas", "hydra", "kornia", "scipy")


def test_static_catalog_equals_live_registries() -> None:
    # If this fails after adding a component: `python -m modalab.catalog && ruff format .`
    assert static_catalog() == live_catalog()


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["methods"], ["list", "methods"]])
def test_light_commands_import_no_heavy_module(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from modalab.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]", out[-2000:]


def test_list_and_methods_print_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    from modalab.cli.main import main

    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "clip" in out and "vicreg" in out
    assert main(["methods", "sim*"]) == 0
    out = capsys.readouterr().out
    assert "simclr" in out and "simsiam" in out and "vicreg" not in out
    assert main(["list", "nonsense"]) == 2

"""Locating the real data folder for tests: $MODALAB_DATA or ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir(*required: str) -> Path:
    """The real data folder, or skip the test with the reason if it (or a subfolder) is absent."""
    env = os.environ.get("MODALAB_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(
            f"real data folder {root} is absent (set MODALAB_DATA or provide ../shared/data)"
        )
    for sub in required:
        if not (root / sub).exists():
            pytest.skip(f"{root / sub} is absent from the real data folder")
    return root

"""Slow reliability tests (the 20,000-step leak run, the long fuzz run) run only on demand:
``-m slow`` or ``TAPEGRAD_SLOW=1``."""

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("-m") or "") or os.environ.get("TAPEGRAD_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or TAPEGRAD_SLOW=1")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)

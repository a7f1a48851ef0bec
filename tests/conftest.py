"""Shared fixtures for the unit tests (tests/integration/ has its own conftest)."""

from __future__ import annotations

import os

import pytest

# Every App name the unit tests use, upper-cased: the `<NAME>_` env-var prefixes.
APP_PREFIXES = ("ORDERS_", "SHOP_", "DEMO_", "TESTAPP_")


@pytest.fixture(autouse=True)
def _scrub_app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep `<NAME>_*` variables from the outer environment out of every test."""
    for key in list(os.environ):
        if key.startswith(APP_PREFIXES):
            monkeypatch.delenv(key)

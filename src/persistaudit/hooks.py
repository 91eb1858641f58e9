"""Hooks a team's conftest.py may implement (registered by the persistaudit plugin)."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_persistaudit_databases(config: pytest.Config) -> list[str] | None:
    """The names of the databases an overridden persistaudit_config fixture will list.

    Needed only when that fixture is overridden and its config lists more than one database:
    the per-database checks are parametrized when the tests are collected, before any fixture
    runs. With --persistaudit-config the names come from that file and this hook is not asked.
    """
    return None

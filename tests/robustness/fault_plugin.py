"""Test-only pytest plugin: a bug inside one of persistaudit's own checks.

Nothing loads it but the failure-category tests, with `-p tests.robustness.fault_plugin`
(through PYTEST_ADDOPTS for `persistaudit run`). It breaks the constraints check's probe the
way a real bug would (a TypeError), and puts a secret in the message: the traceback saved as
evidence must be redacted like every other output.
"""

from __future__ import annotations

import os

import pytest

from persistaudit import constraints

FAULT = "injected fault: probe() got an unexpected keyword argument"
_patch = pytest.MonkeyPatch()


def _broken_probe(*_args: object, **_kwargs: object) -> list[object]:
    raise TypeError(f"{FAULT} 'token={os.environ.get('PA_FAULT_SECRET', '')}'")


def pytest_configure(config: pytest.Config) -> None:
    _patch.setattr(constraints, "probe", _broken_probe)


def pytest_unconfigure(config: pytest.Config) -> None:
    _patch.undo()

"""The canary drivers, keyed by the kind of the config's canary steps.

A new way of reaching a service (the next one: HTTP sessions with a login) is a module with
a class satisfying canary.CanaryDriver, a step model in config.py and an entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from persistaudit.canary import CanaryDriver
from persistaudit.canary_exec import ExecCanary
from persistaudit.canary_http import HttpCanary
from persistaudit.config import CanarySpec

DRIVERS: dict[str, Callable[[CanarySpec], CanaryDriver]] = {
    HttpCanary.KIND: HttpCanary,
    ExecCanary.KIND: ExecCanary,
}


def driver_for(spec: CanarySpec) -> CanaryDriver:
    """The driver that runs spec's steps."""
    return DRIVERS[spec.kind](spec)

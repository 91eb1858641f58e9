"""The stages of an audit: named steps (fresh install, restart, re-create, ...) in a registry.

A suite asks the audit for a stage by name (`audit.stage("restart")`); the stage runs once, on
first use, and its result is kept on the audit, so checks run in any order or alone. A team
adds its own in a conftest.py with `register("upgrade", run)`, where run(audit) returns what its
checks read.

Each stage owns a fixed block of canary numbers, from its place in the registry: the markers
of one run never repeat, and the canaries a stage writes and reads back are its own, whichever
stages ran before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from persistaudit.exceptions import StageError

if TYPE_CHECKING:
    from persistaudit.audit import TargetAudit

# Canary numbers per stage: CanarySpec.records' maximum, so that blocks never overlap.
CANARY_BLOCK = 100_000
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Stage:
    """A named step of an audit; run(audit) does it once and returns its result."""

    name: str
    run: Callable[[TargetAudit], object]
    index: int  # its place in the registry; fixes its canary block

    @property
    def canary_start(self) -> int:
        """The number of the stage's first canary record (its block starts here)."""
        return self.index * CANARY_BLOCK + 1


# The bundled stages' places, reserved so that their canary blocks do not depend on whether a
# team's conftest registered a stage before persistaudit.audit was imported.
BUNDLED = (
    "fresh",
    "restart",
    "recreate",
    "graceful_stop",
    "idempotent_init",
    "crash",
    "backup",
    "upgrade",
)
_stages: dict[str, Stage] = {}
_next_index = len(BUNDLED)


def register(name: str, run: Callable[[TargetAudit], object]) -> Stage:
    """Add a stage, or replace the function of one registered before (it keeps its block).

    Replacing keeps a conftest.py that is imported twice (pytester, xdist) harmless.
    """
    global _next_index
    if not _NAME.match(name):
        raise StageError(f"stage name {name!r} is not of the form [a-z][a-z0-9_]*")
    known = _stages.get(name)
    if known is not None:
        _stages[name] = Stage(name, run, known.index)
    elif name in BUNDLED:
        _stages[name] = Stage(name, run, BUNDLED.index(name))
    else:
        _stages[name] = Stage(name, run, _next_index)
        _next_index += 1
    return _stages[name]


def unregister(name: str) -> None:
    """Remove a stage (for tests); its canary block is not given to another."""
    _stages.pop(name, None)


def get(name: str) -> Stage:
    stage = _stages.get(name)
    if stage is None:
        raise StageError(
            f"no stage named {name!r}; the registered stages are {', '.join(names())}. "
            "Hint: register a team's own stage in a conftest.py with persistaudit.stages.register"
        )
    return stage


def names() -> list[str]:
    """The registered stages, in registration order."""
    return [s.name for s in sorted(_stages.values(), key=lambda s: s.index)]

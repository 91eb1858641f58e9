"""Runs kept with `persistaudit run --keep`: their containers and volumes stay for debugging.

A kept run's resources keep their labels, so `clean --run ID` (or `clean --all`) still finds
them. Plain `clean` leaves them alone: their owner has ended, but the user asked for them.
Which runs were kept is recorded on this host, in a folder of its own (labels cannot be
added to a container or volume after it was created, and a run killed before its end must
still look ended to `clean`: only a run that completed its audit is recorded).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept import-light: `clean` and the CLI load it
    from persistaudit.cleanup import Resource

_RUN_ID = re.compile(r"^[0-9a-f]{1,32}$")
_kept_here: list[KeptRun] = []


@dataclass(frozen=True)
class KeptRun:
    run: str
    target: str
    kept_at: str
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    engine: str = field(default_factory=lambda: os.environ.get("DOCKER_HOST", ""))

    def removal_commands(self) -> list[str]:
        """The docker commands that remove it by hand (containers first: they hold volumes)."""
        commands = []
        if self.containers:
            commands.append("docker rm -f " + " ".join(self.containers))
        if self.volumes:
            commands.append("docker volume rm " + " ".join(self.volumes))
        if self.networks:
            commands.append("docker network rm " + " ".join(self.networks))
        return commands

    def remove_commands(self) -> list[str]:
        """How to remove it: persistaudit's own clean, or the docker commands."""
        return [f"persistaudit clean --run {self.run}", *self.removal_commands()]

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "remove": self.remove_commands()}


def state_dir() -> Path:
    """$XDG_STATE_HOME/persistaudit/kept, by default ~/.local/state/persistaudit/kept."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "persistaudit" / "kept"


def record(run_id: str, target: str, resources: list[Resource]) -> KeptRun:
    """Remember a completed run's resources as kept. The run is kept (kept_here) even when
    the record cannot be written (OSError)."""
    by_kind: dict[str, list[str]] = {"container": [], "volume": [], "network": []}
    for resource in resources:
        by_kind[resource.kind].append(resource.name)
    kept = KeptRun(
        run_id,
        target,
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sorted(by_kind["container"]),
        sorted(by_kind["volume"]),
        sorted(by_kind["network"]),
    )
    _kept_here.append(kept)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run_id}.json").write_text(json.dumps(asdict(kept), indent=2) + "\n")
    return kept


def kept_here() -> list[KeptRun]:
    """The runs this process kept."""
    return list(_kept_here)


def kept_runs() -> dict[str, KeptRun]:
    """Every run recorded as kept on this host (unreadable records are ignored)."""
    found: dict[str, KeptRun] = {}
    with contextlib.suppress(OSError):
        for path in sorted(state_dir().glob("*.json")):
            try:
                data = json.loads(path.read_text())
                kept = KeptRun(**data)
            except (OSError, ValueError, TypeError):
                continue
            if _RUN_ID.match(kept.run) and path.stem == kept.run:
                found[kept.run] = kept
    return found


def forget(run_id: str) -> None:
    """The run is removed: no longer kept."""
    if _RUN_ID.match(run_id):
        with contextlib.suppress(OSError):
            (state_dir() / f"{run_id}.json").unlink()

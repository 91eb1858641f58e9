"""Errors of persistaudit. Every message says what failed, on which object, and what to do."""

from __future__ import annotations

from typing import Any


class PersistauditError(Exception):
    """Base class: a problem persistaudit reports as one line, never as a traceback."""


class ConfigError(PersistauditError):
    """A config or manifest file is missing, malformed, or names something that does not exist."""


class CatalogError(PersistauditError):
    """A check catalog entry is malformed, or clashes with one already registered."""


class StageError(PersistauditError):
    """An audit stage is unknown, badly named, or asks for itself."""


class EngineUnavailable(PersistauditError):
    """The Docker engine does not answer."""


class ImageError(PersistauditError):
    """The target's image is unknown or its build failed."""


class ComposeError(PersistauditError):
    """A compose file is invalid, or a docker compose command failed or ran past its timeout.

    stderr is the end of what compose said, for the evidence.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class SnapshotError(PersistauditError):
    """The database could not be copied out of the container or opened on the host."""


class DatabaseMissing(SnapshotError):
    """No file at the configured database path: the root cause of every check that needs it."""


class LimitExceeded(PersistauditError):
    """Examining the target's database needed more time or space than persistaudit allows.

    Not a verdict on the database: a check that meets one is inconclusive or BLOCKED, never
    passed or failed.
    """


class QueryTimeout(LimitExceeded):
    """A statement on a copy of the database ran past its deadline (database.query_timeout)."""


class ValueTooLarge(LimitExceeded):
    """A value or expression in the database is larger than the length limit on host copies."""


class DatabaseTooLarge(LimitExceeded):
    """The database is larger than database.max_size or the free space left for its copy."""


class CanaryError(PersistauditError):
    """Writing or reading canary records through the service failed.

    request and response say what was sent and what came back, for the evidence.
    """

    def __init__(self, message: str, *, request: str = "", response: str = "") -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class OutputBusy(PersistauditError):
    """Another persistaudit run is writing to the same output folder."""


class NoVerdict(PersistauditError):
    """The audit ended without results: a -k that selects no check, or pytest could not run it.

    exit_code is the CLI's: 2 for a usage error, 4 when persistaudit itself wrote nothing.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TargetBlocked(PersistauditError):
    """The target did not become ready: it exited, loops on restart or timed out."""

    def __init__(self, message: str, *, reason: str, evidence: dict[str, object]) -> None:
        super().__init__(message)
        self.reason = reason
        self.evidence = evidence


class TargetRemoved(PersistauditError):
    """Something other than this audit removed its container or volume while it ran."""


class RestoreUnsupported(PersistauditError):
    """The runtime's driver cannot start the service on a restored backup."""


class RestoreError(PersistauditError):
    """The engine refused a step of preparing a restore (volume, container, copy, start)."""


class UpgradeUnsupported(PersistauditError):
    """The runtime's driver cannot start the previous version of the service (upgrade_from)."""


class UpgradeError(PersistauditError):
    """The previous version could not be installed: its image, or a step the engine refused."""


class SigningError(PersistauditError):
    """A key cannot be read or used, or a folder cannot be signed."""


class AllowedSignersError(SigningError):
    """An allowed-signers file cannot be read, or one of its lines is malformed."""


class DocumentError(PersistauditError):
    """A results.json or signature.json is unreadable, not strict JSON, or of the wrong shape."""


def clip_value(value: Any, limit: int = 40) -> str:
    """A value as an error message shows it: repr, cut when long (it may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def sqlite_message(exc: Exception) -> str:
    """SQLite's error text. A corrupt file can make it invalid UTF-8: Python then raises
    UnicodeDecodeError instead of the error, and the raw message is in its bytes."""
    if isinstance(exc, UnicodeDecodeError):
        return bytes(exc.object).decode("utf-8", "backslashreplace")
    return str(exc)


def summarize(exc: BaseException) -> str:
    """The exception's type and the first line of its message, for a one-line report of it."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

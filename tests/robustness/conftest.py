"""Robustness tests: interruption, races and `clean`, against the real engine."""

from tests.e2e.conftest import engine

__all__ = ["engine"]
